"""What ``bench plugin check`` verifies: a plugin's specs keep the contracts the core relies on.

Every check returns :class:`Finding` objects: ``problem`` findings break a
contract (a model whose output is not ``(N, num_classes)``, a backend that
raises on a tiny model, an option default that does not parse) and make the
check fail; ``note`` findings are advice (no ``time_s`` in a summary, layer
names that are ``nn.Sequential`` indices). :func:`check_plugins` runs them all
for an installed plugin, distribution or importable module; ``harness.testing``
exposes the same to a plugin's own pytest suite.

Models are built and run on PyTorch's ``meta`` device (shapes only, no weights
allocated, no arithmetic), so checking a large network costs milliseconds.
"""
from __future__ import annotations

import importlib
import importlib.util
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from harness.errors import BenchUsageError, unknown_choice
from harness.plugins.manager import BenchPluginManager, PluginInfo, _one_line, get_plugin_manager
from harness.specs import (
    AnalyzerSpec,
    HardwareSpec,
    ModelSpec,
    OptimizerSpec,
    OptionSpec,
    ProblemSpec,
    ReportedMetric,
    RunRequest,
    RunResult,
)

PROBLEM, NOTE = "problem", "note"
CHECK_BATCH = 2  # a batch of 2 catches models that hard-code a batch of 1
NAME_PATTERN = re.compile(r"[^\s,=]+")  # names travel in comma lists and key=value pairs


@dataclass
class Finding:
    """One result of a check, printed as one line."""

    subject: str  # e.g. "model 'toy-net'"
    message: str
    severity: str = PROBLEM
    plugin: str = ""

    def line(self) -> str:
        where = f"{self.plugin}: " if self.plugin else ""
        prefix = "note: " if self.severity == NOTE else ""
        return f"{prefix}{where}{self.subject}: {self.message}"


def _shape(values: Iterable[int]) -> str:
    return "(" + ", ".join(str(int(v)) for v in values) + ")"


# --------------------------------------------------------------------------- names, options
def check_name(name: Any, subject: str) -> list[Finding]:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        return [Finding(subject, f"name {name!r} must be non-empty text without spaces, "
                                 "commas or '=' (names go into comma lists and key=value options)")]
    return []


def check_options(options: Any, subject: str) -> list[Finding]:
    """Options are OptionSpecs with unique names whose defaults parse back to themselves."""
    if not isinstance(options, (tuple, list)):
        return [Finding(subject, f"options must be a tuple of OptionSpec, not "
                                 f"{type(options).__name__}")]
    found: list[Finding] = []
    seen: set[str] = set()
    for option in options:
        if not isinstance(option, OptionSpec):
            found.append(Finding(subject, f"option {option!r} is a {type(option).__name__}, "
                                          "not an OptionSpec"))
            continue
        where = f"{subject} option '{option.name}'"
        found += check_name(option.name, where)
        if option.name in seen:
            found.append(Finding(where, "is declared twice"))
        seen.add(option.name)
        if not callable(option.type):
            found.append(Finding(where, f"type {option.type!r} is not callable"))
            continue
        if option.choices is not None and str(option.default).lower() not in {
                str(c).lower() for c in option.choices}:
            found.append(Finding(where, f"default {option.default!r} is not one of its choices "
                                        f"{', '.join(map(str, option.choices))}"))
            continue
        text = "true" if option.default is True else "false" if option.default is False \
            else str(option.default)
        try:
            value = option.parse(text)
        except BenchUsageError as exc:
            found.append(Finding(where, f"default {option.default!r} does not parse as "
                                        f"--hw-opt {option.name}={text}: {exc.format_message()}"))
            continue
        except Exception as exc:  # a type that raises something other than ValueError
            found.append(Finding(where, f"parsing its default '{text}' raised {_one_line(exc)}; "
                                        "a type must raise ValueError for bad text"))
            continue
        if value != option.default and not (isinstance(value, float) and math.isnan(value)):
            # A keyword default ("auto", "all") may stand for a value; the backend then
            # gets the keyword when the option is not given and the value when it is.
            keyword = isinstance(option.default, str) and not isinstance(value, str)
            found.append(Finding(where, f"default {option.default!r} does not round-trip: "
                                        f"'{text}' parses to {value!r}"
                                        + ("; the run gets the unparsed default when the option "
                                           "is not given: handle both" if keyword else ""),
                                 NOTE if keyword else PROBLEM))
        try:
            option.type("\x00not a value\x00")
        except (ValueError, TypeError):
            pass
        except Exception as exc:
            found.append(Finding(where, f"bad text raises {_one_line(exc)}; a type must raise "
                                        "ValueError (bench turns it into a one-line error)"))
        if not option.help:
            found.append(Finding(where, "has no help text (bench list shows it)", NOTE))
    return found


