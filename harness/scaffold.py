"""``bench plugin new NAME``: a plugin package that installs and passes its own test as written.

The package ``bench-NAME`` holds one model (``NAME-net``, with readable layer
names), one backend (``NAME-hw``, a roofline: each layer takes the longer of
its MAC time and its memory time) and a test that runs ``bench plugin check``'s
checks through the ``bench_check`` fixture of :mod:`harness.testing`.
"""
from __future__ import annotations

import re
from pathlib import Path

from harness import __version__
from harness.errors import BenchUsageError

NAME = re.compile(r"[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*")
MAX_NAME = 64  # it becomes a folder, a module and a distribution name

PYPROJECT = '''\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "bench-{name}"
version = "0.1.0"
description = "bench plugin: the {name}-net model and the {name}-hw roofline backend"
requires-python = ">=3.10"
dependencies = ["bench-harness>={harness_version}"]

[project.optional-dependencies]
test = ["pytest>=7.4"]

# This line is what makes `bench` find the plugin: group bench.plugins, name = module.
[project.entry-points."bench.plugins"]
{name} = "{package}"

[tool.setuptools]
packages = ["{package}"]
'''

README = '''\
# bench-{name}

A plugin for bench (the `bench-harness` distribution): the model `{name}-net` and the
backend `{name}-hw`.

```
pip install -e .                       # registers the entry point
bench plugins show {name}              # what it registers, from where
bench plugin check {name}              # the contracts bench relies on
bench run --model {name}-net --hw {name}-hw --layers
bench run --model 1.0-SqNxt-23 --hw {name}-hw --hw-opt peak_gmacs=50
python -m pytest                       # the same checks, plus your own tests
```
'''

INIT = '''\
"""bench plugin {name}: the hooks. bench imports this module for `bench list`, so it
imports nothing heavy: torch is imported only when a model is built."""
from harness import HardwareSpec, ModelSpec, hookimpl

from {package}.backend import OPTIONS, run_roofline
from {package}.model import INPUT_SIZE, NUM_CLASSES, build_net


@hookimpl
def bench_models():
    return [ModelSpec(
        name="{name}-net", family="{name}", builder=build_net,
        input_size=INPUT_SIZE,  # (C, H, W) of one sample, no batch dimension
        num_classes=NUM_CLASSES,  # the width of the output: (N, num_classes)
        description="two 3x3 convolutions and a classifier",
    )]


@hookimpl
def bench_hardware():
    return [HardwareSpec(
        name="{name}-hw", description="roofline: each layer takes max(MAC time, memory time)",
        options=OPTIONS, run=run_roofline,
    )]
'''

MODEL = '''\
"""The {name}-net model. Layers are named submodules, so per-layer tables read
`features.conv1` rather than nn.Sequential's `0`, `1`, ..."""
INPUT_SIZE = (3, 32, 32)
NUM_CLASSES = 10


def build_net():
    from collections import OrderedDict

    import torch.nn as nn

    features = nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(3, 16, 3, padding=1)), ("relu1", nn.ReLU()), ("pool1", nn.MaxPool2d(2)),
        ("conv2", nn.Conv2d(16, 32, 3, padding=1)), ("relu2", nn.ReLU()),
        ("pool2", nn.AdaptiveAvgPool2d(1)),
    ]))
    classifier = nn.Sequential(OrderedDict([
        ("flatten", nn.Flatten()), ("fc", nn.Linear(32, NUM_CLASSES)),
    ]))
    return nn.Sequential(OrderedDict([("features", features), ("classifier", classifier)]))
'''

