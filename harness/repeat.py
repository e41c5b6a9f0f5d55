"""``bench run --repeat K``: K independent runs of one cell, each in a fresh process.

Samples inside one process share its allocator state, CPU frequency and thread
placement; only separate processes sample how those vary from run to run (asv
runs each benchmark in several processes for the same reason). Each run is the
ordinary ``bench run`` in a child ``python -m harness`` process that stores its
own result with the group's id, so a crash or Ctrl-C keeps every finished run.

``bench compare A B --rerun K`` uses the same child runs to measure two stored
cells again, interleaved A B B A ... (:func:`run_interleaved`), each cell
rebuilt from what its stored result records (:func:`cell_of`).
"""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import click

from harness.errors import BenchUsageError
from harness.store import ResultStore, StoredResult
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


def run_child(cmd: Sequence[str], what: str) -> dict[str, Any]:
    """Run one child ``bench run`` and return its JSON output (``warnings`` always a list).

    A usage error (exit 2) is raised as one; any other failure keeps its exit code.
    """
    out = subprocess.run(list(cmd), capture_output=True, text=True)
    if out.returncode != 0:
        message = f"{what} failed: {_error_line(out.stderr)}"
        if out.returncode == 2:
            raise BenchUsageError(message)
        sys.stderr.write(out.stderr)
        raise RepeatFailed(message, out.returncode)
    payload = json.loads(out.stdout)
    payload["warnings"] = payload.get("warnings") or []
    return payload


ChildRunner = Callable[[Sequence[str], str], dict[str, Any]]


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
            payload = run_child(cmd, f"run {i} of {repeat}")
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
        tail += (f"\ncompare with: bench compare {result['group']} <other group> "
                 f"[--rerun {repeat}]  (--rerun measures both again, interleaved, so the "
                 "machine's drift cancels)")
    write("\n\n".join([head, render(rows, "table"), tail]), out)


# --------------------------------------------------------------------------- re-running
@dataclass(frozen=True)
class Cell:
    """What one ``bench run`` measured: enough to run it again."""

    model: str
    hardware: str
    batch: int
    input_size: int | None
    hw_opts: tuple[str, ...]

    def describe(self) -> str:
        size = f", input {self.input_size}" if self.input_size is not None else ""
        return f"{self.model} on {self.hardware}, batch {self.batch}{size}"


HARNESS_OPTION_KEYS = ("batch", "input_size", "model_plugin")  # recorded by bench run itself


def cell_of(result: StoredResult) -> Cell:
    """The cell a stored run measured, checked against what is installed now.

    Raises a one-line usage error for what cannot be run again: a simulated result
    (deterministic: the stored figures are what a re-run would give), a model or
    backend no longer installed, options the backend no longer accepts.
    """
    from harness.plugins.manager import get_plugin_manager

    where = f"result {result.id} ({result.subject})"
    if result.kind != "run" or not result.model or not result.hardware:
        raise BenchUsageError(f"cannot re-run {where}: only bench run results can be re-run")
    pm = get_plugin_manager()
    try:
        model = pm.model(result.model)
        backend = pm.backend(result.hardware)
    except BenchUsageError as exc:
        raise BenchUsageError(f"cannot re-run {where}: {exc}") from None
    if not backend.timing_sensitive:
        raise BenchUsageError(f"cannot re-run {where}: {backend.name} is a simulator, so it is "
                              "deterministic and a re-run gives the stored figures; compare "
                              "without --rerun")
    options = result.options
    batch, size = options.get("batch"), options.get("input_size")
    if not isinstance(batch, int) or not (isinstance(size, list) and len(size) == 3):
        raise BenchUsageError(f"cannot re-run {where}: it does not record its batch and input "
                              "size (stored by an older bench)")
    if size[1] != size[2]:
        raise BenchUsageError(f"cannot re-run {where}: its input {size[1]}x{size[2]} is not "
                              "square, and --input-size takes one side")
    known = {spec.name for spec in backend.options}
    unknown = sorted(set(options) - known - set(HARNESS_OPTION_KEYS))
    if unknown:
        raise BenchUsageError(f"cannot re-run {where}: {backend.name} no longer has option(s) "
                              f"{', '.join(unknown)}; valid: {', '.join(sorted(known))}")
    # Options at their default stay unsaid (a default such as threads "all" is stored as
    # its parsed value); the others as text, checked to parse back to what was stored.
    specs = {spec.name: spec for spec in backend.options}
    given = [k for k in sorted(known) if k in options
             and options[k] not in (specs[k].default, specs[k].parse(str(specs[k].default)))]
    hw_opts = tuple(f"{k}={options[k]}" for k in given)
    try:
        parsed = backend.parse_options(hw_opts)
    except BenchUsageError as exc:
        raise BenchUsageError(f"cannot re-run {where}: {exc}") from None
    wrong = [k for k in given if parsed[k] != options[k]]
    if wrong:
        raise BenchUsageError(f"cannot re-run {where}: its option(s) {', '.join(wrong)} do not "
                              "parse back to the stored values")
    default = list(model.sized(None))
    return Cell(model.name, backend.name, batch, None if size == default else size[1], hw_opts)


def abba_order(runs: int) -> list[str]:
    """``A B B A A B ...``: ``runs`` of each, pair i is positions 2i and 2i+1.

    Alternating which side goes first cancels, on average, a steady trend in the
    machine's speed; a fixed A B A B order would give B the later, drifted slot
    every time.
    """
    return [side for i in range(runs) for side in (("A", "B") if i % 2 == 0 else ("B", "A"))]


def run_interleaved(cells: dict[str, Cell], runs: int, store: ResultStore,
                    report: Callable[[str], None],
                    runner: ChildRunner | None = None) -> dict[str, Any]:
    """Measure cells A and B ``runs`` times each in ABBA order, as two new stored groups.

    Returns each side's group id and its result ids in the order they ran (so the
    i-th of A and the i-th of B are a pair). ``runner`` replaces the child process
    (tests); it gets the command and what to call the run in an error.
    """
    runner = runner or run_child
    groups = {side: store.add_group(f"{cells[side].describe()} (re-run {side}, interleaved)",
                                    runs) for side in ("A", "B")}
    done: dict[str, list[int]] = {"A": [], "B": []}
    order = abba_order(runs)
    try:
        for i, side in enumerate(order, 1):
            cell = cells[side]
            cmd = child_command(cell.model, cell.hardware, cell.batch, cell.input_size,
                                cell.hw_opts, False, store, groups[side])
            payload = runner(cmd, f"re-run {i} of {len(order)} ({side})")
            done[side].append(int(payload["id"]))
            report(f"re-run {i}/{len(order)} ({side}): median "
                   f"{payload['summary']['median_ms']:.4g} ms, result {payload['id']}")
    finally:
        for gid in groups.values():
            store.drop_group_if_empty(gid)
    return {side: {"group": f"g{groups[side]}", "results": done[side]} for side in groups}
