"""Run many (model, hardware point) cells, in parallel, and hand back results as they finish.

This is the engine behind ``bench matrix`` (and anything else that sweeps a
design space). Its whole API:

- :func:`parse_vary` turns ``[BACKEND:]KEY=V1,V2,...`` into a :class:`Variation`.
- :func:`hardware_points` expands backends x fixed options x the cartesian
  product of the variations into :class:`HardwarePoint` s (one per backend and
  combination, labelled ``accel-8x8 dataflow=ws``), every option checked before
  anything runs.
- :func:`grid` pairs models with points into :class:`Cell` s.
- :func:`run_cells` runs the cells and yields a :class:`CellResult` for each
  as soon as it is done (completion order; ``CellResult.index`` is the cell's
  position in the input).

Before the cells run, every layer table they need and the cache lacks is
traced once, in ``jobs`` joblib (loky) worker processes (one task per model and
input size: the heavy part, torch), so no two processes trace the same network;
after that a cell costs its simulation plus a cache read, ~10 ms. Simulator
cells then run in the workers, in chunks that share a table, when there are
enough of them to pay for the workers (:data:`CELLS_PER_WORKER`), else here.
Cells on a backend whose ``HardwareSpec.timing_sensitive`` is set (``cpu``) run
one at a time in the calling process, after the others, so nothing competes
with their clock. One failing cell is a :class:`CellResult` with ``error`` set,
never an exception that loses the others.
"""
from __future__ import annotations

import itertools
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Sequence

from harness.errors import BenchUsageError, unknown_choice

VARY_SYNTAX = "[BACKEND:]KEY=V1,V2,..."


# --------------------------------------------------------------------------- options
@dataclass(frozen=True)
class Variation:
    """One ``--vary``: the values one backend option takes, one point each."""

    key: str
    """The backend option, e.g. ``dataflow``."""
    values: tuple[str, ...]
    """Its values as command-line text, one hardware point each, e.g. ``("ws", "os")``."""
    backend: str | None = None
    """The one backend it applies to; None: every chosen backend that has the option."""

    def __str__(self) -> str:
        scope = f"{self.backend}:" if self.backend else ""
        return f"{scope}{self.key}={','.join(self.values)}"


def _split_scope(text: str) -> tuple[str | None, str]:
    """``NAME:rest`` -> (NAME, rest) when NAME holds no '='; else (None, text)."""
    scope, sep, rest = text.partition(":")
    if sep and "=" not in scope and scope.strip():
        return scope.strip(), rest
    return None, text


def parse_vary(text: str) -> Variation:
    """``[BACKEND:]KEY=V1,V2,...`` -> :class:`Variation`; bad syntax is a BenchUsageError."""
    backend, rest = _split_scope(text)
    key, sep, values = rest.partition("=")
    key = key.strip()
    items = tuple(v.strip() for v in values.split(","))
    if not sep or not key or not all(items):
        raise BenchUsageError(f"--vary '{text}' is not {VARY_SYNTAX} (e.g. dataflow=ws,os)")
    duplicates = sorted({v for v in items if items.count(v) > 1})
    if duplicates:
        raise BenchUsageError(f"--vary '{text}' repeats {', '.join(duplicates)}")
    return Variation(key=key, values=items, backend=backend)


def options_per_backend(pairs: Sequence[str], backends: Sequence[Any]) -> dict[str, list[str]]:
    """Split ``--hw-opt`` values: ``NAME:key=value`` goes to one backend, ``key=value``
    to every backend that has that option (and must fit at least one)."""
    per: dict[str, list[str]] = {b.name: [] for b in backends}
    for pair in pairs:
        scope, rest = _split_scope(pair)
        if scope is not None:
            per[_backend_named(scope, backends, "--hw-opt").name].append(rest)
            continue
        key = pair.partition("=")[0].strip()
        takers = [b for b in backends if any(o.name == key for o in b.options)]
        if not takers:
            valid = sorted({o.name for b in backends for o in b.options})
            raise unknown_choice("option for the chosen backends", key, valid)
        for b in takers:
            per[b.name].append(pair)
    return per


