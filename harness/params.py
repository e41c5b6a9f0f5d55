"""Click option types every command shares, so bad values fail at the option.

Counts (batch sizes, jobs, ranks, iterations...) are whole numbers between 1
(or 0) and a documented maximum: a number beyond it is a typo, and letting it
through reaches torch, numpy or the OS as an overflow. Numbers are finite.
Paths are checked by :mod:`harness.paths` while the options are parsed, before
any work starts. Each failure is one :class:`~harness.errors.BenchUsageError` line.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import click

from harness import paths
from harness.errors import BenchUsageError


def _option(param: click.Parameter | None, ctx: click.Context | None = None) -> str:
    """How the user gave the value: ``--batch``, ``$BENCH_STORE``, or ``file`` (an argument)."""
    if param is None:
        return "value"
    if ctx is not None and param.name and isinstance(param.envvar, str) and \
            ctx.get_parameter_source(param.name) is click.core.ParameterSource.ENVIRONMENT:
        return f"${param.envvar}"
    if not isinstance(param, click.Option):
        return "file" if isinstance(param.type, _Checked) else (param.name or "value")
    return max(param.opts, key=len)


class Count(click.ParamType):
    """A whole number from ``minimum`` to ``maximum`` (both shown in ``--help``)."""

    name = "integer"

    def __init__(self, maximum: int, minimum: int = 1) -> None:
        self.minimum = minimum
        self.maximum = maximum

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str:
        return f"{self.minimum}..{self.maximum}"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        option = _option(param, ctx)
        valid = f"a whole number from {self.minimum} to {self.maximum:,}"
        if isinstance(value, bool) or not isinstance(value, int):
            try:
                value = int(str(value).strip().replace("_", ""))
            except ValueError:
                raise BenchUsageError(f"{option}: '{value}' is not a valid integer "
                                      f"({valid})") from None
        if value < self.minimum:
            least = "a positive integer" if self.minimum == 1 else f"at least {self.minimum}"
            raise BenchUsageError(f"{option} must be {least}, not {value}")
        if value > self.maximum:
            raise BenchUsageError(f"{option} must be at most {self.maximum:,}, not {value:,}")
        return value


class Number(click.ParamType):
    """A finite float, optionally bounded (``open_*``: that bound itself is refused)."""

    name = "number"

    def __init__(self, minimum: float | None = None, maximum: float | None = None,
                 open_minimum: bool = False, open_maximum: bool = False) -> None:
        self.minimum = minimum
        self.maximum = maximum
        self.open_minimum = open_minimum
        self.open_maximum = open_maximum

    def _valid(self) -> str:
        if self.minimum == 0 and self.open_minimum and self.maximum is None:
            return "a positive number"
        bounds = []
        if self.minimum is not None:
            bounds.append(f"{'>' if self.open_minimum else '>='} {self.minimum:g}")
        if self.maximum is not None:
            bounds.append(f"{'<' if self.open_maximum else '<='} {self.maximum:g}")
        return " ".join(["a finite number", " and ".join(bounds)]).strip()

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> float:
        option = _option(param, ctx)
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise BenchUsageError(f"{option}: '{value}' is not a number ({self._valid()})") \
                from None
        too_low = self.minimum is not None and (
            number <= self.minimum if self.open_minimum else number < self.minimum)
        too_high = self.maximum is not None and (
            number >= self.maximum if self.open_maximum else number > self.maximum)
        if not math.isfinite(number) or too_low or too_high:
            raise BenchUsageError(f"{option} must be {self._valid()}, not {value}")
        return number


class _Checked(click.ParamType):
    """A path type running one :mod:`harness.paths` check as the option is parsed."""

    def __init__(self, check: Callable[[str, str], Any], name: str) -> None:
        self.check = check
        self.name = name

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        self.check(str(value), _option(param, ctx))
        return str(value)


OUTPUT_FILE = _Checked(paths.output_file, "file")
"""A file to write: its folder must exist and be writable; not a directory."""
INPUT_FILE = _Checked(paths.input_file, "file")
"""A file to read: it exists, is not a directory, is readable."""
OUTPUT_DIR = _Checked(paths.output_dir, "directory")
"""A folder to write into: exists, or its parent does (the command makes it, and says so)."""

# The documented maxima (docs/plugins.md, "Errors and exit codes").
BATCH = Count(1_000_000)
INPUT_SIZE = Count(4096)
JOBS = Count(256)
RANKS = Count(65_536)
ITERATIONS = Count(10_000_000)
LIMIT = Count(1_000_000)
BOOTSTRAP = Count(10_000, minimum=0)
SEED = Count(2**32 - 1, minimum=0)
POSITIVE = Number(0, open_minimum=True)
PERCENT = Number(0, 100)
