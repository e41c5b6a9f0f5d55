"""The decisions of ``bench tune``: how sure the choice is, and which runs would firm it up.

The posterior over candidates (algorithm, m <= max_ranks) is the calibrated
uncertainty model's joint draws of T(eps, m) (:func:`plugins.hemingway.uncertainty.time_draws`),
one block of columns per algorithm. The choice is the candidate most likely to
be within ``tolerance`` of the best; the loop stops when that probability
reaches the target confidence and the choice has been checked by a run at
(or within a factor 1.5 of) its size.

Which runs to make next: the knowledge gradient, estimated on the same draws.
A run of (a, m') would show log T(a, m') up to the run-to-run noise sigma. For
a hypothetical outcome y, reweighting the draws by the likelihood of y is the
posterior after that run (the draws carry how the model's coefficients tie
T at m' to T everywhere else: a large per-machine cost seen at m' = 32 also
raises T at 64). The value of the run is the expected drop, over outcomes
drawn from the current predictive, of the regret of deciding now: the
posterior-mean time of today's choice minus that of the best choice after the
run. Runs are ranked by that value per machine-second of their estimated
cost. A round takes several: after each pick the draws are reweighted as if
it had come out at its predicted median (the "believer" heuristic), so the
next pick is valued given the first and goes elsewhere. This values runs by
what they do to the decision, unlike A-optimal design, which values them by
what they do to the coefficients (mostly the same few sizes, whatever the
ranking).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from plugins.hemingway.fitting import AlgorithmFit
from plugins.hemingway.ranking import data_mark
from plugins.hemingway.system_model import Term
from plugins.hemingway.uncertainty import (
    MIN_OWN_DOF, PRIOR_DOF, PRIOR_NOISE, Noise, choice_probabilities, convergence_noise,
    percentile_interval, system_noise, time_draws,
)

DRAWS = 400  # posterior draws of T per candidate
OUTCOMES = 64  # hypothetical outcomes per candidate run in the knowledge gradient
RUN_SIZES = 24  # candidate run sizes per algorithm: log-spaced over 1..max_ranks
MIN_OBSERVATION_NOISE = 0.03  # floor of sigma in the likelihood (keeps the reweighting stable)
VERIFY_RATIO = 1.5  # a choice this close (as a ratio of sizes) to a measured size is checked
DEFAULT_OVERHEAD = 1.3  # a run's cost over T(eps, m) * m before any run is seen: runs go past eps


@dataclass
class Posterior:
    """Joint draws of T over the candidates and what they say about the choice."""

    algorithms: list[str]
    m: np.ndarray  # cluster sizes 1..max_ranks
    times: np.ndarray  # (draws, len(algorithms) * len(m)): algorithm-major columns
    p_best: np.ndarray
    p_within: np.ndarray
    tolerance: float
    noise: dict[str, float]  # per algorithm: relative noise of one run's time-to-eps
    measured: dict[str, list[int]]

    def candidate(self, column: int) -> tuple[str, int]:
        return self.algorithms[column // self.m.size], int(self.m[column % self.m.size])

    def column(self, algorithm: str, m: int) -> int:
        return self.algorithms.index(algorithm) * self.m.size + int(m) - 1

    @property
    def choice(self) -> int:
        """The candidate most likely within tolerance of the best (ties: lower median)."""
        median = np.median(self.times, axis=0)
        return int(np.lexsort((median, -self.p_within))[0])

    @property
    def confidence(self) -> float:
        return float(self.p_within[self.choice])

    def unverified(self, column: int) -> bool:
        """True while no run of the candidate's algorithm is within VERIFY_RATIO of its size.
        Far from its runs the posterior is only as good as the model's form (and the
        noise estimate of a few runs), which no draw questions; one run there does."""
        algorithm, m = self.candidate(column)
        return min(max(m / s, s / m) for s in self.measured[algorithm]) > VERIFY_RATIO

    @property
    def choice_unverified(self) -> bool:
        return self.unverified(self.choice)

    def best_of(self, algorithm: str) -> int:
        """The column of the algorithm's own best size (lowest median time)."""
        start = self.algorithms.index(algorithm) * self.m.size
        median = np.median(self.times[:, start:start + self.m.size], axis=0)
        return start + int(np.argmin(median))

    def rows(self, top: int) -> list[dict[str, object]]:
        """The ``top`` candidates by P(within tolerance), with 90% intervals of T."""
        lo, hi = percentile_interval(self.times)
        median = np.median(self.times, axis=0)
        order = np.lexsort((median, -self.p_within))[:top]
        out = []
        for c in order:
            algorithm, m = self.candidate(int(c))
            out.append({"algorithm": algorithm, "m": m,
                        "data": data_mark(m, self.measured[algorithm]),
                        "time_s": float(median[c]), "time_lo_s": float(lo[c]),
                        "time_hi_s": float(hi[c]), "p_best": float(self.p_best[c]),
                        "p_within": float(self.p_within[c])})
        return out


