"""``bench tune``'s ``synthetic`` measurement source: runs drawn from a known ground truth.

The problem is one of :data:`plugins.hemingway.synthetic.CASES` and the
algorithms are that case's. A run takes no time: its iteration times are the
case's true f(m) with its noise, and what it costs is those simulated seconds
times m, so a budget means the same as with real runs. Tests and the
extrapolation benchmark drive the closed loop with it, where the true best
(algorithm, m) is known.
"""
from __future__ import annotations

import zlib
from typing import Any, Sequence

from harness import MeasuredRun, MeasurementSourceSpec, MeasureRequest, OptionSpec, hookimpl
from harness.errors import BenchUsageError, unknown_choice

OPTIONS = (
    OptionSpec("noise", float, -1.0,
               "relative per-run and per-iteration noise (negative: the case's own)"),
    OptionSpec("seed", int, 0, "seed of the noise (each run also mixes in its tag)"),
)


def _case_and_algorithm(problem: str, algorithm: str | None = None) -> tuple[Any, Any]:
    from plugins.hemingway.synthetic import case

    truth = case(problem)
    if algorithm is None:
        return truth, None
    by_name = {a.name.lower(): a for a in truth.algorithms}
    if algorithm.lower() not in by_name:
        raise unknown_choice(f"algorithm of synthetic case '{truth.name}'", algorithm,
                             [a.name for a in truth.algorithms])
    return truth, by_name[algorithm.lower()]


def check(problem: str, algorithms: Sequence[str], options: dict[str, Any]) -> int | None:
    """Known case and algorithms; the case's largest cluster size is the limit."""
    truth, _ = _case_and_algorithm(problem)
    for name in algorithms:
        _case_and_algorithm(problem, name)
    if options["noise"] > 1.0:
        raise BenchUsageError(f"source 'synthetic': noise {options['noise']:g} is not a "
                              "relative noise; give 0..1 (0.05 is 5%), or negative for the "
                              "case's own")
    return truth.max_ranks


def measure(request: MeasureRequest) -> MeasuredRun:
    """Draw one run, store it as a complete sweep, return it with its simulated cost."""
    from plugins.hemingway.synthetic import generate
    from plugins.optimizers.jobs import notify_recorded, summarize

    if request.problem_options or request.algorithm_options:  # a caller other than tune
        raise BenchUsageError("source 'synthetic' takes no --problem-opt or --opt; its "
                              "options (--source-opt) are: "
                              + ", ".join(o.name for o in OPTIONS))
    truth, algorithm = _case_and_algorithm(request.problem, request.algorithm)
    noise = truth.noise if request.options["noise"] < 0 else request.options["noise"]
    eps = request.target if request.target is not None else truth.eps
    seed = request.options["seed"] ^ zlib.crc32(request.run_tag.encode())
    rows = generate([algorithm], [request.ranks], truth.n, eps, time_noise=noise,
                    subopt_noise=0.02, seed=seed, problem=truth.name, run_noise=noise)
    if request.iterations is not None:
        rows = rows[: request.iterations + 1]  # iteration 0 is the starting point
    store = request.store
    options = {"source": "synthetic", "noise": noise, "seed": seed, "run_tag": request.run_tag,
               "iterations": request.iterations, "target_subopt": request.target}
    rid = store.add("sweep", status="running", plugin="synthetic-source",
                    optimizer=algorithm.name, problem=truth.name, ranks=request.ranks,
                    options=options, summary={"n": truth.n, "f_star": 0.0})
    stored = [{"iteration": r["iteration"], "iter_time_s": r["iter_time_s"],
               "objective": r["suboptimality"], "suboptimality": r["suboptimality"]}
              for r in rows]
    store.add_iterations(rid, stored)
    summary = summarize([r for r in stored if r["iteration"] >= 1],
                        {"n": truth.n, "f_star": 0.0, "simulated": True}, request.target)
    store.finish(rid, "complete", summary=summary)
    notify_recorded(store, rid)
    for row in rows:
        row["run"] = rid
    simulated = sum(r["iter_time_s"] for r in rows)
    return MeasuredRun(result_id=rid, status="complete",
                       machine_seconds=simulated * request.ranks, rows=rows)


@hookimpl
def bench_measurement_sources() -> list[MeasurementSourceSpec]:
    return [MeasurementSourceSpec(
        name="synthetic",
        description="runs drawn from a known ground truth (problems: the synthetic cases, "
                    "e.g. tree-far; no time passes, the cost is simulated seconds x m)",
        measure=measure, check=check, options=OPTIONS,
    )]
