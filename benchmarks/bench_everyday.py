"""Wall time of the everyday commands, cold (no cached layer tables) and warm, as ratios to
references measured in the same run: ``python -c pass``, the start-up of the libraries the
CLI stands on (``python -c "import tabulate, click, pluggy"``) and ``python -c "import torch"``.

    python benchmarks/bench_everyday.py [--repeat 15] [--cold-repeat 3] [--matrix-repeat 3]

Commands, as a user types them (results go to a private store, tables to a private cache,
so the user's own are untouched):

- ``bench run --model 1.0-SqNxt-23 --hw accel`` (stores its result, as by default);
- ``bench inspect --model 1.0-SqNxt-23``;
- the full design matrix: every installed model on accel-8x8/16x16/32x32 x ws/os
  (``--vary dataflow=ws,os``), stored.

Cold means the layer-table cache is empty (the first run after installing or changing a
model); warm means the tables are cached. Warm runs and the references are interleaved
round-robin, so load from other processes hits them alike; min and median are both shown.
The project's bytecode is compiled first (as a regular ``pip install`` does; an editable
install writes it on first import unless ``PYTHONDONTWRITEBYTECODE`` is set, as it is in
some sandboxes) and children run without ``PYTHONDONTWRITEBYTECODE``.
"""
from __future__ import annotations

import argparse
import compileall
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ARRAYS = "accel-8x8,accel-16x16,accel-32x32"


def bench_command() -> list[str]:
    script = Path(sys.executable).with_name("bench")
    return [str(script)] if script.exists() else [sys.executable, "-m", "harness"]


def once(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                          cwd=REPO, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(cmd)}\n{done.stderr}")
    return elapsed


def interleaved(commands: dict[str, list[str]], env: dict[str, str], repeat: int
                ) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(repeat):
        for name, cmd in commands.items():
            times[name].append(once(cmd, env))
    return times


def cold(cmd: list[str], env: dict[str, str], cache: Path, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        shutil.rmtree(cache, ignore_errors=True)
        times.append(once(cmd, env))
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=15, help="warm runs and reference runs")
    ap.add_argument("--cold-repeat", type=int, default=3, help="cold runs of run/inspect")
    ap.add_argument("--matrix-repeat", type=int, default=3, help="runs of the full matrix")
    args = ap.parse_args()

    for folder in ("harness", "plugins"):
        compileall.compile_dir(str(REPO / folder), quiet=1)
    work = Path(tempfile.mkdtemp(prefix="bench-everyday-"))
    cache = work / "layers"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update({"BENCH_LAYER_CACHE": str(cache), "BENCH_STORE": str(work / "results.sqlite")})
    bench = bench_command()
    py = sys.executable
    models = subprocess.run(bench + ["list", "models", "--format", "csv"], env=env,
                            capture_output=True, text=True, check=True).stdout
    names = [line.split(",")[0] for line in models.splitlines()[1:] if line]
    run = bench + ["run", "--model", "1.0-SqNxt-23", "--hw", "accel"]
    inspect = bench + ["inspect", "--model", "1.0-SqNxt-23"]
    matrix = bench + ["matrix", "--model", ",".join(names), "--hw", ARRAYS,
                      "--vary", "dataflow=ws,os"]
    load_before = os.getloadavg()

    refs = {"python -c pass": [py, "-c", "pass"],
            "import tabulate, click, pluggy": [py, "-c", "import tabulate, click, pluggy"],
            "import torch": [py, "-c", "import torch"]}
    cold_times = {"bench run (accel)": cold(run, env, cache, args.cold_repeat),
                  "bench inspect": cold(inspect, env, cache, args.cold_repeat)}
    cold_times[f"bench matrix ({len(names)} models x 6)"] = cold(matrix, env, cache,
                                                                 args.matrix_repeat)
    once(run, env)  # the matrix filled the cache; this also opens the store once
    warm = interleaved({**refs, "bench run (accel)": run, "bench inspect": inspect}, env,
                       args.repeat)
    warm[f"bench matrix ({len(names)} models x 6)"] = [once(matrix, env)
                                                       for _ in range(args.matrix_repeat)]
    load_after = os.getloadavg()

    pass_, tcp, torch = (statistics.median(warm[k]) for k in refs)
    pass_min, tcp_min, torch_min = (min(warm[k]) for k in refs)
    header = (f"{'command':38s} {'state':5s} {'n':>3s} {'min':>9s} {'median':>9s}  "
              f"{'/pass':>7s} {'/tabulate+click+pluggy':>22s} {'/import torch':>13s}")
    print(header)
    print("-" * len(header))

    def line(name: str, state: str, times: list[float]) -> None:
        med, low = statistics.median(times), min(times)
        print(f"{name:38s} {state:5s} {len(times):3d} {low * 1e3:7.0f}ms {med * 1e3:7.0f}ms  "
              f"{med / pass_:6.2f}x {med / tcp:10.2f}x (min {low / tcp_min:4.2f}x) "
              f"{med / torch:12.2f}x")

    for name in refs:
        line(name, "ref", warm[name])
    for name, times in cold_times.items():
        line(name, "cold", times)
    for name in cold_times:
        line(name, "warm", warm[name])
    key = "bench run (accel)"
    full = f"bench matrix ({len(names)} models x 6)"
    print()
    print(f"warm `bench run --model 1.0-SqNxt-23 --hw accel` / tabulate+click+pluggy start-up: "
          f"median {statistics.median(warm[key]) / tcp:.2f}x, min {min(warm[key]) / tcp_min:.2f}x "
          f"(target: within 2x)")
    print(f"full matrix ({len(names) * 6} cells): warm median "
          f"{statistics.median(warm[full]):.1f} s (target: under 10 s), cold median "
          f"{statistics.median(cold_times[full]):.1f} s")
    print(f"machine: {os.cpu_count()} cores, load average {load_before[0]:.2f} before, "
          f"{load_after[0]:.2f} after; python {sys.version.split()[0]}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