def _noise_scale(data: Noise) -> float:
    """Posterior-mean relative noise of the scaled-inverse-chi-square model."""
    return float(np.sqrt((PRIOR_DOF * PRIOR_NOISE ** 2 + data.squares) / (PRIOR_DOF + data.dof)))


def run_noise(fit: AlgorithmFit, others: Sequence[AlgorithmFit]) -> float:
    """Relative noise of one run's time-to-eps: iteration time and convergence noise combined."""
    scales = []
    for noise_of in (system_noise, convergence_noise):
        data = noise_of(fit)
        if data.dof < MIN_OWN_DOF:
            for other in others:
                data = data + noise_of(other)
        scales.append(_noise_scale(data))
    return float(np.hypot(*scales))


def posterior(fits: Sequence[AlgorithmFit], eps: float, terms: Sequence[Term], max_ranks: int,
              rng: np.random.Generator, tolerance: float = 0.05,
              draws: int = DRAWS) -> Posterior:
    m = np.arange(1, max_ranks + 1, dtype=float)
    blocks, noise = [], {}
    for fit in fits:
        others = [o for o in fits if o is not fit]
        blocks.append(time_draws(fit, eps, m, terms, draws, rng, others=others))
        noise[fit.algorithm] = run_noise(fit, others)
    times = np.concatenate(blocks, axis=1)
    p_best, p_within = choice_probabilities(times, within=tolerance)
    return Posterior([f.algorithm for f in fits], m, times, p_best, p_within, tolerance, noise,
                     {f.algorithm: f.sizes for f in fits})


def run_sizes(max_ranks: int) -> np.ndarray:
    """The sizes a next run may use: log-spaced, so far sizes are reachable in one round."""
    return np.unique(np.round(np.geomspace(1, max_ranks, RUN_SIZES)).astype(int))


def _decision_value(times: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, int]:
    means = weights @ times
    return means, int(np.argmin(means))


def knowledge_gradient(post: Posterior, columns: np.ndarray, weights: np.ndarray,
                       rng: np.random.Generator) -> np.ndarray:
    """Expected drop in regret (seconds of T) from one run at each of ``columns``.

    ``weights`` (summing to 1) is the current reweighting of the draws.
    Outcomes share their random numbers across columns, so the values compare
    like with like.
    """
    times = post.times
    log_times = np.log(np.maximum(times, np.finfo(float).tiny))
    _, now = _decision_value(times, weights)
    base = rng.choice(times.shape[0], size=OUTCOMES, p=weights)
    shocks = rng.standard_normal(OUTCOMES)
    values = np.zeros(columns.size)
    for k, column in enumerate(columns):
        algorithm, _ = post.candidate(int(column))
        sigma = max(post.noise[algorithm], MIN_OBSERVATION_NOISE)
        outcome = log_times[base, column] + sigma * shocks  # (outcomes,)
        log_like = -0.5 * ((outcome[:, None] - log_times[None, :, column]) / sigma) ** 2
        like = np.exp(log_like - log_like.max(axis=1, keepdims=True)) * weights[None, :]
        like /= like.sum(axis=1, keepdims=True)
        means = like @ times  # (outcomes, candidates): posterior means after each outcome
        values[k] = float(np.mean(means[:, now] - means.min(axis=1)))
    return values