# --------------------------------------------------------------------------- models
def tiny_model() -> ModelSpec:
    """The small network backends are checked on: conv, BatchNorm, ReLU, pooling, an
    element-wise add, flatten and fc layers, 3x16x16 input, 10 classes."""
    return ModelSpec(name="bench-check-tiny", family="check", builder=_build_tiny,
                     input_size=(3, 16, 16), num_classes=10,
                     description="bench plugin check's test network")


def _build_tiny() -> Any:
    import torch.nn as nn

    class Tiny(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(8)
            self.relu = nn.ReLU()
            self.pool = nn.MaxPool2d(2)
            self.conv2 = nn.Conv2d(8, 8, 3, padding=1, groups=8)
            self.head = nn.AdaptiveAvgPool2d(1)
            self.flatten = nn.Flatten()
            self.fc = nn.Linear(8, 10)

        def forward(self, x: Any) -> Any:
            x = self.pool(self.relu(self.bn1(self.conv1(x))))
            x = x + self.conv2(x)
            return self.fc(self.flatten(self.head(x)))

    return Tiny()


def _build_and_run(spec: ModelSpec, device: str) -> tuple[Any, Any]:
    """Build the model on ``device`` and run a batch of zeros through it in eval mode."""
    import torch

    with torch.device(device):
        model = spec.build()
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"builder returned {type(model).__name__}, not a torch.nn.Module")
    model.eval()
    with torch.no_grad():
        output = model(torch.zeros((CHECK_BATCH, *spec.input_size), device=device))
    return model, output


def check_model(spec: Any) -> list[Finding]:
    """Metadata, output shape ``(N, num_classes)`` and the layer table backends read."""
    if not isinstance(spec, ModelSpec):
        return [Finding(f"model {getattr(spec, 'name', spec)!r}",
                        f"is a {type(spec).__name__}, not a ModelSpec")]
    subject = f"model '{spec.name}'"
    found = check_name(spec.name, subject)
    if not spec.family:
        found.append(Finding(subject, "family is empty (bench list models groups by it)"))
    if not spec.description:
        found.append(Finding(subject, "has no description", NOTE))
    size = spec.input_size
    if not (isinstance(size, tuple) and len(size) == 3
            and all(isinstance(v, int) and v > 0 for v in size)):
        found.append(Finding(subject, f"input_size {size!r} must be a tuple of 3 positive ints "
                                      "(C, H, W); for an FC-only model use (features, 1, 1) "
                                      "and start the network with nn.Flatten()"))
        return found
    if not (isinstance(spec.num_classes, int) and spec.num_classes > 0):
        found.append(Finding(subject, f"num_classes {spec.num_classes!r} must be a positive int"))
        return found
    for metric in spec.reported:
        if not isinstance(metric, ReportedMetric):
            found.append(Finding(subject, f"reported holds a {type(metric).__name__}, "
                                          "not a ReportedMetric"))
        elif not metric.source:
            found.append(Finding(subject, f"reported {metric.name} has no source (cite the paper)"))
    if not callable(spec.builder):
        found.append(Finding(subject, "builder is not callable"))
        return found

    device = "meta"
    try:
        _, output = _build_and_run(spec, "meta")
    except Exception as meta_error:
        try:
            _, output = _build_and_run(spec, "cpu")
        except Exception as exc:
            found.append(Finding(subject, f"building it and running a batch of "
                                          f"{_shape((CHECK_BATCH, *size))} raised {_one_line(exc)}"))
            return found
        device = "cpu"
        found.append(Finding(subject, f"does not run on the meta device "
                                      f"({_one_line(meta_error)}); checked on the CPU", NOTE))
    found += _check_output(subject, spec, output)
    found += _check_layer_table(subject, spec, device)
    return found


