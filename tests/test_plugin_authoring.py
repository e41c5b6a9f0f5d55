"""Plugin authors' tools: bench plugin new / check, bench plugins --verbose / show, harness.testing."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import HardwareSpec, ModelSpec, OptionSpec, RunResult, hookimpl
from harness.checks import check_backend, check_model, check_options, check_plugins, tiny_model
from harness.plugins.manager import BenchPluginManager

from conftest import make_distribution

BAD_PLUGIN = '''
from harness import HardwareSpec, ModelSpec, OptionSpec, RunResult, hookimpl


def build():
    import torch.nn as nn
    return nn.Sequential(nn.Flatten(), nn.Linear(48, 10))  # 10 outputs, spec says 1000


def explode(request):
    raise ZeroDivisionError("division by zero in the cost model")


@hookimpl
def bench_models():
    return [ModelSpec(name="bad-net", family="bad", builder=build, input_size=(3, 4, 4))]


@hookimpl
def bench_hardware():
    return [HardwareSpec(name="bad-hw", description="raises", run=explode,
                         options=(OptionSpec("scale", float, 1.0, "a factor"),))]
'''


def test_new_package_installs_and_its_checks_and_tests_pass(bench, tmp_path):
    made = bench("plugin", "new", "demo", "--dir", str(tmp_path / "bench-demo"))
    assert made.returncode == 0, made.stderr
    root = tmp_path / "bench-demo"
    assert (root / "pyproject.toml").read_text().count('demo = "bench_demo"') == 1
    site = tmp_path / "site"
    # Offline and fast with the environment's setuptools; an environment without it
    # (Python 3.12+ venvs) lets pip fetch one into an isolated build.
    offline = ["--no-build-isolation", "--no-index"] if importlib.util.find_spec("setuptools") \
        else []
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", *offline,
                          "--target", str(site), str(root)],
                         capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, pip.stderr
    env = {"PYTHONPATH": str(site)}

    plugins = {p["name"]: p for p in json.loads(bench("plugins", "--format", "json", env=env).stdout)}
    assert plugins["demo"]["status"] == "ok"
    assert plugins["demo"]["distribution"] == "bench-demo"
    shown = json.loads(bench("plugins", "show", "bench-demo", "--format", "json", env=env).stdout)
    assert shown[0]["registers"] == {"models": ["demo-net"], "hardware": ["demo-hw"]}
    assert shown[0]["file"].startswith(str(site))

    check = bench("plugin", "check", "demo", env=env)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.strip().splitlines()[-1].startswith("no problems in plugin demo")

    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            str(root / "tests")], capture_output=True, text=True, timeout=300,
                           cwd=str(root), env={**os.environ, **env})
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "3 passed" in tests.stdout


def test_check_reports_a_wrong_output_shape_and_a_raising_backend_one_line_each(bench, tmp_path):
    site = tmp_path / "site"
    make_distribution(site, "bench-bad", "0.1", {"bad": "bench_bad"}, {"bench_bad.py": BAD_PLUGIN})
    out = bench("plugin", "check", "bench-bad", env={"PYTHONPATH": str(site)})
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    problems = [line for line in out.stdout.splitlines() if not line.startswith("note:")][:-1]
    assert len(problems) == 2, out.stdout
    model_line, backend_line = sorted(problems, key=lambda l: "backend" in l)
    assert model_line.startswith("bad: model 'bad-net': output shape (2, 10)")
    assert "expected (N, num_classes) = (2, 1000)" in model_line
    assert "num_classes=10" in model_line
    assert backend_line.startswith("bad: backend 'bad-hw': run on model 'bench-check-tiny'")
    assert "ZeroDivisionError: division by zero in the cost model" in backend_line
    assert out.stdout.splitlines()[-1].startswith("2 problems in plugin bad")


def test_check_takes_a_module_that_is_not_installed(bench, tmp_path):
    (tmp_path / "loose_plugin.py").write_text(BAD_PLUGIN)
    out = bench("plugin", "check", "loose_plugin", "--format", "json",
                env={"PYTHONPATH": str(tmp_path)})
    assert out.returncode == 2
    report = json.loads(out.stdout)
    assert report["checked"] == {"models": ["bad-net"], "hardware": ["bad-hw"]}
    assert len(report["problems"]) == 2


def test_authoring_commands_reject_bad_input_in_one_line(bench, tmp_path):
    unknown = bench("plugin", "check", "squeezenxt")
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("Error: unknown plugin, distribution or module 'squeezenxt' "
                                     "(did you mean 'squeezenext'?)")
    assert len(unknown.stderr.strip().splitlines()) == 1
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    taken = bench("plugin", "new", "demo", "--dir", str(tmp_path / "taken"))
    assert taken.returncode == 2 and "already exists and is not empty" in taken.stderr
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine"
    bad_name = bench("plugin", "new", "My Chip", "--dir", str(tmp_path / "x"))
    assert bad_name.returncode == 2 and "must be lower-case" in bad_name.stderr
    assert not (tmp_path / "x").exists()


def test_plugins_verbose_lists_what_each_plugin_registers(bench, site):
    env = {"PYTHONPATH": str(site)}
    out = bench("plugins", "--verbose", env=env)
    assert out.returncode == 0, out.stderr
    toy = out.stdout.split("\n\n")
    block = next(b for b in toy if b.startswith("toy (ok): bench-toy 0.3"))
    assert "models      toy-net (1)" in block
    assert "hardware    toy-hw (1)" in block
    assert "commands    toy-hello (1)" in block
    assert str(site) in block  # where it was loaded from
    builtin = next(b for b in toy if b.startswith("accel (ok)"))
    assert "accel, accel-8x8, accel-16x16, accel-32x32 (4)" in builtin
    shown = json.loads(bench("plugins", "show", "explodes", "--format", "json", env=env).stdout)
    assert shown[0]["status"] == "broken" and shown[0]["registers"] == {}


# --------------------------------------------------------------------------- checks in-process
def _make_model(build, **kwargs) -> ModelSpec:
    return ModelSpec(name="m", family="f", builder=build, description="d", **kwargs)


def test_builtin_tiny_model_and_accel_pass_every_check():
    assert [f for f in check_model(tiny_model()) if f.severity == "problem"] == []
    from plugins.hardware.accel import bench_hardware

    for spec in bench_hardware():
        assert [f.line() for f in check_backend(spec) if f.severity == "problem"] == []


def test_model_checks_name_the_broken_contract():
    import torch.nn as nn

    def lost_batch():
        class Flat(nn.Module):
            def forward(self, x):
                return nn.functional.linear(x.reshape(1, -1), x.new_zeros(10, 2 * 3 * 4 * 4))
        return Flat()

    batch = check_model(_make_model(lost_batch, input_size=(3, 4, 4), num_classes=10))
    assert "output shape (1, 10)" in batch[0].message
    assert "the batch dimension is lost" in batch[0].message
    (work,) = check_model(_make_model(lambda: nn.Sequential(nn.Flatten()), input_size=(4, 1, 1),
                                      num_classes=4))
    assert "no conv or fc layer" in work.message
    (size,) = check_model(_make_model(lambda: nn.Linear(4, 2), input_size=(4,)))
    assert "(features, 1, 1)" in size.message
    numbered = check_model(_make_model(lambda: nn.Sequential(nn.Flatten(), nn.Linear(4, 2)),
                                       input_size=(4, 1, 1), num_classes=2))
    assert [f.severity for f in numbered] == ["note"]
    assert "2 layer names are nn.Sequential indices ('0'" in numbered[0].message


def test_option_checks_catch_defaults_that_do_not_parse_or_round_trip():
    def even(text):
        value = int(text)
        if value % 2:
            raise ValueError("must be even")
        return value

    findings = check_options((
        OptionSpec("ok", even, 2, "fine"),
        OptionSpec("odd", even, 3, "default fails its own type"),
        OptionSpec("rounded", lambda t: round(float(t)), 2.5, "parses to another value"),
        OptionSpec("mode", str, "fast", "not in choices", choices=("slow", "safe")),
        OptionSpec("ok", even, 4, "declared twice"),
    ), "backend 'x'")
    lines = [f.line() for f in findings if f.severity == "problem"]
    assert len(lines) == 4, lines
    assert "option 'odd': default 3 does not parse" in lines[0] and "must be even" in lines[0]
    assert "option 'rounded': default 2.5 does not round-trip" in lines[1]
    assert "option 'mode': default 'fast' is not one of its choices" in lines[2]
    assert "option 'ok': is declared twice" in lines[3]


def test_backend_result_contract_and_manager_rejections():
    hw = HardwareSpec(name="quiet", description="no time", options=(),
                      run=lambda request: RunResult(summary={"cycles": 3}))
    (note,) = check_backend(hw)
    assert note.severity == "note" and "time_s" in note.message

    class Plugin:
        @hookimpl
        def bench_models(self):
            return [_make_model(lambda: None), "not a spec"]

        @hookimpl
        def bench_hardware(self):
            return [hw]

    class Clash:
        @hookimpl
        def bench_hardware(self):
            return [HardwareSpec(name="QUIET", description="same name", options=(), run=hw.run)]

    pm = BenchPluginManager(disabled=[])
    pm.register(Plugin(), "mine")
    pm.register(Clash(), "clash")
    report = check_plugins("clash", pm=pm)
    assert [f.line() for f in report.problems] == [
        "clash: plugin: hardware name 'QUIET' is already registered by plugin 'mine'; it is ignored"]
    mine = check_plugins("mine", pm=pm)
    messages = [f.line() for f in mine.problems]
    assert "mine: plugin: bench_models() returned a str, not a ModelSpec" in messages
    assert any("model 'm': building it and running" in m for m in messages)
    assert pm.registrations("mine") == {"models": ["m"], "hardware": ["quiet"]}