def believe(post: Posterior, column: int, weights: np.ndarray) -> np.ndarray:
    """The weights after a run at ``column`` that came out at its weighted median."""
    algorithm, _ = post.candidate(column)
    sigma = max(post.noise[algorithm], MIN_OBSERVATION_NOISE)
    log_times = np.log(np.maximum(post.times[:, column], np.finfo(float).tiny))
    order = np.argsort(log_times)
    median = log_times[order][np.searchsorted(np.cumsum(weights[order]), 0.5)]
    updated = weights * np.exp(-0.5 * ((log_times - median) / sigma) ** 2)
    return updated / updated.sum()


@dataclass
class PlannedRun:
    algorithm: str
    m: int
    cost: float  # estimated machine-seconds
    value: float  # knowledge gradient, seconds of T


def plan(post: Posterior, overhead: dict[str, float], budget_left: float, runs: int,
         rng: np.random.Generator, rounds_left: int = 1) -> list[PlannedRun]:
    """Up to ``runs`` runs with the best knowledge gradient per machine-second, within budget.

    Rounds are scarce too: each run is charged its estimated cost plus a slot,
    this round's share of the budget left divided by ``runs``. Runs much
    cheaper than a slot are then ranked by their value alone (a cheap run that
    teaches nothing wastes a round), runs costing many slots by value per
    machine-second.
    ``overhead[a]``: measured machine-seconds of a's runs over their predicted T x m.
    The choice and each other algorithm's own best size, when far from that
    algorithm's runs (:meth:`Posterior.unverified`), are run first. When no run would
    move the decision (every value ~0) the strongest contenders not yet
    measured are run instead, so the loop never stalls short of its confidence.
    """
    sizes = run_sizes(int(post.m[-1]))
    columns = np.array([post.column(a, int(s)) for a in post.algorithms for s in sizes])
    median = np.median(post.times, axis=0)
    cost = np.array([overhead.get(post.candidate(int(c))[0], DEFAULT_OVERHEAD)
                     * median[c] * post.candidate(int(c))[1] for c in columns])
    weights = np.full(post.times.shape[0], 1.0 / post.times.shape[0])
    scale = float(median.min()) or 1.0
    slot = budget_left / max(rounds_left, 1) / runs
    chosen: list[PlannedRun] = []
    spent = 0.0
    # Check the model where the decision is made before believing it: the choice, then
    # every other algorithm's own best size (the runner-up a biased fit may be hiding).
    checks = [post.choice] + [post.best_of(a) for a in post.algorithms
                              if a != post.candidate(post.choice)[0]]
    for column in checks:
        if len(chosen) == runs or not post.unverified(column):
            continue
        algorithm, m = post.candidate(column)
        c_cost = overhead.get(algorithm, DEFAULT_OVERHEAD) * median[column] * m
        if spent + c_cost <= budget_left:
            chosen.append(PlannedRun(algorithm, m, float(c_cost), 0.0))
            spent += c_cost
            weights = believe(post, column, weights)
    while len(chosen) < runs:
        values = knowledge_gradient(post, columns, weights, rng)
        affordable = spent + cost <= budget_left
        if not np.any(affordable):
            break
        ratio = np.where(affordable, values / (cost + slot), -np.inf)
        k = int(np.argmax(ratio))
        if not values[k] > 1e-6 * scale:
            break
        algorithm, m = post.candidate(int(columns[k]))
        chosen.append(PlannedRun(algorithm, m, float(cost[k]), float(values[k])))
        spent += cost[k]
        weights = believe(post, int(columns[k]), weights)
    if not chosen:  # the decision is stuck: measure the contenders themselves
        order = np.lexsort((median, -post.p_within))
        for c in order:
            algorithm, m = post.candidate(int(c))
            c_cost = overhead.get(algorithm, DEFAULT_OVERHEAD) * median[c] * m
            if len(chosen) == runs or post.p_within[c] <= 0:
                break
            if m in post.measured[algorithm] or spent + c_cost > budget_left:
                continue
            chosen.append(PlannedRun(algorithm, m, float(c_cost), 0.0))
            spent += c_cost
    return chosen