def _check_output(subject: str, spec: ModelSpec, output: Any) -> list[Finding]:
    import torch

    expected = (CHECK_BATCH, spec.num_classes)
    if not isinstance(output, torch.Tensor):
        return [Finding(subject, f"forward returns a {type(output).__name__}, not one tensor of "
                                 f"shape (N, num_classes) = {_shape(expected)}")]
    got = tuple(output.shape)
    if got == expected:
        return []
    if len(got) == 2 and got[0] == CHECK_BATCH:
        hint = f"set num_classes={got[1]} in its ModelSpec or make the last layer output " \
               f"{spec.num_classes}"
    elif got and got[0] != CHECK_BATCH:
        hint = "the batch dimension is lost (a reshape with a fixed batch size?)"
    else:
        hint = "end the network with nn.Flatten() (and set num_classes to the features left)"
    return [Finding(subject, f"output shape {_shape(got)} for an input of "
                             f"{_shape((CHECK_BATCH, *spec.input_size))}, expected "
                             f"(N, num_classes) = {_shape(expected)}: {hint}")]


def _check_layer_table(subject: str, spec: ModelSpec, device: str) -> list[Finding]:
    from harness.layers import COMPUTE_KINDS, cpu_table, shape_only_table

    try:
        table = shape_only_table if device == "meta" else cpu_table
        layers = table(spec, spec.input_size)
    except Exception as exc:
        return [Finding(subject, f"the layer table could not be built: {_one_line(exc)}")]
    if not any(layer.kind in COMPUTE_KINDS for layer in layers):
        return [Finding(subject, f"its layer table has no conv or fc layer "
                                 f"({len(layers)} layers): backends see no work; bench records "
                                 "torch.nn.functional.conv2d and linear, not custom matmuls")]
    found = []
    numbered = [layer.name for layer in layers if layer.name.split(".")[0].isdigit()]
    if numbered:
        found.append(Finding(subject, f"{len(numbered)} layer names are nn.Sequential indices "
                                      f"('{numbered[0]}', ...); name the submodules "
                                      "(attributes or nn.Sequential(OrderedDict(...))) for "
                                      "readable per-layer tables", NOTE))
    return found


# --------------------------------------------------------------------------- backends
def check_backend(spec: Any, model: ModelSpec | None = None) -> list[Finding]:
    """Options, then one run on ``model`` (default :func:`tiny_model`) with default options."""
    if not isinstance(spec, HardwareSpec):
        return [Finding(f"backend {getattr(spec, 'name', spec)!r}",
                        f"is a {type(spec).__name__}, not a HardwareSpec")]
    subject = f"backend '{spec.name}'"
    found = check_name(spec.name, subject)
    if not spec.description:
        found.append(Finding(subject, "has no description", NOTE))
    option_findings = check_options(spec.options, subject)
    found += option_findings
    if not callable(spec.run):
        found.append(Finding(subject, "run is not callable"))
        return found
    if any(f.severity == PROBLEM for f in option_findings):
        return found
    try:
        options = spec.parse_options([])
    except BenchUsageError as exc:
        found.append(Finding(subject, f"its own defaults are rejected: {exc.format_message()}"))
        return found
    model = model or tiny_model()
    request = RunRequest(model=model, batch=1, input_size=model.input_size, options=options,
                         per_layer=True, quiet=True)
    try:
        result = spec.run(request)
    except BenchUsageError as exc:
        found.append(Finding(subject, f"rejects model '{model.name}' with default options: "
                                      f"{exc.format_message()}"))
        return found
    except Exception as exc:
        found.append(Finding(subject, f"run on model '{model.name}' with default options raised "
                                      f"{_one_line(exc)}"))
        return found
    found += _check_result(subject, result)
    return found


