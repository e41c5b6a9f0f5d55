"""What plugins hand to the core: plain dataclasses, importable without torch or MPI.

Every hook in :mod:`harness.plugins.hookspecs` returns a list of one of these.
They carry metadata (names, options, descriptions) eagerly and do the heavy
work (building a network, running a backend) only when called, so listing
what is installed stays fast.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

from harness.errors import BenchUsageError, unknown_choice

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch.nn as nn

    from harness.layers import Layer


# --------------------------------------------------------------------------- options
def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true or false")


@dataclass(frozen=True)
class OptionSpec:
    """One ``key=value`` option a backend, optimizer or problem accepts.

    ``type`` turns the command-line text into a value and raises ``ValueError``
    with a short reason when the text is not valid. ``choices`` restricts the
    value to a fixed set.
    """

    name: str
    """The key in ``--hw-opt key=value`` (no spaces, commas or ``=``)."""
    type: Callable[[str], Any]
    """Turns the text after ``=`` into the value; raises ``ValueError("short reason")``
    for bad text, which ``bench`` prints as a one-line error (exit code 2). Use
    ``int``, ``float``, ``str``, ``harness.specs.parse_bool`` or your own function."""
    default: Any
    """The value the run gets when the option is not given (already a value, not text).
    ``bench plugin check`` checks that ``type(str(default)) == default``."""
    help: str = ""
    """One line for ``bench list hardware`` (say the unit)."""
    choices: tuple[str, ...] | None = None
    """When set, the only texts accepted (case-insensitive); ``type`` then converts them."""

    @property
    def type_name(self) -> str:
        """What ``bench list`` shows as the type: the choices, or the type's name."""
        if self.choices:
            return "|".join(self.choices)
        return getattr(self.type, "__name__", str(self.type)).replace("parse_", "")

    def parse(self, text: str, owner: str = "") -> Any:
        """The value of ``text``; bad text raises :class:`BenchUsageError` naming the option."""
        where = f"{owner} option" if owner else "option"
        if self.choices is not None:
            if text.lower() not in {c.lower() for c in self.choices}:
                raise unknown_choice(f"value for {where} '{self.name}'", text, self.choices)
            text = next(c for c in self.choices if c.lower() == text.lower())
        try:
            return self.type(text)
        except (ValueError, TypeError) as exc:
            raise BenchUsageError(
                f"bad value '{text}' for {where} '{self.name}' ({self.type_name}): {exc}"
            ) from None


def parse_options(
    specs: Sequence[OptionSpec], pairs: Sequence[str] | dict[str, str], owner: str
) -> dict[str, Any]:
    """Turn ``["key=value", ...]`` into a dict of typed values with defaults filled in.

    Unknown keys and malformed pairs raise :class:`BenchUsageError` naming the valid keys.
    """
    by_name = {s.name: s for s in specs}
    values = {s.name: s.default for s in specs}
    items: list[tuple[str, str]] = []
    if isinstance(pairs, dict):
        items = [(k, str(v)) for k, v in pairs.items()]
    else:
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep or not key.strip():
                raise BenchUsageError(
                    f"option '{pair}' for {owner} is not key=value; valid keys: "
                    + (", ".join(sorted(by_name)) or "none")
                )
            items.append((key.strip(), value.strip()))
    for key, value in items:
        if key not in by_name:
            raise unknown_choice(f"option for {owner}", key, by_name)
        values[key] = by_name[key].parse(value, owner)
    return values


# --------------------------------------------------------------------------- models
@dataclass(frozen=True)
class ReportedMetric:
    """A figure a paper reports for a model (never measured by this harness)."""

    name: str
    """Which figure, e.g. ``"top1"`` or ``"top5"`` (``bench list models`` shows these two)."""
    value: float
    """The figure as the paper reports it, e.g. ``59.05`` (percent)."""
    source: str
    """The citation, e.g. ``"Gholami et al., SqueezeNext, CVPR-W 2018, Table 2"``."""
    dataset: str = "ImageNet"
    """The data set the figure was measured on."""


