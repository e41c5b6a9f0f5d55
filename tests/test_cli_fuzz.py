"""Every subcommand, every option, bad and edge values: one line and exit 0 or 2, never more.

The command tree is walked from the ``bench`` group itself (plugin commands
included), so a command or option added later is fuzzed without touching this
file. Each example starts from a cheap valid invocation of one command and
replaces one to three of its options with values drawn for that option's type:
negative, zero and huge numbers, non-numbers, NaN, unknown names, empty text,
unknown and malformed KEY=VALUE pairs, directories, files and missing folders
where paths go. Commands run in this process (``CliRunner``) with
``BENCH_DEBUG=1``, so an internal error raises here and fails the example with
its traceback; a private store and layer cache keep the user's files out.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import params
from harness.cli import cli
from harness.plugins.manager import get_plugin_manager

MODEL = "squeezenet1_1"  # the cheapest built-in network to simulate
# CI runs a fixed sample (derandomized); BENCH_FUZZ_EXAMPLES=300 searches a fresh random
# one, larger, for local bug hunts.
SEARCH = bool(os.environ.get("BENCH_FUZZ_EXAMPLES"))
EXAMPLES_PER_COMMAND = int(os.environ.get("BENCH_FUZZ_EXAMPLES", "40"))
FEWER_EXAMPLES = {"plugin reference": 3}  # generating the reference takes seconds, and it
#                                           has one option


def walk(group: click.Group, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], click.Command]:
    """Every leaf command under ``group`` by its path (``("results", "list")``)."""
    ctx = click.Context(group, info_name="bench")
    found = {}
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is None or command.hidden:
            continue
        if isinstance(command, click.Group):
            found.update(walk(command, path + (name,)))
        else:
            found[path + (name,)] = command
    return found


COMMANDS = walk(cli)
COMMANDS[()] = cli  # the root group's own options (--layer-cache, --debug, ...) before `list`


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Paths the examples use: a folder, a plain file, a missing folder, a measurements file."""
    from plugins.hemingway.synthetic import EXAMPLE_ALGORITHMS, generate

    root = tmp_path_factory.mktemp("fuzz")
    (root / "folder").mkdir()
    (root / "plain.txt").write_text("not what anyone expects\n")
    rows = generate(EXAMPLE_ALGORITHMS, (1, 2, 4, 8), 2000, 1e-4, seed=1)
    with open(root / "sweep.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    preset = Path(__file__).resolve().parents[1] / "plugins" / "hardware" / "presets"
    return {"root": str(root), "folder": str(root / "folder"), "plain": str(root / "plain.txt"),
            "missing": str(root / "no" / "such" / "file.txt"), "csv": str(root / "sweep.csv"),
            "store": str(root / "results.sqlite"),
            "preset": str(next(p for p in sorted(preset.iterdir()) if p.suffix == ".toml"))}


def baseline(path: tuple[str, ...], w: dict[str, str]) -> list[str]:
    """A valid, cheap invocation of each command. Commands that would run for long get
    one option that makes them stop (exit 2) after every option has been parsed: the
    design study an unknown --hw-opt, sweep a missing mpiexec (nothing is launched)."""
    name = " ".join(path)
    table = {
        "": [],
        "list": ["models"],
        "run": ["--model", MODEL, "--hw", "accel"],
        "inspect": ["--model", MODEL],
        "matrix": ["--model", MODEL, "--hw", "accel", "--jobs", "1", "--quiet"],
        "explore": ["--model", MODEL, "--hw", "accel-8x8", "--jobs", "1", "--quiet"],
        "design-study": ["--hw-opt", "no_such_option=1", "--no-sensitivity", "--jobs", "1"],
        "sweep": ["--optimizer", "cocoa", "--problem", "logreg", "--iterations", "2",
                  "--mpiexec", w["missing"]],
        "rank": ["--input", w["csv"], "--epsilon", "1e-3", "--bootstrap", "0"],
        "tune": ["--source", "synthetic", "--problem", "overhead-far", "--algorithms", "gd",
                 "--epsilon", "1e-4", "--budget", "100", "--max-rounds", "1", "--format", "json"],
        "compare": ["1", "2"],
        "results show": ["1"],
        "cache clear": ["--model", "no-such-model"],
        "preset show": ["accel-8x8"],
        "preset check": [w["preset"]],
        "plugin check": ["problems"],
        "plugin new": ["fuzzchip", "--dir", str(Path(w["root"]) / "new-plugin")],
        "plugins show": ["squeezenext"],
    }
    return list(table.get(name, []))


# --------------------------------------------------------------------------- bad values
NUMBER_TEXT = st.sampled_from(["nan", "inf", "-inf", "1e400", "0x10", "1,000", "one", "", " ",
                               "--", "1.5", "-0", "1e3"])
BAD_INTS = st.one_of(
    st.integers(max_value=0).map(str),
    st.sampled_from(["1", "2"]),  # edges that are valid: the smallest work
    st.integers(min_value=10**7, max_value=10**40).map(str),
    NUMBER_TEXT,
)
BAD_NUMBERS = st.one_of(
    st.sampled_from(["0", "-1", "-1e-300", "1e999", "nan", "inf", "-inf", "abc", "", "1/2"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
NAMES = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12),
    st.sampled_from(["", ",", ",,", " ", "accel,accel", f"{MODEL},{MODEL}",
                     "squeezenet1_", "accel-7x7", "-", "--help", "nul\0byte", "x" * 5000]),
)


def key_values(keys: list[str]) -> st.SearchStrategy[str]:
    """Unknown keys, malformed pairs, and known keys with bad values."""
    values = st.one_of(BAD_INTS, BAD_NUMBERS, NAMES, st.sampled_from(
        ["0x0", "8x", "x8", "99999999x99999999", "1x1", "1x4096", "1e-300", "1e300", "0.5",
         "true", "none"]))
    known = st.sampled_from(keys or ["key"])
    scoped = st.tuples(st.sampled_from(["accel", "nope", ""]), known).map(
        lambda t: f"{t[0]}:{t[1]}")
    return st.one_of(
        st.sampled_from(["", "=", "=1", "key", "no_such_key=1", "a=b=c", "k==v"]),
        st.builds(lambda k, v: f"{k}={v}", st.one_of(known, scoped), values),
        st.builds(lambda k, v: f"{k}={v}", known, st.sampled_from([",", "1,,2", "a,b"])),
    )


def option_keys() -> list[str]:
    pm = get_plugin_manager()
    keys = {o.name for spec in pm.hardware().values() for o in spec.options}
    keys |= {o.name for spec in pm.optimizers().values() for o in spec.hyperparameters}
    keys |= {o.name for spec in pm.problems().values() for o in spec.options}
    return sorted(keys)


def paths_for(w: dict[str, str]) -> st.SearchStrategy[str]:
    return st.sampled_from([
        w["folder"], w["plain"], w["missing"], str(Path(w["plain"]) / "below.txt"),
        "/proc/self/nope.txt", "", " ", "nul\0byte", "a" * 5000, "~nobody-here/x",
        str(Path(w["folder"]) / "new.png"),
        str(Path(w["folder"]) / "new.txt"), str(Path(w["folder"]) / "new.sqlite"),
    ])


PATH_NAMES = ("store", "out", "plot", "input", "hostfile", "dir", "mpiexec", "save", "file",
              "layer-cache")


def bad_values(param: click.Parameter, w: dict[str, str],
               keys: list[str]) -> st.SearchStrategy[str]:
    kind = param.type
    label = " ".join(getattr(param, "opts", [])) + " " + (param.name or "")
    if isinstance(kind, (params.Count, click.types.IntParamType, click.IntRange)):
        return BAD_INTS
    if isinstance(kind, (params.Number, click.types.FloatParamType, click.FloatRange)):
        return BAD_NUMBERS
    if isinstance(kind, click.Choice):
        return st.one_of(NAMES, st.sampled_from([c.upper() for c in kind.choices]))
    if isinstance(kind, (click.Path, click.File)) or "Checked" in type(kind).__name__ or \
            any(n in label for n in PATH_NAMES):
        return st.one_of(paths_for(w), NAMES)
    if getattr(param, "multiple", False) or "KEY=VALUE" in (getattr(param, "metavar", "") or ""):
        return key_values(keys)
    if param.name in ("run_a", "run_b", "result_id"):
        return st.one_of(BAD_INTS, NAMES, st.sampled_from(["1", "2", "99999"]))
    return NAMES


# --help and --version print and exit 0 whatever else is given; --trace-plugins hooks the
# process-wide plugin manager to this example's stderr, which later examples no longer have.
SKIPPED = ("help", "version", "trace_plugins")


def fuzzable(command: click.Command) -> list[click.Parameter]:
    return [p for p in command.params
            if not getattr(p, "hidden", False) and p.name not in SKIPPED]


def mutate(command: click.Command, args: list[str], param: click.Parameter,
           value: str | None) -> list[str]:
    """``args`` with ``param`` set to ``value`` (a flag: switched on). Baselines give the
    arguments first, in order, then the options."""
    out = list(args)
    if isinstance(param, click.Argument):
        index = [p.name for p in command.params if isinstance(p, click.Argument)].index(
            param.name)
        if index < len(out) and not out[index].startswith("-"):
            out[index] = value
        else:
            out.insert(min(index, len(out)), value)
        return out
    option = max(param.opts, key=len)
    if getattr(param, "is_flag", False):
        return out + [option]
    if option in out and not getattr(param, "multiple", False):
        out[out.index(option) + 1] = value
        return out
    return out + [option, value]


def check(result: Any, args: list[str]) -> None:
    shown = (f"bench {' '.join(a[:200] for a in args)}\n--- stdout\n{result.stdout[-2000:]}\n"
             f"--- stderr\n{result.stderr[-2000:]}")
    assert "Traceback" not in result.stdout + result.stderr, shown
    assert result.exit_code in (0, 2), shown  # 1 is an internal error: never for any input
    if result.exit_code == 2:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert lines and lines[-1].startswith("Error: "), shown
        assert sum(line.startswith("Error:") for line in lines) == 1, shown
        # besides the error: warnings, and progress of work that ran before the error was
        # knowable (bench tune's round lines: those runs are stored)
        assert all(line.startswith(("Error: ", "warning: ", "created folder ", "round "))
                   for line in lines), shown


def test_the_walk_finds_every_command():
    names = {" ".join(p) for p in COMMANDS if p}
    for expected in ("run", "list", "inspect", "matrix", "compare", "explore", "design-study",
                     "rank", "tune", "sweep", "cache info", "cache clear", "preset list", "preset check",
                     "plugin check", "plugin new", "plugins show", "results list"):
        assert expected in names, sorted(names)


@pytest.mark.parametrize("path", sorted(COMMANDS),
                         ids=[" ".join(p) or "bench" for p in sorted(COMMANDS)])
def test_no_input_gives_a_traceback_or_an_unexpected_exit_code(path, world, monkeypatch):
    command = COMMANDS[path]
    candidates = fuzzable(command)
    if not candidates:
        pytest.skip(f"bench {' '.join(path)} takes no options")
    monkeypatch.setenv("BENCH_DEBUG", "1")  # an internal error raises here, with its traceback
    monkeypatch.setenv("BENCH_STORE", world["store"])
    monkeypatch.setenv("BENCH_LAYER_CACHE", os.environ.get("BENCH_LAYER_CACHE", "off"))
    monkeypatch.chdir(world["root"])  # anything written relative lands in the tmp folder
    keys = option_keys()
    start = baseline(path, world)

    @settings(max_examples=FEWER_EXAMPLES.get(" ".join(path), EXAMPLES_PER_COMMAND),
              deadline=None, derandomize=not SEARCH, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def one(data: st.DataObject) -> None:
        chosen = data.draw(st.lists(st.sampled_from(candidates), min_size=1, max_size=3,
                                    unique_by=id), label="options")
        args = list(start)
        for param in chosen:
            value = None if getattr(param, "is_flag", False) else \
                data.draw(bad_values(param, world, keys), label=param.name)
            args = mutate(command, args, param, value)
        full = [*path, *args] if path else [*args, "list", "models"]
        result = CliRunner().invoke(cli, full, catch_exceptions=False)
        check(result, full)

    one()
