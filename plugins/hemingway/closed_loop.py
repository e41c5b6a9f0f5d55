"""The decisions of ``bench tune``: how sure the choice is, and which runs would firm it up.

The posterior over candidates (algorithm, m <= max_ranks) is the calibrated
uncertainty model's joint draws of T(eps, m) (:func:`plugins.hemingway.uncertainty.time_draws`),
one block of columns per algorithm. The choice is the candidate of lowest
posterior expected regret (its mean time-to-eps minus that of the per-draw
best: the Bayes decision for the quantity the user pays). The loop stops when
the choice is within ``tolerance`` of the best with the target probability and
the decision has been *checked*: the choice and every other algorithm's own
best size each have a run within a factor VERIFY_RATIO of their size and runs
on both sides of it (a minimum at the edge of what an algorithm was run at is
an extrapolation, however sure the model is), and the choice is *confirmed*:
it was already the choice before the round's runs (one lucky run at a new
size can make a confident choice; the next round's runs there would show it).
The last round re-measures the
choice and its closest rival whatever the model says, so the final comparison
rests on runs at both contenders.

Which runs to make next: the knowledge gradient, estimated on the same draws.
A run of (a, m') would show log T(a, m') up to the run-to-run noise sigma. For
a hypothetical outcome y, reweighting the draws by the likelihood of y is the
posterior after that run (the draws carry how the model's coefficients tie
T at m' to T everywhere else: a large per-machine cost seen at m' = 32 also
raises T at 64). The value of the run is the expected drop, over outcomes
drawn from the current predictive, of the regret of deciding now: the
posterior-mean time of today's choice minus that of the best choice after the
run. Runs are ranked by that value per machine-second of their estimated
cost, and a run is made only if its saving over the user's payoff horizon
(``future_runs`` later runs of the choice) covers its cost
(:func:`worth_its_cost`); an empty round ends the loop. A run's value is the
best per-run share of the value of n runs at its size (KG(*)): one noisy
run alone often cannot change the decision when four would. A round takes
several: after each pick the draws of its algorithm (and only its: the
algorithms' draws are independent) are reweighted as if it had come out at
its predicted median (the "believer" heuristic), so the next pick is valued
given the first and goes elsewhere. This values runs by
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
    choice_probabilities, convergence_noise, noise_scale, percentile_interval, system_noise,
    time_draws,
)

DRAWS = 400  # posterior draws of T per candidate
OUTCOMES = 64  # hypothetical outcomes per candidate run in the knowledge gradient
RUN_SIZES = 24  # candidate run sizes per algorithm: log-spaced over 1..max_ranks
MIN_OBSERVATION_NOISE = 0.03  # floor of sigma in the likelihood (keeps the reweighting stable)
REPEATS = (1, 2, 4, 8)  # KG(*): a run's value is the best per-run share of n runs at its size
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
    def expected_regret(self) -> np.ndarray:
        """Per candidate: posterior mean of its T minus the best T of the same draw (s)."""
        values = np.where(np.isfinite(self.times), self.times, np.inf)
        return np.mean(values - values.min(axis=1, keepdims=True), axis=0)

    def order(self) -> np.ndarray:
        """Candidates by expected regret (ties: higher P(within tolerance), lower median)."""
        median = np.median(self.times, axis=0)
        return np.lexsort((median, -self.p_within, self.expected_regret))

    @property
    def choice(self) -> int:
        """The candidate of lowest expected regret."""
        return int(self.order()[0])

    @property
    def confidence(self) -> float:
        return float(self.p_within[self.choice])

    def check_size(self, column: int) -> int | None:
        """The size a run must have before the candidate's prediction is believed, or None.

        Far from its algorithm's runs the posterior is only as good as the model's
        form (and the noise estimate of a few runs), which no draw questions: the
        candidate itself is run when no run is within VERIFY_RATIO of it. Near the
        runs, a minimum with runs on one side only is still an extrapolation of
        the trend (the curve may keep falling): the size one doubling beyond it
        (the spacing of round 1) is run then. Sizes 1 and max_ranks need no
        outside neighbour.
        """
        algorithm, m = self.candidate(column)
        sizes = self.measured[algorithm]
        if min(max(m / s, s / m) for s in sizes) > VERIFY_RATIO:
            return m
        largest = int(self.m[-1])
        if m < largest and max(sizes) <= m:
            return min(largest, 2 * m)
        if m > 1 and min(sizes) >= m:
            return max(1, m // 2)
        return None

    def unchecked(self, column: int) -> bool:
        return self.check_size(column) is not None

    def block(self, algorithm: str) -> slice:
        """The columns of one algorithm."""
        start = self.algorithms.index(algorithm) * self.m.size
        return slice(start, start + self.m.size)

    def best_of(self, algorithm: str) -> int:
        """The column of the algorithm's own best size (lowest expected regret)."""
        block = self.block(algorithm)
        return block.start + int(np.argmin(self.expected_regret[block]))

    def contenders(self) -> list[int]:
        """The choice, then every other algorithm's own best, closest rival first."""
        algorithm = self.candidate(self.choice)[0]
        rivals = [self.best_of(a) for a in self.algorithms if a != algorithm]
        return [self.choice] + sorted(rivals, key=lambda c: self.expected_regret[c])

    def confirms(self, previous: tuple[str, int] | None) -> bool:
        """True when the choice is the previous round's (same algorithm, size within
        VERIFY_RATIO): it survived a round of new runs, its own check among them."""
        if previous is None:
            return False
        algorithm, m = self.candidate(self.choice)
        return algorithm == previous[0] and max(m / previous[1], previous[1] / m) <= VERIFY_RATIO

    @property
    def decision_unchecked(self) -> bool:
        """True while the choice or some other algorithm's own best is unchecked."""
        return any(self.unchecked(c) for c in self.contenders())

    def rows(self, top: int) -> list[dict[str, object]]:
        """The ``top`` candidates by expected regret, with 90% intervals of T."""
        lo, hi = percentile_interval(self.times)
        median = np.median(self.times, axis=0)
        regret = self.expected_regret
        best_mean = float(np.mean(np.min(self.times, axis=1))) or 1.0
        out = []
        for c in self.order()[:top]:
            algorithm, m = self.candidate(int(c))
            out.append({"algorithm": algorithm, "m": m,
                        "data": data_mark(m, self.measured[algorithm]),
                        "time_s": float(median[c]), "time_lo_s": float(lo[c]),
                        "time_hi_s": float(hi[c]), "p_best": float(self.p_best[c]),
                        "p_within": float(self.p_within[c]),
                        "expected_regret": float(regret[c] / best_mean)})
        return out


