"""Discovery: third-party plugins are found through real entry points, broken ones are isolated."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.plugins import hookspecs

from conftest import DOC, doc_files


def test_docs_example_has_both_files():
    assert set(doc_files()) == {"pyproject.toml", "bench_toy/__init__.py"}
    assert 'toy = "bench_toy"' in doc_files()["pyproject.toml"]


def test_guide_names_every_hook_and_points_to_the_reference():
    text = DOC.read_text(encoding="utf-8")
    for name in (n for n in dir(hookspecs) if n.startswith("bench_")):
        assert f"`{name}" in text, f"{name} is not mentioned in docs/plugins.md"
    assert "(reference.md)" in text


def test_third_party_model_and_backend_are_listed_and_run(bench, site, tmp_path):
    env = {"PYTHONPATH": str(site), "BENCH_TOY_LOG": str(tmp_path / "recorded.log")}
    models = bench("list", "models", "--format", "json", env=env)
    assert models.returncode == 0, models.stderr
    toy = [m for m in json.loads(models.stdout) if m["name"] == "toy-net"]
    assert toy and toy[0]["plugin"] == "toy"
    hardware = json.loads(bench("list", "hardware", "--format", "json", env=env).stdout)
    assert "toy-hw" in {h["name"] for h in hardware}

    run = bench("run", "--model", "TOY-NET", "--hw", "toy-hw", "--hw-opt", "ns_per_mac=2",
                "--format", "json", env=env)
    assert run.returncode == 0, run.stderr
    payload = json.loads(run.stdout)
    # conv 8x3x3x3 at 16x16 + fc 8x1000, priced at 2 ns each
    macs = 16 * 16 * 8 * 27 + 8 * 1000
    assert payload["summary"]["macs"] == macs
    assert payload["summary"]["time_s"] == pytest.approx(macs * 2e-9)
    assert payload["options"]["ns_per_mac"] == 2.0
    # the observer hook saw the stored result
    logged = (tmp_path / "recorded.log").read_text().split()
    assert logged == [str(payload["id"]), "toy-net", "toy-hw"]

    hello = bench("toy-hello", env=env)
    assert hello.returncode == 0 and hello.stdout.strip() == "hello from bench-toy"

    bad = bench("run", "--model", "toy-net", "--hw", "toy-hw", "--hw-opt", "ns_per_mac=-1",
                env=env)
    assert bad.returncode == 2
    assert "ns_per_mac" in bad.stderr and "must be > 0" in bad.stderr


def test_broken_plugins_are_reported_and_the_rest_work(bench, site):
    env = {"PYTHONPATH": str(site)}
    out = bench("plugins", "--format", "json", env=env)
    assert out.returncode == 0, out.stderr
    plugins = {p["name"]: p for p in json.loads(out.stdout)}
    assert plugins["explodes"]["status"] == "broken"
    assert "boom at import" in plugins["explodes"]["error"]
    assert plugins["explodes"]["distribution"] == "bench-explodes"
    assert plugins["typo"]["status"] == "broken"
    assert "bench_modles" in plugins["typo"]["error"]
    assert "did you mean 'bench_models'" in plugins["typo"]["error"]
    assert plugins["toy"]["status"] == "ok"
    assert "bench_models" in plugins["toy"]["hooks"]
    # the table form shows them too, and everything else still runs
    table = bench("plugins", env=env)
    assert "broken" in table.stdout and "explodes" in table.stdout
    run = bench("run", "--model", "toy-net", "--hw", "toy-hw", "--no-store", env=env)
    assert run.returncode == 0, run.stderr


def test_disabled_plugins_are_not_loaded(bench, site):
    env = {"PYTHONPATH": str(site), "BENCH_DISABLE_PLUGINS": "toy,explodes"}
    plugins = {p["name"]: p for p in json.loads(
        bench("plugins", "--format", "json", env=env).stdout)}
    assert plugins["toy"]["status"] == "disabled"
    assert plugins["explodes"]["status"] == "disabled"
    run = bench("run", "--model", "toy-net", "--hw", "toy-hw", env=env)
    assert run.returncode == 2
    assert "unknown model 'toy-net'" in run.stderr


def test_trace_plugins_shows_hook_calls(bench, site):
    out = bench("--trace-plugins", "list", "hardware", env={"PYTHONPATH": str(site)})
    assert out.returncode == 0
    assert "bench_hardware" in out.stderr


def test_manager_isolates_a_hook_that_raises():
    from harness.plugins.manager import BenchPluginManager
    from harness import ModelSpec, hookimpl

    class Good:
        @hookimpl
        def bench_models(self):
            return [ModelSpec(name="good", family="x", builder=lambda: None)]

    class Bad:
        @hookimpl
        def bench_models(self):
            raise ValueError("listing failed")

    pm = BenchPluginManager(disabled=[])
    pm.register(Good(), "good")
    pm.register(Bad(), "bad")
    assert list(pm.models()) == ["good"]
    assert pm.info["bad"].status == "broken"
    assert "listing failed" in pm.info["bad"].error
    assert pm.plugin_of("models", "GOOD") == "good"