@dataclass(frozen=True)
class ModelSpec:
    """A network a plugin offers.

    ``builder`` takes no arguments and returns a ``torch.nn.Module`` that maps a
    batch of shape ``(N, *input_size)`` to ``(N, num_classes)``. It must import
    torch itself, so that listing models does not.
    """

    name: str
    """Unique across plugins (compared case-insensitively); what ``--model`` takes."""
    family: str
    """A group name for ``bench list models``, e.g. ``"squeezenext"``."""
    builder: Callable[[], "nn.Module"]
    """No arguments; returns the ``torch.nn.Module`` (weights need not be trained). It must
    also work under ``with torch.device("meta")``, where ``bench plugin check`` and large
    ``--input-size`` runs build it. Import torch inside it, not at module level."""
    input_size: tuple[int, int, int] = (3, 224, 224)
    """One sample's input ``(C, H, W)``, no batch dimension. For a model with no spatial
    input (only fully connected layers) use ``(features, 1, 1)`` and start the network
    with ``nn.Flatten()``; ``--input-size S`` replaces ``H`` and ``W``."""
    num_classes: int = 1000
    """The width of the output, which must be ``(N, num_classes)``: the number of classes
    for a classifier, the number of outputs per sample for anything else (regression
    targets, an embedding's size). ``bench plugin check`` enforces it."""
    description: str = ""
    """One line for ``bench list models``."""
    reported: tuple[ReportedMetric, ...] = ()
    """Accuracies published for this network; ``bench`` never presents them as measured."""
    notes: str = ""
    """Caveats shown by ``bench list models``, e.g. ``"reconstruction: no official
    definition is published"``."""

    def build(self) -> "nn.Module":
        """Call ``builder``."""
        return self.builder()

    @property
    def flat_input(self) -> bool:
        """No height and width: ``(features,)`` or ``(features, 1, 1)``."""
        size = tuple(self.input_size)
        return len(size) != 3 or size[1:] == (1, 1)

    def sized(self, side: int | None) -> tuple[int, ...]:
        """The input at ``--input-size side`` (``None``: the model's own): ``(C, side, side)``.

        A flat-input model (``(features,)``, or ``(features, 1, 1)``) has no height and
        width to replace, so asking for another size is a one-line error.
        """
        from harness.errors import BenchUsageError

        size = tuple(self.input_size)
        if side is None or (len(size) == 3 and size[1:] == (side, side)):
            return size
        if self.flat_input:
            shape = f" ({'x'.join(map(str, size))})" if len(size) > 1 else ""
            raise BenchUsageError(
                f"model '{self.name}' takes a flat input of {size[0]} features{shape}, no "
                "height or width, so --input-size does not apply; drop it")
        return (size[0], side, side)


# --------------------------------------------------------------------------- hardware
@dataclass
class RunRequest:
    """Everything a hardware backend needs for one run."""

    model: ModelSpec
    """The model to run."""
    batch: int
    """Samples per batch (``--batch``)."""
    input_size: tuple[int, int, int]
    """One sample's input ``(C, H, W)``: the model's own, or ``--input-size``."""
    options: dict[str, Any]
    """Every option of the backend by name, parsed by its ``OptionSpec.type``, defaults
    filled in."""
    per_layer: bool = False
    """True with ``bench run --layers``: the user asked for the per-layer rows."""
    quiet: bool = False
    """True with ``--quiet``: print nothing."""
    progress: Callable[[int, int, str], None] | None = None
    """Long runs call ``progress(done, total, label)``; the CLI draws a bar. May be None."""
    _layers: list["Layer"] | None = None
    """The layer table once :meth:`layers` has built it (internal)."""

    def layers(self) -> list["Layer"]:
        """The model's layer table at this batch and input size (built once per request,
        traced once per model and input size: :mod:`harness.layer_cache`)."""
        if self._layers is None:
            from harness.layer_cache import cached_layers

            self._layers = cached_layers(self.model, self.input_size, batch=self.batch)
        return self._layers


