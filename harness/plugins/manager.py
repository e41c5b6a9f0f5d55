"""The plugin manager: finds every plugin, isolates the broken ones, and hands out specs.

Built-in plugins and third-party packages are found the same way, through the
entry-point group ``bench.plugins``. Each entry point is loaded on its own, so a
plugin that fails to import, has a bad hook signature, implements a hook that
does not exist (a misspelling), or raises inside a hook is reported by
``bench plugins`` while every other plugin keeps working.
"""
from __future__ import annotations

import difflib
import os
import sys
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable, Iterable, TypeVar

import pluggy

from harness.errors import unknown_choice
from harness.plugins import hookspecs
from harness.specs import (
    AnalyzerSpec, HardwareSpec, MeasurementSourceSpec, ModelSpec, OptimizerSpec, ProblemSpec,
)

ENTRY_POINT_GROUP = "bench.plugins"
# What each listing hook must return a list of; a listing hook added later without an
# entry here only needs its items to have a ``name``.
SPEC_TYPES: dict[str, type] = {
    "bench_models": ModelSpec,
    "bench_hardware": HardwareSpec,
    "bench_optimizers": OptimizerSpec,
    "bench_problems": ProblemSpec,
    "bench_analyzers": AnalyzerSpec,
    "bench_measurement_sources": MeasurementSourceSpec,
}
DISABLE_ENV = "BENCH_DISABLE_PLUGINS"
TRACE_ENV = "BENCH_TRACE_PLUGINS"

Spec = TypeVar("Spec")


