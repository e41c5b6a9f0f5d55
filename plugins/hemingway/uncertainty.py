"""How sure a predicted T(eps, m) = I(eps, m) * f(m) is, above all at sizes never run.

Resampling the measured runs (the former bootstrap) says nothing with one run
per size and far too little beyond the measured sizes: every resample keeps
the same few sizes, and a term that is invisible at m <= 8 (per-machine
overhead, say) stays invisible. Instead we draw from a calibrated model of
the measurement noise and refit, so the spread of a prediction at m is what
the noise at the measured sizes does to it through the model's design:

* **System model.** A parametric bootstrap over cluster sizes: new mean
  iteration times at the measured sizes are drawn around the fitted f(m) with
  log-normal noise, and f is refitted by the same non-negative least squares.
  Extrapolating amplifies the noise exactly as the design does (collinear
  terms, a term barely seen at the measured sizes), so intervals widen with
  distance from the data.
* **Centring.** The fits weight each run by the inverse of its own measured
  value (relative error), and with log-normal noise sigma that puts a fitted
  level below the median run (about sigma**2 for f and for I in simulation;
  1.5 sigma**2 for a single level). A refit weighted by its *drawn* values
  would add the same bias again: at 10% noise on both the iteration time and
  the rate, after `bench tune`'s three rounds the draws' median was 4-5%
  below the true T at every size and the 90% intervals covered 72-82%. So
  the refits weight by the fit's values (one Gram matrix for every
  replicate; a refit then lands on the mean of its drawn values, sigma**2/2
  above their median) and the drawn values carry a further
  exp(WEIGHTING_BIAS * sigma**2): the draws centre on the fit raised by
  sigma**2, i.e. on the truth.
* **Noise scale.** The relative noise sigma is not taken as known: it is drawn
  per replicate from its posterior, a scaled inverse chi-square whose data are
  the log residuals of the fit (degrees of freedom: runs minus active terms)
  and whose prior is PRIOR_NOISE worth PRIOR_DOF observations. The residuals
  of every algorithm of the sweep (same machine, same problem) form one
  estimate (:func:`noise_evidence`). Zero residuals (as many sizes as terms)
  therefore still give a positive width, and few residuals give heavy tails,
  as they should.
* **Convergence model.** The same parametric bootstrap: each run's level
  crossings are scaled by one log-normal factor (its curve as a whole is
  early or late; crossings along one curve are not independent), and the
  family is refitted. Which family is right is uncertain too, so each
  replicate first draws its family: SELECTED_SHARE of the mass stays on the
  family chosen by the one-standard-error rule, the rest is spread by
  pseudo-Bayesian model averaging of the leave-one-size-out scores (weight
  proportional to exp of the held-out Gaussian log density, score**(-K/2)
  for K folds). Every draw's I(eps, m) * m (machine-iterations) is then made
  non-decreasing from the smallest measured size up
  (:func:`~plugins.hemingway.convergence.no_superlinear_speedup`): no
  family forbids a free offset from falling through zero beyond the runs.

Assumptions and limits: the true f(m) is a non-negative mix of the terms and
the true I(eps, m) is close to one of the families; the noise is
multiplicative and independent between runs. Intervals are for the expected
T (what the ranking compares), not for the time a single new run will take.
What no term or family can express (a network that saturates beyond the
measured sizes) is not covered; `bench rank --validate extrapolate` shows how
well the model extrapolates on the data at hand.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from plugins.hemingway.convergence import FAMILIES, Family, LevelPoints, all_features, solve_family
from plugins.hemingway.fitting import AlgorithmFit
from plugins.hemingway.nnls import nnls_gram
from plugins.hemingway.system_model import Term, design_matrix

INTERVAL = (5.0, 95.0)  # percentiles: a 90% interval
PRIOR_NOISE = 0.03  # relative run-to-run noise we expect before seeing residuals
PRIOR_DOF = 1.0  # what that expectation is worth, in residual degrees of freedom
WEIGHTING_BIAS = 0.5  # drawn values are scaled by exp(this * sigma**2): see "Centring" above
MIN_NOISE = 0.005  # no draw of sigma below this: timers and rounding are never exact
SELECTED_SHARE = 0.5  # draws that keep the convergence family chosen on all the data
MIN_FAMILY_WEIGHT = 1e-3  # families below this share of the mass are not drawn
BMA_BOOTSTRAP = 1000  # Bayesian-bootstrap replicates of the pseudo-BMA+ weights


@dataclass(frozen=True)
class Noise:
    """Summed squared log residuals and their degrees of freedom."""

    squares: float
    dof: float

    def __add__(self, other: "Noise") -> "Noise":
        return Noise(self.squares + other.squares, self.dof + other.dof)


@dataclass
class Draws:
    """Jointly drawn predictions at a grid of m: shape (draws, len(m)) each."""

    per_iteration: np.ndarray  # seconds per iteration, f(m)
    iterations: np.ndarray  # whole iterations to eps, I(eps, m)

    @property
    def time(self) -> np.ndarray:
        return self.iterations * self.per_iteration


# --------------------------------------------------------------------------- noise
def system_noise(fit: AlgorithmFit) -> Noise:
    """Log residuals of the runs' mean iteration times around the fitted f(m)."""
    ranks = np.array([r.ranks for r in fit.runs], dtype=float)
    seconds = np.array([r.mean_iter_time for r in fit.runs])
    residual = np.log(seconds / fit.system.predict(ranks))
    active = int(np.count_nonzero(fit.system.coef))
    return Noise(float(np.sum(residual ** 2)), float(max(0, len(fit.runs) - active)))


