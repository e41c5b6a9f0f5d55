"""`bench --help` and `bench list` must not import torch, numpy's heavy users, or MPI."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROBE = """
import contextlib, io, json, sys
from harness.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    code = main(sys.argv[1:])
heavy = [m for m in ("torch", "mpi4py", "scipy", "matplotlib") if m in sys.modules]
print(json.dumps({"code": code, "heavy": heavy}))
"""


@pytest.mark.parametrize("args", [
    ["--help"], ["list", "models"], ["list", "hardware"], ["list", "optimizers"],
    ["list", "problems"], ["list", "analyzers"], ["plugins"],
])
def test_light_commands_do_not_import_heavy_modules(args):
    out = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True,
                         timeout=120)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["code"] == 0, out.stderr
    assert result["heavy"] == [], f"bench {' '.join(args)} imported {result['heavy']}"
