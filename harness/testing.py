"""A pytest plugin for bench plugin packages: ``bench plugin check`` inside your own tests.

Installing bench-harness registers this module with pytest (entry point
``pytest11: bench``), so a plugin's test suite gets the ``bench_check`` fixture
with no import::

    def test_my_plugin_keeps_the_contracts(bench_check):
        report = bench_check("mychip")        # plugin, distribution or module name
        assert report.models == ["mychip-net"]

``bench_check`` fails the test with one line per problem, exactly as the
command prints them. :func:`run_backend` runs one backend on one installed
model, as ``bench run`` does but without storing anything; the functions of
:mod:`harness.checks` (``check_model``, ``check_backend``, ``check_options``,
``tiny_model``) check single specs.
"""
from __future__ import annotations

from typing import Any, Callable

import pytest

from harness.checks import (  # noqa: F401  (re-exported for plugin tests)
    Finding,
    Report,
    check_backend,
    check_model,
    check_options,
    check_plugins,
    tiny_model,
)
from harness.specs import RunRequest, RunResult


def problem_text(findings: list[Finding]) -> str:
    return "\n".join(f.line() for f in findings)


def assert_no_problems(findings: list[Finding]) -> None:
    """Fail the test with one line per problem (notes do not fail)."""
    problems = [f for f in findings if f.severity == "problem"]
    if problems:
        pytest.fail(problem_text(problems), pytrace=False)


def run_backend(hardware: str, model: str, batch: int = 1, **options: str) -> RunResult:
    """Run installed backend ``hardware`` on installed model ``model`` with ``key=value``
    options given as keywords (text, as on the command line). Bad names and options raise
    :class:`harness.BenchUsageError`, as ``bench run`` reports them."""
    from harness.plugins.manager import get_plugin_manager

    pm = get_plugin_manager()
    spec, backend = pm.model(model), pm.backend(hardware)
    parsed = backend.parse_options({k: str(v) for k, v in options.items()})
    request = RunRequest(model=spec, batch=batch, input_size=spec.input_size, options=parsed,
                         per_layer=True, quiet=True)
    return backend.run(request)


@pytest.fixture
def bench_check() -> Callable[..., Report]:
    """``bench_check(target, model=None)``: check a plugin as ``bench plugin check`` does;
    fails the test on any problem, else returns the :class:`harness.checks.Report`."""

    def check(target: str, model: str | None = None) -> Report:
        report = check_plugins(target, model=model)
        if report.problems:
            pytest.fail("\n".join(report.lines()), pytrace=False)
        return report

    return check


def pytest_report_header(config: Any) -> str:
    from harness import __version__

    return f"bench-harness {__version__}: fixture bench_check, harness.testing.run_backend"