def run_noise(fit: AlgorithmFit, others: Sequence[AlgorithmFit]) -> float:
    """Relative noise of one run's time-to-eps: iteration time and convergence noise combined."""
    return float(np.hypot(*(noise_scale(noise_of(fit), [noise_of(o) for o in others])
                            for noise_of in (system_noise, convergence_noise))))


def posterior(fits: Sequence[AlgorithmFit], eps: float, terms: Sequence[Term], max_ranks: int,
              rng: np.random.Generator, tolerance: float = 0.05,
              draws: int | None = None) -> Posterior:
    draws = draws or DRAWS  # read at call time: the benchmark's --draws sets DRAWS
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


def _means(post: Posterior, weights: np.ndarray) -> np.ndarray:
    """Posterior mean T of every candidate, each algorithm's block under its own weights."""
    return np.concatenate([weights[k] @ post.times[:, post.block(a)]
                           for k, a in enumerate(post.algorithms)])


def knowledge_gradient(post: Posterior, columns: np.ndarray, weights: np.ndarray,
                       rng: np.random.Generator) -> np.ndarray:
    """Expected drop in regret (seconds of T) per run at each of ``columns``.

    ``weights`` (one row per algorithm, each summing to 1) is the current
    reweighting of each algorithm's draws. The algorithms' draws are
    independent, so a run of one algorithm reweights only its own; one row
    for all would let a run of gd reshuffle minibatch-sgd's draws by chance
    and, over a round's picks, leave a handful of draws to decide with.
    A run's value is the best per-run share of the value of n runs at its
    size (n in REPEATS: KG(*), Frazier and Powell): one run alone often
    cannot change the decision when a few would, and plain KG then calls
    it worthless. Outcomes share their random numbers across columns, so the
    values compare like with like.
    """
    times = post.times
    log_times = np.log(np.maximum(times, np.finfo(float).tiny))
    means_now = _means(post, weights)
    now = int(np.argmin(means_now))
    base = {a: rng.choice(times.shape[0], size=OUTCOMES, p=weights[k])
            for k, a in enumerate(post.algorithms)}
    shocks = rng.standard_normal(OUTCOMES)
    values = np.zeros(columns.size)
    for k, column in enumerate(columns):
        algorithm, _ = post.candidate(int(column))
        row, block = post.algorithms.index(algorithm), post.block(algorithm)
        for n in REPEATS:
            sigma = max(post.noise[algorithm], MIN_OBSERVATION_NOISE) / np.sqrt(n)
            outcome = log_times[base[algorithm], column] + sigma * shocks  # mean of n runs
            log_like = -0.5 * ((outcome[:, None] - log_times[None, :, column]) / sigma) ** 2
            like = np.exp(log_like - log_like.max(axis=1, keepdims=True)) * weights[row][None, :]
            like /= like.sum(axis=1, keepdims=True)
            means = np.tile(means_now, (OUTCOMES, 1))  # (outcomes, candidates) after each
            means[:, block] = like @ times[:, block]
            values[k] = max(values[k], float(np.mean(means[:, now] - means.min(axis=1))) / n)
    return values


def believe(post: Posterior, column: int, weights: np.ndarray) -> np.ndarray:
    """The weights after a run at ``column`` that came out at its weighted median."""
    algorithm, _ = post.candidate(column)
    row = post.algorithms.index(algorithm)
    sigma = max(post.noise[algorithm], MIN_OBSERVATION_NOISE)
    log_times = np.log(np.maximum(post.times[:, column], np.finfo(float).tiny))
    order = np.argsort(log_times)
    median = log_times[order][np.searchsorted(np.cumsum(weights[row][order]), 0.5)]
    updated = weights.copy()
    updated[row] = weights[row] * np.exp(-0.5 * ((log_times - median) / sigma) ** 2)
    updated[row] /= updated[row].sum()
    return updated


