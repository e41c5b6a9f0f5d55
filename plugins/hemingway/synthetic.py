"""Measurements drawn from known ground-truth models, for tests, the benchmark and demos.

Each algorithm has a true f(m) (Ernest terms) and a true convergence curve
s(i, m): linear, s0 * (1 - rho(m))**i, or sublinear, s0 / (1 + rho(m) * i)**2.
Noise is multiplicative and log-normal: per iteration on the iteration time
and the suboptimality, and per run (``run_noise``) on the run's whole
iteration time and its rate, as when a run lands on a slower node or a
stochastic method draws a luckier sample order. Per-iteration noise averages
out over a run; per-run noise does not, and is what makes one run per size
hard to extrapolate from.

:data:`CASES` are the named ground truths of the extrapolation benchmark:
different term mixes and convergence laws, noise of 3-10%, with the best
(algorithm, m) inside the measured sizes or far beyond them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence


@dataclass(frozen=True)
class TrueAlgorithm:
    name: str
    t: tuple[float, float, float, float]  # t0, t1 (per example), t2 (per log m), t3 (per machine)
    rate: Callable[[float], float]  # rho(m): how fast suboptimality falls per iteration
    s0: float = 1.0
    law: str = "linear"  # "linear": s0 (1 - rho)^i; "sublinear": s0 / (1 + rho i)^2

    def seconds_per_iteration(self, m: float, n: float) -> float:
        t0, t1, t2, t3 = self.t
        return t0 + t1 * n / m + t2 * math.log(m) + t3 * m

    def subopt(self, i: float, m: float, rate_factor: float = 1.0) -> float:
        rho = self.rate(m) * rate_factor
        if self.law == "sublinear":
            return self.s0 / (1.0 + rho * i) ** 2
        return self.s0 * (1.0 - rho) ** i

    def iterations_to(self, eps: float, m: float, rate_factor: float = 1.0) -> int:
        rho = self.rate(m) * rate_factor
        if self.law == "sublinear":
            return max(0, math.ceil((math.sqrt(self.s0 / eps) - 1.0) / rho))
        return max(0, math.ceil(math.log(eps / self.s0) / math.log(1.0 - rho)))

    def time_to(self, eps: float, m: float, n: float) -> float:
        return self.iterations_to(eps, m) * self.seconds_per_iteration(m, n)


# Five algorithms whose best cluster size differs: cheap communication vs. fast convergence.
EXAMPLE_ALGORITHMS = (
    TrueAlgorithm("gd", (2e-3, 4e-7, 1e-3, 2e-4), lambda m: 0.02),
    TrueAlgorithm("cocoa", (1e-3, 5e-7, 4e-3, 1e-4), lambda m: 0.25 / m),
    TrueAlgorithm("cocoa+", (1e-3, 5e-7, 4e-3, 1e-4), lambda m: 0.3 / (1.0 + 0.15 * m)),
    TrueAlgorithm("admm", (4e-3, 3e-7, 2e-3, 8e-4), lambda m: 0.12 / math.sqrt(m)),
    TrueAlgorithm("local-sgd", (1e-3, 8e-7, 6e-3, 3e-4), lambda m: 0.015 + 0.004 * math.log(m)),
)


def generate(
    algorithms: Sequence[TrueAlgorithm], sizes: Sequence[int], n: float, eps: float,
    time_noise: float = 0.05, subopt_noise: float = 0.02, overrun: float = 1.3, seed: int = 0,
    problem: str = "synthetic", run_noise: float = 0.0,
) -> list[dict[str, Any]]:
    """Rows in the ``--input`` format: every algorithm at every size, run a little past eps."""
    import numpy as np

    rng = np.random.default_rng(seed)
    rows = []
    for algorithm in algorithms:
        for m in sizes:
            slower = float(rng.lognormal(0, run_noise)) if run_noise else 1.0
            rate_factor = float(rng.lognormal(0, run_noise)) if run_noise else 1.0
            iterations = max(5, math.ceil(overrun * algorithm.iterations_to(eps, m, rate_factor)))
            f = algorithm.seconds_per_iteration(m, n) * slower
            for i in range(iterations + 1):
                rows.append({
                    "algorithm": algorithm.name, "problem": problem, "ranks": m, "n": n,
                    "iteration": i,
                    "iter_time_s": 0.0 if i == 0 else f * float(rng.lognormal(0, time_noise)),
                    "suboptimality": algorithm.subopt(i, m, rate_factor) * float(
                        rng.lognormal(0, subopt_noise)),
                })
    return rows


@dataclass(frozen=True)
class Case:
    """A ground truth to rank: its algorithms, where they are measured, how noisy."""

    name: str
    description: str
    algorithms: tuple[TrueAlgorithm, ...]
    noise: float  # per-run relative noise of iteration time and convergence rate
    measured: tuple[int, ...] = (1, 2, 3, 4, 6, 8)
    max_ranks: int = 128
    n: float = 20000.0
    eps: float = 1e-4

    def true_time(self, algorithm: TrueAlgorithm, m: int) -> float:
        return algorithm.time_to(self.eps, m, self.n)

    def optimum(self) -> tuple[str, int, float]:
        """The true best (algorithm, m) over m = 1..max_ranks and its time-to-eps."""
        return min(((a.name, m, self.true_time(a, m)) for a in self.algorithms
                    for m in range(1, self.max_ranks + 1)), key=lambda c: (c[2], c[1]))

    def rows(self, seed: int, sizes: Sequence[int] | None = None) -> list[dict[str, Any]]:
        """One run per size of every algorithm, with this case's noise."""
        return generate(self.algorithms, sizes or self.measured, self.n, self.eps,
                        time_noise=self.noise, subopt_noise=0.02, seed=seed,
                        problem=self.name, run_noise=self.noise)


