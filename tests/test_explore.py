"""bench explore on every network and three arrays: stored points, Pareto statuses that agree
with domination, networks without a cited accuracy named, constraints, plots, errors."""
from __future__ import annotations

import json

import pytest

from harness.pareto import Objective, dominates
from harness.plugins.manager import get_plugin_manager

TOP1 = Objective("top1", "max")
COSTS = {"energy": Objective("energy"), "time": Objective("time (ms)"),
         "params": Objective("params")}


def test_all_networks_on_three_arrays_give_consistent_fronts_and_a_plot(bench, tmp_path):
    plot = tmp_path / "front.png"
    proc = bench("explore", "--model", "all", "--hw", "accel-8x8,accel-16x16,accel-32x32",
                 "--all-points", "--plot", str(plot), "--format", "json", "--quiet")
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    rows = payload["points"]
    models = get_plugin_manager().models().values()
    assert len(rows) == 90 == 3 * len(models) and payload["failures"] == []
    assert payload["summary"].startswith("90 design points (30 networks x 3 hardware points)")
    uncited = sorted((m.name for m in models if not any(r.name == "top1" for r in m.reported)),
                     key=str.lower)
    assert payload["left_out"] == uncited and "1.0-SqNxt-34" in uncited
    cited = [r for r in rows if r["top1"] is not None]
    for row in cited:  # the printed status agrees with pairwise domination, per cost
        for name, cost in COSTS.items():
            beaten = any(dominates([o[cost.key], o["top1"]], [row[cost.key], row["top1"]],
                                   [cost, TOP1]) for o in cited)
            on = row["status"].startswith("front") and name in row["status"]
            assert on == (not beaten), (row["model"], row["hardware"], name)
    assert all(r["status"] == "no reported top1" for r in rows if r["top1"] is None)
    assert all(isinstance(r["id"], int) for r in rows)  # every point was stored
    assert plot.read_bytes().startswith(b"\x89PNG")
    stored = bench("results", "list", "--limit", "500", "--format", "json")
    assert len(json.loads(stored.stdout)) == 90


def test_constraints_and_vary_points(bench):
    proc = bench("explore", "--model", "1.0-SqNxt-23,1.0-SqNxt-23v5,squeezenet1_0,alexnet,"
                 "mobilenet_v1_0.5", "--hw", "accel-16x16", "--vary", "dram_bw=4,16",
                 "--max-energy", "1e10", "--min-top1", "59", "--all-points", "--format", "json",
                 "--no-store", "--quiet", "--jobs", "1")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)["points"]
    assert {r["hardware"] for r in rows} == {"accel-16x16 dram_bw=4", "accel-16x16 dram_bw=16"}
    kept = [r for r in rows if not r["status"].startswith("rejected")]
    assert kept and all(r["energy"] <= 1e10 and r["top1"] >= 59 for r in kept)
    why = {(r["model"], r["hardware"]): r["status"] for r in rows if r["status"].startswith("rejected")}
    assert why[("squeezenet1_0", "accel-16x16 dram_bw=4")].startswith("rejected, --min-top1: below")
    assert why[("alexnet", "accel-16x16 dram_bw=4")].startswith("rejected, --max-energy: exceeds")


@pytest.mark.parametrize("args, words", [
    (("--plot", "front.txt"), "expected a file ending in .png"),
    (("--against", "watts"), "unknown cost in --against 'watts'"),
    (("--vary", "dram_bw"), "is not [BACKEND:]KEY=V1,V2"),
    (("--vary", "dram_bandwidth=4,8"), "did you mean 'dram_bw'"),
    (("--min-top1", "120"), "--min-top1"),
])
def test_bad_options_exit_2_with_one_line(bench, args, words):
    proc = bench("explore", "--model", "squeezenet1_1", "--hw", "accel", "--no-store", *args)
    assert proc.returncode == 2, proc.stderr
    assert words in proc.stderr and "Traceback" not in proc.stderr
