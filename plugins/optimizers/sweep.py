"""``bench sweep``: run distributed optimizers at one or several cluster sizes.

Two modes, one command:

- inside an MPI job (``mpirun -n K bench sweep ...``) every rank runs one
  (algorithm, K) job and rank 0 stores it (see :mod:`plugins.optimizers.runner`);
- otherwise (``bench sweep --ranks 1,2,4``) this process is a launcher: it
  starts ``mpiexec -n K`` once per (algorithm, K), in sequence, shows progress,
  finalizes runs that failed, timed out or were interrupted, and prints a table.

The launcher never imports mpi4py (an MPI-initialized parent breaks the
``mpiexec`` children it starts) nor numpy at import time.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import click

from harness import params, paths
from harness.cli import format_option, store_option
from harness.errors import BenchUsageError
from plugins.optimizers.jobs import (
    DEFAULT_ITERATION_CAP,
    DEFAULT_ITERATIONS,
    ERROR_MARKER,
    PLUGIN,
    PROGRESS_MARKER,
    SweepConfig,
    check_pairing,
    emit_table,
    notify_recorded,
    split_algorithm_pairs,
    summarize,
    table_row,
)

FORWARDED_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BENCH_CACHE",
                 "BENCH_FAULT_RANK", "BENCH_FAULT_ITERATION", "BENCH_DISABLE_PLUGINS",
                 "BENCH_TRACE_PLUGINS", "PYTHONPATH")


def parse_ranks(text: str) -> list[int]:
    ranks = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            value = int(part)
        except ValueError:
            value = 0
        if not 0 < value <= params.RANKS.maximum:
            raise BenchUsageError(f"--ranks takes integers from 1 to {params.RANKS.maximum:,} "
                                  f"separated by commas (like 1,2,4,8), not '{text}'")
        ranks.append(value)
    if not ranks:
        raise BenchUsageError("--ranks needs at least one cluster size (like 1,2,4,8)")
    return ranks


def iterate_path(template: str, optimizer: str, ranks: int) -> str:
    """The --save-iterate file of one job ({optimizer} and {ranks} filled in)."""
    try:
        return template.format(optimizer=optimizer, ranks=ranks)
    except (KeyError, IndexError, ValueError) as exc:
        raise BenchUsageError(f"--save-iterate '{template}': only {{optimizer}} and {{ranks}} "
                              f"may appear in braces ({type(exc).__name__}: {exc})") from None


# --------------------------------------------------------------------------- mpiexec
@dataclass
class MpiExec:
    """How to start K ranks: the mpiexec binary, its flavour, and the flags it needs."""

    path: str
    flavour: str  # "mpich" (Hydra), "openmpi" or "unknown"
    hostfile: str | None = None
    extra: tuple[str, ...] = ()

    @classmethod
    def find(cls, explicit: str | None, hostfile: str | None,
             extra: Sequence[str] = ()) -> "MpiExec":
        """``--mpiexec``, else the one next to this Python (the mpich wheel), else PATH."""
        if explicit:
            path = paths.executable(explicit, "--mpiexec")
        else:
            beside = Path(sys.executable).parent / "mpiexec"
            path = (str(beside) if os.access(beside, os.X_OK) else
                    shutil.which("mpiexec") or shutil.which("mpirun"))
            if path is None:
                raise BenchUsageError(
                    "no mpiexec found next to this Python or on PATH; install the MPICH wheel "
                    "(pip install mpich) or a system MPI, or pass --mpiexec PATH")
        if hostfile:
            paths.input_file(hostfile, "--hostfile")
        return cls(path, cls.detect_flavour(path), hostfile, tuple(extra))

    @staticmethod
    def detect_flavour(path: str) -> str:
        try:
            out = subprocess.run([path, "--version"], capture_output=True, text=True,
                                 timeout=20)
            text = out.stdout + out.stderr
        except (OSError, subprocess.SubprocessError):
            return "unknown"
        if "Open MPI" in text or "OpenRTE" in text or "open-mpi" in text.lower():
            return "openmpi"
        if "HYDRA" in text or "MPICH" in text or "Intel(R) MPI" in text:
            return "mpich"
        return "unknown"

    def command(self, ranks: int, env: dict[str, str]) -> list[str]:
        cmd = [self.path]
        if self.flavour == "openmpi":
            cmd.append("--oversubscribe")
            if hasattr(os, "geteuid") and os.geteuid() == 0:
                cmd.append("--allow-run-as-root")
            for var in FORWARDED_ENV:  # Open MPI passes variables to remote hosts only with -x
                if var in env:
                    cmd += ["-x", var]
        cmd += ["-n", str(ranks)]
        if self.hostfile:
            flag = {"openmpi": "--hostfile", "mpich": "-f"}.get(self.flavour, "-hostfile")
            cmd += [flag, self.hostfile]
        cmd += list(self.extra)
        return cmd


# --------------------------------------------------------------------------- the launcher
class JobProgress:
    """The launcher's progress line on stderr (rewritten in place on a terminal).

    ``quiet``: no started/finished lines (the caller reports runs itself, as
    ``bench tune`` does); the in-place line on a terminal stays.
    """

    def __init__(self, index: int, total: int, optimizer: str, ranks: int,
                 quiet: bool = False) -> None:
        self.tty = sys.stderr.isatty()
        self.quiet = quiet
        self.prefix = f"[{index}/{total}] {optimizer} K={ranks}"
        self.last = ""
        if not self.tty and not quiet:
            print(f"{self.prefix}: started", file=sys.stderr, flush=True)

    def update(self, info: dict[str, Any]) -> None:
        if not self.tty:
            return
        sub = info.get("suboptimality")
        per = info.get("iter_time_s")
        text = (f"{self.prefix}: iteration {info.get('iteration')}/{info.get('iterations')}"
                + (f", subopt {sub:.3g}" if isinstance(sub, (int, float)) else "")
                + (f", {per:.3g} s/iter" if isinstance(per, (int, float)) else ""))
        sys.stderr.write("\r" + text.ljust(len(self.last)))
        sys.stderr.flush()
        self.last = text

    def done(self, text: str) -> None:
        if self.tty and self.last:
            sys.stderr.write("\r" + " " * len(self.last) + "\r")
            sys.stderr.flush()
        if not self.quiet:
            print(f"{self.prefix}: {text}", file=sys.stderr, flush=True)


def _kill_group(proc: subprocess.Popen) -> None:
    """Stop mpiexec and every rank it started (they share its process group)."""
    for sig, grace in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def _reader(stream: Any, sink: Any) -> threading.Thread:
    def pump() -> None:
        for line in stream:
            sink(line.rstrip("\n"))
        stream.close()

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return thread


@dataclass
class _Outcome:
    status: str
    returncode: int | None
    error: str | None
    result_id: int | None


class Launcher:
    """Runs the (algorithm, K) jobs of one sweep, in sequence, each under mpiexec."""

    def __init__(self, *, problem: str, problem_pairs: list[str], routed: dict[str, list[str]],
                 hyper: dict[str, dict[str, Any]], problem_options: dict[str, Any],
                 prepared: dict[str, Any], iterations: int, target: float | None,
                 eval_every: int, timeout: float | None, mpi: MpiExec, store: Any,
                 separate_wait: bool, save_iterate: str | None, verbose: bool) -> None:
        self.problem = problem
        self.problem_pairs = problem_pairs
        self.routed = routed
        self.hyper = hyper
        self.problem_options = problem_options
        self.prepared = prepared
        self.iterations = iterations
        self.target = target
        self.eval_every = eval_every
        self.timeout = timeout
        self.mpi = mpi
        self.store = store
        self.separate_wait = separate_wait
        self.save_iterate = save_iterate
        self.verbose = verbose
        self.interrupted: _Outcome | None = None  # the job Ctrl-C stopped

    def _rank_args(self, optimizer: str, ranks: int, tag: str) -> list[str]:
        # -P: do not put the working directory on sys.path (a stray ./timeit.py
        # there would shadow the standard library inside every rank).
        safe_path = ["-P"] if sys.version_info >= (3, 11) else []
        args = [*safe_path, "-m", "harness", "sweep", "--rank-side", "--run-tag", tag,
                "--optimizer", optimizer, "--problem", self.problem,
                "--iterations", str(self.iterations), "--eval-every", str(self.eval_every),
                "--store", str(self.store.path)]
        for pair in self.routed[optimizer]:
            args += ["--opt", pair]
        for pair in self.problem_pairs:
            args += ["--problem-opt", pair]
        if self.target is not None:
            args += ["--target-subopt", repr(self.target)]
        if self.separate_wait:
            args.append("--separate-wait")
        if self.save_iterate:
            args += ["--save-iterate", iterate_path(self.save_iterate, optimizer, ranks)]
        return args

    def run_job(self, optimizer: str, ranks: int, progress: JobProgress,
                tag: str | None = None) -> _Outcome:
        """Run one (algorithm, K) job under mpiexec; ``tag`` (default: a fresh one) is stored
        in the run's options as ``run_tag``."""
        env = dict(os.environ)
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(var, "1")
        tag = tag or uuid.uuid4().hex
        cmd = self.mpi.command(ranks, env) + [sys.executable] + self._rank_args(
            optimizer, ranks, tag)
        if self.verbose:
            print("+ " + " ".join(cmd), file=sys.stderr)
        stderr_tail: deque[str] = deque(maxlen=40)
        markers: list[str] = []
        killing = threading.Event()  # once we stop the job, mpiexec's banners are noise

        def on_stdout(line: str) -> None:
            if killing.is_set():
                return
            if line.startswith(PROGRESS_MARKER):
                try:
                    progress.update(json.loads(line[len(PROGRESS_MARKER):]))
                except ValueError:
                    pass
            elif line.strip():
                print(line, file=sys.stderr)

        def on_stderr(line: str) -> None:
            if line.startswith(ERROR_MARKER):
                markers.append(line[len(ERROR_MARKER):])
            elif line.strip():
                stderr_tail.append(line)
            if self.verbose and not killing.is_set():
                print(line, file=sys.stderr)

        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, env=env, text=True,
                                start_new_session=True)
        readers = [_reader(proc.stdout, on_stdout), _reader(proc.stderr, on_stderr)]
        deadline = time.monotonic() + self.timeout if self.timeout else None
        status = None
        try:
            while True:
                try:
                    proc.wait(timeout=0.2)
                    break
                except subprocess.TimeoutExpired:
                    if deadline is not None and time.monotonic() > deadline:
                        status = "timeout"
                        killing.set()
                        _kill_group(proc)
                        break
        except KeyboardInterrupt:
            killing.set()
            _kill_group(proc)
            for thread in readers:
                thread.join(timeout=2)
            self.interrupted = self._finalize(optimizer, ranks, "interrupted",
                                              proc.returncode, "interrupted (Ctrl-C)", tag)
            raise
        for thread in readers:
            thread.join(timeout=5)
        rc = proc.returncode
        if status == "timeout":
            error = f"timed out after {self.timeout:g} s"
        elif rc == 0:
            status, error = "complete", None
        else:
            status = "failed"
            error = markers[0] if markers else _last_error_line(stderr_tail, rc)
        return self._finalize(optimizer, ranks, status, rc, error, tag,
                              tail=list(stderr_tail))

    def _finalize(self, optimizer: str, ranks: int, status: str, rc: int | None,
                  error: str | None, tag: str, tail: Sequence[str] = ()) -> _Outcome:
        """Make the stored row tell what happened, whoever died first."""
        rid = next((r.id for r in reversed(self.store.list(kind="sweep", optimizer=optimizer,
                                                           ranks=ranks))
                    if r.options.get("run_tag") == tag), None)
        if rid is not None:
            current = self.store.get(rid)
            if current.status == "running":
                if status == "complete":
                    status, error = "failed", "the job ended without finishing its result"
                rows = self.store.iterations(rid)
                summary = summarize(rows, current.summary, self.target) if rows else None
                self.store.finish(rid, status, summary=summary, error=error)
                notify_recorded(self.store, rid)
            else:  # a rank already closed it (a failing rank marks its run failed)
                status = current.status
                error = current.error or error
                if "iterations" not in current.summary:
                    rows = self.store.iterations(rid)
                    self.store.finish(rid, status, error=error,
                                      summary=summarize(rows, current.summary, self.target))
        else:
            if status == "complete":
                status = "failed"
                error = ("the job exited without storing a result (is --store on a file "
                         "system rank 0 can reach?)" + (f": {tail[-1]}" if tail else ""))
            from harness.environment import capture

            options = {"optimizer": self.hyper[optimizer], "problem": self.problem_options,
                       "iterations": self.iterations, "target_subopt": self.target,
                       "eval_every": self.eval_every, "separate_wait": self.separate_wait}
            rid = self.store.add(
                "sweep", status=status, plugin=PLUGIN, optimizer=optimizer,
                problem=self.problem, ranks=ranks, options=options,
                environment=capture(PLUGIN), summary=dict(self.prepared), error=error)
            notify_recorded(self.store, rid)
        return _Outcome(status, rc, error, rid)