@dataclass
class PlannedRun:
    algorithm: str
    m: int
    cost: float  # estimated machine-seconds
    value: float  # knowledge gradient, seconds of T


@dataclass
class RoundPlan:
    """The next round's runs; when there are none, why (``"budget"`` or ``"worth"``)."""

    runs: list[PlannedRun]
    empty_because: str | None = None


def worth_its_cost(value: float, cost: float, choice_time: float, choice_cost: float,
                   future_runs: float) -> bool:
    """True when a run's expected saving over ``future_runs`` uses of the choice covers its cost.

    The knowledge gradient ``value`` is seconds of T saved, in expectation, on
    each later run of the chosen configuration; one such run costs
    ``choice_cost`` machine-seconds for ``choice_time`` seconds of T, so the
    saving per use is ``value * choice_cost / choice_time`` machine-seconds.
    Costs and savings are then in the same unit and need no exchange rate
    beyond the payoff horizon the user states.
    """
    return future_runs * value * choice_cost / max(choice_time, np.finfo(float).tiny) >= cost


def plan(post: Posterior, overhead: dict[str, float], budget_left: float, runs: int,
         rng: np.random.Generator, rounds_left: int, future_runs: float) -> RoundPlan:
    """Up to ``runs`` runs with the best knowledge gradient per machine-second, within budget,
    each worth its cost (:func:`worth_its_cost`).

    Rounds are scarce too: each run is ranked by its value over its estimated
    cost plus a slot, this round's share of the budget left divided by
    ``runs``. Runs much cheaper than a slot are then ranked by their value
    alone (a cheap run that teaches nothing wastes a round), runs costing many
    slots by value per machine-second. A large budget makes the slot large and
    the cost nearly irrelevant to the ranking, so each run must also be worth
    its own cost over ``future_runs`` uses of the choice; runs that are not
    are not made, the round may be smaller than round 1 or empty, and an
    empty round ends the loop ("worth": no run is worth its cost).
    ``overhead[a]``: measured machine-seconds of a's runs over their predicted T x m.
    First the decision is checked (:meth:`Posterior.check_size`): the choice and each
    other algorithm's own best size. These runs guard against the model's form, which
    the knowledge gradient (computed under the model) cannot value, so the floor does
    not apply to them. The last round (``rounds_left`` 1) also re-runs
    the choice and its closest rival when they are checked already: a further run at
    each shrinks the noise exactly where the final comparison is decided, and is
    evidence that does not lean on the model's form.
    """
    sizes = run_sizes(int(post.m[-1]))
    columns = np.array([post.column(a, int(s)) for a in post.algorithms for s in sizes])
    median = np.median(post.times, axis=0)

    def cost_of(column: int) -> float:
        algorithm, m = post.candidate(column)
        return float(overhead.get(algorithm, DEFAULT_OVERHEAD) * median[column] * m)

    cost = np.array([cost_of(int(c)) for c in columns])
    choice_time, choice_cost = float(median[post.choice]), cost_of(post.choice)
    weights = np.full((len(post.algorithms), post.times.shape[0]), 1.0 / post.times.shape[0])
    slot = budget_left / max(rounds_left, 1) / runs
    chosen: list[PlannedRun] = []
    spent = 0.0
    forced: list[int] = []
    for k, contender in enumerate(post.contenders()):
        size = post.check_size(contender)
        if size is None and rounds_left <= 1 and k < 2:
            size = post.candidate(contender)[1]
        if size is not None:
            column = post.column(post.candidate(contender)[0], size)
            if column not in forced:
                forced.append(column)
    unaffordable = False
    for column in forced:
        if len(chosen) == runs:
            break
        c_cost = cost_of(column)
        if spent + c_cost <= budget_left:
            algorithm, m = post.candidate(column)
            chosen.append(PlannedRun(algorithm, m, c_cost, 0.0))
            spent += c_cost
            weights = believe(post, column, weights)
        else:
            unaffordable = True
    while len(chosen) < runs:
        values = knowledge_gradient(post, columns, weights, rng)
        affordable = spent + cost <= budget_left
        worth = np.array([worth_its_cost(v, c, choice_time, choice_cost, future_runs)
                          for v, c in zip(values, cost)]) & (values > 0)
        if not np.any(affordable & worth):
            unaffordable = unaffordable or bool(np.any(worth))
            break
        ratio = np.where(affordable & worth, values / (cost + slot), -np.inf)
        k = int(np.argmax(ratio))
        algorithm, m = post.candidate(int(columns[k]))
        chosen.append(PlannedRun(algorithm, m, float(cost[k]), float(values[k])))
        spent += cost[k]
        weights = believe(post, int(columns[k]), weights)
    if chosen:
        return RoundPlan(chosen)
    return RoundPlan([], "budget" if unaffordable else "worth")
