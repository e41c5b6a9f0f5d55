"""The rank side of ``bench sweep``: one algorithm on one problem at one cluster size.

Every rank runs :func:`run`. Per iteration the algorithm's ``step`` is timed
(wall time, and the part inside MPI collectives); then, outside that timing,
the objective is evaluated, timings are reduced over ranks, and rank 0 stores
the row. Only rank 0 prints and writes.

A failing rank prints its traceback, marks the stored run failed, and calls
``MPI_Abort`` so the whole job ends at once instead of hanging in a collective.
Set ``BENCH_FAULT_RANK=r`` (and optionally ``BENCH_FAULT_ITERATION=i``, default 2)
to make rank r raise at iteration i: a testing aid for that path.
"""
from __future__ import annotations

import json
import os
import sys
import time
import traceback
from typing import Any, Callable

from harness.errors import BenchUsageError
from plugins.optimizers.mpi_runtime import Comm, world
from plugins.optimizers.jobs import (
    ERROR_MARKER,
    PROGRESS_MARKER,
    SweepConfig,
    check_pairing,
    emit_table,
    notify_recorded,
    parse_algorithm_options,
    summarize,
    table_row,
)

FAULT_RANK_ENV = "BENCH_FAULT_RANK"
FAULT_ITERATION_ENV = "BENCH_FAULT_ITERATION"
FLUSH_SECONDS = 0.5  # store rows at least this often (a crash keeps everything older)
PLUGIN = "algorithms"


class CollectiveUsageError(BenchUsageError):
    """A user error every rank raises together (so no rank is left waiting)."""


