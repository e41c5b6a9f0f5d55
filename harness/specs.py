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
    type: Callable[[str], Any]
    default: Any
    help: str = ""
    choices: tuple[str, ...] | None = None

    @property
    def type_name(self) -> str:
        if self.choices:
            return "|".join(self.choices)
        return getattr(self.type, "__name__", str(self.type)).replace("parse_", "")

    def parse(self, text: str, owner: str = "") -> Any:
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

    name: str  # e.g. "top1", "top5"
    value: float
    source: str  # citation, e.g. "Gholami et al., SqueezeNext, CVPR-W 2018, Table 2"
    dataset: str = "ImageNet"


@dataclass(frozen=True)
class ModelSpec:
    """A network a plugin offers.

    ``builder`` takes no arguments and returns a ``torch.nn.Module`` that maps a
    batch of shape ``(N, *input_size)`` to ``(N, num_classes)``. It must import
    torch itself, so that listing models does not.
    """

    name: str
    family: str
    builder: Callable[[], "nn.Module"]
    input_size: tuple[int, int, int] = (3, 224, 224)
    num_classes: int = 1000
    description: str = ""
    reported: tuple[ReportedMetric, ...] = ()
    notes: str = ""  # e.g. "reconstruction: no official definition is published"

    def build(self) -> "nn.Module":
        return self.builder()


# --------------------------------------------------------------------------- hardware
@dataclass
class RunRequest:
    """Everything a hardware backend needs for one run."""

    model: ModelSpec
    """The network to run."""
    batch: int
    """Batch size (positive)."""
    input_size: tuple[int, int, int]
    """Input shape per sample, ``(C, H, W)``: the model's own or ``--input-size``."""
    options: dict[str, Any]
    """The backend's options, parsed and typed (``HardwareSpec.parse_options``)."""
    per_layer: bool = False
    """True when the user asked for per-layer rows (``--layers``); they are stored only then."""
    quiet: bool = False
    """True when the backend should print nothing of its own (no progress)."""
    progress: Callable[[int, int, str], None] | None = None
    """Called with ``(done, total, label)`` by long runs; the CLI draws a progress bar."""
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
    layers: list[dict[str, Any]] = field(default_factory=list)
    samples: list[float] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # Column order for the per-layer table (default: keys of the first row).
    layer_columns: list[str] | None = None


@dataclass(frozen=True)
class HardwareSpec:
    """A hardware backend: runs (or simulates) a model and returns a :class:`RunResult`.

    Presets are separate specs with the same ``run`` and different ``options`` defaults.
    ``run`` may raise :class:`BenchUsageError` for option combinations it rejects.
    """

    name: str
    description: str
    options: tuple[OptionSpec, ...]
    run: Callable[[RunRequest], RunResult]
    # True when runs measure wall time on this machine and must not run concurrently.
    timing_sensitive: bool = False

    def parse_options(self, pairs: Sequence[str] | dict[str, str]) -> dict[str, Any]:
        return parse_options(self.options, pairs, f"hardware '{self.name}'")


# --------------------------------------------------------------------------- optimizers
@dataclass(frozen=True)
class ProblemSpec:
    """An optimization problem (objective + data) the distributed optimizers solve.

    ``factory(options, comm)`` builds the rank-local problem; its protocol is defined
    by :mod:`plugins.optimizers` and documented in docs/plugins.md.
    """

    name: str
    description: str
    options: tuple[OptionSpec, ...]
    factory: Callable[..., Any]


@dataclass(frozen=True)
class OptimizerSpec:
    """A distributed optimization algorithm run over MPI ranks.

    ``communication`` states the per-iteration traffic (for example
    "one Allreduce of d float64") so users can compare algorithms before running.
    """

    name: str
    description: str
    hyperparameters: tuple[OptionSpec, ...]
    factory: Callable[..., Any]
    communication: str
    problems: tuple[str, ...] = ()  # problem names it supports; empty means all


# --------------------------------------------------------------------------- analyzers
@dataclass(frozen=True)
class AnalyzerSpec:
    """Something that reads stored measurements and reports on them (Hemingway is one).

    ``command`` names the ``bench`` subcommand the analyzer adds through
    ``bench_register_commands``, so ``bench list analyzers`` can point to it.
    """

    name: str
    description: str
    command: str | None = None
    reads: str = "iterations"  # which stored measurements: "runs" or "iterations"