def _backend_named(name: str, backends: Sequence[Any], where: str) -> Any:
    match = [b for b in backends if b.name.lower() == name.lower()]
    if not match:
        raise unknown_choice(f"backend in {where}", name, [b.name for b in backends])
    return match[0]


@dataclass(frozen=True)
class HardwarePoint:
    """One backend with one set of options: a column of a matrix, a point of a design space."""

    backend: str
    """The backend's name, e.g. ``accel-8x8``."""
    options: tuple[str, ...] = ()
    """Every option of this point as ``key=value`` text (fixed ones, then varied ones)."""
    varied: tuple[tuple[str, str], ...] = ()
    """The ``(key, value)`` pairs ``--vary`` chose for this point (they make the label)."""

    @property
    def label(self) -> str:
        """``accel-8x8`` or ``accel-8x8 dataflow=ws``: the backend and the varied values."""
        return " ".join([self.backend, *(f"{k}={v}" for k, v in self.varied)])


def hardware_points(backends: Sequence[Any], hw_opts: Sequence[str] = (),
                    vary: Sequence[Variation | str] = ()) -> list[HardwarePoint]:
    """Every backend x every combination of the variations that apply to it.

    ``backends`` are :class:`harness.HardwareSpec` s. A variation applies to its
    named backend, or (unscoped) to every backend that has the option; one no
    chosen backend has, or a key also fixed by ``hw_opts``, is a BenchUsageError.
    Every point's options are parsed here, so a bad value fails before any run.
    """
    variations = [parse_vary(v) if isinstance(v, str) else v for v in vary]
    fixed = options_per_backend(hw_opts, backends)
    applies: dict[str, list[Variation]] = {b.name: [] for b in backends}
    for var in variations:
        if var.backend is not None:
            target = _backend_named(var.backend, backends, "--vary")
            if not any(o.name == var.key for o in target.options):
                raise unknown_choice(f"option for hardware '{target.name}' in --vary", var.key,
                                     [o.name for o in target.options])
            takers = [target]
        else:
            takers = [b for b in backends if any(o.name == var.key for o in b.options)]
            if not takers:
                valid = sorted({o.name for b in backends for o in b.options})
                raise unknown_choice("option for the chosen backends in --vary", var.key, valid)
        for b in takers:
            if any(v.key == var.key for v in applies[b.name]):
                raise BenchUsageError(f"--vary sets '{var.key}' twice for hardware '{b.name}'")
            if any(p.partition("=")[0].strip() == var.key for p in fixed[b.name]):
                raise BenchUsageError(f"'{var.key}' is both in --hw-opt and --vary for "
                                      f"hardware '{b.name}'; keep one")
            applies[b.name].append(var)
    points = []
    for backend in backends:
        own = applies[backend.name]
        for combo in itertools.product(*(v.values for v in own)):
            varied = tuple((v.key, value) for v, value in zip(own, combo))
            options = tuple(fixed[backend.name]) + tuple(f"{k}={v}" for k, v in varied)
            backend.parse_options(list(options))  # a bad value fails here, before any run
            points.append(HardwarePoint(backend.name, options, varied))
    return points


# --------------------------------------------------------------------------- cells
@dataclass(frozen=True)
class Cell:
    """One run to make: a model on a hardware point at a batch and input size."""

    model: str
    """The model's name, as ``bench list models`` shows it."""
    point: HardwarePoint
    """The hardware and its options."""
    batch: int = 1
    """Batch size."""
    input_size: int | None = None
    """Input height and width; None: the model's own."""
    per_layer: bool = False
    """Keep the backend's per-layer rows (they can be hundreds of rows per cell; without
    this they are dropped in the worker, before they travel back)."""


