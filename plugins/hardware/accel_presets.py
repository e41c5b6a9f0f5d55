"""Presets of the ``accel`` backend and its energy tables, read from data files.

A preset is a TOML or JSON file (or a dict from a plugin) that sets defaults for
some of accel's options and names the energy table its ``cost_*`` options come
from. The built-in presets ``accel-8x8``, ``accel-16x16`` and ``accel-32x32`` are
such files (``plugins/hardware/presets/``), the Eyeriss energy table is one too
(``plugins/hardware/energy/eyeriss.toml``), and a user copies one, edits it and
points ``BENCH_ACCEL_PRESETS`` at the copy. Third-party packages ship presets
through the ``bench_accel_presets`` hook.

Everything is validated before use: an unknown field, a value of the wrong type
or a negative size is a one-line :class:`BenchUsageError` naming the file and the
field (and, for an unknown field, the valid ones). This module knows nothing of
the cost model; :mod:`plugins.hardware.accel` hands it the option specs and the
cross-option check.
"""
from __future__ import annotations

import json
import math
import os
import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from harness.errors import BenchUsageError, closest
from harness.paths import input_file
from harness.specs import OptionSpec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

DATA_DIR = Path(__file__).resolve().parent
PRESET_DIR = DATA_DIR / "presets"
ENERGY_DIR = DATA_DIR / "energy"
PRESETS_ENV = "BENCH_ACCEL_PRESETS"
SUFFIXES = (".toml", ".json")
ENERGY_LEVELS = ("mac", "rf", "pe", "buffer", "dram")
ENERGY_META = ("name", "source")
PRESET_META = ("name", "description", "energy")
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")

Check = Callable[[dict[str, Any]], Any]


@dataclass(frozen=True)
class EnergyTable:
    """Energy per MAC and per access at each level (``mac``, ``rf``, ``pe``, ``buffer``, ``dram``)."""

    name: str
    costs: dict[str, float]
    source: str = ""
    origin: str = ""


@dataclass(frozen=True)
class Preset:
    """One preset: the option values it sets, where it came from, or why it is invalid."""

    name: str
    values: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    energy: EnergyTable | None = None
    origin: str = ""  # a file path, or "plugin NAME"
    text: str = ""  # the file's text, for `bench preset show`
    error: str = ""  # non-empty when the preset is invalid

    def options(self, specs: Sequence[OptionSpec]) -> tuple[OptionSpec, ...]:
        """The backend's option specs with this preset's values as defaults."""
        return tuple(replace(s, default=self.values[s.name]) if s.name in self.values else s
                     for s in specs)


