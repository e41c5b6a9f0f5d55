"""``bench matrix``: every model on every hardware point, one table, ratios against a baseline.

This is the SqueezeNext paper's design-study table: for each hardware point,
how much faster and how much more energy-efficient each model is than a
baseline model. Hardware points are the chosen backends, times every
combination of ``--vary [BACKEND:]KEY=V1,V2,...`` values (``accel-8x8
dataflow=ws``). Cells run on the engine of :mod:`harness.cells`: simulator
cells in parallel worker processes, timed cells (``HardwareSpec.timing_sensitive``)
one at a time afterwards. Rows are printed (table, CSV) and stored as they
finish, with progress on stderr; JSON is printed whole at the end. Stored
results carry the summary and options; per-layer rows only with ``--layers``
(a full design matrix would otherwise write ~75 MB per run).
"""
from __future__ import annotations

import csv
import io
import sys
from typing import Any, Sequence

import click

from harness.cells import (
    VARY_SYNTAX,
    Cell,
    CellProgress,
    CellResult,
    HardwarePoint,
    cell_workers,
    grid,
    hardware_points,
    run_cells,
)
from harness import params
from harness.cli import format_option, open_store, record_result, split_names, store_option
from harness.errors import BenchUsageError
from harness.output import render, to_json, write
from harness.plugins.manager import get_plugin_manager

TIME_KEYS = ("time_s", "median_s")
ENERGY_KEYS = ("energy_j", "energy_pj", "energy")


def headline(summary: dict[str, Any], keys: Sequence[str]) -> float | None:
    for key in keys:
        if isinstance(summary.get(key), (int, float)):
            return float(summary[key])
    return None


def matrix_row(res: CellResult, base: str, base_summary: dict[str, Any] | None,
               result_id: int | None) -> dict[str, Any]:
    """One table row: the cell's headline figures and its ratios to the baseline's."""
    row: dict[str, Any] = {"hardware": res.cell.point.label, "model": res.cell.model}
    if not res.ok:
        return {**row, "error": res.error}
    summary = res.summary
    t, e = headline(summary, TIME_KEYS), headline(summary, ENERGY_KEYS)
    base_t = headline(base_summary or {}, TIME_KEYS)
    base_e = headline(base_summary or {}, ENERGY_KEYS)
    row.update({
        "time (ms)": t * 1e3 if t is not None else None,
        f"speed-up vs {base}": base_t / t if t and base_t else None,
        "energy": e,
        f"energy eff. vs {base}": base_e / e if e and base_e else None,
        "utilization": summary.get("utilization"),
        "MACs": summary.get("macs"),
        "id": result_id,
    })
    return row


