"""Time-to-accuracy per (algorithm, m): T(eps, m) = I(eps, m) * f(m), ranked by time or cost.

Intervals and the probability that a candidate is the best come from draws of
the calibrated uncertainty model (:mod:`plugins.hemingway.uncertainty`); each
algorithm is drawn independently, every m of one algorithm jointly.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from plugins.hemingway.fitting import AlgorithmFit
from plugins.hemingway.system_model import Term
from plugins.hemingway.uncertainty import choice_probabilities, component_draws, percentile_interval

WITHIN = 0.05  # "close to the best": within 5% of its objective


@dataclass
class Objective:
    """What to minimise and which limits apply."""

    kind: str = "time"  # "time" or "cost"
    deadline_s: float | None = None
    budget: float | None = None  # in cost units
    price_per_machine_hour: float | None = None

    @property
    def cost_unit(self) -> str:
        return "money" if self.price_per_machine_hour else "machine-seconds"

    def cost(self, seconds: np.ndarray, m: np.ndarray) -> np.ndarray:
        machine_seconds = seconds * m
        if self.price_per_machine_hour:
            return machine_seconds * self.price_per_machine_hour / 3600.0
        return machine_seconds


def data_mark(m: int, sizes: Sequence[int]) -> str:
    if m in sizes:
        return "measured"
    return "interpolated" if min(sizes) < m < max(sizes) else "extrapolated"


def rank(
    fits: Sequence[AlgorithmFit], eps: float, max_ranks: int, objective: Objective,
    terms: Sequence[Term], draws: int = 400, seed: int = 0,
) -> list[dict[str, Any]]:
    """Every (algorithm, m <= max_ranks), feasible ones first, best first.

    With ``draws`` > 0, each row has 90% intervals on iterations, seconds per
    iteration, time and cost, and the probability that it is the best feasible
    candidate (``p_best``) or within 5% of the best (``p_within_5pct``).
    """
    m = np.arange(1, max_ranks + 1, dtype=float)
    rng = np.random.default_rng(seed)
    rows, objective_draws = [], []
    key = "time_s" if objective.kind == "time" else "cost"
    for fit in fits:
        iterations = fit.iterations(eps, m)
        per_iteration = fit.system.predict(m)
        seconds = iterations * per_iteration
        if draws:
            drawn = component_draws(fit, eps, m, terms, draws, rng,
                                    [f for f in fits if f is not fit])
            time_draws = drawn.time
        else:
            drawn, time_draws = None, np.zeros((0, m.size))
        lo, hi = percentile_interval(time_draws)
        it_lo, it_hi = percentile_interval(drawn.iterations if drawn else time_draws)
        f_lo, f_hi = percentile_interval(drawn.per_iteration if drawn else time_draws)
        measured = {}
        for size in fit.sizes:
            times = [t for r in fit.runs if r.ranks == size
                     for t in [r.time_to(eps)] if t is not None]
            if times:
                measured[size] = float(np.mean(times))
        cost = objective.cost(seconds, m)
        cost_lo, cost_hi = objective.cost(lo, m), objective.cost(hi, m)
        feasible = np.ones(m.size, dtype=bool)
        for k, size in enumerate(m.astype(int)):
            row = {
                "algorithm": fit.algorithm,
                "m": int(size),
                "data": data_mark(int(size), fit.sizes),
                "iterations": iterations[k],
                "iterations_lo": it_lo[k],
                "iterations_hi": it_hi[k],
                "s_per_iter": per_iteration[k],
                "s_per_iter_lo": f_lo[k],
                "s_per_iter_hi": f_hi[k],
                "time_s": seconds[k],
                "time_lo_s": lo[k],
                "time_hi_s": hi[k],
                "cost": cost[k],
                "cost_lo": cost_lo[k],
                "cost_hi": cost_hi[k],
                "measured_time_s": measured.get(int(size)),
            }
            limits = []
            if objective.deadline_s is not None and seconds[k] > objective.deadline_s:
                limits.append("over deadline")
            if objective.budget is not None and cost[k] > objective.budget:
                limits.append("over budget")
            row["feasible"] = feasible[k] = not limits
            row["limit"] = ", ".join(limits)
            rows.append(row)
        if draws:
            value = time_draws if objective.kind == "time" else objective.cost(time_draws, m)
            objective_draws.append(np.where(feasible, value, np.inf))
    if draws and rows:
        p_best, p_within = choice_probabilities(np.hstack(objective_draws), WITHIN)
    else:
        p_best = p_within = np.full(len(rows), np.nan)
    for row, best, close in zip(rows, p_best, p_within):
        row["p_best"], row["p_within_5pct"] = float(best), float(close)
    rows.sort(key=lambda r: (not r["feasible"], r[key], r["m"], r["algorithm"]))
    place = 0
    for row in rows:
        if row["feasible"]:
            place += 1
        row["rank"] = place if row["feasible"] else None
    return rows


# --------------------------------------------------------------------------- confidence
CONFIDENT = 0.8  # the choice is confident when it is within 5% of the best this often
CONTENDER = 0.05  # a candidate within 5% of the best at least this often is in contention


def confidence(rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """How sure the top row is, and which candidates are still in contention.

    The test is P(within 5% of the best) of the top row >= CONFIDENT, not its
    P(best): neighbouring sizes of one algorithm often predict nearly the same
    time, so P(best) spreads over them even when any of them is a fine choice.
    What a user risks is running something noticeably slower than the best,
    and that is what P(within 5%) measures. None without draws.
    """
    feasible = [r for r in rows if r["feasible"]]
    if not feasible or not np.isfinite(feasible[0]["p_best"]):
        return None
    top = feasible[0]
    contenders = [r for r in feasible if r["p_within_5pct"] >= CONTENDER]
    return {
        "algorithm": top["algorithm"], "m": top["m"], "data": top["data"],
        "p_best": top["p_best"], "p_within_5pct": top["p_within_5pct"],
        "separable": top["p_within_5pct"] >= CONFIDENT, "threshold": CONFIDENT,
        "contenders": [{"algorithm": r["algorithm"], "m": r["m"],
                        "p_within_5pct": r["p_within_5pct"]} for r in contenders],
    }


def contention_weights(decision: dict[str, Any], max_ranks: int) -> dict[str, np.ndarray]:
    """Per algorithm, P(within 5%) of each contender at its m (for an L-optimal design)."""
    weights: dict[str, np.ndarray] = {}
    for c in decision["contenders"]:
        w = weights.setdefault(c["algorithm"], np.zeros(max_ranks))
        w[c["m"] - 1] = c["p_within_5pct"]
    return weights
