"""``bench tune``'s ``mpi`` measurement source: every run is one ``bench sweep`` job under mpiexec.

The jobs go through the sweep launcher (:func:`plugins.optimizers.sweep.make_launcher`),
so a run started by ``bench tune`` is stored, finalized on failure, timeout or
Ctrl-C, and listed exactly like one started by ``bench sweep``.
"""
from __future__ import annotations

from typing import Any, Sequence

from harness import MeasuredRun, MeasurementSourceSpec, MeasureRequest, OptionSpec, hookimpl
from harness.errors import BenchUsageError

OPTIONS = (
    OptionSpec("timeout", float, 0.0, "seconds allowed per run (0: no limit)"),
    OptionSpec("eval_every", int, 1, "evaluate the objective every N iterations"),
    OptionSpec("mpiexec", str, "", "mpiexec to use (empty: next to this Python, else PATH)"),
    OptionSpec("hostfile", str, "", "hostfile for mpiexec (empty: this machine only)"),
)

_launchers: dict[tuple, Any] = {}  # one prepared problem per configuration and process


def check(problem: str, algorithms: Sequence[str], options: dict[str, Any]) -> int | None:
    """Known optimizers that support the problem. No size limit of its own: mpiexec
    oversubscribes one machine, or spreads over a hostfile's."""
    from harness.plugins.manager import get_plugin_manager
    from plugins.optimizers.jobs import check_pairing

    pm = get_plugin_manager()
    problem_spec = pm.problem(problem)
    for name in algorithms:
        check_pairing(pm.optimizer(name), problem_spec)
    if options["timeout"] < 0 or options["eval_every"] < 1:
        raise BenchUsageError("source 'mpi': timeout must be >= 0 and eval_every >= 1")
    return None


def check_job_options(problem: str, algorithms: Sequence[str], problem_pairs: Sequence[str],
                      algorithm_pairs: Sequence[str]) -> None:
    """The --problem-opt and --opt pairs parse for this problem and these optimizers."""
    from harness.plugins.manager import get_plugin_manager
    from harness.specs import parse_options
    from plugins.optimizers.jobs import split_algorithm_pairs

    pm = get_plugin_manager()
    problem_spec = pm.problem(problem)
    parse_options(problem_spec.options, list(problem_pairs), f"problem '{problem_spec.name}'")
    specs = [pm.optimizer(name) for name in algorithms]
    routed = split_algorithm_pairs(specs, list(algorithm_pairs))
    for spec in specs:
        parse_options(spec.hyperparameters, routed[spec.name], f"optimizer '{spec.name}'")


def _launcher(request: MeasureRequest) -> Any:
    from plugins.optimizers.jobs import DEFAULT_ITERATION_CAP
    from plugins.optimizers.sweep import make_launcher

    o = request.options
    key = (request.problem, request.algorithm, request.problem_options, request.algorithm_options,
           request.iterations, request.target, tuple(sorted(o.items())), str(request.store.path),
           request.verbose)
    if key not in _launchers:
        _launchers[key] = make_launcher(
            optimizers=[request.algorithm], problem=request.problem,
            opt_pairs=list(request.algorithm_options), problem_pairs=list(request.problem_options),
            iterations=request.iterations or DEFAULT_ITERATION_CAP, target=request.target,
            eval_every=o["eval_every"], timeout=o["timeout"] or None,
            mpiexec=o["mpiexec"] or None, hostfile=o["hostfile"] or None, store=request.store,
            verbose=request.verbose)
    return _launchers[key]


def measure(request: MeasureRequest) -> MeasuredRun:
    """One job of ``request.ranks`` MPI ranks; machine-seconds are its wall time x ranks.

    Quiet unless ``request.verbose``: ``bench tune`` reports each run and round itself."""
    from plugins.optimizers.sweep import JobProgress

    launcher = _launcher(request)
    name = next(iter(launcher.hyper))  # the optimizer's own spelling
    progress = JobProgress(1, 1, name, request.ranks, quiet=not request.verbose)
    outcome = launcher.run_job(name, request.ranks, progress, tag=request.run_tag)
    progress.done(f"{outcome.status} (result {outcome.result_id})")
    stored = request.store.get(outcome.result_id)
    summary = stored.summary
    seconds = summary.get("wall_time_s") or summary.get("total_iter_time_s") or 0.0
    rows = [{"algorithm": stored.optimizer, "problem": stored.problem, "ranks": stored.ranks,
             "n": summary.get("n"), "run": stored.id, "iteration": r["iteration"],
             "iter_time_s": r.get("iter_time_s"), "suboptimality": r.get("suboptimality")}
            for r in request.store.iterations(stored.id)]
    return MeasuredRun(result_id=stored.id, status=outcome.status,
                       machine_seconds=float(seconds) * request.ranks, rows=rows,
                       error=outcome.error)


@hookimpl
def bench_measurement_sources() -> list[MeasurementSourceSpec]:
    return [MeasurementSourceSpec(
        name="mpi",
        description="runs each (algorithm, m) as a `bench sweep` job under mpiexec "
                    "(problems and algorithms: `bench list problems`, `bench list optimizers`)",
        measure=measure, check=check, options=OPTIONS, check_job_options=check_job_options,
    )]
