"""The contract between problems, algorithms and the sweep runner (see docs/optimizers.md).

A third-party plugin adds a problem by returning a ``ProblemSpec`` whose
``factory(options, comm)`` builds an object following :class:`Problem` (and
:class:`DualProblem` for dual methods such as CoCoA), or an algorithm by
returning an ``OptimizerSpec`` whose ``factory(problem, comm, hyperparameters)``
builds an object following :class:`Algorithm`. ``comm`` is a
:class:`plugins.optimizers.mpi_runtime.Comm`: every collective an algorithm makes
through it is timed and its bytes counted. Nothing here imports numpy.

Also here: the ``key=value`` option parsers the built-in specs share.
"""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

AUTO = "auto"


@runtime_checkable
class Problem(Protocol):
    """Rank-local view of ``P(x) = (1/n) sum_i loss_i(x) + lam/2 ||x||^2``.

    Examples are split by rows across ranks; every method below is called on
    every rank. ``objective`` is collective (it may communicate); the runner
    calls it outside the timed iteration.
    """

    name: str
    n: int  # training examples over all ranks
    d: int  # length of the parameter vector
    n_local: int  # examples on this rank
    lam: float  # L2 regularization weight
    f_star: float | None  # reference optimum of P; None when unknown

    def initial_point(self) -> Any:
        """x0 as a fresh 1-D float array, identical on every rank."""

    def minibatch(self, rng: Any, size: int) -> Any:
        """This rank's share of a global minibatch of ``size`` examples (0: all).

        ``rng`` (a ``numpy.random.Generator``) is in the same state on every rank
        and must be advanced identically on every rank.
        """

    def local_minibatch(self, rng: Any, size: int) -> Any:
        """``size`` examples of this rank's own shard drawn with ``rng`` (0: the whole shard)."""

    def gradient(self, x: Any, batch: Any) -> Any:
        """Loss gradient for ``batch`` at ``x`` (regularizer excluded).

        For a ``minibatch`` share the sum over ranks is the mean gradient of the
        global minibatch; for a ``local_minibatch`` it is the local mean. May
        return an internal buffer that the next call overwrites.
        """

    def step_size(self, batch: int) -> float:
        """A safe constant SGD step for minibatches of ``batch`` examples (0: full)."""

    # Optional: ``batch_hint: int``, a sensible global minibatch size (``batch=auto``).

    def objective(self, x: Any) -> float:
        """P(x), identical on every rank (collective)."""


@runtime_checkable
class DualProblem(Problem, Protocol):
    """What dual methods (CoCoA, CoCoA+, ADMM's local solver) need: SDCA on local rows.

    The dual of P is ``D(a) = -(1/n) sum_i loss_i*(-a_i) - lam/2 ||A a/(lam n)||^2``.
    """

    def sdca(self, alpha: Any, v: Any, order: Any, scale: float) -> None:
        """Coordinate ascent over local rows ``order``, in place.

        For each i: with margin ``z = x_i . v`` and ``q = scale * ||x_i||^2``, pick
        ``delta = argmax -loss_i*(-(alpha_i + delta)) - delta z - q delta^2 / 2``,
        then ``alpha_i += delta`` and ``v += scale * delta * x_i``.
        """

    def conjugate_sum(self, alpha: Any) -> float:
        """``sum_i loss_i*(-alpha_i)`` over local rows (no communication)."""

    def transpose_times(self, alpha: Any) -> Any:
        """``A_local^T alpha``: the sum of local rows weighted by ``alpha``."""


class Algorithm(Protocol):
    """A distributed algorithm, one instance per rank.

    ``step`` is one iteration: local computation plus collectives through ``comm``
    (the runner times it; ``comm`` splits off the time inside MPI). ``iterate``
    returns the current primal point, the same on every rank after ``step``.
    An algorithm with a dual may also define ``dual_objective() -> float``
    (collective); the runner then records the duality gap.
    """

    def step(self, t: int) -> None:
        """Run iteration ``t`` (0-based)."""

    def iterate(self) -> Any:
        """The primal point the objective is evaluated at."""


# --------------------------------------------------------------------------- option types
def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def nonnegative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("must be 0 or a positive integer")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise ValueError("must be a positive number")
    return value


def nonnegative_float(text: str) -> float:
    value = float(text)
    if not value >= 0 or value == float("inf"):
        raise ValueError("must be 0 or a positive number")
    return value


def fraction(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise ValueError("must be in (0, 1]")
    return value


def momentum_value(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise ValueError("must be in [0, 1)")
    return value


def auto_or_positive_float(text: str) -> float | str:
    """A positive number, or ``auto`` (the problem picks it)."""
    if text.strip().lower() == AUTO:
        return AUTO
    return positive_float(text)


auto_or_positive_float.__name__ = "auto|float"


def auto_or_nonnegative_int(text: str) -> int | str:
    """0 or a positive integer, or ``auto`` (the problem picks it)."""
    if text.strip().lower() == AUTO:
        return AUTO
    return nonnegative_int(text)


auto_or_nonnegative_int.__name__ = "auto|int"
