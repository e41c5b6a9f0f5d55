"""One sweep job, as both sides of ``bench sweep`` see it: its configuration, how its
``--opt`` pairs are routed, and how its per-iteration rows become a summary and a table row.

The launcher (:mod:`plugins.optimizers.sweep`) and the rank side
(:mod:`plugins.optimizers.runner`) both import this module and nothing of each
other's except the launcher starting the rank side, so the dependency runs one
way. Like the launcher, it imports neither mpi4py nor numpy.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any, Sequence

from harness.errors import BenchUsageError, unknown_choice

PROGRESS_MARKER = "@bench-progress "
ERROR_MARKER = "@bench-error "
PLUGIN = "algorithms"
DEFAULT_ITERATIONS = 100
DEFAULT_ITERATION_CAP = 1000  # with --target-subopt and no --iterations
TABLE_COLUMNS = ["optimizer", "ranks", "status", "iterations", "time_per_iter_s",
                 "comm_time_per_iter_s", "final_suboptimality", "iterations_to_target",
                 "time_to_target_s", "result_id"]



@dataclass
class SweepConfig:
    """One (algorithm, K) job as the ranks see it."""

    optimizer: str
    problem: str
    opt_pairs: list[str] = field(default_factory=list)
    problem_pairs: list[str] = field(default_factory=list)
    iterations: int = DEFAULT_ITERATIONS
    target_subopt: float | None = None
    eval_every: int = 1
    store_path: str | None = None
    separate_wait: bool = False
    save_iterate: str | None = None
    run_tag: str | None = None  # set by the launcher, stored in the run's options
    launched: bool = False
    fmt: str = "table"



def check_pairing(optimizer: Any, problem: Any) -> None:
    """An optimizer that lists the problems it supports refuses the others."""
    allowed = {p.lower() for p in optimizer.problems}
    if allowed and problem.name.lower() not in allowed:
        raise BenchUsageError(
            f"optimizer '{optimizer.name}' does not support problem '{problem.name}'; "
            f"it supports: {', '.join(optimizer.problems)}")


def split_algorithm_pairs(optimizers: Sequence[Any], pairs: Sequence[str]) -> dict[str, list[str]]:
    """Route ``--opt`` pairs to optimizers: ``name:key=value`` targets one optimizer,
    ``key=value`` every selected optimizer that has ``key`` (an error if none has it)."""
    by_name = {o.name.lower(): o for o in optimizers}
    routed: dict[str, list[str]] = {o.name: [] for o in optimizers}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise BenchUsageError(f"--opt '{pair}' is not key=value (or optimizer:key=value)")
        target, colon, bare = key.partition(":")
        if colon:
            spec = by_name.get(target.strip().lower())
            if spec is None:
                raise unknown_choice("optimizer in --opt", target.strip(),
                                     [o.name for o in optimizers])
            routed[spec.name].append(f"{bare.strip()}={value}")
            continue
        takers = [o for o in optimizers
                  if key.strip() in {h.name for h in o.hyperparameters}]
        if not takers:
            keys = sorted({h.name for o in optimizers for h in o.hyperparameters})
            owners = ", ".join(o.name for o in optimizers)
            raise unknown_choice(f"hyperparameter for {owners}", key.strip(), keys)
        for spec in takers:
            routed[spec.name].append(f"{key.strip()}={value}")
    return routed


def parse_algorithm_options(optimizer: Any, pairs: Sequence[str]) -> dict[str, Any]:
    from harness.specs import parse_options

    routed = split_algorithm_pairs([optimizer], pairs)[optimizer.name]
    return parse_options(optimizer.hyperparameters, routed, f"optimizer '{optimizer.name}'")


def _median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(rows: Sequence[dict[str, Any]], base: dict[str, Any],
              target: float | None) -> dict[str, Any]:
    """The run's headline figures from its per-iteration rows (``base`` kept)."""
    summary = dict(base)
    evaluated = [r for r in rows if r.get("objective") is not None]
    final = evaluated[-1] if evaluated else {}
    reached = None
    if target is not None:
        reached = next((r for r in evaluated if r.get("suboptimality") is not None
                        and r["suboptimality"] <= target), None)
    objective = final.get("objective")
    summary.update({
        "iterations": len(rows),
        "final_objective": objective,
        "final_suboptimality": final.get("suboptimality"),
        "final_rel_suboptimality": final.get("rel_suboptimality"),
        "final_duality_gap": final.get("duality_gap"),
        "time_per_iter_s": _median([r.get("iter_time_s") for r in rows]),
        "compute_time_per_iter_s": _median([r.get("compute_time_s") for r in rows]),
        "comm_time_per_iter_s": _median([r.get("comm_time_s") for r in rows]),
        "eval_time_per_iter_s": _median([r.get("eval_time_s") for r in rows]),
        "bytes_per_iter": _median([r.get("bytes_sent") for r in rows]),
        "total_iter_time_s": sum(r.get("iter_time_s") or 0.0 for r in rows),
        "target_subopt": target,
        "reached_target": (reached is not None) if target is not None else None,
        "iterations_to_target": reached["iteration"] if reached else None,
        "time_to_target_s": (sum(r.get("iter_time_s") or 0.0 for r in rows
                                 if r["iteration"] <= reached["iteration"]) if reached else None),
        "diverged": objective is not None and not (abs(objective) < float("inf")),
    })
    return summary


def table_row(optimizer: str, ranks: int, status: str, result_id: int | None,
              summary: dict[str, Any]) -> dict[str, Any]:
    return {
        "optimizer": optimizer, "ranks": ranks, "status": status,
        "iterations": summary.get("iterations"),
        "time_per_iter_s": summary.get("time_per_iter_s"),
        "comm_time_per_iter_s": summary.get("comm_time_per_iter_s"),
        "final_suboptimality": summary.get("final_suboptimality"),
        "final_objective": summary.get("final_objective"),
        "iterations_to_target": summary.get("iterations_to_target"),
        "time_to_target_s": summary.get("time_to_target_s"),
        "result_id": result_id,
    }


def emit_table(rows: list[dict[str, Any]], fmt: str, target: float | None, problem: str) -> None:
    from harness.output import emit

    columns = list(TABLE_COLUMNS)
    if fmt == "table":
        if target is None:
            columns = [c for c in columns if c not in ("iterations_to_target", "time_to_target_s")]
        if all(r.get("final_suboptimality") is None for r in rows):  # no f* (cnn)
            columns[columns.index("final_suboptimality")] = "final_objective"
    else:
        columns.insert(columns.index("final_suboptimality") + 1, "final_objective")
    if fmt == "table":
        head = f"sweep on {problem}" + (f", target suboptimality {target:g}" if target else "")
        print(head)
    emit(rows, fmt, columns)


def notify_recorded(store: Any, result_id: int) -> None:
    """Tell observer plugins (bench_result_recorded) about a finished run."""
    from harness.plugins.manager import get_plugin_manager

    get_plugin_manager().result_recorded(store.get(result_id))


