"""``bench cache info|clear``: what the layer-table cache holds, and emptying it.

The cache itself is :mod:`harness.layer_cache`. ``info`` says for every entry
whether it is *current* (what a run would read now), *stale* (its model's
builder, the harness or torch changed since: never read again), for a model
that is not installed, or *damaged* (it would be rebuilt with a warning).
"""
from __future__ import annotations

import os
from typing import Any

import click

from harness.cli import format_option
from harness.errors import BenchUsageError
from harness.output import emit, to_json, write

STATUSES = ("current", "stale", "not installed", "damaged")


def _size_text(n: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024 or unit == "MiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


def _status(entry: Any, models: dict[str, Any]) -> str:
    from harness.layer_cache import entry_path, table_key

    if entry.header is None:
        return "damaged"
    spec = models.get(str(entry.key.get("model", "")).lower())
    if spec is None:
        return "not installed"
    key = table_key(spec, entry.key.get("input_size", ()))
    if key is None or entry_path(entry.path.parent, key) != entry.path or key != entry.key:
        return "stale"
    return "current"


def _directory() -> Any:
    from harness.layer_cache import CACHE_ENV, cache_dir

    directory = cache_dir()
    if directory is None:
        raise BenchUsageError(f"the layer-table cache is off (${CACHE_ENV}=off or "
                              "--layer-cache off); nothing to show or clear")
    return directory


def _rows() -> tuple[Any, list[dict[str, Any]]]:
    from harness.layer_cache import entries
    from harness.plugins.manager import get_plugin_manager

    directory = _directory()
    models = get_plugin_manager().models()
    rows = []
    for entry in entries(directory):
        key = entry.key
        rows.append({
            "model": key.get("model", "?"),
            "input": "x".join(str(s) for s in key.get("input_size", [])) or "?",
            "layers": (entry.header or {}).get("layers"),
            "size": entry.bytes,
            "created (UTC)": (entry.header or {}).get("created_utc", ""),
            "status": _status(entry, models),
            "detail": entry.error,
            "file": entry.path.name,
        })
    return directory, rows


def _siblings(directory: Any) -> dict[str, dict[str, int]]:
    """Other caches under the same bench cache root (the optimizer plugins' joblib folders),
    when the location came from that root: files and bytes of each."""
    from harness.layer_cache import CACHE_ENV

    if os.environ.get(CACHE_ENV, "").strip() or not directory.parent.is_dir():
        return {}
    found = {}
    for folder in sorted(p for p in directory.parent.iterdir() if p.is_dir() and p != directory):
        files = [f for f in folder.rglob("*") if f.is_file()]
        found[folder.name] = {"files": len(files), "bytes": sum(f.stat().st_size for f in files)}
    return found


@click.group("cache")
def command() -> None:
    """Show or clear the cache of traced layer tables (warm runs read it instead of
    importing torch)."""


@command.command("info")
@format_option("table", "json")
def info(fmt: str) -> None:
    """Where the cache is, what it holds, and which entries are current."""
    from harness.layer_cache import location_source

    directory, rows = _rows()
    total = sum(r["size"] for r in rows)
    counts = {s: sum(1 for r in rows if r["status"] == s) for s in STATUSES}
    others = _siblings(directory)
    if fmt == "json":
        write(to_json({"directory": str(directory), "chosen_by": location_source(),
                       "entries": len(rows), "bytes": total, "by_status": counts,
                       "tables": rows, "other_caches": others}))
        return
    by_status = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "empty"
    print(f"layer-table cache: {directory} (chosen by {location_source()})")
    print(f"{len(rows)} entries, {_size_text(total)}: {by_status}")
    if others:
        listed = ", ".join(f"{name} ({o['files']} files, {_size_text(o['bytes'])})"
                           for name, o in others.items())
        print(f"also under {directory.parent}: {listed} (not layer tables; "
              "`bench cache clear` leaves them)")
    if rows:
        print()
        shown = [{**r, "size": _size_text(r["size"])} for r in rows]
        emit(shown, "table", ["model", "input", "layers", "size", "created (UTC)", "status",
                               "detail"] if any(r["detail"] for r in rows) else
             ["model", "input", "layers", "size", "created (UTC)", "status"])


@command.command("clear")
@click.option("--stale", "only_stale", is_flag=True,
              help="Remove only entries no run would read (stale, damaged, model not installed).")
@click.option("--model", "model_name", help="Remove only this model's entries.")
def clear(only_stale: bool, model_name: str | None) -> None:
    """Remove cached layer tables (they are traced again when next needed)."""
    directory, rows = _rows()
    chosen = [r for r in rows
              if (not only_stale or r["status"] != "current")
              and (model_name is None or str(r["model"]).lower() == model_name.lower())]
    if model_name is not None and not any(str(r["model"]).lower() == model_name.lower()
                                          for r in rows):
        from harness.errors import unknown_choice

        raise unknown_choice("model in the cache", model_name,
                             sorted({str(r["model"]) for r in rows}))
    removed = 0
    for row in chosen:
        try:
            (directory / row["file"]).unlink()
            removed += row["size"]
        except FileNotFoundError:
            pass  # another process removed it first
    import time

    for leftover in directory.glob(".tmp-*") if directory.is_dir() else ():
        if time.time() - leftover.stat().st_mtime > 600:  # a writer killed mid-write
            leftover.unlink(missing_ok=True)
    print(f"removed {len(chosen)} of {len(rows)} entries ({_size_text(removed)}) from {directory}")
