"""The convergence model: iterations to reach suboptimality s on m machines, per algorithm.

Hemingway needs I(eps, m), the iterations to reach eps, at sizes never run. We
model it directly, as iterations per unit of progress, the way the system
model adds up seconds::

    I(s, m) = max(0, c + sum_h h(m) * (c_h + sum_a theta_ah * a(x))),   x = log(s_ref / s)

with theta_ah >= 0 and free offsets c, c_h. a(x) is the shape of progress: x
(linear convergence: log s falls by a fixed amount per iteration),
exp(x/2) - 1 or exp(x) - 1 (sublinear: s ~ 1/i^2, s ~ 1/i). h(m) is how the
iterations per unit of progress change with m: 1, m, sqrt(m), log(m) (CoCoA
with averaging needs about m times more rounds), 1/m, 1/sqrt(m) (more
machines, more samples per round). The offsets carry what the rate does not:
many methods make a large first step and then settle into their rate, and
how large that step is depends on m too. s_ref is the highest first
suboptimality of the runs.

Every a increases with x and every h is positive, so with theta >= 0, I grows
as s falls: the implied curve s(i, m) (:meth:`ConvergenceModel.subopt_after`)
is non-increasing in i for every m. The data are when each run crossed a grid
of levels (interpolated between iterations), weighted towards the target eps;
the fit is non-negative least squares on the relative error of I. Which a's and
h's enter (the family) is chosen by leave-one-cluster-size-out
cross-validation on the log error of I.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Sequence

import numpy as np

from plugins.hemingway.measurements import Run
from plugins.hemingway.nnls import nnls_gram

LEVEL_SHAPES = {
    "x": lambda x: x,
    "exp(x/2)-1": lambda x: np.expm1(x / 2),
    "exp(x)-1": np.expm1,
}
M_SHAPES = {
    "1": lambda m: np.ones_like(m),
    "m": lambda m: m,
    "sqrt(m)": np.sqrt,
    "log(m)": np.log,
    "1/m": lambda m: 1.0 / m,
    "1/sqrt(m)": lambda m: 1.0 / np.sqrt(m),
}
# Every column any family can use: offsets h(m) (no progress shape), then a(x) * h(m).
COLUMNS = [("", h) for h in M_SHAPES] + [(a, h) for a in LEVEL_SHAPES for h in M_SHAPES]

LEVEL_SETS = (("x",), ("exp(x)-1",), ("x", "exp(x/2)-1"), ("x", "exp(x)-1"))
M_SETS = (("1",), ("m",), ("sqrt(m)",), ("1", "m"), ("1", "sqrt(m)"), ("1", "log(m)"),
          ("1", "1/m"), ("1", "1/sqrt(m)"), ("1", "1/m", "m"))

LEVELS = 24  # levels per curve, log-spaced from s_ref down to the fit floor
FIT_BELOW_TARGET = 0.1  # fit down to eps/10: enough to place eps, above solver precision floors
LOCAL_DECADES = 1.0  # width of the weighting around eps, in decades of suboptimality


@dataclass(frozen=True)
class Family:
    """Which progress shapes and m-shapes enter: offsets for each h, rates for each (a, h)."""

    level_shapes: tuple[str, ...]
    m_shapes: tuple[str, ...]

    @cached_property
    def offsets(self) -> list[tuple[str, str]]:
        """Free columns: a constant, and h(m) for every other m-shape."""
        return [("", "1")] + [("", h) for h in self.m_shapes if h != "1"]

    @cached_property
    def rates(self) -> list[tuple[str, str]]:
        """Non-negative columns: a(x) * h(m)."""
        return [(a, h) for a in self.level_shapes for h in self.m_shapes]

    @cached_property
    def columns(self) -> list[int]:
        return [COLUMNS.index(c) for c in self.offsets + self.rates]

    @property
    def size(self) -> int:
        return len(self.offsets) + len(self.rates)

    @property
    def name(self) -> str:
        return " + ".join(_column_name(c) for c in self.rates)


FAMILIES = tuple(Family(a, h) for a in LEVEL_SETS for h in M_SETS)
DEFAULT_FAMILY = Family(("x",), ("1",))


def _column_name(column: tuple[str, str]) -> str:
    a, h = column
    if not a:
        return h
    a = f"({a})" if "-" in a else a
    return a if h == "1" else f"{a}*{h}"


def all_features(x: np.ndarray, m: np.ndarray,
                 columns: Sequence[tuple[str, str]] = COLUMNS) -> np.ndarray:
    """The named columns a(x) * h(m) (a = "" is 1), stacked on the last axis."""
    x = np.asarray(x, dtype=float)
    m = np.asarray(m, dtype=float)
    a_values = {a: LEVEL_SHAPES[a](x) if a else 1.0 for a in {a for a, _ in columns}}
    h_values = {h: M_SHAPES[h](m) for h in {h for _, h in columns}}
    x, m = np.broadcast_arrays(x, m)
    return np.stack([np.broadcast_to(a_values[a] * h_values[h], x.shape) for a, h in columns],
                    axis=-1)


def no_superlinear_speedup(iterations: np.ndarray, m: np.ndarray, start: float) -> np.ndarray:
    """Iterations to eps (last axis over the sorted sizes ``m``) that fall no faster than 1/m
    from size ``start`` up: I(m) * m, the machine-iterations, never decreases.

    m machines do at most m times the work of one per iteration, so no method
    needs fewer machine-iterations with more machines (minibatch SGD at best
    keeps them constant: the linear-scaling regime). The families cannot say
    so: a free offset extrapolated beyond the runs can fall through zero, and
    a draw then reaches eps in one iteration at m = 128 (`minibatch-far` seed 7
    measured at m = 1..8: 195 of minibatch-sgd's 400 draws fell faster). Below
    ``start`` (the smallest measured size) nothing is bounded: going down,
    the bound would run the other way, from an extrapolation.
    """
    out = np.array(iterations, dtype=float)
    above = m >= start
    work = out[..., above] * m[above]
    out[..., above] = np.maximum(out[..., above],
                                 np.maximum.accumulate(work, axis=-1) / m[above])
    return out


@dataclass
class ConvergenceModel:
    family: Family
    s_ref: float
    solution: np.ndarray  # offsets (free) then rates (>= 0), in family.columns order

    def features_at(self, s: float | np.ndarray, m: float | np.ndarray) -> np.ndarray:
        """The family's columns at suboptimality s and size m (reusable across refits)."""
        x = np.maximum(np.log(self.s_ref / np.asarray(s, dtype=float)), 0.0)
        return all_features(x, m, self.family.offsets + self.family.rates)

    def iterations_from(self, features: np.ndarray) -> np.ndarray:
        return np.maximum(0.0, features @ self.solution)

    def iterations_to(self, s: float | np.ndarray, m: float | np.ndarray) -> np.ndarray:
        """Predicted iterations to reach suboptimality s on m machines (continuous)."""
        return self.iterations_from(self.features_at(s, m))

    def subopt_after(self, i: np.ndarray, m: np.ndarray) -> np.ndarray:
        """The implied curve: the lowest s whose I(s, m) <= i, by bisection on log s.

        I(s, m) is non-decreasing as s falls, so the curve is non-increasing in i.
        """
        i, m = np.broadcast_arrays(np.asarray(i, dtype=float), np.asarray(m, dtype=float))
        columns = self.family.offsets + self.family.rates

        def needed(x: np.ndarray) -> np.ndarray:
            return self.iterations_from(all_features(x, m, columns))

        lo = np.zeros(i.shape)  # x = 0: s = s_ref, always reached
        hi = np.full(i.shape, 700.0)  # x = 700: s = s_ref * 1e-304
        reached_hi = needed(hi) <= i
        for _ in range(60):
            mid = (lo + hi) / 2
            ok = needed(mid) <= i
            lo = np.where(ok, mid, lo)
            hi = np.where(ok, hi, mid)
        return self.s_ref * np.exp(-np.where(reached_hi, 700.0, lo))

    def terms(self) -> dict[str, float]:
        return {_column_name(c): float(v)
                for c, v in zip(self.family.offsets + self.family.rates, self.solution)}

    def describe(self) -> str:
        parts = [f"{v:+.3g}" + ("" if name == "1" else f"*{name}")
                 for name, v in self.terms().items() if v != 0]
        return f"I = {' '.join(parts) or '0'}, x = log({self.s_ref:.3g}/s)"

    def as_dict(self) -> dict:
        return {"family": self.family.name, "s_ref": self.s_ref, "terms": self.terms()}


@dataclass
class LevelPoints:
    """When runs crossed each level: the rows the model is fitted to.

    ``gram`` and ``rhs`` are the normal equations of the weighted rows over all
    :data:`COLUMNS`, so subsets of runs are fitted by adding them up.
    """

    m: np.ndarray
    iterations: np.ndarray
    weight: np.ndarray  # highest near the target (see level_weights)
    features: np.ndarray  # all_features(x, m) over COLUMNS
    gram: np.ndarray
    rhs: np.ndarray

    @staticmethod
    def of_run(x: np.ndarray, m: np.ndarray, iterations: np.ndarray,
               weight: np.ndarray) -> "LevelPoints":
        features = all_features(x, m)
        # Relative error: each row divided by the measured iterations.
        row_scale = np.sqrt(weight) / iterations
        design = features * row_scale[:, None]
        target = iterations * row_scale
        return LevelPoints(m, iterations, weight, features, design.T @ design, design.T @ target)

    @staticmethod
    def concatenate(parts: Sequence["LevelPoints"]) -> "LevelPoints":
        arrays = (np.concatenate([getattr(p, name) for p in parts])
                  for name in ("m", "iterations", "weight", "features"))
        return LevelPoints(*arrays, sum(p.gram for p in parts), sum(p.rhs for p in parts))


def reference_subopt(runs: Sequence[Run]) -> float:
    """The highest first suboptimality: x = log(s_ref/s) >= 0 on every curve."""
    return float(max(run.subopt[np.isfinite(run.subopt)][0] for run in runs))


def crossings(run: Run, levels: np.ndarray) -> np.ndarray:
    """When the run's curve crossed each level, interpolated between recorded iterations.

    The crossing lies between the last recorded point above the level and the
    first at or below it (on the running minimum, so noise that climbs back does
    not count twice); log s is taken as linear in between. A run that needs 6
    iterations then still yields distinct crossings for 24 levels instead of six
    integers. Levels already reached at the first recorded point have nothing to
    bracket them and are NaN, like levels never reached.
    """
    finite = np.isfinite(run.subopt)
    iteration = run.iteration[finite].astype(float)
    running_min = np.maximum(np.minimum.accumulate(run.subopt[finite]), 1e-300)
    index = np.searchsorted(-running_min, -levels, side="left")
    out = np.full(levels.shape, np.nan)
    bracketed = (index >= 1) & (index < running_min.size)
    after = index[bracketed]
    above, below = running_min[after - 1], running_min[after]
    fraction = np.log(above / levels[bracketed]) / np.log(above / below)
    out[bracketed] = iteration[after - 1] + fraction * (iteration[after] - iteration[after - 1])
    return out


def level_grid(s_ref: float, eps: float, runs: Sequence[Run]) -> np.ndarray:
    """Log-spaced levels from s_ref down to eps/10 (or the lowest reached)."""
    floor = max(eps * FIT_BELOW_TARGET, min(r.lowest_subopt for r in runs), 1e-300)
    return np.geomspace(s_ref, floor, LEVELS + 1)[1:] if s_ref > floor else np.array([floor])


def level_weights(levels: np.ndarray, eps: float) -> np.ndarray:
    """How much each level counts: a Gaussian in log10(s / eps), LOCAL_DECADES wide.

    The ranking needs I at eps, not the whole curve: early iterations often
    follow another shape than the ones near eps (a fast first drop, then the
    asymptotic rate), and a curve that stalls far above eps (a run cut short or
    not converging) should not steer the prediction at eps.
    """
    decades = np.log10(levels / eps)
    return np.exp(-0.5 * (decades / LOCAL_DECADES) ** 2) / LEVELS


def level_points(runs: Sequence[Run], eps: float, s_ref: float) -> list[LevelPoints]:
    """Per run: when it crossed each level between s_ref and eps/10."""
    levels = level_grid(s_ref, eps, runs)
    weights = level_weights(levels, eps)
    out = []
    for run in runs:
        reached = crossings(run, levels)
        keep = np.isfinite(reached) & (reached > 0)
        x = np.log(s_ref / levels[keep])
        out.append(LevelPoints.of_run(x, np.full(x.shape, float(run.ranks)), reached[keep],
                                      weights[keep]))
    return out


def solve_family(gram: np.ndarray, rhs: np.ndarray, family: Family) -> np.ndarray:
    """Solutions for one or a stack of normal equations (leading dimensions)."""
    columns = family.columns
    return nnls_gram(gram[..., columns, :][..., columns], rhs[..., columns],
                     free=len(family.offsets))


def fit_convergence(
    gram: np.ndarray, rhs: np.ndarray, family: Family, s_ref: float
) -> ConvergenceModel:
    """NNLS on the relative error of I (normal equations from LevelPoints)."""
    return ConvergenceModel(family, s_ref, solve_family(gram, rhs, family))


def log_error(solution: np.ndarray, family: Family, points: LevelPoints) -> float:
    """Weighted mean squared log ratio of predicted to measured iterations."""
    predicted = np.maximum(0.0, points.features[:, family.columns] @ solution)
    errors = (np.log1p(predicted) - np.log1p(points.iterations)) ** 2
    return float(np.sum(points.weight * errors) / np.sum(points.weight))


def select_family(
    runs: Sequence[Run], per_run: Sequence[LevelPoints], eps: float
) -> tuple[Family, dict[str, float], dict[str, np.ndarray]]:
    """The simplest family whose leave-one-cluster-size-out score is within one standard
    error of the best (the one-standard-error rule: with a handful of noisy curves,
    differences smaller than that are noise, and simpler families extrapolate
    more safely). All folds of a family are solved in one batch.

    Also returns every family's mean score and its error on each fold (by name).
    """
    sizes = sorted({r.ranks for r in runs})
    if len(sizes) < 3:  # too few sizes to learn a shape in m from
        return DEFAULT_FAMILY, {}, {}
    train_grams, train_rhs, tests = [], [], []
    for size in sizes:
        # Only runs that reached eps can show how well I(eps, m) is predicted; a run
        # that stalled far above eps still helps fit the others.
        test = [p for r, p in zip(runs, per_run)
                if r.ranks == size and p.m.size and r.iterations_to(eps) is not None]
        if test:
            train = [p for r, p in zip(runs, per_run) if r.ranks != size]
            train_grams.append(sum(p.gram for p in train))
            train_rhs.append(sum(p.rhs for p in train))
            tests.append(LevelPoints.concatenate(test))
    if not tests:
        return DEFAULT_FAMILY, {}, {}
    grams, rhs = np.stack(train_grams), np.stack(train_rhs)
    fold_errors = {}
    for family in FAMILIES:
        solutions = solve_family(grams, rhs, family)
        fold_errors[family] = np.array([log_error(solution, family, test)
                                        for solution, test in zip(solutions, tests)])
    scores = {f.name: float(e.mean()) for f, e in fold_errors.items()}
    best = min(fold_errors, key=lambda f: scores[f.name])
    errors = fold_errors[best]
    standard_error = float(errors.std(ddof=1) / np.sqrt(errors.size)) if errors.size > 1 else 0.0
    near = [f for f in FAMILIES if scores[f.name] <= scores[best.name] + standard_error]
    chosen = min(near, key=lambda f: (f.size, scores[f.name]))
    return chosen, scores, {f.name: e for f, e in fold_errors.items()}