def _run_shifts(points: Sequence[LevelPoints], family: Family, solution: np.ndarray) -> np.ndarray:
    """Per run, the weighted mean log ratio of measured to predicted crossings."""
    shifts = []
    for p in points:
        predicted = p.features[:, family.columns] @ solution
        ok = predicted > 0
        if not np.any(ok):
            continue
        ratio = np.log(p.iterations[ok] / predicted[ok])
        shifts.append(float(np.sum(p.weight[ok] * ratio) / np.sum(p.weight[ok])))
    return np.array(shifts)


def convergence_noise(fit: AlgorithmFit) -> Noise:
    """Per-run log shifts of the measured curves around the fitted I(s, m).

    Degrees of freedom: runs minus the functions of m the family can combine.
    """
    family = fit.convergence.family
    shifts = _run_shifts([p for p in fit.level_points if p.m.size], family,
                         fit.convergence.solution)
    shapes = len(set(family.m_shapes) | {"1"})
    return Noise(float(np.sum(shifts ** 2)), float(max(0, shifts.size - shapes)))


def noise_evidence(own: Noise, others: Sequence[Noise]) -> Noise:
    """The residuals the noise scale is estimated from: every algorithm's, prior included.

    One scale for the whole sweep: the runs share the machine and the problem,
    and one algorithm's few runs are too few on their own (with 3 degrees of
    freedom the estimate falls below a third of the truth in 5% of sweeps, and
    choosing the convergence family on the same runs makes its residuals
    smaller still). An underestimated sigma is what made `bench tune` stop
    confident on one unlucky run.
    """
    return sum(others, Noise(PRIOR_DOF * PRIOR_NOISE ** 2, PRIOR_DOF) + own)


def noise_scale(own: Noise, others: Sequence[Noise]) -> float:
    """Posterior-mean relative noise (the scale of :func:`noise_evidence`)."""
    data = noise_evidence(own, others)
    return float(np.sqrt(data.squares / data.dof))


def _sigma_draws(own: Noise, others: Sequence[Noise], draws: int,
                 rng: np.random.Generator) -> np.ndarray:
    """Relative noise per replicate, from its scaled-inverse-chi-square posterior."""
    data = noise_evidence(own, others)
    sigma = np.sqrt(data.squares / rng.chisquare(data.dof, size=draws))
    return np.maximum(sigma, MIN_NOISE)


def _centring(sigma: np.ndarray) -> np.ndarray:
    """The log shift of the drawn values that centres the refits on the truth.

    A small-noise correction: beyond sigma = 1 (the heavy tail of a noise scale
    from few residuals) it stops growing, or exp would overflow.
    """
    return WEIGHTING_BIAS * np.minimum(sigma, 1.0) ** 2