def _last_error_line(tail: Sequence[str], rc: int | None) -> str:
    for line in reversed(tail):
        text = line.strip()
        if text.startswith("Error:"):
            return text[len("Error:"):].strip()
    for line in reversed(tail):
        text = line.strip()
        if text and "MPI_Abort" not in text and not text.startswith("="):
            return text
    return f"mpiexec exited with code {rc}"


def make_launcher(*, optimizers: list[str], problem: str, opt_pairs: Sequence[str],
                  problem_pairs: Sequence[str], iterations: int, target: float | None,
                  eval_every: int = 1, timeout: float | None = None, mpiexec: str | None = None,
                  hostfile: str | None = None, mpiexec_args: Sequence[str] = (), store: Any,
                  separate_wait: bool = False, save_iterate: str | None = None,
                  verbose: bool = False, ranks: Sequence[int] = ()) -> Launcher:
    """Validate the names and options, prepare the problem once: a launcher for its jobs.

    ``bench sweep`` and ``bench tune``'s ``mpi`` source both start their jobs through it.
    ``store`` is a :class:`harness.store.ResultStore` or its path (None: the default),
    opened only once everything is valid. ``ranks``: the cluster sizes the caller will run,
    so that a ``save_iterate`` path is checked for every job before any starts.
    """
    from harness.plugins.manager import get_plugin_manager
    from harness.specs import parse_options
    from harness.store import ResultStore

    pm = get_plugin_manager()
    specs = [pm.optimizer(name) for name in optimizers]
    if len({s.name for s in specs}) != len(specs):
        raise BenchUsageError("--optimizer lists the same optimizer twice")
    problem_spec = pm.problem(problem)
    for spec in specs:
        check_pairing(spec, problem_spec)
    routed = split_algorithm_pairs(specs, opt_pairs)
    hyper = {s.name: parse_options(s.hyperparameters, routed[s.name], f"optimizer '{s.name}'")
             for s in specs}
    problem_options = parse_options(problem_spec.options, problem_pairs,
                                    f"problem '{problem_spec.name}'")
    jobs = [(s.name, k) for s in specs for k in ranks]
    if save_iterate and len(jobs) > 1 and not ("{optimizer}" in save_iterate
                                              and "{ranks}" in save_iterate):
        raise BenchUsageError("--save-iterate with several jobs needs {optimizer} and {ranks} "
                              "in the file name")
    if save_iterate:
        for name, k in jobs:
            paths.output_file(iterate_path(save_iterate, name, k), "--save-iterate")
    mpi = MpiExec.find(mpiexec, hostfile, mpiexec_args)
    if not isinstance(store, ResultStore):
        store = ResultStore(store)
    prepared: dict[str, Any] = {}
    prepare = getattr(problem_spec.factory, "prepare", None)
    if callable(prepare):
        if sys.stderr.isatty():  # f* may take a while the first time; logs get one line per job
            print(f"preparing problem '{problem_spec.name}' (data and reference optimum)...",
                  file=sys.stderr, flush=True)
        prepared = dict(prepare(problem_options) or {})
        if target is not None and prepared.get("f_star", 0.0) is None:
            raise BenchUsageError(f"problem '{problem_spec.name}' has no reference optimum; "
                                  "use --iterations instead of --target-subopt")
    return Launcher(
        problem=problem_spec.name, problem_pairs=list(problem_pairs), routed=routed, hyper=hyper,
        problem_options=problem_options, prepared=prepared, iterations=iterations, target=target,
        eval_every=eval_every, timeout=timeout, mpi=mpi, store=store,
        separate_wait=separate_wait, save_iterate=save_iterate, verbose=verbose)


