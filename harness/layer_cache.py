"""Layer tables traced once: a content-addressed cache on disk, so warm runs never import torch.

Tracing a network (:func:`harness.layers.model_layers`) imports torch and
builds the model, about 1.5 s, while simulating it takes milliseconds. The
table depends only on what built it, so it is stored under a key made of:

- the model name and the input size (tables are traced at batch 1 and scaled,
  :func:`harness.layers.with_batch`, so the batch is not in the key);
- the builder: a SHA-256 of the source of the module that defines it and of
  every module of the same top-level package it imports (found in the text,
  imports inside function bodies included), plus the plugin's distribution
  and version when the plugin manager knows them;
- the tracer: the harness version, a SHA-256 of :mod:`harness.layers`, the
  torch version and :data:`TABLE_FORMAT`.

Change any of these and the key changes, so the old entry is never read
again (``bench cache clear --stale`` removes such entries). A builder whose
source cannot be read (defined in ``__main__`` or in C) is never cached.

One entry is one file: a JSON header line (format, the full key, the payload's
SHA-256 and length), then the table as JSON. It is written to a temporary file
and renamed, so readers never see half of it; on reading, the header must match
the expected key and the payload its checksum, or the entry is rebuilt with a
one-line warning. It is never trusted otherwise.

Location: ``$BENCH_LAYER_CACHE``, else ``$BENCH_CACHE/layers`` (``BENCH_CACHE``
is the root the optimizer plugins already use for their caches, forwarded to
MPI ranks), else ``$XDG_CACHE_HOME/bench/layers``, else
``~/.cache/bench/layers``. ``BENCH_LAYER_CACHE=off`` (or ``bench --layer-cache
off``) turns the cache off.
"""
from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

from harness.layers import Layer, model_layers, with_batch
from harness.locations import CACHE_ROOT_ENV as ROOT_ENV, cache_root

try:  # CPython's own SHA-256: the same digests as hashlib's, without loading OpenSSL
    from _sha256 import sha256  # (hashlib's first import costs 2-10 ms here, every warm run)
except ImportError:  # pragma: no cover - Python 3.12+ calls it _sha2; else hashlib's
    try:
        from _sha2 import sha256
    except ImportError:
        from hashlib import sha256

CACHE_ENV = "BENCH_LAYER_CACHE"
OFF = "off"
TABLE_FORMAT = 1  # bump when the file layout or the Layer fields change
SUFFIX = ".table.json"

_TUPLE_FIELDS = ("in_shape", "out_shape", "kernel", "stride", "padding")
_FROM_IMPORT = re.compile(r"^[ \t]*from[ \t]+(\.*[\w.]*)[ \t]+import[ \t]+(\([^)]*\)|[^\n#;]*)",
                          re.M)
_IMPORT = re.compile(r"^[ \t]*import[ \t]+([^\n#;]+)", re.M)


class CorruptEntry(Exception):
    """A cache file that cannot be trusted; the message says why."""


# --------------------------------------------------------------------------- location
def cache_dir() -> Path | None:
    """Where layer tables live (see the module docstring), or None when the cache is off."""
    explicit = os.environ.get(CACHE_ENV, "").strip()
    if explicit.lower() == OFF:
        return None
    if explicit:
        return Path(explicit).expanduser()
    return cache_root() / "layers"


def location_source() -> str:
    """Which setting chose :func:`cache_dir` (for ``bench cache info``)."""
    if os.environ.get(CACHE_ENV, "").strip():
        return f"${CACHE_ENV} or --layer-cache"
    if os.environ.get(ROOT_ENV, "").strip():
        return f"${ROOT_ENV}/layers"
    if os.environ.get("XDG_CACHE_HOME", "").strip():
        return "$XDG_CACHE_HOME/bench/layers"
    return "the default"


# --------------------------------------------------------------------------- the key
def _sha256_file(path: str) -> str:
    with open(path, "rb") as fh:
        return sha256(fh.read()).hexdigest()


def _imported_names(source: str, package: str) -> set[str]:
    """Dotted module names a source file imports (relative ones resolved against ``package``)."""
    names: set[str] = set()
    for match in _FROM_IMPORT.finditer(source):
        base, targets = match.group(1), match.group(2)
        if base.startswith("."):
            dots = len(base) - len(base.lstrip("."))
            parent = package.rsplit(".", dots - 1)[0] if dots > 1 else package
            base = f"{parent}.{base.lstrip('.')}".rstrip(".") if parent else base.lstrip(".")
        names.add(base)
        for target in targets.strip("()").replace("\n", " ").split(","):
            word = target.split()[0] if target.split() else ""
            if word:
                names.add(f"{base}.{word}")  # `from pkg import submodule`
    for match in _IMPORT.finditer(source):
        for target in match.group(1).split(","):
            if target.split():
                names.add(target.split()[0])
    return names


