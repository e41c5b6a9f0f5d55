"""``bench plugins``: every installed plugin, what it registers and where it comes from.

``bench plugins`` is the short table (status, distribution, hooks, errors);
``--verbose`` adds, per plugin, the models, backends, optimizers, problems,
analyzers and commands it registers and the file it was loaded from;
``bench plugins show NAME`` prints that for one plugin (or every plugin of one
distribution).
"""
from __future__ import annotations

from typing import Any

import click

from harness.cli import format_option
from harness.errors import unknown_choice
from harness.output import emit, to_json, write
from harness.plugins.manager import BenchPluginManager, PluginInfo, get_plugin_manager

TABLE_COLUMNS = ["name", "status", "distribution", "version", "hooks", "error"]


def normalize(name: str) -> str:
    """A distribution name as pip compares them (case, ``-``, ``_`` and ``.`` ignored)."""
    return name.lower().replace("_", "-").replace(".", "-")


def describe(pm: BenchPluginManager, info: PluginInfo) -> dict[str, Any]:
    """One plugin with everything it registers (the JSON form of ``--verbose``)."""
    row = info.as_dict()
    row["registers"] = pm.registrations(info.name) if info.status == "ok" else {}
    return row


def block(row: dict[str, Any]) -> str:
    """A plugin as a few aligned lines: header, source, then one line per kind."""
    origin = " ".join(p for p in (row["distribution"], row["version"]) if p) or "registered directly"
    lines = [f"{row['name']} ({row['status']}): {origin}"]
    source = row["module"] + (f" ({row['file']})" if row["file"] else "")
    lines.append(f"  {'from':<11} {source}")
    lines.append(f"  {'hooks':<11} " + (", ".join(h.removeprefix("bench_") for h in row["hooks"])
                                       or "none"))
    for kind, names in row["registers"].items():
        lines.append(f"  {kind:<11} {', '.join(names)} ({len(names)})")
    if row["error"]:
        lines.append(f"  {'error':<11} {row['error']}")
    return "\n".join(lines)


def select(pm: BenchPluginManager, name: str) -> list[PluginInfo]:
    """The plugins called ``name``, or every plugin of the distribution ``name``."""
    if name in pm.info:
        return [pm.info[name]]
    matches = [i for i in pm.plugins() if i.distribution and normalize(i.distribution) == normalize(name)]
    if matches:
        return matches
    choices = set(pm.info) | {i.distribution for i in pm.info.values() if i.distribution}
    raise unknown_choice("plugin or distribution", name, choices)


@click.group("plugins", invoke_without_command=True)
@click.option("--verbose", "-v", is_flag=True,
              help="Per plugin: what it registers (models, backends, ...) and its source file.")
@format_option("table", "json")
@click.pass_context
def command(ctx: click.Context, verbose: bool, fmt: str) -> None:
    """Show installed plugins, what each registers, and the broken ones.

    \b
    bench plugins                 one line per plugin: status, distribution, hooks, error
    bench plugins --verbose       plus the models, backends, ... and commands each registers
    bench plugins show NAME       one plugin (or every plugin of a distribution) in full
    """
    if ctx.invoked_subcommand is not None:
        return
    pm = get_plugin_manager()
    infos = pm.plugins()
    if verbose:
        rows = [describe(pm, info) for info in infos]
        write(to_json(rows) if fmt == "json" else "\n\n".join(block(r) for r in rows))
        return
    rows = [info.as_dict() for info in infos]
    if fmt == "json":
        write(to_json(rows))
        return
    for row in rows:
        row["hooks"] = ", ".join(h.removeprefix("bench_") for h in row["hooks"])
    emit(rows, "table", TABLE_COLUMNS)


@command.command("show")
@click.argument("name")
@format_option("table", "json")
def show(name: str, fmt: str) -> None:
    """Show one plugin (entry-point name) or every plugin of a distribution in full."""
    pm = get_plugin_manager()
    rows = [describe(pm, info) for info in select(pm, name)]
    write(to_json(rows) if fmt == "json" else "\n\n".join(block(r) for r in rows))