def _check_result(subject: str, result: Any) -> list[Finding]:
    if not isinstance(result, RunResult):
        return [Finding(subject, f"run returned a {type(result).__name__}, not a RunResult")]
    found = []
    if not isinstance(result.summary, dict) or not result.summary:
        found.append(Finding(subject, "RunResult.summary must be a non-empty dict of figures"))
        return found
    bad = [k for k, v in result.summary.items()
           if isinstance(v, float) and not math.isfinite(v)]
    if bad:
        found.append(Finding(subject, f"summary values are not finite: {', '.join(bad)}"))
    if "time_s" not in result.summary:
        found.append(Finding(subject, "summary has no 'time_s' (latency of one batch): bench "
                                      "matrix cannot compare it with other backends", NOTE))
    if not isinstance(result.layers, list) or not all(isinstance(r, dict) for r in result.layers):
        found.append(Finding(subject, "RunResult.layers must be a list of dicts (one per layer)"))
    if not all(isinstance(w, str) for w in result.warnings):
        found.append(Finding(subject, "RunResult.warnings must be a list of strings"))
    return found


# --------------------------------------------------------------------------- the rest
def check_optimizer(spec: Any, problems: Sequence[str]) -> list[Finding]:
    if not isinstance(spec, OptimizerSpec):
        return [Finding(f"optimizer {getattr(spec, 'name', spec)!r}",
                        f"is a {type(spec).__name__}, not an OptimizerSpec")]
    subject = f"optimizer '{spec.name}'"
    found = check_name(spec.name, subject) + check_options(spec.hyperparameters, subject)
    if not callable(spec.factory):
        found.append(Finding(subject, "factory is not callable"))
    if not spec.communication:
        found.append(Finding(subject, "communication is empty (state the per-iteration traffic)"))
    known = {p.lower() for p in problems}
    for name in spec.problems:
        if name.lower() not in known:
            found.append(Finding(subject, f"supports problem '{name}', which is not installed; "
                                          f"installed: {', '.join(sorted(problems)) or 'none'}"))
    return found


def check_problem(spec: Any) -> list[Finding]:
    if not isinstance(spec, ProblemSpec):
        return [Finding(f"problem {getattr(spec, 'name', spec)!r}",
                        f"is a {type(spec).__name__}, not a ProblemSpec")]
    subject = f"problem '{spec.name}'"
    found = check_name(spec.name, subject) + check_options(spec.options, subject)
    if not callable(spec.factory):
        found.append(Finding(subject, "factory is not callable"))
    return found


def check_analyzer(spec: Any, commands: Iterable[str]) -> list[Finding]:
    if not isinstance(spec, AnalyzerSpec):
        return [Finding(f"analyzer {getattr(spec, 'name', spec)!r}",
                        f"is a {type(spec).__name__}, not an AnalyzerSpec")]
    subject = f"analyzer '{spec.name}'"
    found = check_name(spec.name, subject)
    if spec.command and spec.command not in set(commands):
        found.append(Finding(subject, f"points to command 'bench {spec.command}', which no "
                                      "plugin registers (add it in bench_register_commands)"))
    return found


# --------------------------------------------------------------------------- whole plugins
@dataclass
class Report:
    """The outcome of checking one target (a plugin, a distribution or a module)."""

    target: str
    plugins: list[PluginInfo] = field(default_factory=list)
    checked: dict[str, list[str]] = field(default_factory=dict)  # kind -> names
    findings: list[Finding] = field(default_factory=list)

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == PROBLEM]

    @property
    def notes(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == NOTE]

    @property
    def models(self) -> list[str]:
        return self.checked.get("models", [])

    @property
    def backends(self) -> list[str]:
        return self.checked.get("hardware", [])

    def summary(self) -> str:
        counted = ", ".join(f"{k}: {len(v)}" for k, v in self.checked.items() if v) or "nothing"
        names = ", ".join(p.name for p in self.plugins)
        verdict = (f"{len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}"
                   if self.problems else "no problems")
        return f"{verdict} in plugin {names} (checked {counted})"

    def lines(self) -> list[str]:
        return [f.line() for f in self.problems + self.notes] + [self.summary()]

    def as_dict(self) -> dict[str, Any]:
        return {"target": self.target, "plugins": [p.as_dict() for p in self.plugins],
                "checked": self.checked, "ok": not self.problems,
                "problems": [f.line() for f in self.problems],
                "notes": [f.line() for f in self.notes]}


