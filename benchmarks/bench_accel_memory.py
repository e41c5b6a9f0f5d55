"""Peak memory of simulating a large batch: `bench run --hw accel` and `bench inspect` at
batch 1 and batch 100000, each in its own process, as ratios (target: batch 100000 within
1.5x of batch 1), with `python -c "import torch"` measured in the same run as the reference.

The simulator never allocates the activations it simulates: layer tables are traced at
batch 1 (shape-only) and scaled, so the batch must not show in the peak RSS.

    python benchmarks/bench_accel_memory.py [--model 1.0-SqNxt-23] [--repeat 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile


def peak_rss_mib(cmd: list[str], env: dict[str, str]) -> float:
    """Peak resident set size of one child process (its own rusage, from wait4)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): "
                         f"{proc.stderr.read().decode()[-500:]}")
    proc.stderr.close()
    return usage.ru_maxrss / 1024  # Linux reports KiB


def median_rss(cmd: list[str], env: dict[str, str], repeat: int) -> float:
    return statistics.median(peak_rss_mib(cmd, env) for _ in range(repeat))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="1.0-SqNxt-23")
    ap.add_argument("--batch", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        # No layer cache: every process traces its table, the costly path.
        env = {**os.environ, "BENCH_LAYER_CACHE": "off",
               "BENCH_STORE": os.path.join(tmp, "results.sqlite")}
        torch_mib = median_rss([py, "-c", "import torch"], env, args.repeat)
        print(f"python -c 'import torch'   peak RSS {torch_mib:7.1f} MiB  (reference)")
        for name, cmd in (
            ("bench run --hw accel", [py, "-m", "harness", "run", "--model", args.model,
                                      "--hw", "accel", "--no-store", "--quiet"]),
            ("bench inspect", [py, "-m", "harness", "inspect", "--model", args.model]),
        ):
            one = median_rss(cmd + ["--batch", "1"], env, args.repeat)
            big = median_rss(cmd + ["--batch", str(args.batch)], env, args.repeat)
            ratio = big / one
            print(f"{name:<22} batch 1      {one:7.1f} MiB  ({one / torch_mib:4.2f}x import torch)")
            print(f"{name:<22} batch {args.batch:<6} {big:7.1f} MiB  ({big / torch_mib:4.2f}x "
                  f"import torch)  batch {args.batch} / batch 1 = {ratio:.3f}x "
                  f"({'within' if ratio <= 1.5 else 'ABOVE'} the 1.5x target)")


if __name__ == "__main__":
    main()