CASES = (
    Case("ernest-inside",
         "Ernest terms all present, communication grows fast: best at m=4, inside 1..8",
         (TrueAlgorithm("gd", (2e-3, 4e-7, 1e-3, 2e-4), lambda m: 0.08),
          TrueAlgorithm("cocoa", (1e-3, 5e-7, 4e-3, 1e-4), lambda m: 0.1 / m)),
         noise=0.05),
    Case("cocoa-inside",
         "rounds grow like m (CoCoA averaging) and with 1+0.15m (CoCoA+), 10% noise",
         (TrueAlgorithm("cocoa", (1e-3, 5e-7, 4e-3, 1e-4), lambda m: 0.25 / m),
          TrueAlgorithm("cocoa+", (1e-3, 5e-7, 4e-3, 1e-4), lambda m: 0.3 / (1.0 + 0.15 * m))),
         noise=0.10),
    Case("overhead-far",
         "computation dominates, per-machine overhead invisible at m<=8: best near m=50",
         (TrueAlgorithm("gd", (1e-3, 5e-7, 0.0, 4e-6), lambda m: 0.02),
          TrueAlgorithm("admm", (1e-3, 5e-7, 0.0, 4e-6), lambda m: 0.08 / math.sqrt(m))),
         noise=0.03),
    Case("tree-far",
         "tree-shaped aggregation (log m) is the only communication: best near m=40",
         (TrueAlgorithm("gd", (5e-4, 5e-7, 2.5e-4, 0.0), lambda m: 0.05),
          TrueAlgorithm("cocoa+", (5e-4, 5e-7, 2.5e-4, 0.0), lambda m: 0.1 / (1.0 + 0.15 * m))),
         noise=0.05),
    Case("sublinear-far",
         "sublinear convergence (s ~ 1/i^2), all four terms, 8% noise: best near m=45",
         (TrueAlgorithm("agd", (1e-3, 6e-7, 1e-4, 3e-6), lambda m: 0.05, law="sublinear"),
          TrueAlgorithm("gd", (1e-3, 6e-7, 1e-4, 3e-6), lambda m: 0.004)),
         noise=0.08),
    Case("minibatch-far",
         "more machines, fewer rounds (rate ~ sqrt(m)), 10% noise: best near m=48",
         (TrueAlgorithm("minibatch-sgd", (1e-3, 4e-7, 5e-4, 5e-5), lambda m: 0.006 * math.sqrt(m)),
          TrueAlgorithm("gd", (1e-3, 4e-7, 5e-4, 2e-5), lambda m: 0.02)),
         noise=0.10),
)


def case(name: str) -> Case:
    from harness.errors import unknown_choice

    for c in CASES:
        if c.name == name:
            return c
    raise unknown_choice("synthetic case", name, [c.name for c in CASES])


def write_csv(rows: Sequence[dict[str, Any]], path: str) -> None:
    import csv

    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
