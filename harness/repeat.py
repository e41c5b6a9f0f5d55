"""``bench run --repeat K``: K independent runs of one cell, each in a fresh process.

Samples inside one process share its allocator state, CPU frequency and thread
placement; only separate processes sample how those vary from run to run (asv
runs each benchmark in several processes for the same reason). Each run is the
ordinary ``bench run`` in a child ``python -m harness`` process that stores its
own result with the group's id, so a crash or Ctrl-C keeps every finished run.
"""
from __future__ import annotations

import json
import subprocess
import sys
from typing import Any, Callable, Sequence

import click

from harness.errors import BenchUsageError
from harness.store import ResultStore
from harness.timed_compare import group_summary


def child_command(model: str, hw: str, batch: int, input_size: int | None,
                  hw_opts: Sequence[str], per_layer: bool, store: ResultStore | None,
                  group_id: int | None) -> list[str]:
    """The ``bench run`` one repeat runs (JSON out, no progress bar)."""
    cmd = [sys.executable, "-m", "harness", "run", "--model", model, "--hw", hw,
           "--batch", str(batch), "--format", "json", "--quiet"]
    if input_size is not None:
        cmd += ["--input-size", str(input_size)]
    for opt in hw_opts:
        cmd += ["--hw-opt", opt]
    if per_layer:
        cmd.append("--layers")
    if store is None:
        cmd.append("--no-store")
    else:
        cmd += ["--store", str(store.path), "--group-id", str(group_id)]
    return cmd


def _error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    return lines[-1].removeprefix("Error: ") if lines else "no message"


def run_repeated(model: str, hw: str, *, repeat: int, batch: int, input_size: int | None,
                 hw_opts: Sequence[str], per_layer: bool, store: ResultStore | None,
                 report: Callable[[str], None]) -> dict[str, Any]:
    """Run the cell ``repeat`` times; returns the group id, each run's output, the summary.

    ``report`` gets one line per finished run. A failed run stops the rest: a usage
    error (exit 2) is raised as one; an internal error keeps its own exit code.
    """
    group_id = None
    if store is not None:
        group_id = store.add_group(f"{model} on {hw}, batch {batch}", repeat)
    runs: list[dict[str, Any]] = []
    try:
        for i in range(1, repeat + 1):
            cmd = child_command(model, hw, batch, input_size, hw_opts, per_layer, store,
                                group_id)
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode != 0:
                message = f"run {i} of {repeat} failed: {_error_line(out.stderr)}"
                if out.returncode == 2:
                    raise BenchUsageError(message)
                sys.stderr.write(out.stderr)
                raise RepeatFailed(message, out.returncode)
            payload = json.loads(out.stdout)
            payload["warnings"] = payload.get("warnings") or []
            runs.append(payload)
            summary = payload["summary"]
            stored = f", result {payload['id']}" if payload.get("id") else ""
            report(f"run {i}/{repeat}: median {summary['median_ms']:.4g} ms, IQR "
                   f"{summary['iqr_pct']:.1f}%, {summary['samples']} samples{stored}")
            for warning in payload["warnings"]:
                report(f"  warning: {warning}")
    finally:
        if store is not None and group_id is not None:
            store.drop_group_if_empty(group_id)
    medians = [r["summary"]["time_s"] for r in runs]
    return {"group": f"g{group_id}" if group_id is not None and runs else None,
            "results": [r.get("id") for r in runs], "runs": runs,
            "summary": group_summary(medians)}


class RepeatFailed(click.ClickException):
    """A repeated run failed for a reason other than a usage error (its exit code is kept)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def repeat_command(model: str, hw: str, *, repeat: int, batch: int, input_size: int | None,
                   hw_opts: Sequence[str], per_layer: bool, store: ResultStore | None,
                   fmt: str, out: str | None) -> None:
    """What ``bench run --repeat K`` prints: one row per run, then the group's summary."""
    from harness.output import render, to_json, write

    def report(line: str) -> None:  # progress on stderr; the table below is the output
        if sys.stderr.isatty():
            print(line, file=sys.stderr)

    result = run_repeated(model, hw, repeat=repeat, batch=batch, input_size=input_size,
                          hw_opts=hw_opts, per_layer=per_layer, store=store, report=report)
    for i, run in enumerate(result["runs"], 1):
        for warning in run["warnings"]:
            print(f"warning: run {i}: {warning}", file=sys.stderr)
    rows = [{"run": i, "result": run.get("id"), "median_ms": run["summary"]["median_ms"],
             "iqr_pct": run["summary"]["iqr_pct"], "samples": run["summary"]["samples"],
             "others_cpu_cores": run["summary"].get("others_cpu_cores")}
            for i, run in enumerate(result["runs"], 1)]
    if fmt == "json":
        write(to_json(result), out)
        return
    if fmt == "csv":
        write(render(rows, "csv"), out)
        return
    s = result["summary"]
    where = (f", stored as group {result['group']} (results {result['results'][0]}-"
             f"{result['results'][-1]})" if result["group"] else "")
    head = f"{model} on {hw} (batch {batch}), {repeat} runs in separate processes{where}"
    tail = (f"group: geometric mean of run medians {s['geomean_ms']:.4g} ms, range "
            f"{s['min_ms']:.4g}-{s['max_ms']:.4g} ms, run-to-run CV "
            f"{s['run_to_run_cv_pct']:.2f}%")
    if result["group"]:
        tail += f"\ncompare with: bench compare {result['group']} <other group>"
    write("\n\n".join([head, render(rows, "table"), tail]), out)
