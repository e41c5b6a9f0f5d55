"""Measurements drawn from known ground-truth models, for tests, the benchmark and demos.

Each algorithm has a true f(m) (Ernest terms) and a true convergence curve
s(i, m) = s0 * (1 - rho(m))**i, optionally with a sublinear tail; iteration
times and suboptimalities get multiplicative log-normal noise.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence


@dataclass(frozen=True)
class TrueAlgorithm:
    name: str
    t: tuple[float, float, float, float]  # t0, t1 (per example), t2 (per log m), t3 (per machine)
    rate: Callable[[float], float]  # rho(m): fraction of suboptimality removed per iteration
    s0: float = 1.0

    def seconds_per_iteration(self, m: float, n: float) -> float:
        t0, t1, t2, t3 = self.t
        return t0 + t1 * n / m + t2 * math.log(m) + t3 * m

    def subopt(self, i: float, m: float) -> float:
        return self.s0 * (1.0 - self.rate(m)) ** i

    def iterations_to(self, eps: float, m: float) -> int:
        return max(0, math.ceil(math.log(eps / self.s0) / math.log(1.0 - self.rate(m))))

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
    problem: str = "synthetic",
) -> list[dict[str, Any]]:
    """Rows in the ``--input`` format: every algorithm at every size, run a little past eps."""
    import numpy as np

    rng = np.random.default_rng(seed)
    rows = []
    for algorithm in algorithms:
        for m in sizes:
            iterations = max(5, math.ceil(overrun * algorithm.iterations_to(eps, m)))
            f = algorithm.seconds_per_iteration(m, n)
            for i in range(iterations + 1):
                rows.append({
                    "algorithm": algorithm.name, "problem": problem, "ranks": m, "n": n,
                    "iteration": i,
                    "iter_time_s": 0.0 if i == 0 else f * float(rng.lognormal(0, time_noise)),
                    "suboptimality": algorithm.subopt(i, m) * float(
                        rng.lognormal(0, subopt_noise)),
                })
    return rows


def write_csv(rows: Sequence[dict[str, Any]], path: str) -> None:
    import csv

    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
