"""How well would sizes we did not run be predicted? Two answers.

Leave-one-cluster-size-out (``--validate loo``) mostly interpolates: the
held-out size has measured neighbours on both sides. Extrapolation
(``--validate extrapolate``) fits on the smaller sizes and predicts the
largest ones, which is what the ranking does beyond the measured range, and
also checks the 90% intervals there.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from harness.errors import BenchUsageError
from plugins.hemingway.fitting import fit_algorithm, fittable, sizes_needed
from plugins.hemingway.measurements import Measurements
from plugins.hemingway.system_model import Term
from plugins.hemingway.uncertainty import component_draws, percentile_interval, with_run_noise


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


# --------------------------------------------------------------------------- extrapolation
def held_out_sizes(sizes: Sequence[int], terms: Sequence[Term], hold_out: int | None) -> int:
    """How many of the largest sizes to hold out: two when the rest still determine the
    system model, else one (``hold_out`` overrides)."""
    if hold_out is not None:
        return hold_out
    return 2 if len(sizes) - 2 >= sizes_needed(terms) else 1


def validate_extrapolation(
    measurements: Measurements, eps: float, terms: Sequence[Term], hold_out: int | None = None,
    draws: int = 400, seed: int = 0,
) -> tuple[list[dict[str, Any]], dict[str, Any], list[str]]:
    """Per algorithm: fit on all but its largest sizes, predict those, compare.

    For seconds per iteration, iterations and time-to-eps: the percentage error
    of the prediction and whether the 90% interval (with a new run's noise: the
    truth here is one measured run) contains the measured value. Returns rows,
    a summary per algorithm and overall, and warnings.
    """
    rng = np.random.default_rng(seed)
    warnings: list[str] = []
    plans = {}
    for algorithm in measurements.algorithms:
        sizes = measurements.sizes(algorithm)
        k = held_out_sizes(sizes, terms, hold_out)
        if len(sizes) - k < sizes_needed(terms):
            warnings.append(
                f"{algorithm} was measured at {len(sizes)} sizes; holding out the largest {k} "
                f"leaves fewer than the {sizes_needed(terms)} the system model needs; "
                "not validated")
            continue
        train = [r for r in measurements.runs_of(algorithm) if r.ranks < sizes[-k]]
        if all(r.iterations_to(eps) is None for r in train):
            warnings.append(f"{algorithm} never reached {eps:g} at the smaller sizes; "
                            "not validated")
            continue
        plans[algorithm] = (fit_algorithm(train, eps, terms), sizes[-k:])
    if not plans:
        raise BenchUsageError("nothing to validate: " + "; ".join(warnings))
    fits = [fit for fit, _ in plans.values()]
    rows = []
    for algorithm, (fit, held) in plans.items():
        others = [f for f in fits if f is not fit]
        m = np.array(held, dtype=float)
        drawn = with_run_noise(fit, component_draws(fit, eps, m, terms, draws, rng, others),
                               rng, others)
        intervals = {
            "s_per_iter": percentile_interval(drawn.per_iteration),
            "iterations": percentile_interval(drawn.iterations),
            "time_s": percentile_interval(drawn.time),
        }
        predicted = {"s_per_iter": fit.system.predict(m), "iterations": fit.iterations(eps, m),
                     "time_s": fit.time_to(eps, m)}
        largest = max(fit.sizes)
        for k, size in enumerate(held):
            runs = [r for r in measurements.runs_of(algorithm) if r.ranks == size]
            reached = [r for r in runs if r.time_to(eps) is not None]
            measured = {
                "s_per_iter": float(np.mean([r.mean_iter_time for r in runs])),
                "iterations": (float(np.mean([r.iterations_to(eps) for r in reached]))
                               if reached else None),
                "time_s": float(np.mean([r.time_to(eps) for r in reached])) if reached else None,
            }
            if not reached:
                warnings.append(f"{algorithm} at m={size} never reached {eps:g}; only s/iter "
                                "compared")
            row: dict[str, Any] = {"algorithm": algorithm, "m": size,
                                   "fitted_on": ",".join(map(str, fit.sizes)),
                                   "beyond": size / largest}
            for what in ("s_per_iter", "iterations", "time_s"):
                lo, hi = intervals[what][0][k], intervals[what][1][k]
                truth, guess = measured[what], float(predicted[what][k])
                row[f"measured_{what}"] = truth
                row[f"predicted_{what}"] = guess
                row[f"{what}_lo"], row[f"{what}_hi"] = float(lo), float(hi)
                row[f"{what}_error_pct"] = (None if truth is None else
                                            100.0 * (guess - truth) / truth)
                row[f"{what}_covered"] = None if truth is None else bool(lo <= truth <= hi)
            rows.append(row)
    return rows, _extrapolation_summary(rows), warnings


def _extrapolation_summary(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    def figures(subset: Sequence[dict[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for what in ("s_per_iter", "iterations", "time_s"):
            out[f"{what}_median_abs_pct_error"] = _median_abs(
                [r[f"{what}_error_pct"] for r in subset])
            covered = [r[f"{what}_covered"] for r in subset if r[f"{what}_covered"] is not None]
            out[f"{what}_coverage"] = float(np.mean(covered)) if covered else None
        out["compared"] = sum(r["time_s_error_pct"] is not None for r in subset)
        return out

    algorithms = sorted({r["algorithm"] for r in rows}, key=str.lower)
    return {"overall": figures(rows),
            "per_algorithm": {a: figures([r for r in rows if r["algorithm"] == a])
                              for a in algorithms},
            "interval": "90% (5th-95th percentile), with a new run's noise"}