def grid(models: Iterable[str], points: Iterable[HardwarePoint], batch: int = 1,
         input_size: int | None = None, per_layer: bool = False) -> list[Cell]:
    """Every model on every point, point-major (all models of the first point first)."""
    models = list(models)
    return [Cell(m, p, batch, input_size, per_layer) for p in points for m in models]


@dataclass
class CellResult:
    """What one cell produced: the fields to store, or the error that stopped it."""

    index: int
    """The cell's position in the list given to :func:`run_cells`."""
    cell: Cell
    """The cell that ran."""
    fields: dict[str, Any] | None = None
    """``harness.cli.run_one``'s record fields: pass them to ``record_result`` to store."""
    result: Any = None
    """The backend's :class:`harness.RunResult` (None when the cell failed)."""
    error: str | None = None
    """One line saying why the cell failed; None when it ran."""
    seconds: float = 0.0
    """Wall time of the run in its worker, layer-table lookup included."""
    warnings: list[str] = field(default_factory=list)
    """The backend's warnings for this run."""

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def summary(self) -> dict[str, Any]:
        return self.result.summary if self.result is not None else {}


def run_cell(index: int, cell: Cell) -> CellResult:
    """Run one cell here and now (what every worker calls); errors become ``error``."""
    from harness.cli import run_one

    start = time.perf_counter()
    try:
        fields, result = run_one(cell.model, cell.point.backend, batch=cell.batch,
                                 input_size=cell.input_size, hw_opts=list(cell.point.options),
                                 per_layer=cell.per_layer, quiet=True)
        if not cell.per_layer:  # the record keeps run_one's compact rows, if any
            result.layers = []
    except Exception as exc:  # one broken cell must not lose the others
        text = " ".join(str(exc).split())
        error = text if isinstance(exc, BenchUsageError) else f"{type(exc).__name__}: {text}"
        return CellResult(index, cell, error=error, seconds=time.perf_counter() - start)
    return CellResult(index, cell, fields=fields, result=result,
                      seconds=time.perf_counter() - start, warnings=list(result.warnings))


def _trace_table(model: str, input_size: int | None) -> None:
    """Put one layer table in the cache (a worker task); failures are left to the cells."""
    from harness.layer_cache import cached_layers
    from harness.plugins.manager import get_plugin_manager

    try:
        spec = get_plugin_manager().model(model)
        cached_layers(spec, _size(spec, input_size))
    except Exception:  # the cells that need this table report the error themselves
        pass


def _size(spec: Any, input_size: int | None) -> tuple[int, ...]:
    return spec.sized(input_size)


def missing_tables(cells: Sequence[Cell]) -> list[tuple[str, int | None]]:
    """The (model, input size) pairs the cells need whose layer table is not cached."""
    from harness.layer_cache import is_cached
    from harness.plugins.manager import get_plugin_manager

    pm = get_plugin_manager()
    missing = []
    for model, size in dict.fromkeys((c.model, c.input_size) for c in cells):
        try:
            spec = pm.model(model)
        except BenchUsageError:
            continue  # the cell reports the unknown name
        if not is_cached(spec, _size(spec, size)):
            missing.append((model, size))
    return missing