def _module_file(name: str, root: Path) -> Path | None:
    """The source file of module ``name`` under the import root ``root``, without importing it."""
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@lru_cache(maxsize=None)
def module_fingerprint(module_name: str) -> str | None:
    """SHA-256 over a module's source and the sources of the modules of its own top-level
    package that it imports, transitively; None when the module has no source file."""
    module = sys.modules.get(module_name)
    path = getattr(module, "__file__", None)
    if module_name == "__main__" or not path or not path.endswith(".py"):
        return None
    top = module_name.split(".")[0]
    depth = module_name.count(".") + (1 if path.endswith("__init__.py") else 0)
    root = Path(path).resolve().parents[depth]
    digest = sha256()
    seen: set[str] = set()
    todo = [(module_name, Path(path))]
    while todo:
        name, file = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        data = file.read_bytes()
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)
        package = name if file.name == "__init__.py" else name.rpartition(".")[0]
        for dep in sorted(_imported_names(data.decode("utf-8", "replace"), package)):
            if dep.split(".")[0] == top and dep not in seen:
                dep_file = _module_file(dep, root)
                if dep_file is not None:
                    todo.append((dep, dep_file))
    return digest.hexdigest()


def _builder_module(builder: Any) -> str | None:
    while hasattr(builder, "func"):  # functools.partial
        builder = builder.func
    return getattr(builder, "__module__", None)


# Model spec name -> (the registered spec, "distribution version"), told by the plugin
# manager as it lists models. The cache does not ask the manager: the manager imports
# the specs, whose RunRequest.layers() reads this cache, so that would be a cycle.
_registered: dict[str, tuple[Any, str]] = {}


def note_distribution(spec: Any, distribution: str) -> None:
    """Record which installed distribution registered model ``spec`` (the plugin manager
    calls this), so its cached tables are keyed by that distribution's version."""
    _registered[spec.name.lower()] = (spec, distribution)


def _distribution(spec: Any) -> str:
    """``name version`` of the distribution that registered ``spec``, when known."""
    spec_and_distribution = _registered.get(spec.name.lower())
    if spec_and_distribution is None or spec_and_distribution[0] is not spec:
        return ""
    return spec_and_distribution[1]


@lru_cache(maxsize=1)
def _tracer() -> dict[str, Any]:
    from harness import version
    from harness.environment import package_version

    return {"format": TABLE_FORMAT, "harness": version.__version__,
            "layers_py": _sha256_file(sys.modules["harness.layers"].__file__),
            "torch": package_version("torch")}


def table_key(spec: Any, input_size: Sequence[int]) -> dict[str, Any] | None:
    """Everything a cached table of ``spec`` at ``input_size`` depends on, or None when
    the builder's source cannot be fingerprinted (such tables are never cached)."""
    module = _builder_module(spec.builder)
    source = module_fingerprint(module) if module else None
    if source is None:
        return None
    return {**_tracer(), "model": spec.name, "input_size": [int(s) for s in input_size],
            "builder_module": module, "builder_source": source,
            "distribution": _distribution(spec)}


def _digest(key: dict[str, Any]) -> str:
    return sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]


def entry_path(directory: Path, key: dict[str, Any]) -> Path:
    """``<model>_<CxHxW>_<digest>.table.json``: readable names, content-addressed."""
    model = re.sub(r"[^\w.+-]", "_", key["model"])
    size = "x".join(str(s) for s in key["input_size"])
    return directory / f"{model}_{size}_{_digest(key)}{SUFFIX}"


# --------------------------------------------------------------------------- entries
@dataclass
class Entry:
    """One cache file as ``bench cache info`` lists it."""

    path: Path
    bytes: int
    header: dict[str, Any] | None  # None when the header cannot be read
    error: str = ""

    @property
    def key(self) -> dict[str, Any]:
        return (self.header or {}).get("key", {})


def _row_to_layer(row: dict[str, Any]) -> Layer:
    row = dict(row)
    for name in _TUPLE_FIELDS:
        row[name] = tuple(row[name])
    row["extra"] = dict(row.get("extra") or {})
    return Layer(**row)