def launch(*, optimizers: list[str], problem: str, ranks: list[int], opt_pairs: list[str],
           problem_pairs: list[str], iterations: int, target: float | None, eval_every: int,
           timeout: float | None, mpiexec: str | None, hostfile: str | None,
           mpiexec_args: Sequence[str], store_path: str | None, separate_wait: bool,
           save_iterate: str | None, verbose: bool, fmt: str) -> int:
    """Validate everything, prepare the problem once, then run each (algorithm, K) job."""
    launcher = make_launcher(
        optimizers=optimizers, problem=problem, opt_pairs=opt_pairs, problem_pairs=problem_pairs,
        iterations=iterations, target=target, eval_every=eval_every, timeout=timeout,
        mpiexec=mpiexec, hostfile=hostfile, mpiexec_args=mpiexec_args, store=store_path,
        separate_wait=separate_wait, save_iterate=save_iterate, verbose=verbose,
        ranks=ranks)
    store = launcher.store
    jobs = [(name, k) for name in launcher.hyper for k in ranks]
    rows: list[dict[str, Any]] = []
    try:
        for index, (name, k) in enumerate(jobs, 1):
            progress = JobProgress(index, len(jobs), name, k)
            outcome = launcher.run_job(name, k, progress)
            summary = store.get(outcome.result_id).summary
            rows.append(table_row(name, k, outcome.status, outcome.result_id, summary))
            if outcome.status == "complete":
                per = summary.get("time_per_iter_s")
                progress.done(f"complete, {summary.get('iterations')} iterations"
                              + (f", {per:.3g} s/iter" if per is not None else "")
                              + f" (result {outcome.result_id})")
            else:
                progress.done(f"{outcome.status}: {outcome.error} (result {outcome.result_id})")
    except KeyboardInterrupt:
        stopped = launcher.interrupted
        if stopped is not None:
            name, k = jobs[len(rows)]
            rows.append(table_row(name, k, stopped.status, stopped.result_id,
                                  store.get(stopped.result_id).summary))
        if rows:
            emit_table(rows, fmt, target, launcher.problem)
        raise
    emit_table(rows, fmt, target, launcher.problem)
    print(f"stored in {store.path} (bench results list --kind sweep)", file=sys.stderr)
    return 0 if all(r["status"] == "complete" for r in rows) else 1


