"""`bench --help`, `bench list` and warm runs must not import torch, numpy's heavy users, or MPI."""
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
heavy = [m for m in ("torch", "mpi4py", "scipy", "matplotlib", "joblib") if m in sys.modules]
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


WARM_PROBE = PROBE.replace("with contextlib.redirect_stdout(io.StringIO()):",
                           "out = io.StringIO()\nwith contextlib.redirect_stdout(out):").replace(
    '"heavy": heavy}', '"heavy": heavy, "out": out.getvalue()}')


def probe(env: dict, *args: str) -> dict:
    done = subprocess.run([sys.executable, "-c", WARM_PROBE, *args], capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_warm_run_and_inspect_do_not_import_torch(tmp_path):
    """Once the layer table is cached, `bench run ... --hw accel` and `bench inspect` read it:
    no torch, and the same figures as the run that traced it."""
    import os

    env = {**os.environ, "BENCH_LAYER_CACHE": str(tmp_path / "layers"),
           "BENCH_STORE": str(tmp_path / "results.sqlite")}
    args = ["run", "--model", "1.0-SqNxt-23", "--hw", "accel", "--format", "json"]
    cold, warm = probe(env, *args), probe(env, *args)
    assert cold["code"] == warm["code"] == 0
    assert "torch" in cold["heavy"], "the cold run should have traced the network"
    assert warm["heavy"] == [], f"a warm run imported {warm['heavy']}"
    cold_out, warm_out = json.loads(cold["out"]), json.loads(warm["out"])
    assert warm_out["summary"] == cold_out["summary"] and warm_out["layers"] == cold_out["layers"]
    assert warm_out["id"] == cold_out["id"] + 1  # both stored
    inspect = probe(env, "inspect", "--model", "1.0-SqNxt-23", "--batch", "4", "--format", "json")
    assert inspect["code"] == 0 and inspect["heavy"] == []
    assert json.loads(inspect["out"])["totals"]["macs"] == 4 * cold_out["summary"]["macs"]