def cell_text(value: Any) -> str:
    """What a streamed table shows: floats to 4 significant digits, integers with separators."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


class RowPrinter:
    """Prints rows as they come: an aligned text table (widths fixed up front) or CSV."""

    NUMBER_WIDTH = 12

    def __init__(self, fmt: str, columns: list[str], points: Sequence[HardwarePoint],
                 models: Sequence[str], progress: CellProgress) -> None:
        self.fmt, self.columns, self.progress = fmt, columns, progress
        self.widths = {c: max(len(c), self.NUMBER_WIDTH) for c in columns}
        self.widths["hardware"] = max([len("hardware")] + [len(p.label) for p in points])
        self.widths["model"] = max([len("model")] + [len(m) for m in models])
        self.widths["id"] = max(len("id"), 6)
        self.widths["MACs"] = max(len("MACs"), 14)  # 19,632,062,464 (vgg19)
        self.started = False

    def _emit(self, text: str) -> None:
        self.progress.clear()
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
        self.progress.update()

    def _cells(self, row: dict[str, Any]) -> str:
        parts = []
        for c in self.columns:
            text = cell_text(row.get(c))
            width = self.widths[c]
            parts.append(text.ljust(width) if c in ("hardware", "model") else text.rjust(width))
        return "  ".join(parts).rstrip()

    def header(self) -> None:
        if self.fmt == "csv":
            buf = io.StringIO()
            csv.writer(buf, lineterminator="").writerow(self.columns)
            self._emit(buf.getvalue())
            return
        self._emit("  ".join(c.ljust(self.widths[c]) if c in ("hardware", "model")
                             else c.rjust(self.widths[c]) for c in self.columns).rstrip())
        self._emit("  ".join("-" * self.widths[c] for c in self.columns))

    def row(self, row: dict[str, Any]) -> None:
        if self.fmt == "csv":
            buf = io.StringIO()
            csv.writer(buf, lineterminator="").writerow(
                "" if row.get(c) is None else row.get(c) for c in self.columns)
            self._emit(buf.getvalue())
        elif "error" in row:
            self._emit(self._cells({"hardware": row["hardware"], "model": row["model"]})
                       .ljust(self.widths["hardware"] + self.widths["model"] + 2)
                       + f"  error: {row['error']}")
        else:
            self._emit(self._cells(row))


def _ordered(cells: list[Cell], base: str) -> list[Cell]:
    """Baseline cells first, so other rows get their ratios as early as possible."""
    return [c for c in cells if c.model == base] + [c for c in cells if c.model != base]


@click.command("matrix")
@click.option("--model", "models", required=True, help="Comma-separated model names.")
@click.option("--hw", "backends", required=True, help="Comma-separated backend names.")
@click.option("--baseline", help="Model the ratios are against (default: the first).")
@click.option("--batch", type=params.BATCH, default=1, show_default=True)
@click.option("--input-size", type=params.INPUT_SIZE, default=None,
              help="Input height and width.")
@click.option("--hw-opt", "hw_opts", multiple=True, metavar="[BACKEND:]KEY=VALUE",
              help="Backend option; unscoped options go to every backend that has them.")
@click.option("--vary", "vary", multiple=True, metavar=VARY_SYNTAX,
              help="One hardware point per value (repeat: every combination), e.g. "
                   "--vary dataflow=ws,os.")
@click.option("--jobs", type=params.JOBS, default=1, show_default=True,
              help="Worker processes (joblib) for tracing missing layer tables and for "
                   "simulator cells when there are 150+ per worker; timed cells always run "
                   "one at a time here. On 2 shared cores one process is fastest.")
@format_option()
@click.option("--out", type=params.OUTPUT_FILE,
              help="Also write the whole table, in grid order, to this file.")
@click.option("--layers", "per_layer", is_flag=True,
              help="Also store each cell's per-layer rows (hundreds per cell; off by default).")
@click.option("--quiet", is_flag=True, help="No progress line and no closing summary.")
@click.option("--no-store", is_flag=True, help="Do not store the results.")
@store_option
def command(models: str, backends: str, baseline: str | None, batch: int,
            input_size: int | None, hw_opts: tuple[str, ...], vary: tuple[str, ...],
            jobs: int, fmt: str, out: str | None, per_layer: bool, quiet: bool,
            no_store: bool, store_path: str | None) -> None:
    """Run every model on every hardware point; print times, energy and ratios to a baseline."""
    pm = get_plugin_manager()
    model_specs = [pm.model(n) for n in split_names(models)]
    hw_specs = [pm.backend(n) for n in split_names(backends)]
    if not model_specs or not hw_specs:
        raise BenchUsageError("--model and --hw each need at least one name")
    for spec in model_specs:
        spec.sized(input_size)  # a flat-input model with --input-size: one line, not N cells
    names = list(dict.fromkeys(m.name for m in model_specs))
    base = pm.model(baseline).name if baseline else names[0]
    if base not in names:
        raise BenchUsageError(f"baseline '{base}' is not among --model ({', '.join(names)})")
    points = hardware_points(hw_specs, hw_opts, vary)  # every option checked before any run
    store = None if no_store else open_store(store_path)
    environment = None
    if store is not None:
        from harness.environment import capture

        environment = capture()  # once: git and the host do not change during the matrix

    cells = grid(names, points, batch, input_size, per_layer=per_layer)
    order = _ordered(cells, base)
    progress = CellProgress(len(order), quiet=quiet)
    columns = ["hardware", "model", "time (ms)", f"speed-up vs {base}", "energy",
               f"energy eff. vs {base}", "utilization", "MACs"] + (["id"] if store else [])
    printer = RowPrinter(fmt, columns, points, names, progress) if fmt != "json" else None
    baselines: dict[str, dict[str, Any] | None] = {}  # point label -> baseline summary
    waiting: dict[str, list[tuple[CellResult, int | None]]] = {}
    rows: dict[tuple[str, str], dict[str, Any]] = {}

    def finish(res: CellResult, result_id: int | None) -> None:
        label = res.cell.point.label
        row = matrix_row(res, base, baselines.get(label), result_id)
        rows[(label, res.cell.model)] = row
        if not res.ok:
            progress.clear()
            print(f"warning: {res.cell.model} on {label} failed: {res.error}", file=sys.stderr)
        if printer is not None:
            printer.row(row)

    if printer is not None:
        printer.header()
    try:
        for res in run_cells(order, jobs=jobs):
            result_id = None
            if store is not None and res.ok:
                from harness.environment import utc_now

                env = {**environment, "plugin": res.fields.get("plugin"),
                       "timestamp_utc": utc_now()}
                result_id = record_result(store, **res.fields, environment=env).id
            for warning in res.warnings:
                progress.clear()
                print(f"warning: {res.cell.model} on {res.cell.point.label}: {warning}",
                      file=sys.stderr)
            progress.update(res)
            label = res.cell.point.label
            if res.cell.model == base:
                baselines[label] = res.summary if res.ok else None
                finish(res, result_id)
                for held, held_id in waiting.pop(label, []):
                    finish(held, held_id)
            elif label in baselines:
                finish(res, result_id)
            else:
                waiting.setdefault(label, []).append((res, result_id))
    finally:
        progress.close()
    if not quiet:
        failed = sum(1 for r in rows.values() if "error" in r)
        simulated = sum(1 for c in order if not pm.backend(c.point.backend).timing_sensitive)
        workers = cell_workers(simulated, jobs)
        where = f"on {workers} workers" if workers > 1 else "in this process"
        print(f"{len(order)} cells in {progress.elapsed():.1f} s {where}"
              f"{f', {failed} failed' if failed else ''}", file=sys.stderr)

    ordered_rows = [rows[(c.point.label, c.model)] for c in cells]
    if fmt == "json":
        write(to_json({"baseline": base, "batch": batch, "rows": ordered_rows}), out)
    elif out:
        used = [c for c in columns if any(r.get(c) is not None for r in ordered_rows)]
        if any("error" in r for r in ordered_rows):
            used.append("error")
        write(render(ordered_rows, fmt, used), out)