# --------------------------------------------------------------------------- the command
@click.command("sweep")
@click.option("--optimizer", "optimizers", required=True, metavar="NAME[,NAME...]",
              help="Algorithm(s), comma-separated (see `bench list optimizers`).")
@click.option("--problem", required=True, metavar="NAME",
              help="Problem (see `bench list problems`).")
@click.option("--ranks", default=None, metavar="K[,K...]",
              help="Cluster sizes to launch, e.g. 1,2,4,8 (default 1). Not used under mpirun.")
@click.option("--iterations", type=params.ITERATIONS, default=None,
              help=f"Iterations to run (default {DEFAULT_ITERATIONS}); with --target-subopt, "
                   f"the most to run (default {DEFAULT_ITERATION_CAP}).")
@click.option("--target-subopt", type=params.POSITIVE, default=None,
              help="Stop once objective - f* <= EPS.")
@click.option("--opt", "opt_pairs", multiple=True, metavar="[OPTIMIZER:]KEY=VALUE",
              help="Hyperparameter; repeat for several. Prefix with the optimizer's name to "
                   "set it for one optimizer only.")
@click.option("--problem-opt", "problem_pairs", multiple=True, metavar="KEY=VALUE",
              help="Problem option; repeat for several (see `bench list problems`).")
@click.option("--eval-every", type=params.ITERATIONS, default=1, show_default=True,
              help="Evaluate the objective every N iterations (always the last).")
