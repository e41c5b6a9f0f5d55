"""Which cluster sizes to measure next: A-optimal design for the system model, per machine-second.

The least-squares covariance of the coefficients is proportional to
(X'X)^-1, X holding one row of terms per measured run. A-optimality
minimises its trace: the summed variance of the coefficients. Ernest solves
a convex relaxation over fractional run weights and rounds it; here the
candidates are few (m = 1..max-ranks) and a sweep adds whole runs, so we
search over whole runs directly: for every affordable first run, add runs
greedily by the drop in the trace per machine-second of their estimated cost
while the budget lasts, and keep the best of these plans. Trying every first
run (partial enumeration) fixes plain cost-ratio greedy's known failure of
spending the budget on cheap, uninformative runs and then affording no
expensive, informative one; the tests compare the result with an exhaustive
search on a small case. Each step is a rank-one update (Sherman-Morrison).

Terms are scaled to a maximum of 1 over the sizes considered, so the trace
weighs coefficients of different units evenly.

For a decision, not every coefficient matters: what matters is the predicted
time of the few candidates still in contention. With ``focus`` (weights per
algorithm over the candidate sizes) the criterion becomes L-optimal,
trace(L (X'X)^-1) with L = sum_c w_c x_c x_c': the summed variance of the
contenders' predicted f(m), weighted by how much each is in contention. The
greedy search is the same; the identity L gives back the A-criterion. A tiny ridge keeps the trace
finite while the model is not yet identifiable, so the first picks fill in
missing sizes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from harness.errors import BenchUsageError
from plugins.hemingway.measurements import Measurements
from plugins.hemingway.system_model import Term, design_matrix, fit_system

RIDGE = 1e-6
DEFAULT_PICKS = 3  # without a budget: this many sizes, or enough to make the model identifiable
NEGLIGIBLE = 1e-3  # stop when a run would lower the criterion by less than 0.1%


@dataclass
class Design:
    """The rows of the suggestion and what the criterion was before and after."""

    rows: list[dict[str, Any]]
    criterion_before: float
    criterion_after: float
    algorithms: list[str]
    sizes_still_missing: int  # distinct sizes the model still lacks after these runs


def a_criterion(information: Sequence[np.ndarray],
                weights: Sequence[np.ndarray] | None = None) -> float:
    """Sum over algorithms of trace(L (X'X + ridge)^-1) (L = identity without weights)."""
    total = 0.0
    for k, info in enumerate(information):
        inverse = np.linalg.inv(info + RIDGE * np.eye(info.shape[0]))
        total += float(np.trace(inverse if weights is None else weights[k] @ inverse))
    return total


def _add_run(inverse: np.ndarray, x: np.ndarray) -> np.ndarray:
    """(M + x x')^-1 from M^-1 (Sherman-Morrison)."""
    ax = inverse @ x
    return inverse - np.outer(ax, ax) / (1.0 + x @ ax)


def _trace(weights: Sequence[np.ndarray], inverses: Sequence[np.ndarray]) -> float:
    return sum(float(np.trace(w @ a)) for w, a in zip(weights, inverses))


def _criterion_after_each(inverses: Sequence[np.ndarray], rows_of: np.ndarray,
                          weights: Sequence[np.ndarray]) -> np.ndarray:
    """The criterion after adding one run at each candidate size (all candidates at once)."""
    total = np.zeros(rows_of.shape[0])
    for inverse, w in zip(inverses, weights):
        ax = rows_of @ inverse
        total += np.trace(w @ inverse) - np.einsum("cp,pq,cq->c", ax, w, ax) / (
            1.0 + np.einsum("cp,cp->c", ax, rows_of))
    return total


def _greedy(inverses: Sequence[np.ndarray], rows_of: np.ndarray, cost: np.ndarray,
            budget: float | None, picks: int | None, first: int,
            weights: Sequence[np.ndarray]) -> tuple[list[int], float]:
    """Start with ``first``, then add the size with the best criterion drop per machine-second."""
    chosen = [first]
    inverses = [_add_run(a, rows_of[first]) for a in inverses]
    current = _trace(weights, inverses)
    spent = cost[first]
    while picks is None or len(chosen) < picks:
        after = _criterion_after_each(inverses, rows_of, weights)
        ratio = (current - after) / cost
        if budget is not None:
            ratio[spent + cost > budget] = -np.inf
        k = int(np.argmax(ratio))
        if not ratio[k] > 0 or current - after[k] < NEGLIGIBLE * current:
            break
        chosen.append(k)
        inverses = [_add_run(a, rows_of[k]) for a in inverses]
        current, spent = float(after[k]), spent + cost[k]
    return chosen, current


def estimated_run_cost(measurements: Measurements, algorithm: str, terms: Sequence[Term],
                       candidates: np.ndarray) -> np.ndarray:
    """Machine-seconds of one more run at each candidate size, like the runs already made.

    Iterations per run: the median of the measured runs. Seconds per iteration:
    the fitted f(m) when the algorithm has enough sizes, else the measured mean
    at the nearest measured size (in log m), a rough guess.
    """
    runs = measurements.runs_of(algorithm)
    iterations = float(np.median([r.iterations_run for r in runs]))
    ranks = np.array([r.ranks for r in runs], dtype=float)
    seconds = np.array([r.mean_iter_time for r in runs])
    if np.unique(ranks).size >= len(terms):
        per_iteration = fit_system(ranks, seconds, measurements.n, terms).predict(candidates)
    else:
        nearest = np.abs(np.log(candidates)[:, None] - np.log(ranks)[None, :]).argmin(axis=1)
        per_iteration = seconds[nearest]
    return iterations * per_iteration * candidates


def suggest(
    measurements: Measurements, terms: Sequence[Term], max_ranks: int, budget: float | None,
    focus: dict[str, np.ndarray] | None = None,
) -> Design:
    """A-optimal choice of the next runs (one sweep of every algorithm per size).

    ``focus``: per algorithm, weights over the candidate sizes m = 1..max_ranks
    (how much each is in contention); the criterion is then L-optimal for those
    predictions. Algorithms missing from it do not count.
    """
    algorithms = measurements.algorithms
    if not algorithms:
        raise BenchUsageError("no measured runs: --suggest needs one to price the next runs")
    candidates = np.arange(1, max_ranks + 1, dtype=float)
    n = measurements.n or 1.0
    measured = sorted({r.ranks for r in measurements.runs})
    every = np.union1d(candidates, np.array(measured, dtype=float))
    scale = np.abs(design_matrix(terms, every, n)).max(axis=0)
    scale[scale == 0] = 1.0
    rows_of = design_matrix(terms, candidates, n) / scale

    information = []
    for algorithm in algorithms:
        x = design_matrix(terms, np.array([r.ranks for r in measurements.runs_of(algorithm)],
                                          dtype=float), n) / scale
        information.append(x.T @ x)
    cost = sum(estimated_run_cost(measurements, a, terms, candidates) for a in algorithms)

    needed = max(0, len(terms) - min(len(measurements.sizes(a)) for a in algorithms))
    picks = None if budget is not None else max(DEFAULT_PICKS, needed)
    if budget is not None and cost.min() > budget:
        cheapest = int(candidates[cost.argmin()])
        raise BenchUsageError(
            f"--budget {budget:g} machine-seconds buys no run: the cheapest, m={cheapest}, "
            f"costs about {cost.min():.3g} machine-seconds for all {len(algorithms)} algorithms"
        )

    if focus is None:
        weights = [np.eye(len(terms)) for _ in algorithms]
    else:
        weights = [rows_of.T @ (np.asarray(focus[a], dtype=float)[:, None] * rows_of)
                   if a in focus else np.zeros((len(terms), len(terms))) for a in algorithms]
    inverses = [np.linalg.inv(info + RIDGE * np.eye(info.shape[0])) for info in information]
    before = a_criterion(information, weights)
    best_picks, best_value, best_cost = [], before, 0.0
    for first in range(candidates.size):  # partial enumeration: every first pick, then greedy
        if budget is not None and cost[first] > budget:
            continue
        picks_made, value = _greedy(inverses, rows_of, cost, budget, picks, first, weights)
        spent = float(cost[picks_made].sum())
        tie = abs(value - best_value) <= 1e-9 * best_value
        if (value < best_value and not tie) or (tie and spent < best_cost):
            best_picks, best_value, best_cost = picks_made, value, spent
    rows, spent, current = [], 0.0, before
    seen = set(measured)
    for k in best_picks:
        inverses_after = [_add_run(a, rows_of[k]) for a in inverses]
        value = _trace(weights, inverses_after)
        spent += cost[k]
        size = int(candidates[k])
        rows.append({
            "step": len(rows) + 1,
            "m": size,
            "new_size": size not in seen,
            "run_cost_machine_s": float(cost[k]),
            "total_machine_s": spent,
            "a_criterion": value,
            "relative_to_now": value / before,
        })
        seen.add(size)
        inverses, current = inverses_after, value
    picked = {row["m"] for row in rows}
    missing = max(0, len(terms) - min(len(set(measurements.sizes(a)) | picked) for a in algorithms))
    return Design(rows, before, current, algorithms, missing)
