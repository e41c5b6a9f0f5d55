"""User-facing errors: one line, exit code 2, never a traceback."""
from __future__ import annotations

import difflib
from typing import Iterable

import click


class BenchUsageError(click.ClickException):
    """A mistake in what the user asked for (a name, an option, a file).

    The CLI prints ``Error: <message>`` on one line and exits with code 2.
    Plugins raise it for their own option and input checks.
    """

    exit_code = 2


def closest(name: str, choices: Iterable[str]) -> str | None:
    """The choice that looks most like ``name`` (case-insensitive), if any is close."""
    by_lower = {c.lower(): c for c in choices}
    match = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.5)
    return by_lower[match[0]] if match else None


def unknown_choice(kind: str, name: str, choices: Iterable[str]) -> BenchUsageError:
    """An error for an unknown ``kind`` called ``name`` that names the valid ones."""
    choices = sorted(choices, key=str.lower)
    hint = closest(name, choices)
    did_you_mean = f" (did you mean '{hint}'?)" if hint else ""
    listed = ", ".join(choices) if choices else "none installed"
    return BenchUsageError(f"unknown {kind} '{name}'{did_you_mean}; valid: {listed}")