def default_jobs() -> int:
    """One worker per usable core."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


# Below this many cells per worker, warm simulator cells (~10 ms each) run in this
# process: starting a worker and shipping results back cost more than the split saves
# (measured on 2 cores: 180 warm cells, 1.8 s here vs 4.1 s on 2 workers under load).
CELLS_PER_WORKER = 150


def cell_workers(n_cells: int, jobs: int, min_cells_per_worker: int = CELLS_PER_WORKER) -> int:
    """How many processes :func:`run_cells` spreads ``n_cells`` simulator cells over (1: here)."""
    return jobs if jobs > 1 and n_cells >= max(2, min_cells_per_worker * jobs) else 1


def _run_chunk(chunk: list[tuple[int, Cell]]) -> list[CellResult]:
    """Cells that share a layer table, run in one worker task (the table is read once)."""
    return [run_cell(i, c) for i, c in chunk]


def _chunks(indexed: list[tuple[int, Cell]], jobs: int) -> list[list[tuple[int, Cell]]]:
    """Group cells by model and input size, in pieces small enough to balance ``jobs``."""
    groups: dict[tuple[str, int | None], list[tuple[int, Cell]]] = {}
    for item in indexed:
        groups.setdefault((item[1].model, item[1].input_size), []).append(item)
    size = max(1, len(indexed) // (4 * jobs))
    return [group[k:k + size] for group in groups.values() for k in range(0, len(group), size)]


def run_cells(cells: Sequence[Cell], jobs: int | None = None,
              min_cells_per_worker: int = CELLS_PER_WORKER) -> Iterator[CellResult]:
    """Run ``cells`` and yield each :class:`CellResult` as soon as it is done.

    ``jobs``: worker processes (default: one per usable core; 1 runs everything in
    this process). Layer tables the cells need and the cache lacks are traced first,
    in ``jobs`` workers. Cells on backends that are not timing sensitive then run in
    workers too, in chunks that share a table, when there are at least
    ``min_cells_per_worker`` per worker (0: always); fewer run here, where they are
    faster. Timing-sensitive cells always run here, one at a time, last. Unknown
    model or backend names come back as failed cells; check names first (the plugin
    manager's ``model()`` / ``backend()``) to fail early instead.
    """
    from harness.plugins.manager import get_plugin_manager

    jobs = default_jobs() if jobs is None else jobs
    if jobs < 1:
        raise BenchUsageError(f"jobs must be a positive integer, not {jobs}")
    pm = get_plugin_manager()
    hardware = pm.hardware()

    def timed(cell: Cell) -> bool:
        spec = hardware.get(cell.point.backend.lower())
        return bool(spec is not None and spec.timing_sensitive)

    indexed = list(enumerate(cells))
    parallel = [(i, c) for i, c in indexed if not timed(c)]
    sequential = [(i, c) for i, c in indexed if timed(c)]
    missing = missing_tables([c for _, c in parallel]) if jobs > 1 else []
    spread = cell_workers(len(parallel), jobs, min_cells_per_worker) > 1
    if len(missing) > 1 or spread:
        from joblib import Parallel, delayed

        chunks = _chunks(parallel, jobs) if spread else []
        with Parallel(n_jobs=jobs, return_as="generator_unordered") as run:
            if len(missing) > 1:
                for _ in run(delayed(_trace_table)(m, s) for m, s in missing):
                    pass
            for results in run(delayed(_run_chunk)(chunk) for chunk in chunks):
                yield from results
    if not spread:
        sequential = parallel + sequential
    for i, cell in sequential:
        yield run_cell(i, cell)


# --------------------------------------------------------------------------- progress
class CellProgress:
    """``[12/180] 4.1 s  1.0-SqNxt-23 on accel-8x8 dataflow=ws`` on stderr, redrawn in place.

    Drawn only when stderr is a terminal (``force`` draws anyway, one line per
    update, for logs). Call :meth:`clear` before printing to stdout on the
    same terminal and :meth:`update` after; :meth:`close` at the end.
    """

    def __init__(self, total: int, quiet: bool = False, force: bool = False,
                 stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.enabled = not quiet and (force or self.tty)
        self.total, self.done, self.failed = total, 0, 0
        self.start = time.monotonic()
        self.last = ""

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def update(self, result: CellResult | None = None) -> None:
        if result is not None:
            self.done += 1
            self.failed += 0 if result.ok else 1
            self.last = f"{result.cell.model} on {result.cell.point.label}"
        if not self.enabled:
            return
        failed = f", {self.failed} failed" if self.failed else ""
        text = f"[{self.done}/{self.total}{failed}] {self.elapsed():.1f} s  {self.last}"
        if self.tty:
            self.stream.write("\r" + text[:100].ljust(100))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def clear(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\r" + " " * 100 + "\r")
            self.stream.flush()

    def close(self) -> None:
        self.clear()

