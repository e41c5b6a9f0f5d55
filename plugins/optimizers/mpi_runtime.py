"""The MPI side of a sweep: a communicator that times every collective, and rank detection.

Algorithms talk to other ranks only through :class:`Comm`, so the time spent
inside MPI and the bytes handed to it are measured in one place. Collectives
are the buffer-based ``Allreduce``/``Bcast`` on NumPy arrays or torch CPU
tensors (no pickling in iteration loops).

``mpi4py`` is imported only inside ranks: :func:`world` does it. The launcher
(``bench sweep --ranks ...``) must never import it, because an MPI-initialized
parent confuses the ``mpiexec`` children it starts.
"""
from __future__ import annotations

import os
import time
from contextlib import contextmanager
from typing import Any, Iterator

# Environment variables that MPI launchers set in every rank they start.
RANK_ENV_VARS = ("PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK",
                 "PMIX_RANK", "MV2_COMM_WORLD_SIZE", "MPI_LOCALNRANKS")
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def inside_mpi_job() -> bool:
    """True when this process was started by mpiexec/mpirun (MPICH, Open MPI, PMIx)."""
    return any(os.environ.get(v) for v in RANK_ENV_VARS)


def single_threaded_math() -> None:
    """One BLAS/OpenMP thread per rank unless the user chose otherwise.

    Several ranks share the cores; threaded BLAS inside each would oversubscribe
    them and make timings meaningless. Effective only before numpy is imported.
    """
    for var in THREAD_ENV_VARS:
        os.environ.setdefault(var, "1")


def _as_array(buf: Any) -> Any:
    """A NumPy view of ``buf`` (torch CPU tensors are viewed, never copied)."""
    if hasattr(buf, "detach") and hasattr(buf, "numpy"):
        return buf.detach().numpy()
    return buf


class Comm:
    """An MPI communicator that accounts for the time and bytes of each collective.

    ``comm_time`` is wall time inside MPI calls (including waiting for slower
    ranks); ``bytes_sent`` is the payload this rank handed to collectives.
    Inside :meth:`excluded` (objective evaluation, bookkeeping) nothing is counted.
    With ``separate_wait`` an untimed barrier precedes each collective and its
    duration goes to ``wait_time``, so ``comm_time`` is the transfer alone.
    """

    def __init__(self, mpi_comm: Any, separate_wait: bool = False) -> None:
        from mpi4py import MPI

        self._mpi = MPI
        self.raw = mpi_comm
        self.rank: int = mpi_comm.Get_rank()
        self.size: int = mpi_comm.Get_size()
        self.separate_wait = separate_wait
        self._ops = {"sum": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}
        self._counting = True
        self.reset()

    def reset(self) -> None:
        """Zero the counters (the runner does this at the start of each iteration)."""
        self.comm_time = 0.0
        self.wait_time = 0.0
        self.bytes_sent = 0
        self.calls = 0

    @contextmanager
    def excluded(self) -> Iterator[None]:
        """Collectives inside this block are not counted (evaluation, setup)."""
        previous, self._counting = self._counting, False
        try:
            yield
        finally:
            self._counting = previous

    def _wait(self) -> None:
        if self.separate_wait and self._counting:
            start = time.perf_counter()
            self.raw.Barrier()
            self.wait_time += time.perf_counter() - start

    def allreduce(self, send: Any, recv: Any, op: str = "sum") -> Any:
        """``recv = op(send over all ranks)``; both are arrays of the same shape; returns recv."""
        send_arr, recv_arr = _as_array(send), _as_array(recv)
        self._wait()
        start = time.perf_counter()
        self.raw.Allreduce(send_arr, recv_arr, op=self._ops[op])
        if self._counting:
            self.comm_time += time.perf_counter() - start
            self.bytes_sent += send_arr.nbytes
            self.calls += 1
        return recv

    def bcast(self, buf: Any, root: int = 0) -> Any:
        """Broadcast ``buf`` from ``root`` in place; returns it."""
        arr = _as_array(buf)
        self._wait()
        start = time.perf_counter()
        self.raw.Bcast(arr, root=root)
        if self._counting:
            self.comm_time += time.perf_counter() - start
            if self.rank == root:
                self.bytes_sent += arr.nbytes
            self.calls += 1
        return buf

    def barrier(self) -> None:
        start = time.perf_counter()
        self.raw.Barrier()
        if self._counting:
            self.comm_time += time.perf_counter() - start
            self.calls += 1

    def sum_scalars(self, *values: float) -> list[float]:
        """Sum a few floats over ranks (evaluation helper; one small Allreduce)."""
        import numpy as np

        send = np.asarray(values, dtype=np.float64)
        recv = np.empty_like(send)
        self.allreduce(send, recv)
        return recv.tolist()

    def abort(self, code: int = 1) -> None:
        """Kill every rank of the job now (used when one rank fails)."""
        self.raw.Abort(code)


def world(separate_wait: bool = False) -> Comm:
    """The job's COMM_WORLD, wrapped (imports mpi4py; call only inside a rank)."""
    single_threaded_math()
    from mpi4py import MPI

    return Comm(MPI.COMM_WORLD, separate_wait=separate_wait)
