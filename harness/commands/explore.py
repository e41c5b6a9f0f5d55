"""``bench explore``: sweep networks x hardware, store every point, print and plot Pareto fronts.

Every (network, hardware point) pair runs on the cell engine (:mod:`harness.cells`,
the same as ``bench matrix``; ``--vary [BACKEND:]KEY=V1,V2,...`` spans hardware
options, repeatable, cartesian product) and is stored. Each point then gets the
network's reported accuracy (its cited ``ModelSpec.reported`` figures: nothing
here is measured), its energy and latency from the backend, and its parameter
count from the layer table. Constraints (``--max-energy``, ``--min-top1``, ...)
drop points; the rest are split into Pareto fronts of accuracy against energy,
latency and parameters, printed and plotted with the dominated points marked.
Networks with no cited accuracy take no part in the fronts, and the output names them.
"""
from __future__ import annotations

import sys
from typing import Any, Sequence

import click

from harness import params
from harness.cli import format_option, open_store, record_result, split_names, store_option
from harness.errors import BenchUsageError, unknown_choice
from harness.output import render, to_json, write
from harness.pareto import (
    MAXIMIZE,
    Constraint,
    DesignPoint,
    Objective,
    apply_constraints,
    check_plot_path,
    front,
    plot_fronts,
)
from harness.plugins.manager import get_plugin_manager

ACCURACY = {"top1": Objective("top1", MAXIMIZE, "reported top-1 (%)"),
            "top5": Objective("top5", MAXIMIZE, "reported top-5 (%)")}
COSTS = {"energy": Objective("energy", label="energy (backend units)", log=True),
         "time": Objective("time_ms", label="latency (ms)", log=True),
         "params": Objective("params", label="parameters", log=True)}
ENERGY_KEYS = ("energy_j", "energy_pj", "energy")


def _energy(summary: dict[str, Any]) -> float | None:
    for key in ENERGY_KEYS:
        if isinstance(summary.get(key), (int, float)):
            return float(summary[key])
    return None


def _params(model: Any, input_size: tuple[int, ...]) -> int:
    """Parameters from the layer table (BatchNorm's scale and shift included)."""
    from harness.specs import RunRequest

    layers = RunRequest(model=model, batch=1, input_size=input_size, options={}).layers()
    return sum(layer.params for layer in layers)


def _float_option(name: str) -> Any:
    return click.option(name, type=params.POSITIVE, default=None)


def design_points(models: Sequence[Any], backends: Sequence[Any], hw_opts: Sequence[str],
                  vary: Sequence[str], batch: int, input_size: int | None, jobs: int | None,
                  store: Any = None, quiet: bool = False) -> tuple[list[DesignPoint], list[str]]:
    """Run every model on every hardware point; one :class:`DesignPoint` per success.

    Returns the points and one line per failed cell. Stores each result when
    ``store`` is given (the environment is captured once).
    """
    from harness.cells import CellProgress, grid, hardware_points, run_cells

    points = hardware_points(backends, hw_opts, vary)
    cells = grid([m.name for m in models], points, batch, input_size)
    by_name = {m.name: m for m in models}
    environment = None
    if store is not None:
        from harness.environment import capture

        environment = capture()
    progress = CellProgress(len(cells), quiet=quiet)
    results, failures = [], []
    try:
        for res in run_cells(cells, jobs=jobs):
            progress.update(res)
            if not res.ok:
                failures.append(f"{res.cell.model} on {res.cell.point.label}: {res.error}")
                continue
            stored = None
            if store is not None:
                stored = record_result(store, **res.fields,
                                       environment={**environment, "plugin": res.fields["plugin"]})
            results.append((res, stored))
    finally:
        progress.close()
    param_counts: dict[tuple[str, tuple[int, ...]], int] = {}
    out = []
    for res, stored in sorted(results, key=lambda r: r[0].index):
        model = by_name[res.cell.model]
        size = tuple(res.fields["options"]["input_size"])
        if (model.name, size) not in param_counts:
            param_counts[(model.name, size)] = _params(model, size)
        reported = {m.name: m.value for m in model.reported}
        summary = res.summary
        time_s = summary.get("time_s", summary.get("median_s"))
        out.append(DesignPoint(
            label=model.name, group=res.cell.point.label,
            metrics={"top1": reported.get("top1"), "top5": reported.get("top5"),
                     "energy": _energy(summary),
                     "time_ms": time_s * 1e3 if isinstance(time_s, (int, float)) else None,
                     "params": param_counts[(model.name, size)], "macs": summary.get("macs"),
                     "utilization": summary.get("utilization")},
            info={"model": model.name, "hardware": res.cell.point.label,
                  "energy_unit": summary.get("energy_unit", ""),
                  "id": stored.id if stored is not None else None},
        ))
    return out, failures


