"""``bench preset``: list, show (to copy), check and document the ``accel`` preset files.

A plugin of its own (entry point ``accel-presets``): the command uses the
simulator, so the simulator's module must not import the command.
"""
from __future__ import annotations

from typing import Any

import click

from harness import hookimpl, params
from harness.errors import BenchUsageError, unknown_choice
from harness.output import emit, render, write


@hookimpl
def bench_register_commands(cli: Any) -> None:
    cli.add_command(preset_group)


@click.group("preset")
def preset_group() -> None:
    """Presets of the accel simulator: list, show (to copy and edit), check, fields.

    \b
    bench preset show accel-16x16 > my-chip.toml   # copy a built-in preset
    bench preset check my-chip.toml                # validate the edited copy
    BENCH_ACCEL_PRESETS=my-chip.toml bench run --model 1.0-SqNxt-23 --hw my-chip
    """


def _found():
    from plugins.hardware import accel

    return accel.presets()


@preset_group.command("list")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
              show_default=True, help="Output format.")
def list_presets(fmt: str) -> None:
    """Every preset: built-in, from plugins, and from BENCH_ACCEL_PRESETS."""
    rows = []
    for p in _found():
        v = p.values
        rows.append({
            "name": p.name, "status": "invalid" if p.error else "ok",
            "array": v.get("array", ""), "ifmap/weight/ofmap KiB": "/".join(
                f"{v[k]:g}" for k in ("ifmap_kib", "weight_kib", "ofmap_kib") if k in v),
            "dram_bw": v.get("dram_bw", ""), "energy": p.energy.name if p.energy else "",
            "origin": p.origin, "error": p.error,
        })
    emit(rows, fmt, ["name", "status", "array", "ifmap/weight/ofmap KiB", "dram_bw", "energy",
                     "origin", "error"])


@preset_group.command("show")
@click.argument("name")
def show_preset(name: str) -> None:
    """Print a preset as a file (redirect it to a .toml file to make your own)."""
    from plugins.hardware import accel_presets

    found = {p.name.lower(): p for p in _found()}
    preset = found.get(name.lower())
    if preset is None:
        raise unknown_choice("preset", name, [p.name for p in found.values()])
    if preset.error:
        raise BenchUsageError(preset.error)
    write(preset.text.rstrip("\n") if preset.text else accel_presets.render_toml(preset).rstrip())


@preset_group.command("check")
@click.argument("files", nargs=-1, required=True, type=params.INPUT_FILE)
def check_presets(files: tuple[str, ...]) -> None:
    """Validate preset files; the first problem is a one-line error (exit code 2)."""
    from plugins.hardware import accel, accel_presets

    base = accel.accel_options()
    for path in files:
        preset = accel_presets.load_preset(path, base, accel.config_from_options)
        options = {o.name: o.default for o in preset.options(base)}
        print(f"{path}: ok, preset '{preset.name}': {options['array']} PEs, "
              f"{options['ifmap_kib']:g}/{options['weight_kib']:g}/{options['ofmap_kib']:g} KiB, "
              f"{options['dram_bw']:g} words/cycle DRAM, energy "
              f"{preset.energy.name if preset.energy else 'from the cost_* defaults'}")


@preset_group.command("fields")
def preset_fields() -> None:
    """Every field a preset file may set, with its type and default."""
    from plugins.hardware import accel

    rows = [{"field": "name", "type": "text", "default": "(the file's name)",
             "meaning": "backend name for --hw"},
            {"field": "description", "type": "text", "default": "(generated)",
             "meaning": "shown by bench list hardware"},
            {"field": "energy", "type": "name|path|table", "default": "eyeriss",
             "meaning": "energy table for every cost_* field: a built-in name, a file, or "
                        "an inline table of mac, rf, pe, buffer, dram"}]
    rows += [{"field": o.name, "type": o.type_name, "default": o.default, "meaning": o.help}
             for o in accel.accel_options()]
    write(render(rows, "table"))
