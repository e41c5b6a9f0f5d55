"""Leave-one-cluster-size-out validation: how well would a size we did not run be predicted?"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from plugins.hemingway.measurements import Measurements
from plugins.hemingway.fitting import fit_algorithm, fittable
from plugins.hemingway.system_model import Term


def validate(
    measurements: Measurements, eps: float, terms: Sequence[Term]
) -> tuple[list[dict[str, Any]], dict[str, Any], list[str]]:
    """Per (algorithm, measured m): refit everything without m (the convergence family
    is chosen again), predict T(eps, m), compare with the measured time.

    Returns the rows, a summary with the median absolute percentage error (overall
    and per algorithm), and warnings for what could not be validated.
    """
    algorithms, reasons = fittable(measurements, eps, terms, leave_one_out=True)
    warnings = [r + "; not validated" for r in reasons]
    rows = []
    for algorithm in algorithms:
        runs = measurements.runs_of(algorithm)
        for size in measurements.sizes(algorithm):
            held_out = [r for r in runs if r.ranks == size]
            reached = [r for r in held_out if r.time_to(eps) is not None]
            fit = fit_algorithm([r for r in runs if r.ranks != size], eps, terms)
            m = np.array([float(size)])
            predicted_iterations = float(fit.iterations(eps, m)[0])
            predicted_per_iteration = float(fit.system.predict(m)[0])
            predicted = predicted_iterations * predicted_per_iteration
            row: dict[str, Any] = {
                "algorithm": algorithm,
                "m": size,
                "measured_iterations": None,
                "predicted_iterations": predicted_iterations,
                "measured_s_per_iter": float(np.mean([r.mean_iter_time for r in held_out])),
                "predicted_s_per_iter": predicted_per_iteration,
                "measured_time_s": None,
                "predicted_time_s": predicted,
                "error_pct": None,
            }
            if reached:
                measured = float(np.mean([r.time_to(eps) for r in reached]))
                row["measured_iterations"] = float(np.mean([r.iterations_to(eps) for r in reached]))
                row["measured_time_s"] = measured
                row["error_pct"] = 100.0 * (predicted - measured) / measured
            else:
                warnings.append(f"{algorithm} at m={size} never reached {eps:g}; no error computed")
            rows.append(row)
    summary = {
        "median_abs_pct_error": _median_abs([r["error_pct"] for r in rows]),
        "per_algorithm": {
            a: _median_abs([r["error_pct"] for r in rows if r["algorithm"] == a])
            for a in algorithms
        },
        "compared": sum(r["error_pct"] is not None for r in rows),
    }
    return rows, summary, warnings


def _median_abs(errors: list[float | None]) -> float | None:
    """A prediction that never reaches eps counts as an infinite error."""
    values = [abs(e) for e in errors if e is not None]
    return float(np.median(values)) if values else None