def read_header(path: Path) -> tuple[dict[str, Any], bytes]:
    """The header and the raw payload of a cache file; CorruptEntry if the file is damaged."""
    data = path.read_bytes()
    head, sep, payload = data.partition(b"\n")
    if not sep:
        raise CorruptEntry("no header line")
    try:
        header = json.loads(head)
    except ValueError:
        raise CorruptEntry("unreadable header") from None
    if not isinstance(header, dict) or header.get("format") != TABLE_FORMAT:
        raise CorruptEntry(f"format {header.get('format') if isinstance(header, dict) else '?'}"
                           f", expected {TABLE_FORMAT}")
    if len(payload) != header.get("payload_bytes"):
        raise CorruptEntry(f"truncated: {len(payload)} of {header.get('payload_bytes')} bytes")
    if sha256(payload).hexdigest() != header.get("payload_sha256"):
        raise CorruptEntry("checksum mismatch")
    return header, payload


def read_layers(path: Path, key: dict[str, Any]) -> tuple[list[dict[str, Any]], list[Layer]]:
    """The rows stored at ``path`` for ``key`` and the layers they make; CorruptEntry unless
    every check passes."""
    header, payload = read_header(path)
    if header.get("key") != key:
        raise CorruptEntry("its key does not match the file name")
    try:
        rows = json.loads(payload)
        return rows, [_row_to_layer(r) for r in rows]
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise CorruptEntry(f"bad rows ({type(exc).__name__})") from None


def write_entry(path: Path, key: dict[str, Any], layers: Sequence[Layer]) -> None:
    """Write atomically (temporary file, then rename): readers see all of it or none."""
    import tempfile

    from harness.environment import utc_now

    payload = json.dumps([layer.as_dict() for layer in layers], separators=(",", ":")).encode()
    header = {"format": TABLE_FORMAT, "key": key, "layers": len(layers),
              "created_utc": utc_now(), "payload_bytes": len(payload),
              "payload_sha256": sha256(payload).hexdigest()}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=SUFFIX)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(json.dumps(header, sort_keys=True).encode() + b"\n" + payload)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a cache is readable like any file
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def entries(directory: Path | None = None) -> list[Entry]:
    """Every cache file in ``directory`` (default :func:`cache_dir`), damaged ones included."""
    directory = cache_dir() if directory is None else directory
    if directory is None or not directory.is_dir():
        return []
    found = []
    for path in sorted(directory.glob(f"*{SUFFIX}")):
        if path.name.startswith(".tmp-"):
            continue
        try:
            header, _ = read_header(path)
            found.append(Entry(path, path.stat().st_size, header))
        except (CorruptEntry, OSError) as exc:
            found.append(Entry(path, path.stat().st_size if path.exists() else 0, None, str(exc)))
    return found


# --------------------------------------------------------------------------- lookup
_memory: dict[str, list[dict[str, Any]]] = {}  # path -> rows, for processes that run many cells
_warned_unwritable = False


def _warn(text: str) -> None:
    print(f"warning: {text}", file=sys.stderr)


def is_cached(spec: Any, input_size: Sequence[int]) -> bool:
    """True when a table for ``spec`` at ``input_size`` is on disk (not checked further)."""
    directory, key = cache_dir(), table_key(spec, input_size)
    return directory is not None and key is not None and entry_path(directory, key).is_file()


def cached_layers(spec: Any, input_size: Sequence[int], batch: int = 1) -> list[Layer]:
    """:func:`harness.layers.model_layers`, traced once per key and read from disk after.

    A damaged entry is rebuilt with a one-line warning on stderr; a cache folder
    that cannot be written is a warning too, and the table is still returned.
    """
    global _warned_unwritable
    directory = cache_dir()
    key = table_key(spec, input_size) if directory is not None else None
    if directory is None or key is None:
        return model_layers(spec, tuple(input_size), batch)
    path = entry_path(directory, key)
    rows = _memory.get(str(path))
    if rows is not None:
        return with_batch([_row_to_layer(r) for r in rows], batch)
    try:
        rows, layers = read_layers(path, key)
    except FileNotFoundError:
        rows = None
    except (CorruptEntry, OSError) as exc:
        rows = None
        _warn(f"layer-table cache entry {path} is damaged ({exc}); rebuilding it")
    if rows is None:
        layers = model_layers(spec, tuple(input_size), 1)
        try:
            write_entry(path, key, layers)
        except OSError as exc:
            if not _warned_unwritable:
                _warned_unwritable = True
                _warn(f"cannot write the layer-table cache in {directory} ({exc.strerror}); "
                      f"tables are traced every time (set {CACHE_ENV})")
        rows = [layer.as_dict() for layer in layers]
    _memory[str(path)] = rows
    return with_batch(layers, batch)
