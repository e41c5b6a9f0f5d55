"""Pareto fronts on hand-made points: domination, ties, unknown values, constraints, plots."""
from __future__ import annotations

import itertools
import random

import pytest

from harness.pareto import (
    Constraint,
    DesignPoint,
    Objective,
    apply_constraints,
    dominates,
    front,
    pareto_mask,
    plot_fronts,
)

TOP1 = Objective("top1", "max")
ENERGY = Objective("energy", "min", log=True)
TIME = Objective("time", "min")


def point(label, top1, energy, time=1.0, group="hw"):
    return DesignPoint(label, group, {"top1": top1, "energy": energy, "time": time})


# accuracy up, energy down is better. Hand-checked:
#   a (60, 10) and b (70, 20) and e (80, 40) trade off: front
#   c (59, 12) is beaten by a on both; d (70, 25) by b (same accuracy, more energy)
#   f (80, 40) equals e exactly: neither dominates the other, both stay
#   g (50, 5) is the cheapest: front
POINTS = [point("a", 60, 10), point("b", 70, 20), point("c", 59, 12), point("d", 70, 25),
          point("e", 80, 40), point("f", 80, 40), point("g", 50, 5)]


def test_domination_on_hand_made_points():
    on, off, unknown = front(POINTS, [ENERGY, TOP1])
    assert {p.label for p in on} == {"a", "b", "e", "f", "g"}
    assert {p.label for p in off} == {"c", "d"} and unknown == []
    assert dominates([10, 60], [12, 59], [ENERGY, TOP1])
    assert dominates([20, 70], [25, 70], [ENERGY, TOP1])  # equal in one, better in the other
    assert not dominates([40, 80], [40, 80], [ENERGY, TOP1])  # a tie is not domination
    assert not dominates([10, 60], [20, 70], [ENERGY, TOP1])  # a trade-off either way
    assert not dominates([20, 70], [10, 60], [ENERGY, TOP1])


def test_a_third_objective_can_bring_a_dominated_point_back():
    pts = [point("fast", 70, 25, time=0.5), point("frugal", 70, 20, time=2.0)]
    assert [p.label for p in front(pts, [ENERGY, TOP1])[0]] == ["frugal"]
    assert {p.label for p in front(pts, [ENERGY, TOP1, TIME])[0]} == {"fast", "frugal"}


def test_points_without_a_value_are_left_out_not_dominated():
    pts = POINTS + [DesignPoint("uncited", "hw", {"top1": None, "energy": 1.0}),
                    DesignPoint("nan", "hw", {"top1": float("nan"), "energy": 1.0})]
    on, off, unknown = front(pts, [ENERGY, TOP1])
    assert {p.label for p in unknown} == {"uncited", "nan"}
    assert {p.label for p in on} == {"a", "b", "e", "f", "g"}


def test_the_vectorised_mask_agrees_with_pairwise_domination():
    rng = random.Random(7)
    values = [[rng.randint(0, 6), rng.randint(0, 6), rng.random()] for _ in range(600)]
    objectives = [TOP1, ENERGY, TIME]
    mask = pareto_mask(values, objectives)
    for i, v in enumerate(values):
        beaten = any(dominates(w, v, objectives) for j, w in enumerate(values) if j != i)
        assert mask[i] == (not beaten)
    assert pareto_mask([], objectives) == []


def test_constraints_filter_before_the_front_and_say_why():
    limits = [Constraint("energy", 30, upper=True, option="--max-energy"),
              Constraint("top1", 55, upper=False, option="--min-top1")]
    kept, rejected = apply_constraints(POINTS + [DesignPoint("uncited", "hw", {"energy": 1})],
                                       limits)
    assert {p.label for p in kept} == {"a", "b", "c", "d"}
    why = {p.label: reason for p, reason in rejected}
    assert why["e"].startswith("--max-energy: exceeds") and why["g"].startswith("--min-top1: below")
    assert why["uncited"].startswith("--min-top1: no value")
    assert {p.label for p in front(kept, [ENERGY, TOP1])[0]} == {"a", "b"}


@pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG"), (".svg", b"<?xml")])
def test_plots_are_written_with_dominated_points_marked(tmp_path, suffix, magic):
    pts = [point(f"{m}@{g}", 50 + 3 * i, 10 + 7 * i * (j + 1) + (i % 2) * 9, group=g)
           for (i, m), (j, g) in itertools.product(enumerate("abcdef"), enumerate(["8x8", "16x16"]))]
    path = tmp_path / f"front{suffix}"
    plot_fronts(pts, TOP1, [ENERGY, TIME], str(path), title="test")
    data = path.read_bytes()
    assert data.startswith(magic) and len(data) > 5000
    if suffix == ".svg":
        text = data.decode()
        assert "dominated" in text and "16x16" in text  # legend entries