def on_root(comm: Comm, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on rank 0 only and give its result, or its error, to every rank.

    Setup-time helper (pickle-based broadcast, never inside the iteration loop).
    """
    outcome: tuple[str, Any] = ("ok", None)
    if comm.rank == 0:
        try:
            outcome = ("ok", fn())
        except BenchUsageError as exc:
            outcome = ("usage", exc.format_message())
        except Exception as exc:  # noqa: BLE001 - handed to every rank below
            traceback.print_exc()
            outcome = ("error", f"{type(exc).__name__}: {exc}")
    kind, value = comm.raw.bcast(outcome, root=0)
    if kind == "usage":
        raise CollectiveUsageError(value)
    if kind == "error":
        raise RuntimeError(f"rank 0 failed during setup: {value}")
    return value


def _fault_iteration(rank: int) -> int | None:
    """The iteration at which this rank must raise (testing aid), if any."""
    target = os.environ.get(FAULT_RANK_ENV, "").strip()
    if not target:
        return None
    try:
        if int(target) != rank:
            return None
        return int(os.environ.get(FAULT_ITERATION_ENV, "2"))
    except ValueError:
        return None


class _Run:
    """What a rank needs to report a failure: the store row, once it exists."""

    def __init__(self, comm: Comm, cfg: SweepConfig) -> None:
        self.comm = comm
        self.cfg = cfg
        self.store = None
        self.result_id: int | None = None
        self.pending: list[dict[str, Any]] = []
        self.rows: list[dict[str, Any]] = []
        self.last_flush = float("-inf")  # the first row is stored at once

    def flush(self, force: bool = False) -> None:
        if self.store is None or not self.pending:
            return
        if force or time.monotonic() - self.last_flush >= FLUSH_SECONDS:
            self.store.add_iterations(self.result_id, self.pending)
            self.pending = []
            self.last_flush = time.monotonic()

    def mark(self, status: str, error: str) -> None:
        """Close the stored run with ``status`` (best effort, from any rank)."""
        if self.result_id is None or not self.cfg.store_path:
            return
        try:
            from harness.store import ResultStore

            store = self.store or ResultStore(self.cfg.store_path)
            if self.store is not None:
                self.flush(force=True)
            current = store.get(self.result_id)
            if current.status != "running":
                return
            rows = self.rows or store.iterations(self.result_id)
            summary = summarize(rows, current.summary, self.cfg.target_subopt)
            store.finish(self.result_id, status, summary=summary, error=error)
            notify_recorded(store, self.result_id)
        except Exception as exc:  # noqa: BLE001 - the job is going down anyway
            print(f"rank {self.comm.rank}: could not mark result {self.result_id} {status}: "
                  f"{exc}", file=sys.stderr)


def run(cfg: SweepConfig) -> int:
    """Run one sweep job on this rank; returns the process exit code."""
    comm = world(separate_wait=cfg.separate_wait)
    state = _Run(comm, cfg)
    try:
        return _run(comm, cfg, state)
    except BenchUsageError as exc:
        if state.result_id is None:  # setup: every rank raised it together
            if comm.rank == 0:
                raise
            sys.exit(2)
        _fail(comm, state, exc)
    except KeyboardInterrupt:
        if comm.rank == 0:
            print("interrupted: results stored so far are kept", file=sys.stderr)
        state.mark("interrupted", "interrupted (Ctrl-C)")
        comm.abort(130)
    except Exception as exc:  # noqa: BLE001 - one failing rank must end the whole job
        _fail(comm, state, exc)
    return 1


def _fail(comm: Comm, state: _Run, exc: BaseException) -> None:
    if comm.rank != 0 and comm.size > 1:
        # If rank 0 raised the same error, its abort ends us first: one report, not K.
        time.sleep(0.5)
    message = (f"rank {comm.rank}: " if comm.size > 1 else "") + f"{type(exc).__name__}: {exc}"
    sys.stderr.write("".join(traceback.format_exception(exc)))
    sys.stderr.write(f"{ERROR_MARKER if state.cfg.launched else 'bench sweep failed: '}"
                     f"{message}\n")
    sys.stderr.flush()
    state.mark("failed", message)
    comm.abort(1)


def _run(comm: Comm, cfg: SweepConfig, state: _Run) -> int:
    import numpy as np

    from harness.plugins.manager import get_plugin_manager
    from harness.specs import parse_options

    started = time.perf_counter()
    pm = get_plugin_manager()
    optimizer = pm.optimizer(cfg.optimizer)
    problem_spec = pm.problem(cfg.problem)
    check_pairing(optimizer, problem_spec)
    hp = parse_algorithm_options(optimizer, cfg.opt_pairs)
    po = parse_options(problem_spec.options, cfg.problem_pairs, f"problem '{problem_spec.name}'")
    if cfg.save_iterate:  # every rank checks, so all refuse together before any work
        from harness.paths import output_file

        output_file(cfg.save_iterate, "--save-iterate")

    def open_store() -> None:
        if cfg.store_path is not None:
            from harness.store import ResultStore

            state.store = ResultStore(cfg.store_path)

    on_root(comm, open_store)
    with comm.excluded():
        problem = problem_spec.factory(po, comm)
        if cfg.target_subopt is not None and problem.f_star is None:
            raise BenchUsageError(f"problem '{problem.name}' has no reference optimum; "
                                  "use --iterations instead of --target-subopt")
        algorithm = optimizer.factory(problem, comm, hp)
    fault_at = _fault_iteration(comm.rank)
    has_dual = callable(getattr(algorithm, "dual_objective", None))
    f_star = problem.f_star
    info = dict(getattr(problem, "info", {}) or {})

    options = {"optimizer": hp, "problem": po, "iterations": cfg.iterations,
               "target_subopt": cfg.target_subopt, "eval_every": cfg.eval_every,
               "separate_wait": cfg.separate_wait}
    if cfg.run_tag:
        options["run_tag"] = cfg.run_tag  # how the launcher finds this run in the store
    with comm.excluded():
        x0 = algorithm.iterate()
        initial = problem.objective(x0)
    base_summary = {
        "n": problem.n, "d": problem.d, "f_star": f_star, "lam": problem.lam,
        "problem_description": info.get("description", problem.name),
        "initial_objective": initial,
        "resolved": dict(getattr(algorithm, "resolved", {}) or {}),
        "reference_solver": {k: v for k, v in info.items()
                             if k not in ("n", "d", "f_star", "description")},
    }

    def create_row() -> int | None:
        if state.store is None:
            return None
        from harness.environment import capture

        rid = state.store.add(
            "sweep", status="running", plugin=pm.plugin_of("optimizers", optimizer.name) or PLUGIN,
            optimizer=optimizer.name, problem=problem_spec.name, ranks=comm.size,
            options=options, environment=capture(PLUGIN), summary=base_summary,
        )
        return rid

    state.result_id = on_root(comm, create_row)
    setup_seconds = time.perf_counter() - started

    progress = _Progress(comm.rank == 0, cfg, optimizer.name, comm.size)
    send_max = np.zeros(8)
    recv_max = np.zeros(8)
    send_sum = np.zeros(1)
    recv_sum = np.zeros(1)
    stop = np.zeros(1)
    elapsed = 0.0
    for t in range(cfg.iterations):
        if fault_at is not None and t + 1 == fault_at:
            raise RuntimeError(f"injected fault ({FAULT_RANK_ENV}={comm.rank}) at iteration "
                               f"{t + 1}")
        comm.reset()
        begin = time.perf_counter()
        algorithm.step(t)
        iter_time = time.perf_counter() - begin
        comm_time, wait_time, sent = comm.comm_time, comm.wait_time, comm.bytes_sent
        compute_time = iter_time - comm_time - wait_time
        with comm.excluded():
            evaluate = (t + 1) % cfg.eval_every == 0 or t + 1 == cfg.iterations
            eval_begin = time.perf_counter()
            objective = gap = None
            if evaluate:
                objective = problem.objective(algorithm.iterate())
                if has_dual:
                    gap = objective - algorithm.dual_objective()
            eval_time = time.perf_counter() - eval_begin
            send_max[:] = (iter_time, compute_time, comm_time, wait_time, eval_time,
                           -comm_time, -compute_time, 0.0)
            comm.allreduce(send_max, recv_max, op="max")
            send_sum[0] = sent
            comm.allreduce(send_sum, recv_sum)
            if comm.rank == 0:
                elapsed += recv_max[0]
                row: dict[str, Any] = {
                    "iteration": t + 1,
                    "iter_time_s": recv_max[0],
                    "compute_time_s": recv_max[1],
                    "comm_time_s": recv_max[2],
                    "eval_time_s": recv_max[4],
                    "bytes_sent": int(recv_sum[0]),
                    "objective": objective,
                    "suboptimality": (objective - f_star
                                      if objective is not None and f_star is not None else None),
                    "duality_gap": gap,
                    "comm_time_min_s": -recv_max[5],
                    "compute_time_min_s": -recv_max[6],
                    "elapsed_s": elapsed,
                }
                if cfg.separate_wait:
                    row["wait_time_s"] = recv_max[3]
                if row["suboptimality"] is not None and f_star:
                    row["rel_suboptimality"] = row["suboptimality"] / abs(f_star)
                state.rows.append(row)
                state.pending.append(row)
                state.flush()
                reached = (cfg.target_subopt is not None and row["suboptimality"] is not None
                           and row["suboptimality"] <= cfg.target_subopt)
                if objective is not None and not np.isfinite(objective):
                    reached = True  # diverged: nothing more to learn
                stop[0] = 1.0 if reached else 0.0
                progress.update(t + 1, row)
            comm.bcast(stop)  # also keeps rank 0's bookkeeping out of the next iteration
        if stop[0]:
            break

    progress.close()
    if cfg.save_iterate and comm.rank == 0:
        np.save(cfg.save_iterate, np.asarray(algorithm.iterate()))
    if comm.rank != 0:
        return 0
    summary = summarize(state.rows, base_summary, cfg.target_subopt)
    summary["setup_s"] = setup_seconds
    summary["wall_time_s"] = time.perf_counter() - started
    if state.store is not None:
        state.flush(force=True)
        state.store.finish(state.result_id, "complete", summary=summary)
        notify_recorded(state.store, state.result_id)
    _report(cfg, optimizer.name, problem_spec.name, comm.size, state.result_id, summary)
    return 0


class _Progress:
    """Rank 0's live progress: JSON lines for the launcher, or a bar on a terminal."""

    def __init__(self, active: bool, cfg: SweepConfig, optimizer: str, ranks: int) -> None:
        self.active = active
        self.cfg = cfg
        self.label = f"{optimizer} K={ranks}"
        self.last = 0.0
        self.bar = None
        if active and not cfg.launched:
            from harness.cli import ProgressBar

            self.bar = ProgressBar()

    def update(self, done: int, row: dict[str, Any]) -> None:
        if not self.active:
            return
        now = time.monotonic()
        if self.cfg.launched:
            if now - self.last >= 0.25 or done == self.cfg.iterations:
                self.last = now
                payload = {"iteration": done, "iterations": self.cfg.iterations,
                           "suboptimality": row.get("suboptimality"),
                           "objective": row.get("objective"),
                           "iter_time_s": row.get("iter_time_s")}
                print(PROGRESS_MARKER + json.dumps(payload), flush=True)
        elif self.bar is not None:
            sub = row.get("suboptimality")
            label = self.label + (f" subopt {sub:.3g}" if sub is not None else "")
            self.bar(done, self.cfg.iterations, label)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _report(cfg: SweepConfig, optimizer: str, problem: str, ranks: int,
            result_id: int | None, summary: dict[str, Any]) -> None:
    """Rank 0's output when run directly under mpirun (the launcher prints its own table)."""
    if cfg.launched:
        return
    emit_table([table_row(optimizer, ranks, "complete", result_id, summary)], cfg.fmt,
               cfg.target_subopt, problem)
