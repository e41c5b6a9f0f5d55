"""``bench plugin``: tools for plugin authors.

``check`` verifies an installed plugin, distribution or module against the
contracts (:mod:`harness.checks`); ``new`` writes a package skeleton that
installs and passes its own test (:mod:`harness.scaffold`); ``reference``
prints the hook and spec reference generated from the code
(:mod:`harness.reference`).
"""
from __future__ import annotations

from pathlib import Path

import click

from harness import params
from harness.cli import format_option
from harness.output import to_json, write


@click.group("plugin")
def command() -> None:
    """Check a plugin package, start a new one, print the reference.

    \b
    bench plugin check NAME      NAME: plugin, distribution, module or .py file
    bench plugin new NAME        a package skeleton: model, backend, test
    bench plugin reference       every hook and spec, from the code's docstrings
    """


@command.command("check")
@click.argument("target", metavar="PACKAGE_OR_MODULE")
@click.option("--model", "model_name", default=None,
              help="Run the backends on this installed model instead of a tiny test network.")
@format_option("table", "json")
@click.pass_context
def check(ctx: click.Context, target: str, model_name: str | None, fmt: str) -> None:
    """Check a plugin: build every model on the meta device (output (N, num_classes), layer
    table, metadata), run every backend on a tiny model, parse every option default.

    One line per problem; exit code 2 when there is any. Notes (advice) do not fail.
    """
    from harness.checks import check_plugins

    report = check_plugins(target, model=model_name, cli=ctx.find_root().command)
    if fmt == "json":
        write(to_json(report.as_dict()))
    else:
        write("\n".join(report.lines()))
    if report.problems:
        ctx.exit(2)


@command.command("new")
@click.argument("name")
@click.option("--dir", "directory", type=params.OUTPUT_DIR, default=None,
              help="Where to write the package (default: ./bench-NAME).")
def new(name: str, directory: str | None) -> None:
    """Write a ready plugin package: pyproject with the entry point, one model, one backend,
    and a test that uses the bench_check fixture."""
    from harness.scaffold import write_package

    root = Path(directory) if directory else Path(f"bench-{name}")
    files = write_package(name, root)
    listing = "\n".join(f"  {path.relative_to(root)}" for path in files)
    write(f"wrote {root}/\n{listing}\n\nnext:\n  pip install -e {root}\n"
          f"  bench plugin check {name}\n  python -m pytest {root}")


@command.command("reference")
@click.option("--out", type=params.OUTPUT_FILE, help="Write to this file.")
def reference(out: str | None) -> None:
    """Print the reference of every hook and spec, generated from the code (docs/reference.md)."""
    from harness.reference import generate

    write(generate().rstrip("\n"), out)  # write() adds the final newline