@dataclass
class RunResult:
    """What a backend returns: headline figures, optional per-layer rows, raw samples."""

    summary: dict[str, Any]
    """Headline figures by name. Put one batch's latency in ``time_s`` (and energy in
    ``energy_j`` when known) so ``bench matrix`` can compare backends."""
    layers: list[dict[str, Any]] = field(default_factory=list)
    """One dict per layer when ``RunRequest.per_layer`` is set (``bench run --layers``)."""
    samples: list[float] = field(default_factory=list)
    """Raw measurements (e.g. seconds per batch) that ``bench compare`` tests for significance."""
    warnings: list[str] = field(default_factory=list)
    """One-line warnings ``bench run`` prints to stderr."""
    layer_columns: list[str] | None = None
    """Column order of the per-layer table (default: the keys of the first row)."""
    stored_layer_columns: list[str] | None = None
    """Per-layer columns stored with every result, even without ``--layers``: a compact
    table (``name`` first) that ``bench compare`` matches layer by layer. None: rows are
    stored only when asked for."""


@dataclass(frozen=True)
class HardwareSpec:
    """A hardware backend: runs (or simulates) a model and returns a :class:`RunResult`.

    Presets are separate specs with the same ``run`` and different ``options`` defaults.
    ``run`` may raise :class:`BenchUsageError` for option combinations it rejects.
    """

    name: str
    """Unique across plugins (case-insensitive); what ``--hw`` takes."""
    description: str
    """One line for ``bench list hardware``."""
    options: tuple[OptionSpec, ...]
    """What ``--hw-opt key=value`` accepts."""
    run: Callable[[RunRequest], RunResult]
    """Runs or simulates one model; see :class:`RunRequest` and :class:`RunResult`."""
    timing_sensitive: bool = False
    """True when runs measure wall time on this machine, so ``bench matrix`` never runs
    them beside other work."""

    def parse_options(self, pairs: Sequence[str] | dict[str, str]) -> dict[str, Any]:
        """``["key=value", ...]`` (or a dict of texts) to typed values, defaults filled in."""
        return parse_options(self.options, pairs, f"hardware '{self.name}'")


# --------------------------------------------------------------------------- optimizers
@dataclass(frozen=True)
class ProblemSpec:
    """An optimization problem (objective + data) the distributed optimizers solve.

    ``factory(options, comm)`` builds the rank-local problem; its protocol is defined
    by :mod:`plugins.optimizers` and documented in docs/plugins.md.
    """

    name: str
    """Unique across plugins; what ``bench sweep --problem`` takes."""
    description: str
    """One line for ``bench list problems``."""
    options: tuple[OptionSpec, ...]
    """What ``--problem-opt key=value`` accepts."""
    factory: Callable[..., Any]
    """``factory(options, comm)`` builds this rank's share of the problem (docs/optimizers.md)."""


@dataclass(frozen=True)
class OptimizerSpec:
    """A distributed optimization algorithm run over MPI ranks.

    ``communication`` states the per-iteration traffic (for example
    "one Allreduce of d float64") so users can compare algorithms before running.
    """

    name: str
    """Unique across plugins; what ``bench sweep --optimizer`` takes."""
    description: str
    """One line for ``bench list optimizers``."""
    hyperparameters: tuple[OptionSpec, ...]
    """What ``--opt key=value`` accepts."""
    factory: Callable[..., Any]
    """Builds the rank-side algorithm (protocol in docs/optimizers.md)."""
    communication: str
    """The traffic of one iteration, e.g. ``"one Allreduce of d float64"``."""
    problems: tuple[str, ...] = ()
    """Names of the problems it can solve; empty means all."""


# --------------------------------------------------------------------------- analyzers
@dataclass(frozen=True)
class AnalyzerSpec:
    """Something that reads stored measurements and reports on them (Hemingway is one).

    ``command`` names the ``bench`` subcommand the analyzer adds through
    ``bench_register_commands``, so ``bench list analyzers`` can point to it.
    """

    name: str
    """Unique across plugins."""
    description: str
    """One line for ``bench list analyzers``."""
    command: str | None = None
    """The ``bench`` subcommand it adds through ``bench_register_commands`` (``"rank"``)."""
    reads: str = "iterations"
    """Which stored measurements it reads: ``"runs"`` or ``"iterations"``."""