BACKEND = '''\
"""The {name}-hw backend: a roofline over bench's layer table."""
from harness import OptionSpec, RunResult


def positive_float(text):
    value = float(text)  # raises ValueError on bad text: bench prints it on one line
    if not value > 0:
        raise ValueError("must be greater than 0")
    return value


def positive_int(text):
    value = int(text)
    if value < 1:
        raise ValueError("must be at least 1")
    return value


OPTIONS = (
    OptionSpec("peak_gmacs", positive_float, 100.0, "peak compute, GMAC/s"),
    OptionSpec("bandwidth_gbs", positive_float, 10.0, "memory bandwidth, GB/s"),
    OptionSpec("bytes_per_word", positive_int, 2, "bytes per activation and weight"),
)


def _words(shape, batch):
    count = batch
    for size in shape:
        count *= size
    return count


def run_roofline(request):
    """One pass over the layer table: `macs` and `elements` already cover the batch;
    shapes are per sample."""
    opts = request.options
    rows, total = [], 0.0
    for layer in request.layers():
        words = _words(layer.in_shape, layer.batch) + layer.elements + layer.params
        compute_s = layer.macs / (opts["peak_gmacs"] * 1e9)
        memory_s = words * opts["bytes_per_word"] / (opts["bandwidth_gbs"] * 1e9)
        total += max(compute_s, memory_s)
        rows.append({{"name": layer.name, "kind": layer.kind, "macs": layer.macs,
                     "bytes": words * opts["bytes_per_word"], "time_s": max(compute_s, memory_s),
                     "bound": "compute" if compute_s >= memory_s else "memory"}})
    macs = sum(row["macs"] for row in rows)
    summary = {{"time_s": total, "macs": macs, "bytes": sum(row["bytes"] for row in rows),
               "gmacs_achieved": macs / total / 1e9 if total else 0.0,
               "memory_bound_layers": sum(row["bound"] == "memory" for row in rows)}}
    return RunResult(summary=summary, layers=rows if request.per_layer else [])
'''

TEST = '''\
"""bench's own checks (bench_check, from bench-harness's pytest plugin) plus this backend's
arithmetic."""
import pytest

from harness.testing import run_backend


def test_plugin_passes_bench_check(bench_check):
    report = bench_check("{name}")  # fails with one line per problem
    assert report.models == ["{name}-net"]
    assert report.backends == ["{name}-hw"]


def test_roofline_is_compute_bound_when_memory_is_free():
    fast_memory = run_backend("{name}-hw", "{name}-net", peak_gmacs="1", bandwidth_gbs="1e9")
    macs = fast_memory.summary["macs"]
    assert macs > 0
    assert fast_memory.summary["time_s"] == pytest.approx(macs / 1e9, rel=1e-3)


def test_bad_option_is_a_one_line_error():
    from harness import BenchUsageError

    with pytest.raises(BenchUsageError, match="peak_gmacs"):
        run_backend("{name}-hw", "{name}-net", peak_gmacs="0")
'''


def package_name(name: str) -> str:
    return "bench_" + name.replace("-", "_")


def write_package(name: str, root: Path) -> list[Path]:
    """Write the skeleton of plugin ``name`` under ``root``; returns the files written.

    Refuses (:class:`BenchUsageError`) a name that is not a lower-case identifier
    and a ``root`` that exists and is not empty, so nothing is ever overwritten.
    """
    if not NAME.fullmatch(name) or len(name) > MAX_NAME:
        raise BenchUsageError(f"plugin name '{name}' must be lower-case letters and digits, "
                              "words joined by '-' or '_', starting with a letter, at most "
                              f"{MAX_NAME} characters (e.g. mychip)")
    root = Path(root)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise BenchUsageError(f"'{root}' already exists and is not empty; choose --dir")
    package = package_name(name)
    values = {"name": name, "package": package, "harness_version": __version__}
    files = {
        "pyproject.toml": PYPROJECT,
        "README.md": README,
        f"{package}/__init__.py": INIT,
        f"{package}/model.py": MODEL,
        f"{package}/backend.py": BACKEND,
        f"tests/test_{package}.py": TEST,
    }
    written = []
    for rel, template in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.format(**values), encoding="utf-8")
        written.append(path)
    return written