# --------------------------------------------------------------------------- reading files
def _natural(text: str) -> list[Any]:
    """Sort key that puts accel-8x8 before accel-16x16."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _read(source: Any) -> tuple[dict[str, Any], str, Path | None, str, str]:
    """``(data, where, folder, stem, text)`` of a preset or energy-table source.

    ``source`` is a path (``str`` or ``os.PathLike``), an ``importlib.resources``
    traversable (anything with ``read_text`` and ``name``), or a mapping.
    """
    if isinstance(source, Mapping):
        return dict(source), "", None, "", ""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        where, folder, name = str(source), path.parent, path.name
        input_file(path, "preset or energy-table file")
        reader: Callable[[], str] = lambda: path.read_text(encoding="utf-8")  # noqa: E731
    elif hasattr(source, "read_text") and hasattr(source, "name"):
        where, folder, name = str(source), None, str(source.name)
        reader = lambda: source.read_text(encoding="utf-8")  # noqa: E731
    else:
        raise BenchUsageError(f"preset source {source!r} is neither a file path nor a dict")
    suffix = Path(name).suffix.lower()
    if suffix not in SUFFIXES:
        raise BenchUsageError(f"{where}: expected a .toml or .json file, not '{suffix or name}'")
    try:
        text = reader()
    except (OSError, UnicodeDecodeError) as exc:
        raise BenchUsageError(f"{where}: cannot read: {exc}") from None
    try:
        data = tomllib.loads(text) if suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        kind = "TOML" if suffix == ".toml" else "JSON"
        raise BenchUsageError(f"{where}: not valid {kind}: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise BenchUsageError(f"{where}: expected a table of fields at the top level")
    return data, where, folder, Path(name).stem, text


def _unknown(where: str, key: str, valid: Iterable[str]) -> BenchUsageError:
    valid = sorted(valid)
    hint = closest(key, valid)
    did_you_mean = f" (did you mean '{hint}'?)" if hint else ""
    return BenchUsageError(f"{where}: unknown field '{key}'{did_you_mean}; valid fields: "
                           + ", ".join(valid))


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not NAME_RE.fullmatch(value):
        raise BenchUsageError(f"{where}: bad value {value!r} for field 'name': expected letters, "
                              "digits and . _ + - (no spaces or commas), e.g. my-chip")
    return value


# --------------------------------------------------------------------------- energy tables
def builtin_energy_tables() -> dict[str, Path]:
    return {p.stem: p for p in sorted(ENERGY_DIR.glob("*.toml"))}


def parse_energy(data: Mapping[str, Any], where: str, default_name: str = "",
                 origin: str = "") -> EnergyTable:
    """Validate an energy table: all five levels, each a number >= 0."""
    for key in data:
        if key not in ENERGY_LEVELS + ENERGY_META:
            raise _unknown(where, key, ENERGY_LEVELS + ENERGY_META)
    costs = {}
    for level in ENERGY_LEVELS:
        if level not in data:
            raise BenchUsageError(f"{where}: missing field '{level}'; an energy table needs "
                                  + ", ".join(ENERGY_LEVELS))
        value = data[level]
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or value < 0:
            raise BenchUsageError(f"{where}: bad value {value!r} for field '{level}': "
                                  "expected a number >= 0")
        costs[level] = float(value)
    name = _name(data.get("name", default_name or "inline"), where)
    return EnergyTable(name=name, costs=costs, source=str(data.get("source", "")), origin=origin)


def load_energy(ref: Any, folder: Path | None = None, where: str = "") -> EnergyTable:
    """An energy table from a built-in name (``eyeriss``), a file path (relative paths
    are relative to ``folder``, the preset's own folder) or an inline table."""
    if isinstance(ref, Mapping):
        return parse_energy(ref, f"{where}: field 'energy'" if where else "energy table")
    if not isinstance(ref, (str, os.PathLike)):
        raise BenchUsageError(f"{where}: bad value {ref!r} for field 'energy': expected a "
                              "table name, a file path or an inline table")
    builtin = builtin_energy_tables()
    if isinstance(ref, str) and ref in builtin:
        path = builtin[ref]
    else:
        path = Path(ref)
        if folder is not None and not path.is_absolute():
            path = folder / path
        if path.exists():
            input_file(path, f"{where}: energy table")
        else:
            raise BenchUsageError(
                f"{where}: bad value '{ref}' for field 'energy': no such energy table; valid: "
                + ", ".join(sorted(builtin)) + ", or a path to a .toml/.json table")
    data, table_where, _, stem, _ = _read(path)
    return parse_energy(data, table_where, stem, origin=str(path))


# --------------------------------------------------------------------------- presets
def _parse_value(spec: OptionSpec, value: Any, where: str) -> Any:
    """Turn a file value into the option's typed value, with the file's own error wording."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (int, float, str)):
        text = str(value)
    else:
        raise BenchUsageError(f"{where}: bad value {value!r} for field '{spec.name}': expected "
                              f"{spec.type_name}")
    if spec.choices is not None:
        match = [c for c in spec.choices if c.lower() == text.lower()]
        if not match:
            raise BenchUsageError(f"{where}: bad value '{text}' for field '{spec.name}'; valid: "
                                  + ", ".join(spec.choices))
        text = match[0]
    try:
        return spec.type(text)
    except (ValueError, TypeError) as exc:
        raise BenchUsageError(f"{where}: bad value '{text}' for field '{spec.name}' "
                              f"({spec.type_name}): {exc}") from None


def parse_preset(data: Mapping[str, Any], specs: Sequence[OptionSpec], *, where: str,
                 default_name: str = "", folder: Path | None = None, check: Check | None = None,
                 origin: str = "", text: str = "") -> Preset:
    """Validate a preset's fields against the backend's options; raise on the first problem.

    ``energy`` sets every ``cost_*`` option from a table; a ``cost_*`` field given as
    well overrides that one level. ``check`` gets the full option dict (defaults
    filled in) for cross-option checks such as a buffer smaller than one array tile.
    """
    by_name = {s.name: s for s in specs}
    for key in data:
        if key not in by_name and key not in PRESET_META:
            raise _unknown(where, key, list(by_name) + list(PRESET_META))
    if "name" not in data and not default_name:
        raise BenchUsageError(f"{where}: missing field 'name'")
    name = _name(data.get("name", default_name), where)
    description = data.get("description", "")
    if not isinstance(description, str):
        raise BenchUsageError(f"{where}: bad value {description!r} for field 'description': "
                              "expected text")
    values: dict[str, Any] = {}
    energy = None
    if "energy" in data:
        energy = load_energy(data["energy"], folder, where)
        for level, cost in energy.costs.items():
            if f"cost_{level}" in by_name:
                values[f"cost_{level}"] = by_name[f"cost_{level}"].type(str(cost))
    for key, value in data.items():
        if key in by_name:
            values[key] = _parse_value(by_name[key], value, where)
    if check is not None:
        try:
            check({**{s.name: s.default for s in specs}, **values})
        except BenchUsageError as exc:
            raise BenchUsageError(f"{where}: {exc.message}") from None
    return Preset(name=name, values=values, description=description, energy=energy,
                  origin=origin or where, text=text)


def load_preset(source: Any, specs: Sequence[OptionSpec], check: Check | None = None,
                origin: str = "") -> Preset:
    """Read and validate one preset from a file path, a traversable or a dict."""
    data, where, folder, stem, text = _read(source)
    where = where or (f"preset from {origin}" if origin else "preset")
    return parse_preset(data, specs, where=where, default_name=stem, folder=folder, check=check,
                        origin=origin or where, text=text)


def _invalid(source: Any, error: str, origin: str) -> Preset:
    """A preset that failed validation keeps a name (its own, if the file can be read;
    else the file's) so that using it reports the error instead of 'unknown backend'."""
    name = ""
    try:
        data, _, _, name, _ = _read(source)
        if isinstance(data.get("name"), str) and NAME_RE.fullmatch(data["name"]):
            name = data["name"]
    except BenchUsageError:
        if isinstance(source, (str, os.PathLike)):
            name = Path(source).stem
    if not NAME_RE.fullmatch(name or ""):
        name = "invalid-preset"
    return Preset(name=name, origin=origin, error=error)


def env_sources(value: str | None = None) -> list[Path]:
    """Files named by ``BENCH_ACCEL_PRESETS``: paths separated by ``os.pathsep``; a folder
    stands for every .toml and .json file in it."""
    value = os.environ.get(PRESETS_ENV, "") if value is None else value
    out: list[Path] = []
    for entry in (e.strip() for e in value.split(os.pathsep)):
        if not entry:
            continue
        path = Path(entry).expanduser()
        if path.is_dir():
            out.extend(sorted((p for p in path.iterdir() if p.suffix.lower() in SUFFIXES),
                              key=lambda p: _natural(p.name)))
        else:
            out.append(path)
    return out


def builtin_preset_files() -> list[Path]:
    return sorted(PRESET_DIR.glob("*.toml"), key=lambda p: _natural(p.name))


def discover(specs: Sequence[OptionSpec], check: Check | None = None,
             plugin_sources: Sequence[tuple[str, Sequence[Any]]] = (),
             env: str | None = None) -> list[Preset]:
    """Every preset: the built-in files, then those plugins return, then the user's files
    from ``BENCH_ACCEL_PRESETS``. Invalid ones are returned with their ``error`` set
    (never raised), so one bad file never hides the others."""
    sources: list[tuple[Any, str]] = [(p, "built-in") for p in builtin_preset_files()]
    for plugin, items in plugin_sources:
        if isinstance(items, (str, os.PathLike, Mapping)):
            items = [items]
        sources.extend((item, f"plugin {plugin}") for item in items or [])
    sources.extend((p, PRESETS_ENV) for p in env_sources(env))
    presets = []
    for source, origin in sources:
        try:
            preset = load_preset(source, specs, check, origin=origin)
        except BenchUsageError as exc:
            preset = _invalid(source, exc.message, origin)
        presets.append(preset)
    return presets


def render_toml(preset: Preset) -> str:
    """A preset as TOML text, for presets that came from a dict rather than a file."""
    lines = [f'name = "{preset.name}"']
    if preset.description:
        lines.append(f"description = {json.dumps(preset.description)}")
    lines += [f"{key} = {json.dumps(value)}" for key, value in preset.values.items()]
    return "\n".join(lines) + "\n"
