"""The ``bench`` command line.

Commands that need torch import it inside their bodies, and commands kept in
their own modules (``inspect``, ``matrix``, ``compare``) are imported only when
called, so ``bench --help`` and ``bench list`` start fast. Plugins add their
own commands through the ``bench_register_commands`` hook.
"""
from __future__ import annotations

import importlib
import os
import sys
import time
from typing import Any, Callable, Sequence

import click

from harness import __version__, params
from harness.errors import BenchUsageError
from harness.output import FORMATS, emit, metric_rows, render, to_json, write
from harness.plugins.manager import TRACE_ENV, get_plugin_manager
from harness.store import STORE_ENV, ResultStore, StoredResult

# Core commands that live in their own modules, loaded on first use.
LAZY_COMMANDS = {
    "inspect": ("harness.commands.inspect", "Print a model's layer table with totals."),
    "matrix": ("harness.commands.matrix", "Run every model on every backend; one table."),
    "compare": ("harness.commands.compare", "Compare two results or groups: metrics, layers, significance."),
    "explore": ("harness.commands.explore", "Sweep networks x hardware; Pareto fronts, plots."),
    "design-study": ("harness.commands.design_study", "The SqueezeNext paper's hardware study."),
    "plugins": ("harness.commands.plugins", "Show installed plugins, what each registers, the broken ones."),
    "plugin": ("harness.commands.plugin", "Check a plugin package, start a new one, print the reference."),
    "cache": ("harness.commands.cache", "Show or clear the cache of traced layer tables."),
}

LIST_KINDS = ("models", "hardware", "optimizers", "problems", "analyzers", "sources")
DEBUG_ENV = "BENCH_DEBUG"


# --------------------------------------------------------------------------- helpers
def store_option(func: Callable) -> Callable:
    """Adds ``--store PATH`` (default: ``$BENCH_STORE`` or the user data folder)."""
    return click.option(
        "--store", "store_path", envvar=STORE_ENV, type=params.OUTPUT_FILE,
        help=f"Results database (SQLite); its folder must exist. Default: ${STORE_ENV} or "
             "~/.local/share/bench/results.sqlite (that folder is created).",
    )(func)


def format_option(*choices: str, default: str | None = None) -> Callable:
    """Adds ``--format`` with the given choices (default: the first)."""
    choices = choices or FORMATS
    return click.option(
        "--format", "fmt", type=click.Choice(choices, case_sensitive=False),
        default=default or choices[0], show_default=True, help="Output format.",
    )


def open_store(path: str | None) -> ResultStore:
    from harness.environment import start_git_probe

    store = ResultStore(path)
    start_git_probe()  # results record the git commit: let git run while the model does
    return store


def record_result(store: ResultStore, **fields: Any) -> StoredResult:
    """Write a result with the environment attached and tell observer plugins."""
    from harness.environment import capture

    fields.setdefault("environment", capture(fields.get("plugin")))
    kind = fields.pop("kind", "run")
    result = store.get(store.add(kind, **fields))
    get_plugin_manager().result_recorded(result)
    return result


class ProgressBar:
    """A progress line on stderr for runs that take over ``delay`` seconds.

    Silent when stderr is not a terminal or when ``quiet`` is set.
    """

    def __init__(self, quiet: bool = False, delay: float = 2.0) -> None:
        self.enabled = not quiet and sys.stderr.isatty()
        self.start = time.monotonic()
        self.delay = delay
        self.drawn = False

    def __call__(self, done: int, total: int, label: str = "") -> None:
        if not self.enabled or time.monotonic() - self.start < self.delay:
            return
        width = 30
        frac = min(max(done / total, 0.0), 1.0) if total else 0.0
        bar = "#" * int(frac * width) + "-" * (width - int(frac * width))
        sys.stderr.write(f"\r[{bar}] {frac:4.0%} {label[:40]:<40}")
        sys.stderr.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            sys.stderr.write("\r" + " " * 80 + "\r")
            sys.stderr.flush()


def split_names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


