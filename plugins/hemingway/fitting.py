"""Both Hemingway models of one algorithm, fitted to its runs, and which algorithms can be fitted."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from harness.errors import BenchUsageError
from plugins.hemingway.convergence import (
    ConvergenceModel, Family, LevelPoints, fit_convergence, level_points,
    no_superlinear_speedup, reference_subopt, select_family,
)
from plugins.hemingway.measurements import Measurements, Run
from plugins.hemingway.system_model import SystemModel, Term, fit_system


@dataclass
class AlgorithmFit:
    """Both models of one algorithm, fitted to its runs."""

    algorithm: str
    runs: list[Run]
    system: SystemModel
    convergence: ConvergenceModel
    level_points: list[LevelPoints]  # per run, what the convergence model was fitted to
    family_scores: dict[str, float] = field(default_factory=dict)  # mean leave-size-out error
    family_fold_errors: dict[str, np.ndarray] = field(default_factory=dict)  # per held-out size

    @property
    def sizes(self) -> list[int]:
        return sorted({r.ranks for r in self.runs})

    def iterations(self, eps: float, m: np.ndarray) -> np.ndarray:
        """Whole iterations: the first one at or past the predicted crossing of eps.

        At least one when eps is below where the curves start: free offsets
        extrapolated far enough can cancel the rate and predict zero. Never
        falling faster than 1/m beyond the smallest measured size
        (:func:`~plugins.hemingway.convergence.no_superlinear_speedup`).
        """
        grid = self.iteration_grid(m)
        return self.whole_iterations(eps, self.convergence.iterations_to(eps, grid), grid, m)

    def iteration_grid(self, m: np.ndarray) -> np.ndarray:
        """The sizes to predict I at for ``m``: sorted, with the bound's starting size."""
        return np.union1d(np.asarray(m, dtype=float), self.sizes[:1])

    def whole_iterations(self, eps: float, predicted: np.ndarray, grid: np.ndarray,
                         m: np.ndarray) -> np.ndarray:
        """Continuous I predicted on :meth:`iteration_grid` (last axis) to whole iterations
        at ``m``: bounded, rounded up, at least one (the point fit and every draw alike)."""
        bounded = no_superlinear_speedup(predicted, grid, self.sizes[0])
        fewest = 1.0 if eps < self.convergence.s_ref else 0.0
        at_m = bounded[..., np.searchsorted(grid, np.asarray(m, dtype=float))]
        return np.maximum(fewest, np.ceil(at_m))

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
    folds: dict[str, np.ndarray] = {}
    if family is None:
        family, scores, folds = select_family(runs, per_run, eps)
    everything = LevelPoints.concatenate(per_run)
    convergence = fit_convergence(everything.gram, everything.rhs, family, s_ref)
    return AlgorithmFit(runs[0].algorithm, list(runs), system, convergence, per_run, scores,
                        folds)


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
        elif not any(p.m.size for p in level_points(runs, eps, reference_subopt(runs))):
            reasons.append(
                f"every run of {algorithm} starts below or too close to suboptimality {eps:g} "
                f"(highest start {reference_subopt(runs):.3g}), so none shows how fast it "
                "converges towards it; lower --epsilon"
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
