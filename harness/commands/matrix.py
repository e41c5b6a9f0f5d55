"""``bench matrix``: every model on every backend, one table, ratios against a baseline.

This is the SqueezeNext paper's design-study table: for each backend, how much
faster and how much more energy-efficient each model is than a baseline model.
Simulator runs may run in parallel (``--jobs``); runs that time this machine's
wall clock (``HardwareSpec.timing_sensitive``) always run one at a time, after
the parallel ones, so nothing else competes with them for the CPU.
"""
from __future__ import annotations

import sys
from typing import Any, Sequence

import click

from harness.cli import (
    ProgressBar,
    format_option,
    open_store,
    record_result,
    run_one,
    split_names,
    store_option,
)
from harness.errors import BenchUsageError, unknown_choice
from harness.output import render, to_json, write
from harness.plugins.manager import get_plugin_manager

TIME_KEYS = ("time_s", "median_s")
ENERGY_KEYS = ("energy_j", "energy_pj", "energy")


def headline(summary: dict[str, Any], keys: Sequence[str]) -> float | None:
    for key in keys:
        if isinstance(summary.get(key), (int, float)):
            return float(summary[key])
    return None


def options_per_backend(pairs: Sequence[str], backends: Sequence[Any]) -> dict[str, list[str]]:
    """Split ``--hw-opt`` values: ``NAME:key=value`` goes to one backend, ``key=value``
    to every backend that has that option (and must fit at least one)."""
    per: dict[str, list[str]] = {b.name: [] for b in backends}
    for pair in pairs:
        scope, sep, rest = pair.partition(":")
        if sep and "=" not in scope:
            match = [b for b in backends if b.name.lower() == scope.lower()]
            if not match:
                raise unknown_choice("backend in --hw-opt", scope, [b.name for b in backends])
            per[match[0].name].append(rest)
            continue
        key = pair.partition("=")[0].strip()
        takers = [b for b in backends if any(o.name == key for o in b.options)]
        if not takers:
            valid = sorted({o.name for b in backends for o in b.options})
            raise unknown_choice("option for the chosen backends", key, valid)
        for b in takers:
            per[b.name].append(pair)
    return per


def _run_pair(model: str, hw: str, batch: int, input_size: int | None,
              opts: list[str]) -> tuple[dict[str, Any], Any]:
    """One cell of the matrix (module level so joblib workers can run it)."""
    return run_one(model, hw, batch=batch, input_size=input_size, hw_opts=opts, quiet=True)


@click.command("matrix")
@click.option("--model", "models", required=True, help="Comma-separated model names.")
@click.option("--hw", "backends", required=True, help="Comma-separated backend names.")
@click.option("--baseline", help="Model the ratios are against (default: the first).")
@click.option("--batch", type=int, default=1, show_default=True)
@click.option("--input-size", type=int, default=None, help="Input height and width.")
@click.option("--hw-opt", "hw_opts", multiple=True, metavar="[BACKEND:]KEY=VALUE",
              help="Backend option; unscoped options go to every backend that has them.")
@click.option("--jobs", type=int, default=1, show_default=True,
              help="Parallel workers for simulator runs (timed runs stay sequential).")
@format_option()
@click.option("--out", type=click.Path(dir_okay=False), help="Write the table to this file.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--no-store", is_flag=True, help="Do not store the results.")
@store_option
def command(models: str, backends: str, baseline: str | None, batch: int,
            input_size: int | None, hw_opts: tuple[str, ...], jobs: int, fmt: str,
            out: str | None, quiet: bool, no_store: bool, store_path: str | None) -> None:
    """Run every model on every backend; print times, energy and ratios to a baseline."""
    pm = get_plugin_manager()
    for value, name in ((batch, "--batch"), (jobs, "--jobs")):
        if value <= 0:
            raise BenchUsageError(f"{name} must be a positive integer, not {value}")
    if input_size is not None and input_size <= 0:
        raise BenchUsageError(f"--input-size must be a positive integer, not {input_size}")
    model_specs = [pm.model(n) for n in split_names(models)]
    hw_specs = [pm.backend(n) for n in split_names(backends)]
    if not model_specs or not hw_specs:
        raise BenchUsageError("--model and --hw each need at least one name")
    names = [m.name for m in model_specs]
    base = pm.model(baseline).name if baseline else names[0]
    if base not in names:
        raise BenchUsageError(f"baseline '{base}' is not among --model ({', '.join(names)})")
    per_hw = options_per_backend(hw_opts, hw_specs)
    for hw in hw_specs:  # reject bad options before anything runs
        hw.parse_options(per_hw[hw.name])
    store = None if no_store else open_store(store_path)

    cells = [(m.name, hw) for hw in hw_specs for m in model_specs]
    parallel = [(m, hw) for m, hw in cells if not hw.timing_sensitive]
    timed = [(m, hw) for m, hw in cells if hw.timing_sensitive]
    results: dict[tuple[str, str], tuple[dict[str, Any], Any] | Exception] = {}
    bar = ProgressBar(quiet)
    done = 0
    try:
        if jobs > 1 and len(parallel) > 1:
            from joblib import Parallel, delayed

            outs = Parallel(n_jobs=jobs)(
                delayed(_run_pair)(m, hw.name, batch, input_size, per_hw[hw.name])
                for m, hw in parallel
            )
            for (m, hw), res in zip(parallel, outs):
                results[(m, hw.name)] = res
            done = len(parallel)
            parallel = []
        for m, hw in parallel + timed:
            bar(done, len(cells), f"{m} on {hw.name}")
            try:
                results[(m, hw.name)] = _run_pair(m, hw.name, batch, input_size, per_hw[hw.name])
            except BenchUsageError:
                raise
            except Exception as exc:  # one broken cell must not lose the others
                results[(m, hw.name)] = exc
            done += 1
    finally:
        bar.close()

    rows = []
    for hw in hw_specs:
        base_res = results.get((base, hw.name))
        base_summary = base_res[1].summary if isinstance(base_res, tuple) else {}
        base_time = headline(base_summary, TIME_KEYS)
        base_energy = headline(base_summary, ENERGY_KEYS)
        for m in names:
            res = results[(m, hw.name)]
            if isinstance(res, Exception):
                print(f"warning: {m} on {hw.name} failed: {type(res).__name__}: {res}",
                      file=sys.stderr)
                rows.append({"hardware": hw.name, "model": m, "error": str(res)})
                continue
            fields, result = res
            stored = record_result(store, **fields) if store is not None else None
            t = headline(result.summary, TIME_KEYS)
            e = headline(result.summary, ENERGY_KEYS)
            row = {
                "hardware": hw.name,
                "model": m,
                "time (ms)": t * 1e3 if t is not None else None,
                f"speed-up vs {base}": base_time / t if t and base_time else None,
                "energy": e,
                f"energy eff. vs {base}": base_energy / e if e and base_energy else None,
                "utilization": result.summary.get("utilization"),
                "MACs": result.summary.get("macs"),
                "id": stored.id if stored else None,
            }
            rows.append(row)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    # Drop columns no backend filled (e.g. energy on a CPU-only matrix).
    columns = [c for c in columns if any(r.get(c) is not None for r in rows)]
    if fmt == "json":
        write(to_json({"baseline": base, "batch": batch, "rows": rows}), out)
    else:
        write(render(rows, fmt, columns), out)