# --------------------------------------------------------------------------- root group
class BenchGroup(click.Group):
    """Root group: built-in commands, lazily imported core commands, plugin commands."""

    _plugins_registered = False

    def _register_plugin_commands(self) -> None:
        if not BenchGroup._plugins_registered:
            BenchGroup._plugins_registered = True
            get_plugin_manager().register_commands(self, reserved=LAZY_COMMANDS)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._register_plugin_commands()
        return sorted(set(super().list_commands(ctx)) | set(LAZY_COMMANDS))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        self._register_plugin_commands()
        if name in self.commands:
            return self.commands[name]
        if name in LAZY_COMMANDS:
            module = importlib.import_module(LAZY_COMMANDS[name][0])
            command = module.command
            self.add_command(command, name)
            return command
        return None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            if name in LAZY_COMMANDS and name not in self.commands:
                rows.append((name, LAZY_COMMANDS[name][1]))  # help without importing
            else:
                cmd = self.get_command(ctx, name)
                if cmd is not None and not cmd.hidden:
                    rows.append((name, cmd.get_short_help_str(limit=formatter.width)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        """Every way out of ``bench`` is one line on stderr and a documented exit code.

        0: done; 2: a user error (:class:`~harness.errors.BenchUsageError`, a bad
        option); 1: an internal error (a bug: the traceback with ``--debug`` or
        ``BENCH_DEBUG=1``); 130: Ctrl-C (every result stored so far is kept: each
        store write commits at once). Returns the code unless ``standalone_mode``,
        which exits with it.
        """
        prog = prog_name or "bench"
        try:
            rv = super().main(args=args, prog_name=prog, standalone_mode=False, **extra)
            code = rv if isinstance(rv, int) else 0
        except click.exceptions.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else prog
            print(f"Error: {_one_line(exc.format_message())} (see '{where} --help')",
                  file=sys.stderr)
            code = 2
        except click.ClickException as exc:
            print(f"Error: {_one_line(exc.format_message())}", file=sys.stderr)
            code = exc.exit_code
        except (click.Abort, KeyboardInterrupt):
            print("interrupted: results stored so far are kept", file=sys.stderr)
            code = 130
        except BrokenPipeError:
            sys.stderr.close()  # output piped into `head`: not an error
            code = 0
        except Exception as exc:
            if os.environ.get(DEBUG_ENV, "").strip() not in ("", "0"):
                raise
            print(f"internal error: {type(exc).__name__}: {_one_line(exc)[:500]} (run with "
                  f"--debug or {DEBUG_ENV}=1 for the traceback)", file=sys.stderr)
            code = 1
        if standalone_mode:
            sys.exit(code)
        return code

    def resolve_command(self, ctx: click.Context, args: list[str]):
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            from harness.errors import unknown_choice

            raise unknown_choice("command", name, self.list_commands(ctx))
        return super().resolve_command(ctx, args)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _debug(_ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        os.environ[DEBUG_ENV] = "1"  # for the processes bench starts (MPI ranks) too


def _trace(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        os.environ[TRACE_ENV] = "1"  # for managers created later, MPI ranks included
        get_plugin_manager().enable_trace(sys.stderr.write)


def _layer_cache(_ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        if value.strip().lower() != "off":
            from harness.paths import output_dir

            output_dir(value, "--layer-cache")  # made when first written, if only it is missing
        os.environ["BENCH_LAYER_CACHE"] = value  # harness.layer_cache; matrix workers inherit it


@click.group(cls=BenchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="bench")
@click.option("--debug", is_flag=True, expose_value=False, is_eager=True, callback=_debug,
              help=f"Show the traceback of an internal error (or set {DEBUG_ENV}=1).")
@click.option("--trace-plugins", is_flag=True, expose_value=False, is_eager=True,
              callback=_trace, help=f"Print every plugin hook call to stderr (or set {TRACE_ENV}=1).")
@click.option("--layer-cache", metavar="DIR|off", expose_value=False, is_eager=True,
              callback=_layer_cache,
              help="Folder of cached layer tables, or off (default: $BENCH_LAYER_CACHE, "
                   "else $BENCH_CACHE/layers, else ~/.cache/bench/layers).")
def cli() -> None:
    """Choose the network, the hardware and the distributed optimizer, by measurement.

    \b
    bench list models                          what is installed
    bench run --model 1.0-SqNxt-23 --hw accel  run one model on one backend
    bench matrix --model a,b --hw cpu,accel    every pair, one table
    bench sweep ... / bench rank ...           distributed optimizers, Hemingway
    """


# --------------------------------------------------------------------------- list
def _options_text(options: Sequence[Any]) -> str:
    return ", ".join(f"{o.name}={o.default}" for o in options)


def _list_rows(kind: str) -> tuple[list[dict[str, Any]], list[str]]:
    pm = get_plugin_manager()
    if kind == "models":
        rows = []
        for spec in pm.models().values():
            reported = {m.name: m.value for m in spec.reported}
            rows.append({
                "name": spec.name, "family": spec.family,
                "input": "x".join(str(s) for s in spec.input_size),
                "top1 (reported)": reported.get("top1"), "top5 (reported)": reported.get("top5"),
                "plugin": pm.plugin_of("models", spec.name), "notes": spec.notes,
                "description": spec.description,
            })
        return rows, ["name", "family", "input", "top1 (reported)", "top5 (reported)", "plugin",
                      "notes"]
    if kind == "hardware":
        rows = [{"name": s.name, "description": s.description,
                 "options": _options_text(s.options), "plugin": pm.plugin_of("hardware", s.name)}
                for s in pm.hardware().values()]
        return rows, ["name", "description", "options", "plugin"]
    if kind == "optimizers":
        rows = [{"name": s.name, "description": s.description,
                 "hyperparameters": _options_text(s.hyperparameters),
                 "communication per iteration": s.communication,
                 "problems": ", ".join(s.problems) or "all",
                 "plugin": pm.plugin_of("optimizers", s.name)}
                for s in pm.optimizers().values()]
        return rows, ["name", "description", "hyperparameters", "communication per iteration",
                      "problems", "plugin"]
    if kind == "problems":
        rows = [{"name": s.name, "description": s.description, "options": _options_text(s.options),
                 "plugin": pm.plugin_of("problems", s.name)} for s in pm.problems().values()]
        return rows, ["name", "description", "options", "plugin"]
    if kind == "sources":
        rows = [{"name": s.name, "description": s.description, "options": _options_text(s.options),
                 "plugin": pm.plugin_of("measurement_sources", s.name)}
                for s in pm.measurement_sources().values()]
        return rows, ["name", "description", "options", "plugin"]
    rows = [{"name": s.name, "description": s.description,
             "command": f"bench {s.command}" if s.command else "", "reads": s.reads,
             "plugin": pm.plugin_of("analyzers", s.name)} for s in pm.analyzers().values()]
    return rows, ["name", "description", "command", "reads", "plugin"]


@cli.command("list")
@click.argument("kind", type=click.Choice(LIST_KINDS, case_sensitive=False), metavar="KIND")
@format_option()
def list_command(kind: str, fmt: str) -> None:
    """List installed models, hardware backends, optimizers, problems, analyzers or
    measurement sources (for `bench tune`)."""
    rows, columns = _list_rows(kind.lower())
    if not rows and fmt == "table":
        print(f"no {kind.lower()} installed (see `bench plugins` for broken plugins)")
        return
    if fmt != "table":
        columns = list(dict.fromkeys(columns + [k for r in rows for k in r]))
    emit(rows, fmt, columns)


# --------------------------------------------------------------------------- run
def compact_layers(result: Any) -> list[dict[str, Any]]:
    """The backend's ``stored_layer_columns`` of each per-layer row (none if it names none)."""
    columns = getattr(result, "stored_layer_columns", None)
    if not columns:
        return []
    return [{k: row.get(k) for k in columns} for row in result.layers]


def run_one(
    model_name: str,
    hw_name: str,
    *,
    batch: int = 1,
    input_size: int | None = None,
    hw_opts: Sequence[str] | dict[str, str] = (),
    per_layer: bool = False,
    quiet: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
) -> tuple[dict[str, Any], Any]:
    """Look up, validate and run one model on one backend (no storing).

    Returns ``(record fields, RunResult)``; every user error is a BenchUsageError
    raised before any work starts.
    """
    from harness.specs import RunRequest

    pm = get_plugin_manager()
    model = pm.model(model_name)
    backend = pm.backend(hw_name)
    options = backend.parse_options(hw_opts)
    size = model.sized(input_size)
    request = RunRequest(model=model, batch=batch, input_size=size, options=options,
                         per_layer=per_layer, quiet=quiet, progress=progress)
    result = backend.run(request)
    fields = {
        "kind": "run",
        "plugin": pm.plugin_of("hardware", backend.name),
        "model": model.name,
        "hardware": backend.name,
        "options": {"batch": batch, "input_size": list(size), **options,
                    "model_plugin": pm.plugin_of("models", model.name)},
        "summary": result.summary,
        # Full rows only when asked for (--layers): hundreds of rows, most of a result's
        # bytes; otherwise the compact columns the backend asks to keep (for compare).
        "layers": result.layers if per_layer else compact_layers(result),
        "samples": result.samples,
    }
    return fields, result


@cli.command("run")
@click.option("--model", "model_name", required=True, help="Model name (see `bench list models`).")
@click.option("--hw", "hw_name", required=True, help="Hardware backend (see `bench list hardware`).")
@click.option("--batch", type=params.BATCH, default=1, show_default=True, help="Batch size.")
@click.option("--input-size", type=params.INPUT_SIZE, default=None,
              help="Input height and width (default: the model's).")
@click.option("--hw-opt", "hw_opts", multiple=True, metavar="KEY=VALUE",
              help="Backend option; repeat for several (see `bench list hardware`).")
@click.option("--layers", "per_layer", is_flag=True, help="Also print the per-layer table.")
@format_option()
@click.option("--out", type=params.OUTPUT_FILE, help="Write the output to this file.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--no-store", is_flag=True, help="Do not store the result.")
@click.option("--repeat", type=params.Count(100), default=1, show_default=True,
              help="Timed backends: K runs, each in a fresh process, stored as one group "
                   "(bench compare takes it as g<id>). Simulators are deterministic: run once.")
@click.option("--group-id", type=params.Count(2**63 - 1), default=None, hidden=True,
              help="Store the result in this group (what --repeat passes to each run).")
@store_option
def run_command(model_name: str, hw_name: str, batch: int, input_size: int | None,
                hw_opts: tuple[str, ...], per_layer: bool, fmt: str, out: str | None,
                quiet: bool, no_store: bool, repeat: int, group_id: int | None,
                store_path: str | None) -> None:
    """Run one model on one hardware backend, print the figures and store them."""
    store = None if no_store else open_store(store_path)  # fail on a bad store before running
    if group_id is not None and store is not None:
        store.check_group(group_id)
    if repeat > 1:
        backend = get_plugin_manager().backend(hw_name)
        if backend.timing_sensitive:
            get_plugin_manager().model(model_name)  # unknown names fail before any run
            backend.parse_options(hw_opts)
            from harness.repeat import repeat_command

            repeat_command(model_name, hw_name, repeat=repeat, batch=batch,
                           input_size=input_size, hw_opts=hw_opts, per_layer=per_layer,
                           store=store, fmt=fmt, out=out)
            return
        print(f"note: {backend.name} is deterministic (a simulator): {repeat} runs would give "
              "identical results, so it runs once", file=sys.stderr)
    bar = ProgressBar(quiet)
    try:
        fields, result = run_one(model_name, hw_name, batch=batch, input_size=input_size,
                                 hw_opts=hw_opts, per_layer=per_layer, quiet=quiet, progress=bar)
    finally:
        bar.close()
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    stored = (record_result(store, **fields, group_id=group_id) if store is not None
              else None)
    result_id = stored.id if stored else None
    if fmt == "json":
        payload = {"id": result_id, "model": fields["model"], "hardware": fields["hardware"],
                   "options": fields["options"], "summary": result.summary,
                   "layers": result.layers, "warnings": result.warnings,
                   "environment": stored.environment if stored else None}
        write(to_json(payload), out)
        return
    if fmt == "csv":
        if per_layer:  # every key, the table's columns first
            keys = list(dict.fromkeys([*(result.layer_columns or []),
                                       *(k for row in result.layers for k in row)]))
            write(render(result.layers, "csv", keys), out)
        else:
            row = {"id": result_id, "model": fields["model"], "hardware": fields["hardware"],
                   **result.summary}
            write(render([row], "csv"), out)
        return
    parts = [f"{fields['model']} on {fields['hardware']} (batch {batch})"
             + (f", stored as result {result_id}" if result_id else "")]
    if per_layer and result.layers:
        parts.append(render(result.layers, "table", result.layer_columns))
    parts.append(render(metric_rows(result.summary), "table", colalign=("left", "right")))
    write("\n\n".join(parts), out)


# --------------------------------------------------------------------------- results
@cli.group("results")
def results_group() -> None:
    """List, show and export stored results."""


def _result_row(r: StoredResult) -> dict[str, Any]:
    s = r.summary
    headline = {k: s[k] for k in ("time_s", "cycles", "energy", "utilization",
                                  "throughput", "final_suboptimality") if k in s}
    return {"id": r.id, "group": f"g{r.group_id}" if r.group_id else "",
            "kind": r.kind, "status": r.status, "created (UTC)": r.created_utc,
            "subject": r.subject, "plugin": r.plugin,
            "headline": ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                  for k, v in headline.items())}


@results_group.command("list")
@click.option("--kind", type=click.Choice(["run", "sweep"]), help="Only runs or only sweeps.")
@click.option("--limit", type=params.LIMIT, default=50, show_default=True,
              help="Show the newest N.")
@format_option()
@store_option
def results_list(kind: str | None, limit: int, fmt: str, store_path: str | None) -> None:
    """List stored results, newest last."""
    with open_store(store_path) as store:
        results = store.list(kind=kind, limit=limit)
    if fmt == "table":
        if not results:
            print(f"no results in {store.path}")
            return
        emit([_result_row(r) for r in results], "table")
    else:
        emit([{k: v for k, v in r.as_dict().items() if k not in ("layers", "samples")}
              for r in results], fmt)


@results_group.command("show")
@click.argument("result_id")
@format_option("table", "json")
@store_option
def results_show(result_id: str, fmt: str, store_path: str | None) -> None:
    """Show one stored result in full."""
    with open_store(store_path) as store:
        result = store.get(result_id)
        iterations = store.iterations(result.id) if result.kind == "sweep" else []
    if fmt == "json":
        payload = result.as_dict()
        if iterations:
            payload["iterations"] = iterations
        write(to_json(payload))
        return
    head = [{"field": k, "value": getattr(result, k)} for k in (
        "id", "kind", "status", "created_utc", "finished_utc", "plugin", "model", "hardware",
        "optimizer", "problem", "ranks", "error") if getattr(result, k) is not None]
    parts = [render(head, "table"),
             render(metric_rows(result.options, "option"), "table"),
             render(metric_rows(result.summary), "table"),
             render(metric_rows(result.environment, "environment"), "table")]
    if result.samples:
        parts.append(f"{len(result.samples)} samples stored")
    if result.layers:
        parts.append(f"{len(result.layers)} per-layer rows (--format json shows them)")
    if iterations:
        parts.append(f"{len(iterations)} iterations stored (--format json shows them)")
    write("\n\n".join(parts))


@results_group.command("export")
@format_option("json", "csv")
@click.option("--kind", type=click.Choice(["run", "sweep"]), help="Only runs or only sweeps.")
@click.option("--out", type=params.OUTPUT_FILE, help="Write to this file.")
@store_option
def results_export(fmt: str, kind: str | None, out: str | None, store_path: str | None) -> None:
    """Export every stored result (JSON keeps everything; CSV flattens the summary)."""
    with open_store(store_path) as store:
        results = store.list(kind=kind)
        if fmt == "json":
            payload = []
            for r in results:
                row = r.as_dict()
                if r.kind == "sweep":
                    row["iterations"] = store.iterations(r.id)
                payload.append(row)
            write(to_json(payload), out)
            return
    rows = []
    for r in results:
        row = {k: v for k, v in r.as_dict().items()
               if k not in ("layers", "samples", "summary", "options", "environment")}
        row.update({f"summary.{k}": v for k, v in r.summary.items()})
        row.update({f"options.{k}": v for k, v in r.options.items()})
        row["environment.host"] = r.environment.get("host")
        row["environment.git_commit"] = r.environment.get("git_commit")
        rows.append(row)
    write(render(rows, "csv"), out)


# --------------------------------------------------------------------------- entry point
def main(argv: Sequence[str] | None = None) -> int:
    """Run ``bench`` and return its exit code (see :meth:`BenchGroup.main`)."""
    return cli.main(args=list(argv) if argv is not None else None, prog_name="bench",
                    standalone_mode=False)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
