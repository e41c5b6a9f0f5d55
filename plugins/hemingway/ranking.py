"""Time-to-accuracy per (algorithm, m): T(eps, m) = I(eps, m) * f(m), ranked by time or cost.

Uncertainty comes from a bootstrap over the measured runs: resample an
algorithm's runs with replacement, refit both models (keeping the convergence
family chosen on all the data), predict again; the interval is the 5th to 95th
percentile of the predictions.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from harness.errors import BenchUsageError
from plugins.hemingway.convergence import (
    ConvergenceModel, Family, LevelPoints, fit_convergence, level_points, reference_subopt,
    select_family, solve_family,
)
from plugins.hemingway.measurements import Measurements, Run
from plugins.hemingway.nnls import nnls_gram
from plugins.hemingway.system_model import (
    SystemModel, Term, design_matrix, fit_system, run_normal_equations,
)

INTERVAL = (5.0, 95.0)
MAX_DRAW_ATTEMPTS = 50  # per wanted replicate, for resamples that keep enough cluster sizes


@dataclass
class AlgorithmFit:
    """Both models of one algorithm, fitted to its runs."""

    algorithm: str
    runs: list[Run]
    system: SystemModel
    convergence: ConvergenceModel
    level_points: list[LevelPoints]  # per run, what the convergence model was fitted to
    family_scores: dict[str, float] = field(default_factory=dict)

    @property
    def sizes(self) -> list[int]:
        return sorted({r.ranks for r in self.runs})

    def iterations(self, eps: float, m: np.ndarray) -> np.ndarray:
        """Whole iterations: the first one at or past the predicted crossing of eps."""
        return np.ceil(self.convergence.iterations_to(eps, np.asarray(m, dtype=float)))

    def time_to(self, eps: float, m: np.ndarray) -> np.ndarray:
        return self.iterations(eps, m) * self.system.predict(m)

    def as_dict(self) -> dict[str, Any]:
        return {
            "algorithm": self.algorithm,
            "measured_ranks": self.sizes,
            "system_model": {"f(m)": self.system.describe(), "n": self.system.n,
                             "coefficients": self.system.coefficients()},
            "convergence_model": {"I(s, m)": self.convergence.describe(),
                                  **self.convergence.as_dict()},
        }


def fit_algorithm(
    runs: Sequence[Run], eps: float, terms: Sequence[Term], family: Family | None = None
) -> AlgorithmFit:
    """Fit f(m) to the runs' mean iteration times and the convergence model to their curves."""
    system = fit_system(np.array([r.ranks for r in runs], dtype=float),
                        np.array([r.mean_iter_time for r in runs]), runs[0].n, terms)
    s_ref = reference_subopt(runs)
    per_run = level_points(runs, eps, s_ref)
    scores: dict[str, float] = {}
    if family is None:
        family, scores = select_family(runs, per_run, eps)
    everything = LevelPoints.concatenate(per_run)
    convergence = fit_convergence(everything.gram, everything.rhs, family, s_ref)
    return AlgorithmFit(runs[0].algorithm, list(runs), system, convergence, per_run, scores)


def sizes_needed(terms: Sequence[Term], leave_one_out: bool = False) -> int:
    """Distinct cluster sizes needed: one per system-model coefficient (+1 to leave one out)."""
    return len(terms) + (1 if leave_one_out else 0)


def fittable(
    measurements: Measurements, eps: float, terms: Sequence[Term], leave_one_out: bool = False
) -> tuple[list[str], list[str]]:
    """The algorithms that can be fitted, and why each other one cannot (one phrase each).

    Raises BenchUsageError when none can, with every reason on one line.
    """
    need = sizes_needed(terms, leave_one_out)
    ok, reasons = [], []
    for algorithm in measurements.algorithms:
        runs = measurements.runs_of(algorithm)
        sizes = measurements.sizes(algorithm)
        if len(sizes) < need:
            purpose = "to leave one out for validation" if leave_one_out else "to fit"
            more = need - len(sizes)
            reasons.append(
                f"{algorithm} was measured at {len(sizes)} cluster size"
                f"{'s' if len(sizes) != 1 else ''} (m={','.join(map(str, sizes))}) but "
                f"{need} are needed {purpose} the {len(terms)}-term system model: run "
                f"{more} more at new sizes (`bench rank --suggest` proposes which)"
            )
        elif all(r.iterations_to(eps) is None for r in runs):
            lowest = min(r.lowest_subopt for r in runs)
            reasons.append(
                f"{algorithm} never reached suboptimality {eps:g} in any measured run "
                f"(lowest {lowest:.3g}); raise --epsilon or run longer"
            )
        else:
            ok.append(algorithm)
    if not ok:
        raise BenchUsageError("nothing to rank: " + "; ".join(reasons))
    return ok, reasons