def _normalize(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _is_folder(target: str) -> bool:
    """``target`` names an existing folder (a name the OS refuses to look up does not)."""
    try:
        return Path(target).is_dir()
    except (OSError, ValueError):
        return False


def _import_target(target: str) -> Any:
    """Import a module by dotted name, or a ``.py`` file / package folder by path."""
    path = Path(target)
    if target.endswith(".py") or _is_folder(target):
        if path.is_dir():
            path = path / "__init__.py"
        if not path.is_file():
            raise BenchUsageError(f"no Python file at '{target}'")
        name = path.parent.name if path.name == "__init__.py" else path.stem
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    return importlib.import_module(target)


def resolve(target: str, pm: BenchPluginManager) -> list[str]:
    """The plugins ``target`` names: an entry-point name, a distribution, an installed
    plugin's module, or else a module (or ``.py`` file) to import and register."""
    if target in pm.info:
        return [target]
    by_dist = [n for n, i in pm.info.items()
               if i.distribution and _normalize(i.distribution) == _normalize(target)]
    if by_dist:
        return by_dist
    by_module = [n for n, i in pm.info.items()
                 if i.module.split(":")[0] == target or i.module.startswith(target + ".")]
    if by_module:
        return by_module
    looks_like_module = target.endswith(".py") or _is_folder(target) or \
        all(part.isidentifier() for part in target.split("."))
    if not looks_like_module:
        choices = set(pm.info) | {i.distribution for i in pm.info.values() if i.distribution}
        raise unknown_choice("plugin, distribution or module", target, choices)
    try:
        module = _import_target(target)
    except ModuleNotFoundError as exc:
        if exc.name and target.startswith(exc.name):
            choices = set(pm.info) | {i.distribution for i in pm.info.values() if i.distribution}
            raise unknown_choice("plugin, distribution or module", target, choices) from None
        raise BenchUsageError(f"importing '{target}' failed: {_one_line(exc)}") from None
    except BenchUsageError:
        raise
    except Exception as exc:
        raise BenchUsageError(f"importing '{target}' failed: {_one_line(exc)}") from None
    name = getattr(module, "__name__", target)
    pm.register(module, name)
    return [name]


def check_plugins(target: str, pm: BenchPluginManager | None = None,
                  model: str | None = None, cli: Any = None) -> Report:
    """Check every spec the plugins named by ``target`` register.

    ``model`` runs the backends on that installed model instead of the tiny one;
    ``cli`` is the command group whose commands analyzers may point to (the
    ``bench`` group when called from the command line).
    """
    pm = pm or get_plugin_manager()
    known = set(pm.info)
    names = resolve(target, pm)
    report = Report(target=target, plugins=[pm.info[n] for n in names])
    run_on = pm.model(model) if model else None
    commands: set[str] = set()
    if cli is not None:
        import click

        for name in set(names) - known:  # imported just now: its commands are not in yet
            pm.register_commands(cli, only=name)
        commands = set(cli.list_commands(click.Context(cli)))
    for name in names:
        info = pm.info[name]
        if info.status == "disabled":
            report.findings.append(Finding("plugin", "is disabled (BENCH_DISABLE_PLUGINS)",
                                           plugin=name))
            continue
        # listing first: hooks that raise turn the plugin broken
        registered = pm.registrations(name) if info.status == "ok" else {}
        if info.status == "broken":
            report.findings.append(Finding("plugin", info.error, plugin=name))
            continue
        if not info.hooks:
            report.findings.append(Finding("plugin", "implements no bench hook", plugin=name))
        for plugin, message in pm.spec_problems:
            if plugin == name:
                report.findings.append(Finding("plugin", message, plugin=name))
        for kind, spec_names in registered.items():
            report.checked.setdefault(kind, []).extend(spec_names)
            for spec_name in spec_names if kind != "commands" else []:
                spec = pm._specs(f"bench_{kind}")[spec_name.lower()]
                if kind == "models":
                    found = check_model(spec)
                elif kind == "hardware":
                    found = check_backend(spec, run_on)
                elif kind == "optimizers":
                    found = check_optimizer(spec, [p.name for p in pm.problems().values()])
                elif kind == "problems":
                    found = check_problem(spec)
                elif kind == "analyzers":
                    found = check_analyzer(spec, commands) if cli is not None else []
                else:
                    found = check_name(spec.name, f"{kind} '{spec.name}'")
                for finding in found:
                    finding.plugin = name
                report.findings += found
    return report