def _row(p: DesignPoint, status: str) -> dict[str, Any]:
    m = p.metrics
    return {"model": p.label, "hardware": p.group, "top1": m.get("top1"), "top5": m.get("top5"),
            "energy": m.get("energy"), "time (ms)": m.get("time_ms"), "params": m.get("params"),
            "utilization": m.get("utilization"), "status": status, "id": p.info.get("id")}


@click.command("explore")
@click.option("--model", "models", default="all", show_default=True,
              help="Comma-separated model names, or 'all'.")
@click.option("--hw", "backends", default="accel-8x8,accel-16x16,accel-32x32", show_default=True,
              help="Comma-separated backends (presets count: see `bench preset list`).")
@click.option("--vary", "vary", multiple=True, metavar="[BACKEND:]KEY=V1,V2,...",
              help="Sweep a backend option; repeat for a cartesian product.")
@click.option("--hw-opt", "hw_opts", multiple=True, metavar="[BACKEND:]KEY=VALUE",
              help="Fixed backend option for every point.")
@click.option("--batch", type=params.BATCH, default=1, show_default=True)
@click.option("--input-size", type=params.INPUT_SIZE, default=None,
              help="Input height and width (default: each model's).")
@_float_option("--max-energy")
@_float_option("--max-time-ms")
@click.option("--max-params", type=params.POSITIVE, default=None,
              help="Largest parameter count (e.g. 2e6).")
@click.option("--min-top1", type=params.PERCENT, default=None,
              help="Smallest reported top-1 accuracy, percent.")
@click.option("--min-top5", type=params.PERCENT, default=None,
              help="Smallest reported top-5 accuracy, percent.")
@click.option("--accuracy", type=click.Choice(sorted(ACCURACY)), default="top1", show_default=True,
              help="Which reported accuracy the fronts use.")
@click.option("--against", default="energy,time,params", show_default=True,
              help="Costs to make fronts against: any of energy, time, params.")
@click.option("--all-points", is_flag=True, help="List every point, not only the fronts.")
@click.option("--plot", type=params.OUTPUT_FILE, default=None,
              help="Write the fronts to this .png, .svg or .pdf file.")
@click.option("--jobs", type=params.JOBS, default=None,
              help="Worker processes (default: one per core).")