# --------------------------------------------------------------------------- system model
def per_iteration_draws(
    fit: AlgorithmFit, m: np.ndarray, terms: Sequence[Term], draws: int,
    rng: np.random.Generator, others: Sequence[AlgorithmFit] = (),
) -> np.ndarray:
    """f(m) refitted to iteration times drawn around the fit at the measured sizes."""
    ranks = np.array([r.ranks for r in fit.runs], dtype=float)
    design = design_matrix(terms, ranks, fit.system.n)
    fitted = np.maximum(design @ fit.system.coef, np.finfo(float).tiny)
    sigma = _sigma_draws(system_noise(fit), [system_noise(o) for o in others], draws, rng)
    drawn = fitted * np.exp(sigma[:, None] * rng.standard_normal((draws, ranks.size))
                            + _centring(sigma)[:, None])
    # Relative error with the fit's values as the weights (see the module docstring):
    # one Gram matrix for every replicate, only the right-hand side is drawn.
    # einsum, not BLAS: tiny products, and threaded BLAS start-up dominates them.
    weight = fitted ** -2.0
    gram = np.einsum("r,ri,rj->ij", weight, design, design)
    rhs = np.einsum("br,ri->bi", drawn * weight, design)
    coef = nnls_gram(np.broadcast_to(gram, (draws,) + gram.shape), rhs)
    return np.einsum("bk,mk->bm", coef, design_matrix(terms, np.asarray(m, float), fit.system.n))


# --------------------------------------------------------------------------- convergence
def family_weights(fit: AlgorithmFit) -> dict[Family, float]:
    """The selected family's share plus pseudo-BMA+ weights of the leave-size-out errors.

    Pseudo-BMA+ (Yao et al. 2018): each fold's Gaussian log density of the
    held-out log errors, summed over folds reweighted by a Bayesian bootstrap,
    softmaxed, averaged. With a handful of folds, one lucky fold does not hand
    a family all the weight.
    """
    selected = fit.convergence.family
    errors = {name: e for name, e in fit.family_fold_errors.items()
              if e.size and np.all(np.isfinite(e)) and np.all(e > 0)}
    if not errors:
        return {selected: 1.0}
    by_name = {f.name: f for f in FAMILIES}
    names = list(errors)
    log_density = -0.5 * np.log(np.stack([errors[n] for n in names]))  # (families, folds)
    folds = log_density.shape[1]
    reweighted = np.random.default_rng(0).dirichlet(np.ones(folds), BMA_BOOTSTRAP)
    totals = folds * reweighted @ log_density.T  # (bootstrap, families)
    totals = np.exp(totals - totals.max(axis=1, keepdims=True))
    bma = (totals / totals.sum(axis=1, keepdims=True)).mean(axis=0)
    weights = {by_name[n]: (1 - SELECTED_SHARE) * w for n, w in zip(names, bma)}
    weights[selected] = weights.get(selected, 0.0) + SELECTED_SHARE
    kept = {f: w for f, w in weights.items() if w >= MIN_FAMILY_WEIGHT}
    total = sum(kept.values())
    return {f: w / total for f, w in kept.items()}


def _refit_normal_equations(points: Sequence[LevelPoints], family: Family,
                            solution: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The normal equations with the family's fitted crossings as the data: the
    Gram matrix of all runs, and each run's right-hand side.

    The weights are the fitted crossings' (relative error to the fit, see the
    module docstring), so scaling run r's crossings by c leaves the Gram matrix
    as it is and multiplies r's right-hand side by c: a replicate is a weighted
    sum of the right-hand sides.
    """
    grams, rhs = [], []
    for p in points:
        predicted = p.features[:, family.columns] @ solution
        data = np.where(predicted > 0, predicted, p.iterations)
        scale = np.sqrt(p.weight) / data
        design = p.features * scale[:, None]
        grams.append(design.T @ design)
        rhs.append(design.T @ (data * scale))
    return np.sum(grams, axis=0), np.stack(rhs)


def iteration_draws(
    fit: AlgorithmFit, eps: float, m: np.ndarray, draws: int, rng: np.random.Generator,
    others: Sequence[AlgorithmFit] = (),
) -> np.ndarray:
    """Whole iterations to eps, refitted to curves drawn around each drawn family's fit."""
    m = np.asarray(m, dtype=float)
    points = [p for p in fit.level_points if p.m.size]
    everything = LevelPoints.concatenate(points)
    weights = family_weights(fit)
    families = list(weights)
    counts = rng.multinomial(draws, np.array([weights[f] for f in families]))
    sigma = _sigma_draws(convergence_noise(fit), [convergence_noise(o) for o in others],
                         draws, rng)
    x = max(float(np.log(fit.convergence.s_ref / eps)), 0.0)
    grid = fit.iteration_grid(m)
    out, start = np.empty((draws, grid.size)), 0
    for family, count in zip(families, counts):
        if not count:
            continue
        solution = (fit.convergence.solution if family == fit.convergence.family
                    else solve_family(everything.gram, everything.rhs, family))
        gram, rhs = _refit_normal_equations(points, family, solution)
        spread = sigma[start:start + count, None]
        shift = np.exp(spread * rng.standard_normal((count, len(points))) + _centring(spread))
        solutions = solve_family(np.broadcast_to(gram, (count,) + gram.shape),
                                 np.einsum("br,ri->bi", shift, rhs), family)
        features = all_features(np.full(grid.shape, x), grid, family.offsets + family.rates)
        out[start:start + count] = np.einsum("bk,mk->bm", solutions, features)
        start += count
    return fit.whole_iterations(eps, out[rng.permutation(draws)], grid, m)


