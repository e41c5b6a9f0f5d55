"""The layer-table cache: hits give the traced table, every part of the key invalidates,
damaged files are rebuilt with a warning, and warm runs never import torch."""
from __future__ import annotations

import importlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import harness
from harness import ModelSpec
from harness import layer_cache as lc
from harness.layers import model_layers
from plugins.optimizers import libsvm

PACKAGE = "bench_cache_toys"
MODELS = '''
from harness import ModelSpec


def build_net():
    import torch.nn as nn
    from {package}.parts import head  # imported in the body, as built-in builders do

    return nn.Sequential(nn.Conv2d(3, {width}, 3, padding=1), nn.ReLU(), *head({width}))
'''
PARTS = '''
def head(width):
    import torch.nn as nn

    return [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, {classes})]
'''


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private cache folder and fresh in-process memos."""
    folder = tmp_path / "layers"
    monkeypatch.setenv(lc.CACHE_ENV, str(folder))
    lc._memory.clear()
    lc.module_fingerprint.cache_clear()
    lc._tracer.cache_clear()
    yield folder
    lc._memory.clear()
    lc.module_fingerprint.cache_clear()
    lc._tracer.cache_clear()


@pytest.fixture
def toys(tmp_path, monkeypatch):
    """A model package on sys.path whose sources the test can rewrite; returns a spec maker."""
    root = tmp_path / "site"
    (root / PACKAGE).mkdir(parents=True)
    monkeypatch.syspath_prepend(str(root))

    def write(width: int = 8, classes: int = 10) -> ModelSpec:
        (root / PACKAGE / "__init__.py").write_text(
            MODELS.format(package=PACKAGE, width=width), encoding="utf-8")
        (root / PACKAGE / "parts.py").write_text(PARTS.format(classes=classes), encoding="utf-8")
        lc.module_fingerprint.cache_clear()
        lc._memory.clear()
        for name in (PACKAGE, f"{PACKAGE}.parts"):
            if name in sys.modules:
                importlib.reload(sys.modules[name])
        module = importlib.import_module(PACKAGE)
        return ModelSpec("cache-toy", "toy", module.build_net, input_size=(3, 12, 12))

    yield write
    for name in (PACKAGE, f"{PACKAGE}.parts"):
        sys.modules.pop(name, None)


@pytest.fixture
def traces(monkeypatch):
    """Counts real traces behind the cache."""
    calls = []

    def counting(spec, size, batch=1):
        calls.append((spec.name, tuple(size), batch))
        return model_layers(spec, size, batch)

    monkeypatch.setattr(lc, "model_layers", counting)
    return calls


def entry_files(folder: Path) -> list[Path]:
    return sorted(folder.glob(f"*{lc.SUFFIX}"))


def test_a_hit_returns_the_traced_table_at_any_batch_without_tracing(cache, toys, traces):
    spec = toys()
    traced = model_layers(spec, spec.input_size, batch=5)
    assert lc.cached_layers(spec, spec.input_size, batch=5) == traced
    assert len(traces) == 1 and len(entry_files(cache)) == 1
    lc._memory.clear()  # as a new process: read from disk
    assert lc.cached_layers(spec, spec.input_size, batch=5) == traced
    assert lc.cached_layers(spec, spec.input_size, batch=1) == model_layers(spec, spec.input_size)
    assert len(traces) == 1  # batch is not in the key: one trace serves every batch
    other = lc.cached_layers(spec, (3, 20, 20))  # another input size is another entry
    assert len(traces) == 2 and len(entry_files(cache)) == 2 and other[0].out_shape[1:] == (20, 20)


def test_a_built_in_network_round_trips_exactly(cache):
    from harness.plugins.manager import get_plugin_manager

    spec = get_plugin_manager().model("squeezenet1_1")
    traced = model_layers(spec, spec.input_size, batch=3)
    assert lc.cached_layers(spec, spec.input_size, batch=3) == traced  # written
    lc._memory.clear()
    assert lc.cached_layers(spec, spec.input_size, batch=3) == traced  # read back
    assert any(layer.extra for layer in traced)  # concat inputs survive the round trip


def test_changing_the_builder_module_rebuilds(cache, toys, traces):
    spec = toys(width=8)
    assert lc.cached_layers(spec, spec.input_size)[0].out_shape[0] == 8
    spec = toys(width=16)  # the module defining the builder changed
    assert lc.cached_layers(spec, spec.input_size)[0].out_shape[0] == 16
    assert len(traces) == 2 and len(entry_files(cache)) == 2


def test_changing_a_module_the_builder_imports_in_its_body_rebuilds(cache, toys, traces):
    spec = toys(classes=10)
    assert lc.cached_layers(spec, spec.input_size)[-1].out_shape == (10,)
    spec = toys(classes=7)  # only parts.py changed
    assert lc.cached_layers(spec, spec.input_size)[-1].out_shape == (7,)
    assert len(traces) == 2


def test_unchanged_sources_hit_after_a_reload(cache, toys, traces):
    spec = toys()
    lc.cached_layers(spec, spec.input_size)
    spec = toys()  # same text written again: same key
    lc.cached_layers(spec, spec.input_size)
    assert len(traces) == 1


def test_changing_the_harness_version_or_tracer_rebuilds(cache, toys, traces, monkeypatch):
    spec = toys()
    lc.cached_layers(spec, spec.input_size)
    monkeypatch.setattr(harness.version, "__version__", "99.0")
    lc._tracer.cache_clear()
    lc._memory.clear()
    lc.cached_layers(spec, spec.input_size)
    assert len(traces) == 2
    monkeypatch.setattr(lc, "TABLE_FORMAT", lc.TABLE_FORMAT + 1)  # a new file layout
    lc._tracer.cache_clear()
    lc._memory.clear()
    lc.cached_layers(spec, spec.input_size)
    assert len(traces) == 3 and len(entry_files(cache)) == 3


def test_key_names_every_ingredient(cache, toys):
    key = lc.table_key(toys(), (3, 12, 12))
    assert {"model", "input_size", "builder_module", "builder_source", "distribution",
            "harness", "layers_py", "torch", "format"} <= set(key)
    assert "batch" not in key
    assert key["harness"] == harness.__version__ and key["builder_module"] == PACKAGE


@pytest.mark.parametrize("damage,reason", [
    (lambda data: data[: len(data) // 2], "truncated"),
    (lambda data: data[:-40] + bytes(b ^ 1 for b in data[-40:]), "checksum mismatch"),
    (lambda data: b"", "no header line"),
    (lambda data: b"{not json\n" + data.partition(b"\n")[2], "unreadable header"),
])
def test_a_damaged_entry_is_rebuilt_with_a_one_line_warning(cache, toys, traces, capsys,
                                                           damage, reason):
    spec = toys()
    good = lc.cached_layers(spec, spec.input_size)
    (path,) = entry_files(cache)
    path.write_bytes(damage(path.read_bytes()))
    lc._memory.clear()
    assert lc.cached_layers(spec, spec.input_size) == good
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: layer-table cache entry")
    assert reason in err[0] and "rebuilding" in err[0]
    assert len(traces) == 2
    lc._memory.clear()
    assert lc.cached_layers(spec, spec.input_size) == good  # the rebuilt file is good
    assert capsys.readouterr().err == "" and len(traces) == 2


def test_an_entry_under_another_key_is_not_trusted(cache, toys, traces, capsys):
    spec = toys()
    lc.cached_layers(spec, spec.input_size)
    lc.cached_layers(spec, (3, 20, 20))
    small, large = (lc.entry_path(cache, lc.table_key(spec, s)) for s in
                    [spec.input_size, (3, 20, 20)])
    small.write_bytes(large.read_bytes())  # a valid file, but for another key
    lc._memory.clear()
    assert lc.cached_layers(spec, spec.input_size)[0].out_shape == (8, 12, 12)
    assert "does not match" in capsys.readouterr().err and len(traces) == 3


def test_an_unwritable_cache_warns_once_and_still_answers(tmp_path, monkeypatch, toys, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(lc.CACHE_ENV, str(blocker / "layers"))
    monkeypatch.setattr(lc, "_warned_unwritable", False)
    lc._memory.clear()
    spec = toys()
    assert lc.cached_layers(spec, spec.input_size) == model_layers(spec, spec.input_size)
    assert "cannot write the layer-table cache" in capsys.readouterr().err


def test_off_and_sourceless_builders_are_never_cached(tmp_path, monkeypatch, toys, traces):
    monkeypatch.setenv(lc.CACHE_ENV, "off")
    spec = toys()
    lc.cached_layers(spec, spec.input_size)
    lc.cached_layers(spec, spec.input_size)
    assert len(traces) == 2 and lc.cache_dir() is None
    monkeypatch.setenv(lc.CACHE_ENV, str(tmp_path / "layers"))
    namespace: dict = {"__name__": "__main__"}
    exec("def build():\n    import torch.nn as nn\n    return nn.Linear(4, 2)\n", namespace)
    assert lc.table_key(ModelSpec("main-net", "toy", namespace["build"], (4,)), (4,)) is None


def test_location_follows_the_environment(tmp_path, monkeypatch):
    for name in (lc.CACHE_ENV, lc.ROOT_ENV, "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert lc.cache_dir() == tmp_path / ".cache" / "bench" / "layers"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert lc.cache_dir() == tmp_path / "xdg" / "bench" / "layers"
    # the optimizers' caches (f*, parsed LIBSVM files) share the root, XDG included
    assert libsvm.cache_dir("fstar") == tmp_path / "xdg" / "bench" / "fstar"
    monkeypatch.setenv(lc.ROOT_ENV, str(tmp_path / "root"))
    assert lc.cache_dir() == tmp_path / "root" / "layers"
    assert libsvm.cache_dir("fstar") == tmp_path / "root" / "fstar"
    monkeypatch.setenv(lc.CACHE_ENV, str(tmp_path / "mine"))
    assert lc.cache_dir() == tmp_path / "mine"


def test_imports_are_found_in_function_bodies_and_relative_forms():
    source = textwrap.dedent("""
        import os, pkg.a as alias
        from pkg.b import thing, other as o
        from . import sibling
        from .c import (
            x,
            y,
        )
        def f():
            from ..up import z
    """)
    names = lc._imported_names(source, "pkg.sub")
    assert {"os", "pkg.a", "pkg.b", "pkg.b.thing", "pkg.b.other", "pkg.sub",
            "pkg.sub.sibling", "pkg.sub.c", "pkg.sub.c.x", "pkg.sub.c.y", "pkg.up"} <= names


# --------------------------------------------------------------------------- the CLI
def test_cache_info_and_clear(bench, tmp_path):
    import os

    folder = tmp_path / "cli-layers"
    env = {lc.CACHE_ENV: str(folder)}
    for model in ("squeezenet1_1", "mobilenet_v1_0.25"):
        assert bench("inspect", "--model", model, env=env).returncode == 0
    (folder / f"ghost_3x9x9_{'0' * 32}{lc.SUFFIX}").write_bytes(b"garbage")
    stale = sorted(folder.glob(f"squeezenet1_1*{lc.SUFFIX}"))[0]
    header, _, payload = stale.read_bytes().partition(b"\n")
    old = json.loads(header)
    old["key"]["builder_source"] = "0" * 64  # as if traced before the builder changed
    stale.with_name(f"squeezenet1_1_3x227x227_{'1' * 32}{lc.SUFFIX}").write_bytes(
        json.dumps(old).encode() + b"\n" + payload)

    info = bench("cache", "info", "--format", "json", env=env)
    assert info.returncode == 0, info.stderr
    payload = json.loads(info.stdout)
    assert payload["directory"] == str(folder) and payload["entries"] == 4
    assert payload["by_status"] == {"current": 2, "stale": 1, "not installed": 0, "damaged": 1}
    table = bench("cache", "info", env=env).stdout
    assert "4 entries" in table and "damaged" in table and str(folder) in table

    cleared = bench("cache", "clear", "--stale", env=env)
    assert cleared.returncode == 0 and "removed 2 of 4 entries" in cleared.stdout
    assert len(entry_files(folder)) == 2
    assert bench("cache", "clear", "--model", "squeezenet1_1", env=env).returncode == 0
    assert [p.name.split("_3x")[0] for p in entry_files(folder)] == ["mobilenet_v1_0.25"]
    assert "removed 1 of 1" in bench("cache", "clear", env=env).stdout
    assert entry_files(folder) == []
    other = tmp_path / "by-option"
    by_option = bench("--layer-cache", str(other), "inspect", "--model", "squeezenet1_1")
    assert by_option.returncode == 0 and len(entry_files(other)) == 1
    off = bench("--layer-cache", "off", "cache", "info")
    assert off.returncode == 2 and "off" in off.stderr and len(off.stderr.splitlines()) == 1
    assert os.environ.get(lc.CACHE_ENV) != str(other)  # the option did not leak here


def test_concurrent_cold_runs_agree_and_leave_one_good_entry(tmp_path, site):
    """Two processes tracing the same table at once (matrix workers, MPI ranks): both
    finish, neither warns, and the one file left is valid."""
    import os

    from conftest import REPO

    folder = tmp_path / "shared-layers"
    env = {**os.environ, lc.CACHE_ENV: str(folder), "PYTHONPATH": str(site)}
    cmd = [sys.executable, "-m", "harness", "inspect", "--model", "toy-net", "--format", "json"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env, cwd=str(REPO)) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    assert all(err == "" for _, err in outs)
    assert json.loads(outs[0][0]) == json.loads(outs[1][0])
    (entry,) = entry_files(folder)
    assert not list(folder.glob(".tmp-*"))
    header, _ = lc.read_header(entry)  # raises if damaged
    assert header["key"]["model"] == "toy-net"


def test_the_built_in_sha256_gives_hashlibs_digests():
    import hashlib

    for data in (b"", b"abc", bytes(range(256)) * 1000):
        assert lc.sha256(data).hexdigest() == hashlib.sha256(data).hexdigest()


def test_under_bench_cache_the_optimizers_caches_are_shown_and_kept(bench, tmp_path):
    root = tmp_path / "bench-cache"
    (root / "libsvm" / "joblib").mkdir(parents=True)
    (root / "libsvm" / "joblib" / "output.pkl").write_bytes(b"x" * 100)
    env = {lc.CACHE_ENV: "", lc.ROOT_ENV: str(root)}
    assert bench("inspect", "--model", "squeezenet1_1", env=env).returncode == 0
    info = json.loads(bench("cache", "info", "--format", "json", env=env).stdout)
    assert info["directory"] == str(root / "layers") and info["chosen_by"] == "$BENCH_CACHE/layers"
    assert info["entries"] == 1 and info["other_caches"] == {"libsvm": {"files": 1, "bytes": 100}}
    assert "also under" in bench("cache", "info", env=env).stdout
    assert bench("cache", "clear", env=env).returncode == 0
    assert entry_files(root / "layers") == [] and (root / "libsvm" / "joblib" / "output.pkl").exists()