@click.option("--timeout", type=params.POSITIVE, default=None,
              help="Seconds allowed per (optimizer, K) job; a job past it is killed and "
                   "stored with status timeout.")
@click.option("--mpiexec", default=None, metavar="PATH",
              help="mpiexec to use (default: next to this Python, else on PATH).")
@click.option("--hostfile", default=None, type=params.INPUT_FILE, metavar="FILE",
              help="Hostfile handed to mpiexec, to run ranks on several machines.")
@click.option("--mpiexec-arg", "mpiexec_args", multiple=True, metavar="ARG",
              help="Extra argument for mpiexec; repeat for several.")
@click.option("--separate-wait", is_flag=True,
              help="Barrier before each collective, so comm time excludes waiting for "
                   "slower ranks (that wait is recorded as wait_time_s).")
@click.option("--save-iterate", default=None, metavar="FILE",
              help="Save the final iterate (.npy); with several jobs use {optimizer} and "
                   "{ranks} in the name.")
@click.option("--verbose", is_flag=True, help="Show the mpiexec commands and the ranks' stderr.")
@format_option("table", "json", "csv")
@store_option
@click.option("--rank-side", is_flag=True, hidden=True)
@click.option("--run-tag", default=None, hidden=True)
def sweep_command(optimizers: str, problem: str, ranks: str | None, iterations: int | None,
                  target_subopt: float | None, opt_pairs: tuple[str, ...],
                  problem_pairs: tuple[str, ...], eval_every: int, timeout: float | None,
                  mpiexec: str | None, hostfile: str | None, mpiexec_args: tuple[str, ...],
                  separate_wait: bool, save_iterate: str | None, verbose: bool, fmt: str,
                  store_path: str | None, rank_side: bool, run_tag: str | None) -> int:
    """Run distributed optimizers over MPI and store per-iteration measurements.

    \b
    Several cluster sizes (this command starts mpiexec once per optimizer and size):
      bench sweep --optimizer cocoa+,minibatch-sgd --problem logreg --ranks 1,2,4,8
    One cluster size, inside an MPI job (rank 0 prints and stores):
      mpirun -n 4 bench sweep --optimizer cocoa+ --problem logreg
    """
    from plugins.optimizers.mpi_runtime import inside_mpi_job

    names = [n.strip() for n in optimizers.split(",") if n.strip()]
    if not names:
        raise BenchUsageError("--optimizer needs at least one name")
    cap = iterations or (DEFAULT_ITERATION_CAP if target_subopt is not None
                         else DEFAULT_ITERATIONS)
    if rank_side or inside_mpi_job():
        if ranks is not None:
            raise BenchUsageError("inside an MPI job the cluster size is mpirun's -n; "
                                  "drop --ranks (or run bench sweep outside mpirun)")
        if len(names) != 1:
            raise BenchUsageError("inside an MPI job give one --optimizer (the launcher, "
                                  "bench sweep --ranks ..., runs several)")
        from plugins.optimizers.runner import run

        cfg = SweepConfig(
            optimizer=names[0], problem=problem, opt_pairs=list(opt_pairs),
            problem_pairs=list(problem_pairs), iterations=cap, target_subopt=target_subopt,
            eval_every=eval_every, store_path=_resolve_store(store_path),
            separate_wait=separate_wait, save_iterate=save_iterate, run_tag=run_tag,
            launched=rank_side, fmt=fmt)
        return run(cfg)
    return launch(
        optimizers=names, problem=problem, ranks=parse_ranks(ranks or "1"),
        opt_pairs=list(opt_pairs), problem_pairs=list(problem_pairs), iterations=cap,
        target=target_subopt, eval_every=eval_every, timeout=timeout, mpiexec=mpiexec,
        hostfile=hostfile, mpiexec_args=mpiexec_args, store_path=store_path,
        separate_wait=separate_wait, save_iterate=save_iterate, verbose=verbose, fmt=fmt)


def _resolve_store(path: str | None) -> str:
    from harness.store import default_store_path

    return str(Path(path).expanduser()) if path else str(default_store_path())