def fit_all(
    measurements: Measurements, eps: float, terms: Sequence[Term]
) -> tuple[list[AlgorithmFit], list[str]]:
    algorithms, warnings = fittable(measurements, eps, terms)
    fits = [fit_algorithm(measurements.runs_of(a), eps, terms) for a in algorithms]
    return fits, [w + "; left out" for w in warnings]


# --------------------------------------------------------------------------- bootstrap
def bootstrap_times(
    fit: AlgorithmFit, eps: float, m: np.ndarray, terms: Sequence[Term], replicates: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Predicted T(eps, m) under resampled runs: shape (replicates drawn, len(m)).

    A resample must keep as many distinct cluster sizes as the system model has
    terms, or f(m) is not determined; resamples that do not are drawn again.
    """
    runs = fit.runs
    ranks = np.array([r.ranks for r in runs])
    seconds = np.array([r.mean_iter_time for r in runs])
    # Everything that does not depend on the resample is computed once: each run's
    # share of both models' normal equations, and the features at the grid of m.
    system_grams, system_rhs = run_normal_equations(
        design_matrix(terms, ranks.astype(float), fit.system.n), seconds)
    level_grams = np.stack([p.gram for p in fit.level_points])
    level_rhs = np.stack([p.rhs for p in fit.level_points])
    grid_design = design_matrix(terms, m, fit.system.n)
    grid_features = fit.convergence.features_at(eps, m)
    need = len(terms)
    counts = []
    for _ in range(replicates * MAX_DRAW_ATTEMPTS):
        if len(counts) == replicates:
            break
        pick = rng.integers(0, len(runs), len(runs))
        if np.unique(ranks[pick]).size >= need:
            counts.append(np.bincount(pick, minlength=len(runs)))
    if not counts:
        return np.zeros((0, len(m)))
    # einsum, not BLAS: these products are tiny, and a threaded BLAS on a busy
    # machine spends 100x longer starting threads than multiplying.
    weights = np.array(counts, dtype=float)  # (replicates, runs): how often each run was drawn
    system = nnls_gram(np.einsum("br,rij->bij", weights, system_grams),
                       np.einsum("br,ri->bi", weights, system_rhs))
    solutions = solve_family(np.einsum("br,rij->bij", weights, level_grams),
                             np.einsum("br,ri->bi", weights, level_rhs), fit.convergence.family)
    iterations = np.ceil(np.maximum(0.0, np.einsum("bk,mk->bm", solutions, grid_features)))
    return iterations * np.einsum("bk,mk->bm", system, grid_design)


def percentile_interval(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """5th and 95th percentiles per column (NaN without samples)."""
    if samples.shape[0] == 0:
        nan = np.full(samples.shape[1], np.nan)
        return nan, nan
    lo = np.percentile(samples, INTERVAL[0], axis=0, method="lower")
    hi = np.percentile(samples, INTERVAL[1], axis=0, method="higher")
    return lo, hi


# --------------------------------------------------------------------------- ranking
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
    terms: Sequence[Term], replicates: int = 200, seed: int = 0,
) -> list[dict[str, Any]]:
    """Every (algorithm, m <= max_ranks), feasible ones first, best first."""
    m = np.arange(1, max_ranks + 1, dtype=float)
    rng = np.random.default_rng(seed)
    rows = []
    for fit in fits:
        iterations = fit.iterations(eps, m)
        per_iteration = fit.system.predict(m)
        seconds = iterations * per_iteration
        samples = bootstrap_times(fit, eps, m, terms, replicates, rng) if replicates else (
            np.zeros((0, m.size)))
        lo, hi = percentile_interval(samples)
        measured = {}
        for size in fit.sizes:
            times = [t for r in fit.runs if r.ranks == size
                     for t in [r.time_to(eps)] if t is not None]
            if times:
                measured[size] = float(np.mean(times))
        cost = objective.cost(seconds, m)
        cost_lo, cost_hi = objective.cost(lo, m), objective.cost(hi, m)
        for k, size in enumerate(m.astype(int)):
            row = {
                "algorithm": fit.algorithm,
                "m": int(size),
                "data": data_mark(int(size), fit.sizes),
                "iterations": iterations[k],
                "s_per_iter": per_iteration[k],
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
            row["feasible"] = not limits
            row["limit"] = ", ".join(limits)
            rows.append(row)
    key = "time_s" if objective.kind == "time" else "cost"
    rows.sort(key=lambda r: (not r["feasible"], r[key], r["m"], r["algorithm"]))
    place = 0
    for row in rows:
        if row["feasible"]:
            place += 1
        row["rank"] = place if row["feasible"] else None
    return rows