# --------------------------------------------------------------------------- measurement sources
@dataclass
class MeasureRequest:
    """One run a measurement source is asked to make (by ``bench tune``)."""

    problem: str
    """The problem to solve, in the source's own names (an MPI problem such as ``logreg``,
    a synthetic ground truth such as ``tree-far``)."""
    algorithm: str
    """The algorithm to run, in the source's own names."""
    ranks: int
    """The cluster size m."""
    target: float | None
    """Stop once the suboptimality is at or below this (``bench tune --epsilon``); None:
    run ``iterations``."""
    iterations: int | None
    """The most iterations to run (None: the source's own cap)."""
    options: dict[str, Any]
    """The source's options by name, parsed from ``--source-opt key=value``, defaults
    filled in."""
    store: Any
    """The :class:`harness.store.ResultStore` to write the run to, as it goes."""
    run_tag: str
    """Store it in the run's ``options["run_tag"]``: ``bench tune`` finds a session's
    runs, to resume it, by this tag."""
    problem_options: tuple[str, ...] = ()
    """``--problem-opt key=value`` pairs for the problem (sources without problem options
    reject them)."""
    algorithm_options: tuple[str, ...] = ()
    """``--opt [algorithm:]key=value`` pairs for the algorithm."""
    verbose: bool = False
    """``bench tune --verbose``: the source may print its own per-run detail (commands,
    progress lines) on stderr; otherwise it stays quiet and ``bench tune`` reports."""


@dataclass
class MeasuredRun:
    """What a measurement source returns for one run."""

    result_id: int | None
    """The stored result (kind ``sweep``) holding the run's per-iteration rows."""
    status: str
    """``complete``, or why not (``failed``, ``timeout``): only complete runs are fitted."""
    machine_seconds: float
    """What the run cost: seconds x ranks (simulated seconds for a simulated source)."""
    rows: list[dict[str, Any]] = field(default_factory=list)
    """The run's rows in the measurements format (``algorithm, problem, ranks, n,
    iteration, iter_time_s, suboptimality``; docs/hemingway.md)."""
    error: str | None = None
    """Why the run did not complete, on one line."""


@dataclass(frozen=True)
class MeasurementSourceSpec:
    """Where ``bench tune`` gets its runs: real MPI jobs, a simulator, a cluster's queue.

    ``check`` is called once before any run, so a wrong name costs nothing;
    ``measure`` makes one run, stores it, and returns it.
    """

    name: str
    """Unique across plugins; what ``bench tune --source`` takes."""
    description: str
    """One line for ``bench list sources``."""
    measure: Callable[[MeasureRequest], MeasuredRun]
    """Makes one run (see :class:`MeasureRequest`), writes it to ``request.store`` as a
    ``sweep`` result whose options carry ``run_tag``, and returns a :class:`MeasuredRun`.
    Raise :class:`BenchUsageError` for a request it cannot make."""
    check: Callable[[str, Sequence[str], dict[str, Any]], int | None]
    """``check(problem, algorithms, options)`` raises :class:`BenchUsageError` (naming what
    is valid) for an unknown problem, algorithm or option value, else returns the largest
    cluster size it can run (None: no limit of its own)."""
    options: tuple[OptionSpec, ...] = ()
    """What ``--source-opt key=value`` accepts."""
    check_job_options: Callable[[str, Sequence[str], Sequence[str], Sequence[str]], None] | None \
        = None
    """``check_job_options(problem, algorithms, problem_pairs, algorithm_pairs)`` validates
    the ``--problem-opt`` and ``--opt`` pairs before any run, raising
    :class:`BenchUsageError`. None: the source takes no such options, and ``bench tune``
    refuses them before any run."""

    def parse_options(self, pairs: Sequence[str] | dict[str, str]) -> dict[str, Any]:
        """``["key=value", ...]`` to typed values, defaults filled in."""
        return parse_options(self.options, pairs, f"source '{self.name}'")
