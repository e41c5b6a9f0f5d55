"""The distributed algorithms, one object per rank (see protocol.Algorithm).

Every iteration communicates through ``comm.allreduce`` on preallocated
buffers: one Allreduce of the parameter vector's length per iteration for
each algorithm here. Iterates are updated in place, because for the ``cnn``
problem the iterate is the model's parameter memory.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from harness.errors import BenchUsageError
from plugins.optimizers.protocol import AUTO, DualProblem


DEFAULT_BATCH = 1000  # global minibatch when the problem suggests none


def _step_size(problem: Any, lr: float | str, batch: int) -> float:
    return float(problem.step_size(batch)) if lr == AUTO else float(lr)


def _global_batch(problem: Any, batch: int | str) -> int:
    if batch != AUTO:
        return int(batch)
    return int(getattr(problem, "batch_hint", DEFAULT_BATCH))


def _require_dual(problem: Any, algorithm: str) -> None:
    if not isinstance(problem, DualProblem):
        raise BenchUsageError(f"optimizer '{algorithm}' needs a problem with SDCA dual steps "
                              f"(logreg, svm, lsq); '{problem.name}' has none")


class MinibatchSGD:
    """Synchronous minibatch SGD: the global batch's gradient is summed with one Allreduce.

    The minibatch is drawn from a generator seeded identically on every rank, so
    with the same global batch the iterates do not depend on the number of ranks.
    """

    def __init__(self, problem: Any, comm: Any, hp: dict[str, Any]) -> None:
        self.problem, self.comm = problem, comm
        self.batch = _global_batch(problem, hp["batch"])
        self.lr = _step_size(problem, hp["lr"], self.batch)
        self.lr_decay = hp["lr_decay"]
        self.momentum = hp["momentum"]
        self.rng = np.random.default_rng([hp["seed"], 1])
        self.x = problem.initial_point()
        # Preallocated send/receive buffers: nothing is allocated around the collective.
        self.send = np.zeros_like(self.x)
        self.total = np.zeros_like(self.x)
        self.velocity = np.zeros_like(self.x) if self.momentum else None
        self.resolved = {"lr": self.lr, "batch": self.batch}

    def step(self, t: int) -> None:
        batch = self.problem.minibatch(self.rng, self.batch)
        np.copyto(self.send, self.problem.gradient(self.x, batch))
        self.comm.allreduce(self.send, self.total)
        lr = self.lr / (1.0 + self.lr_decay * t)
        update = self.total
        if self.problem.lam:
            update += self.problem.lam * self.x
        if self.velocity is not None:
            self.velocity *= self.momentum
            self.velocity += update
            update = self.velocity
        self.x -= lr * update

    def iterate(self) -> Any:
        return self.x


class LocalSGD:
    """Local SGD: H local minibatch steps on each rank's own shard, then the models are averaged."""

    def __init__(self, problem: Any, comm: Any, hp: dict[str, Any]) -> None:
        self.problem, self.comm = problem, comm
        self.batch = hp["batch"]
        if self.batch == AUTO:
            self.batch = max(1, _global_batch(problem, AUTO) // comm.size)
        self.local_steps = hp["local_steps"]
        self.lr = _step_size(problem, hp["lr"], self.batch)
        self.lr_decay = hp["lr_decay"]
        self.rng = np.random.default_rng([hp["seed"], 2, comm.rank])
        self.x = problem.initial_point()
        self.total = np.zeros_like(self.x)
        self.resolved = {"lr": self.lr, "batch": self.batch}

    def step(self, t: int) -> None:
        lr = self.lr / (1.0 + self.lr_decay * t)
        lam = self.problem.lam
        for _ in range(self.local_steps):
            batch = self.problem.local_minibatch(self.rng, self.batch)
            grad = self.problem.gradient(self.x, batch)
            if lam:
                self.x *= 1.0 - lr * lam
            self.x -= lr * grad
        self.comm.allreduce(self.x, self.total)
        np.multiply(self.total, 1.0 / self.comm.size, out=self.x)

    def iterate(self) -> Any:
        return self.x


class RowStream:
    """Local row indices for SDCA: random permutations, one pass after another."""

    def __init__(self, rng: np.random.Generator, n_local: int, steps: int) -> None:
        self.rng, self.n_local, self.steps = rng, n_local, steps
        self._order: list[int] = []

    def next(self) -> np.ndarray:
        """The next ``steps`` rows (a pass may continue into the next call)."""
        need, parts = self.steps, []
        while need > 0:
            if not self._order:
                self._order = self.rng.permutation(self.n_local).tolist()
            take, self._order = self._order[:need], self._order[need:]
            parts.extend(take)
            need -= len(take)
        return np.asarray(parts, dtype=np.int64)


class CoCoA:
    """CoCoA/CoCoA+: local SDCA on each rank's dual block, then w += gamma * sum of updates.

    CoCoA averages (gamma = 1/K, sigma' = 1); CoCoA+ adds (gamma, sigma' = gamma K).
    With one rank both are exactly SDCA.
    """

    def __init__(self, problem: Any, comm: Any, hp: dict[str, Any], adding: bool,
                 name: str) -> None:
        _require_dual(problem, name)
        if problem.lam <= 0:
            raise BenchUsageError(f"optimizer '{name}' needs lam > 0 (the dual is undefined "
                                  "without regularization)")
        self.problem, self.comm = problem, comm
        K = comm.size
        self.gamma = hp["gamma"] if adding else 1.0 / K
        self.sigma = self.gamma * K if adding else 1.0
        steps = max(1, round(hp["local_passes"] * problem.n_local))
        self.rows = RowStream(np.random.default_rng([hp["seed"], 3, comm.rank]),
                              problem.n_local, steps)
        self.alpha = np.zeros(problem.n_local)
        self.alpha_start = np.empty_like(self.alpha)
        self.w = np.zeros(problem.d)
        self.local = np.empty_like(self.w)
        self.total = np.empty_like(self.w)
        self.resolved = {"gamma": self.gamma, "sigma_prime": self.sigma, "local_steps": steps}

    def step(self, t: int) -> None:
        p = self.problem
        scale = self.sigma / (p.lam * p.n)
        self.alpha_start[:] = self.alpha
        self.local[:] = self.w
        p.sdca(self.alpha, self.local, self.rows.next(), scale)
        # local = w + sigma' * dw_k  ->  dw_k = (local - w) / sigma'
        self.local -= self.w
        self.local *= 1.0 / self.sigma
        self.comm.allreduce(self.local, self.total)
        self.w += self.gamma * self.total
        if self.gamma != 1.0:
            self.alpha -= self.alpha_start
            self.alpha *= self.gamma
            self.alpha += self.alpha_start

    def iterate(self) -> Any:
        return self.w

    def dual_objective(self) -> float:
        p = self.problem
        (conj,) = self.comm.sum_scalars(p.conjugate_sum(self.alpha))
        return -conj / p.n - 0.5 * p.lam * float(self.w @ self.w)


class ConsensusADMM:
    """Consensus ADMM: each rank solves its local subproblem inexactly, z is the average.

    x_k = argmin f_k(x) + rho/2 ||x - z + u_k||^2 by warm-started local SDCA passes;
    z = rho * sum_k (x_k + u_k) / (lam + K rho) with one Allreduce; u_k += x_k - z.
    """

    def __init__(self, problem: Any, comm: Any, hp: dict[str, Any]) -> None:
        _require_dual(problem, "admm")
        self.problem, self.comm = problem, comm
        K = comm.size
        if hp["rho"] == AUTO:
            curvature = getattr(problem, "curvature", None)
            if curvature is None:
                raise BenchUsageError(f"problem '{problem.name}' gives no curvature estimate; "
                                      "set admm's rho explicitly (--opt rho=VALUE)")
            # Balance the local curvature (about L/K per rank) against lam.
            self.rho = max(math.sqrt(max(curvature * problem.lam, 1e-300)) / K,
                           curvature * 1e-3 / K, 1e-12)
        else:
            self.rho = float(hp["rho"])
        steps = max(1, round(hp["local_passes"] * problem.n_local))
        self.rows = RowStream(np.random.default_rng([hp["seed"], 4, comm.rank]),
                              problem.n_local, steps)
        self.alpha = np.zeros(problem.n_local)
        self.x = np.zeros(problem.d)
        self.u = np.zeros(problem.d)
        self.z = np.zeros(problem.d)
        self.local = np.empty(problem.d)
        self.total = np.empty(problem.d)
        self.resolved = {"rho": self.rho, "local_steps": steps}

    def step(self, t: int) -> None:
        p = self.problem
        scale = 1.0 / (self.rho * p.n)
        # x = (z - u) + A_k^T alpha / (rho n): the primal point of the warm-started duals
        np.subtract(self.z, self.u, out=self.x)
        self.x += scale * p.transpose_times(self.alpha)
        p.sdca(self.alpha, self.x, self.rows.next(), scale)
        np.add(self.x, self.u, out=self.local)
        self.comm.allreduce(self.local, self.total)
        np.multiply(self.total, self.rho / (p.lam + self.comm.size * self.rho), out=self.z)
        self.u += self.x
        self.u -= self.z

    def iterate(self) -> Any:
        return self.z


def minibatch_sgd(problem: Any, comm: Any, hp: dict[str, Any]) -> MinibatchSGD:
    return MinibatchSGD(problem, comm, hp)


def local_sgd(problem: Any, comm: Any, hp: dict[str, Any]) -> LocalSGD:
    return LocalSGD(problem, comm, hp)


def cocoa(problem: Any, comm: Any, hp: dict[str, Any]) -> CoCoA:
    return CoCoA(problem, comm, {**hp, "gamma": 1.0}, adding=False, name="cocoa")


def cocoa_plus(problem: Any, comm: Any, hp: dict[str, Any]) -> CoCoA:
    return CoCoA(problem, comm, hp, adding=True, name="cocoa+")


def admm(problem: Any, comm: Any, hp: dict[str, Any]) -> ConsensusADMM:
    return ConsensusADMM(problem, comm, hp)