# --------------------------------------------------------------------------- public
def component_draws(
    fit: AlgorithmFit, eps: float, m: np.ndarray, terms: Sequence[Term], draws: int,
    rng: np.random.Generator, others: Sequence[AlgorithmFit] = (),
) -> Draws:
    """Joint draws of f(m) and I(eps, m) (independent of each other) at the grid m.

    ``others``: fits of the other algorithms of the same sweep; their residuals
    firm up the noise scale when this algorithm has few sizes.
    """
    m = np.asarray(m, dtype=float)
    return Draws(per_iteration_draws(fit, m, terms, draws, rng, others),
                 iteration_draws(fit, eps, m, draws, rng, others))


def time_draws(
    fit: AlgorithmFit, eps: float, m: np.ndarray, terms: Sequence[Term], draws: int,
    rng: np.random.Generator, others: Sequence[AlgorithmFit] = (),
) -> np.ndarray:
    """Draws of the expected time-to-eps T(eps, m) in seconds: shape (draws, len(m))."""
    return component_draws(fit, eps, m, terms, draws, rng, others).time


def with_run_noise(fit: AlgorithmFit, drawn: Draws, rng: np.random.Generator,
                   others: Sequence[AlgorithmFit] = ()) -> Draws:
    """What one new run would measure: the expected values times a run's own noise.

    For comparing with a measured run (validation), not for ranking.
    """
    shape = drawn.per_iteration.shape
    time_sigma = _sigma_draws(system_noise(fit), [system_noise(o) for o in others], shape[0], rng)
    curve_sigma = _sigma_draws(convergence_noise(fit), [convergence_noise(o) for o in others],
                               shape[0], rng)
    slower = np.exp(time_sigma[:, None] * rng.standard_normal(shape))
    later = np.exp(curve_sigma[:, None] * rng.standard_normal(shape))
    return Draws(drawn.per_iteration * slower, np.ceil(drawn.iterations * later))


def percentile_interval(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 90% interval per column (NaN without samples)."""
    if samples.shape[0] == 0:
        nan = np.full(samples.shape[1], np.nan)
        return nan, nan
    lo, hi = np.percentile(samples, INTERVAL, axis=0)
    return lo, hi


def choice_probabilities(draws: np.ndarray, within: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Per candidate (column; lower is better): P(it is the best), P(within ``within`` of the best).

    Non-finite draws (an infeasible candidate) never win. Draws in which no
    candidate is finite count for nobody, so P(best) sums to the share of
    draws with a finite best (1 when every draw has one).
    """
    values = np.where(np.isfinite(draws), draws, np.inf)
    if values.size == 0:
        return np.zeros(values.shape[1]), np.zeros(values.shape[1])
    best = values.min(axis=1)
    valid = np.isfinite(best)
    winners = np.argmin(values[valid], axis=1)
    p_best = np.bincount(winners, minlength=values.shape[1]) / values.shape[0]
    close = values[valid] <= best[valid, None] * (1.0 + within)
    p_within = close.sum(axis=0) / values.shape[0]
    return p_best, p_within