@format_option()
@click.option("--out", type=params.OUTPUT_FILE, help="Write the output to this file.")
@click.option("--quiet", is_flag=True, help="No progress line.")
@click.option("--no-store", is_flag=True, help="Do not store the runs.")
@store_option
def command(models: str, backends: str, vary: tuple[str, ...], hw_opts: tuple[str, ...],
            batch: int, input_size: int | None, max_energy: float | None,
            max_time_ms: float | None, max_params: float | None, min_top1: float | None,
            min_top5: float | None, accuracy: str, against: str, all_points: bool,
            plot: str | None, jobs: int | None, fmt: str, out: str | None, quiet: bool,
            no_store: bool, store_path: str | None) -> None:
    """Sweep networks and hardware; print and plot the Pareto fronts of reported accuracy
    against energy, latency and parameters (every point is stored).

    \b
    bench explore --vary dram_bw=4,8,16 --min-top1 57 --max-energy 1e10 --plot front.png
    """
    pm = get_plugin_manager()
    names = split_names(models)
    model_specs = (list(pm.models().values()) if [n.lower() for n in names] == ["all"]
                   else [pm.model(n) for n in names])
    hw_specs = [pm.backend(n) for n in split_names(backends)]
    if not model_specs or not hw_specs:
        raise BenchUsageError("--model and --hw each need at least one name")
    if input_size is not None and [n.lower() for n in names] == ["all"]:
        flat = [m.name for m in model_specs if m.flat_input]
        if flat:
            print(f"warning: --input-size skips flat-input models: {', '.join(flat)}",
                  file=sys.stderr)
            model_specs = [m for m in model_specs if m.name not in flat]
    for spec in model_specs:
        spec.sized(input_size)  # a flat-input model with --input-size: one line
    costs = []
    for key in split_names(against):
        if key not in COSTS:
            raise unknown_choice("cost in --against", key, COSTS)
        costs.append(COSTS[key])
    if not costs:
        raise BenchUsageError(f"--against needs at least one of {', '.join(COSTS)}")
    if plot:
        check_plot_path(plot)
    constraints = [Constraint(key, limit, upper, option) for key, limit, upper, option in (
        ("energy", max_energy, True, "--max-energy"), ("time_ms", max_time_ms, True, "--max-time-ms"),
        ("params", max_params, True, "--max-params"), ("top1", min_top1, False, "--min-top1"),
        ("top5", min_top5, False, "--min-top5")) if limit is not None]
    store = None if no_store else open_store(store_path)

    points, failures = design_points(model_specs, hw_specs, hw_opts, vary, batch, input_size,
                                     jobs, store, quiet)
    for line in failures:
        print(f"warning: {line}", file=sys.stderr)
    kept, rejected = apply_constraints(points, constraints)
    y = ACCURACY[accuracy]
    uncited = sorted({p.label for p in kept if p.value(y.key) is None}, key=str.lower)
    on_front: dict[int, list[str]] = {}
    for cost in costs:
        on, _, _ = front(kept, [cost, y])
        for p in on:
            on_front.setdefault(id(p), []).append(cost.key.replace("_ms", ""))
    rows = []
    for p in kept:
        status = ("front: " + ", ".join(on_front[id(p)]) if id(p) in on_front
                  else f"no reported {accuracy}" if p.value(y.key) is None else "dominated")
        if all_points or id(p) in on_front:
            rows.append(_row(p, status))
    if all_points:
        rows += [_row(p, f"rejected, {why}") for p, why in rejected]
    rows.sort(key=lambda r: (r["status"].startswith("front") is False, -(r[accuracy] or -1),
                             r["energy"] or 0))
    ids = [p.info["id"] for p in points if p.info.get("id") is not None]
    n_hw = len({p.group for p in points})
    head = (f"{len(points)} design points ({len({p.label for p in points})} networks x {n_hw} "
            f"hardware points)" + (f", stored as results {min(ids)}-{max(ids)}" if ids else ""))
    notes = []
    if constraints:
        notes.append(f"constraints {', '.join(c.describe() for c in constraints)}: "
                     f"{len(kept)} points kept, {len(rejected)} rejected")
    if uncited:
        notes.append(f"left out of the {accuracy} fronts (no cited {accuracy}): "
                     + ", ".join(uncited))
    if failures:
        notes.append(f"{len(failures)} runs failed (see the warnings above)")
    if plot:
        title = (f"reported {accuracy} vs cost, {len(kept)} points"
                 + (f" ({', '.join(c.describe() for c in constraints)})" if constraints else ""))
        plot_fronts(kept, y, costs, plot, title=title)
        notes.append(f"plot written to {plot}")
    if fmt == "json":
        write(to_json({"summary": head, "notes": notes, "points": rows,
                       "left_out": uncited, "failures": failures}), out)
        return
    if fmt == "csv":
        write(render(rows, "csv"), out)
        return
    columns = ["model", "hardware", accuracy, "energy", "time (ms)", "params", "utilization",
               "status", "id"]
    if not any(r["id"] for r in rows):
        columns.remove("id")
    write("\n".join([head, *notes, "", render(rows, "table", columns)]), out)