@dataclass
class PluginInfo:
    """What ``bench plugins`` shows for one plugin."""

    name: str
    """The entry-point name (what ``BENCH_DISABLE_PLUGINS`` takes)."""
    distribution: str = ""
    """The installed distribution that declares it (empty for objects registered directly)."""
    version: str = ""
    """That distribution's version."""
    module: str = ""
    """The entry point's target, e.g. ``bench_toy`` or ``plugins.models.vgg``."""
    status: str = "ok"
    """``ok``, ``broken`` (see ``error``) or ``disabled``."""
    hooks: list[str] = field(default_factory=list)
    """The hooks it implements, e.g. ``["bench_models"]``."""
    error: str = ""
    """Why it is broken, on one line."""
    file: str = ""
    """The source file of the loaded module."""
    commands: list[str] = field(default_factory=list)
    """The ``bench`` commands it added through ``bench_register_commands``."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "module": self.module,
            "file": self.file,
            "status": self.status,
            "hooks": list(self.hooks),
            "commands": list(self.commands),
            "error": self.error,
        }


def module_file(plugin: Any) -> str:
    """The source file a plugin object came from (a module, a class or an instance)."""
    module = plugin if hasattr(plugin, "__file__") else sys.modules.get(
        getattr(plugin, "__module__", "") or type(plugin).__module__)
    return str(getattr(module, "__file__", "") or "")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class BenchPluginManager:
    """Wraps :class:`pluggy.PluginManager` with loading, error isolation and typed look-ups."""

    def __init__(
        self,
        disabled: Iterable[str] | None = None,
        trace: Callable[[str], Any] | None = None,
    ) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        if disabled is None:
            disabled = [n for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()]
        self.disabled = {n.strip() for n in disabled}
        self.info: dict[str, PluginInfo] = {}
        self._cache: dict[str, dict[str, Any]] = {}
        self._owner: dict[tuple[str, str], str] = {}  # (hook, spec name) -> plugin
        # What `bench plugin check` reports besides broken plugins, as (plugin, message).
        self.spec_problems: list[tuple[str, str]] = []
        self._trace: Callable[[str], Any] | None = None
        if trace is None and os.environ.get(TRACE_ENV, "") not in ("", "0"):
            trace = sys.stderr.write
        if trace is not None:
            self.enable_trace(trace)

    def enable_trace(self, writer: Callable[[str], Any]) -> None:
        """Write every hook call (plugin, arguments, what it returned) to ``writer``."""
        self._trace = writer
        self.pm.trace.root.setwriter(writer)
        self.pm.enable_tracing()

    # ------------------------------------------------------------------ loading
    def load_entry_points(self) -> None:
        """Load every ``bench.plugins`` entry point, one at a time."""
        seen: set[tuple[str, str]] = set()
        named: dict[int, tuple[str, str]] = {}  # one METADATA parse per distribution, not per plugin
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            if (ep.name, ep.value) in seen:
                continue
            seen.add((ep.name, ep.value))
            dist = getattr(ep, "dist", None)
            if dist is not None and id(dist) not in named:
                meta = dist.metadata
                named[id(dist)] = (meta["Name"], meta["Version"])
            dist_name, dist_version = named[id(dist)] if dist is not None else ("", "")
            info = PluginInfo(
                name=ep.name,
                distribution=dist_name,
                version=dist_version,
                module=ep.value,
            )
            if ep.name in self.info:
                info.status, info.error = "broken", f"duplicate plugin name '{ep.name}'"
                self.info[f"{ep.name} ({info.distribution})"] = info
                continue
            self.info[ep.name] = info
            if ep.name in self.disabled:
                info.status = "disabled"
                continue
            try:
                plugin = ep.load()
            except BaseException as exc:  # a plugin must never take bench down
                if isinstance(exc, KeyboardInterrupt):
                    raise
                info.status, info.error = "broken", f"import failed: {_one_line(exc)}"
                continue
            info.file = module_file(plugin)
            self._register(plugin, info)

    def register(self, plugin: Any, name: str, distribution: str = "", version: str = "") -> None:
        """Register a plugin object directly (tests, embedding); same checks as entry points."""
        info = PluginInfo(name=name, distribution=distribution, version=version,
                          module=getattr(plugin, "__name__", type(plugin).__name__),
                          file=module_file(plugin))
        self.info[name] = info
        self._cache.clear()  # listings made before this plugin are stale
        if name in self.disabled:
            info.status = "disabled"
            return
        self._register(plugin, info)

    def _register(self, plugin: Any, info: PluginInfo) -> None:
        try:
            self.pm.register(plugin, name=info.name)
        except Exception as exc:  # pluggy.PluginValidationError and friends
            info.status, info.error = "broken", f"invalid hook: {_one_line(exc)}"
            return
        known = {h for h in dir(hookspecs) if h.startswith("bench_")}
        hooks, unknown = [], []
        for caller in self.pm.get_hookcallers(plugin) or []:
            if caller.has_spec():
                hooks.append(caller.name)
            else:
                unknown.append(caller.name)
        if unknown:
            self.pm.unregister(plugin)
            hints = []
            for hook in sorted(unknown):
                close = difflib.get_close_matches(hook, sorted(known), n=1)
                hints.append(f"'{hook}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
            info.status = "broken"
            info.error = "unknown hook " + ", ".join(hints)
            return
        info.hooks = sorted(hooks)
        self.pm.check_pending()  # nothing unknown can remain; keeps pluggy's own guard

    # ------------------------------------------------------------------ hook calls
    def _call_impl(self, impl: Any, hook_name: str, kwargs: dict[str, Any]) -> tuple[bool, Any]:
        """Call one plugin's implementation; a plugin that raises is marked broken."""
        if self._trace is not None:
            args = ", ".join(f"{k}={kwargs[k]!r}" for k in impl.argnames)
            self._trace(f"hook {hook_name}({args}) -> plugin '{impl.plugin_name}'\n")
        try:
            result = impl.function(**{k: kwargs[k] for k in impl.argnames})
        except Exception as exc:
            info = self.info.get(impl.plugin_name)
            if info is not None:
                info.status = "broken"
                info.error = f"{hook_name}() raised {_one_line(exc)}"
            print(f"warning: plugin '{impl.plugin_name}' failed in {hook_name}: "
                  f"{_one_line(exc)}", file=sys.stderr)
            return False, None
        if self._trace is not None and isinstance(result, list):
            names = ", ".join(str(getattr(r, "name", type(r).__name__)) for r in result)
            self._trace(f"  '{impl.plugin_name}' returned [{names}]\n")
        return True, result

    def call_each(self, hook_name: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call one hook plugin by plugin, returning ``(plugin name, result)`` pairs.

        A plugin that raises is marked broken and skipped; the others still answer.
        """
        caller = getattr(self.pm.hook, hook_name)
        answers: list[tuple[str, Any]] = []
        for impl in caller.get_hookimpls():  # registration order (pluggy calls them LIFO)
            ok, result = self._call_impl(impl, hook_name, kwargs)
            if ok:
                answers.append((impl.plugin_name, result))
        return answers

    def register_commands(self, cli: Any, reserved: Iterable[str] = (),
                          only: str | None = None) -> None:
        """Let every plugin (or just the plugin ``only``) add its click commands to
        ``cli``, remembering who added which.

        A plugin that replaces a command that already exists (or one of the
        ``reserved`` names of commands loaded later) is reported by
        ``bench plugin check``.
        """
        for impl in self.pm.hook.bench_register_commands.get_hookimpls():
            if only is not None and impl.plugin_name != only:
                continue
            before = {**{name: None for name in reserved}, **cli.commands}
            self._call_impl(impl, "bench_register_commands", {"cli": cli})
            info = self.info.get(impl.plugin_name)
            for name, command in cli.commands.items():
                if before.get(name) is command or info is None:
                    continue
                info.commands.append(name)
                if name in before:
                    self.spec_problems.append(
                        (impl.plugin_name, f"command '{name}' replaces an existing command"))

    def listing_hooks(self) -> list[str]:
        """The hooks that list specs: every hook spec without arguments (``bench_models``, ...)."""
        names = [name for name in dir(hookspecs) if name.startswith("bench_")
                 and not getattr(self.pm.hook, name).spec.argnames]
        known = list(SPEC_TYPES)
        return sorted(names, key=lambda n: (known.index(n) if n in known else len(known), n))

    def _specs(self, hook_name: str) -> dict[str, Any]:
        """Specs from one listing hook, keyed by lower-case name; remembers the plugin.

        Items of the wrong type and names already taken are skipped with a warning
        (and reported by ``bench plugin check``)."""
        if hook_name not in self._cache:
            expected = SPEC_TYPES.get(hook_name)
            specs: dict[str, Any] = {}
            for plugin, result in self.call_each(hook_name):
                if not isinstance(result, (list, tuple)):
                    if result is not None:
                        self._reject(plugin, f"{hook_name}() returned {type(result).__name__}, "
                                             "not a list")
                    continue
                for spec in result:
                    name = getattr(spec, "name", None)
                    if (expected is not None and not isinstance(spec, expected)) \
                            or not isinstance(name, str):
                        wanted = expected.__name__ if expected else "an object with a name"
                        self._reject(plugin, f"{hook_name}() returned a {type(spec).__name__}, "
                                             f"not a {wanted}")
                        continue
                    key = name.lower()
                    if key in specs:
                        first = self._owner[(hook_name, key)]
                        print(f"warning: {hook_name}: '{name}' from plugin '{plugin}' "
                              f"hides the one from '{first}'; keeping the first", file=sys.stderr)
                        self.spec_problems.append(
                            (plugin, f"{hook_name.removeprefix('bench_')} name '{name}' is "
                                     f"already registered by plugin '{first}'; it is ignored"))
                        continue
                    specs[key] = spec
                    self._owner[(hook_name, key)] = plugin
            self._cache[hook_name] = specs
            if hook_name == "bench_models":
                self._note_model_distributions(specs)
        return self._cache[hook_name]

    def _note_model_distributions(self, specs: dict[str, Any]) -> None:
        """Tell the layer cache which distribution registered each model (part of its key)."""
        from harness.layer_cache import note_distribution

        for key, spec in specs.items():
            info = self.info.get(self._owner[("bench_models", key)])
            note_distribution(spec, f"{info.distribution} {info.version}".strip()
                              if info is not None else "")

    def _reject(self, plugin: str, message: str) -> None:
        print(f"warning: plugin '{plugin}': {message}; skipped", file=sys.stderr)
        self.spec_problems.append((plugin, message))

    def registrations(self, plugin: str) -> dict[str, list[str]]:
        """What one plugin registers: spec names per listing hook (``models``, ``hardware``,
        ...) and the commands it added, in the order it returned them."""
        out: dict[str, list[str]] = {}
        for hook_name in self.listing_hooks():
            names = [spec.name for key, spec in self._specs(hook_name).items()
                     if self._owner.get((hook_name, key)) == plugin]
            if names:
                out[hook_name.removeprefix("bench_")] = names
        info = self.info.get(plugin)
        if info is not None and info.commands:
            out["commands"] = list(info.commands)
        return out

    def plugin_of(self, kind: str, name: str) -> str:
        """Which plugin provided the spec ``name`` of ``kind`` ('models', 'hardware', ...)."""
        self._specs(f"bench_{kind}")
        return self._owner.get((f"bench_{kind}", name.lower()), "")

    def models(self) -> dict[str, ModelSpec]:
        return self._specs("bench_models")

    def hardware(self) -> dict[str, HardwareSpec]:
        return self._specs("bench_hardware")

    def optimizers(self) -> dict[str, OptimizerSpec]:
        return self._specs("bench_optimizers")

    def problems(self) -> dict[str, ProblemSpec]:
        return self._specs("bench_problems")

    def analyzers(self) -> dict[str, AnalyzerSpec]:
        return self._specs("bench_analyzers")

    def measurement_sources(self) -> dict[str, MeasurementSourceSpec]:
        return self._specs("bench_measurement_sources")

    def _get(self, kind: str, label: str, name: str) -> Any:
        specs = self._specs(f"bench_{kind}")
        try:
            return specs[name.lower()]
        except KeyError:
            raise unknown_choice(label, name, [s.name for s in specs.values()]) from None

    def model(self, name: str) -> ModelSpec:
        return self._get("models", "model", name)

    def backend(self, name: str) -> HardwareSpec:
        return self._get("hardware", "hardware backend", name)

    def optimizer(self, name: str) -> OptimizerSpec:
        return self._get("optimizers", "optimizer", name)

    def problem(self, name: str) -> ProblemSpec:
        return self._get("problems", "problem", name)

    def measurement_source(self, name: str) -> MeasurementSourceSpec:
        return self._get("measurement_sources", "measurement source", name)

    def result_recorded(self, result: Any) -> None:
        """Tell observers about a stored result; their failures are only warnings."""
        self.call_each("bench_result_recorded", result=result)

    def plugins(self) -> list[PluginInfo]:
        return sorted(self.info.values(), key=lambda i: (i.status != "ok", i.name))


_default: BenchPluginManager | None = None


def get_plugin_manager(reload: bool = False) -> BenchPluginManager:
    """The process-wide manager with all entry points loaded."""
    global _default
    if _default is None or reload:
        _default = BenchPluginManager()
        _default.load_entry_points()
    return _default
