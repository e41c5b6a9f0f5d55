"""Does ``bench compare`` tell noise from change? False alarms and power, measured.

Runs, as a user would, ``bench run --repeat K`` groups of one cpu cell and
compares them with ``bench compare``:

- 10 pairs of identical groups (the same cell, back to back): how many
  compares call a significant change (target: at most 1 of 10);
- 10 pairs with a real slowdown of about 20%: the same network on a larger
  input (227 -> 249 pixels: 1.203x the MACs, measured ratio printed): how many
  are called slower (target: at least 9 of 10).

Each pair i is three groups made back to back: A_i, A'_i (same cell) and S_i
(the slower cell); the identical pair is (A_i, A'_i), the slowdown pair
(A'_i, S_i), so each comparison is of two groups made one after the other.
Results go to a private store in a temporary folder. Prints the counts, the
measured slowdown (ratio of geometric means of all S over all A' groups), the
groups' run-to-run spread, how many runs other programs competed with, the
load average before and after, and the wall time.

    .venv/bin/python benchmarks/bench_compare.py [--pairs 10] [--repeat 5]
        [--model squeezenet1_1] [--min-time 0.15] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SLOW_INPUT = 249  # (249/227)^2 = 1.203x the work of SqueezeNet's native 227


def bench(store: Path, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "harness", *args, "--format", "json",
                          "--store", str(store)], capture_output=True, text=True, cwd=REPO)
    if out.returncode != 0:
        raise SystemExit(f"bench {' '.join(args)} failed: {out.stderr.strip()}")
    return json.loads(out.stdout)


def make_group(store: Path, args: argparse.Namespace, input_size: int | None) -> dict:
    cmd = ["run", "--model", args.model, "--hw", "cpu", "--repeat", str(args.repeat),
           "--hw-opt", f"threads={args.threads}", "--hw-opt", f"min_time={args.min_time}",
           "--hw-opt", "warmup=0.1", "--hw-opt", "min_samples=5"]
    if input_size is not None:
        cmd += ["--input-size", str(input_size)]
    return bench(store, *cmd)


def geomean(values: list[float]) -> float:
    return math.exp(statistics.fmean(math.log(v) for v in values))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5, help="runs per group (>= 2)")
    parser.add_argument("--model", default="squeezenet1_1")
    parser.add_argument("--min-time", type=float, default=0.15)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.pairs < 1 or args.repeat < 2:
        parser.error("--pairs must be at least 1 and --repeat at least 2")

    load_before = os.getloadavg()
    start = time.perf_counter()
    same_called, slow_called = 0, 0
    base_medians: list[float] = []
    slow_medians: list[float] = []
    pair_ratios: list[float] = []
    cvs: list[float] = []
    contended, total_runs = 0, 0
    with tempfile.TemporaryDirectory(prefix="bench-compare-") as tmp:
        store = Path(tmp) / "results.sqlite"
        for i in range(1, args.pairs + 1):
            a = make_group(store, args, None)
            a2 = make_group(store, args, None)
            s = make_group(store, args, SLOW_INPUT)
            same = bench(store, "compare", a["group"], a2["group"])
            slow = bench(store, "compare", a2["group"], s["group"])
            same_called += same["significant"]
            slow_called += slow["significant"] and slow["verdict"] == "slower"
            base_medians += [r["summary"]["time_s"] for r in a2["runs"]]
            slow_medians += [r["summary"]["time_s"] for r in s["runs"]]
            pair_ratios.append(slow["ratio_b_over_a"])
            for side in (same["a"], same["b"], slow["b"]):  # each group once
                cvs.append(side["run_to_run_cv_pct"])
                contended += side["contended_runs"]
                total_runs += side["runs"]
            print(f"pair {i:2d}: identical {same['ratio_b_over_a']:.3f}x p={same['p_value']:.3g} "
                  f"-> {same['verdict']}; slowdown {slow['ratio_b_over_a']:.3f}x "
                  f"(CI {slow['ci_low']:.3f}-{slow['ci_high']:.3f}) p={slow['p_value']:.3g} "
                  f"-> {slow['verdict']}; run-to-run CV {same['a']['run_to_run_cv_pct']:.1f}%",
                  flush=True)
    wall = time.perf_counter() - start
    load_after = os.getloadavg()
    macs_ratio = (SLOW_INPUT / 227) ** 2
    print()
    print(f"model {args.model}, threads={args.threads}, {args.repeat} runs per group, "
          f"min_time={args.min_time}s, {args.pairs} pairs of each kind")
    print(f"identical pairs called significant: {same_called} of {args.pairs} (target <= 1)")
    print(f"slowdown pairs called slower:       {slow_called} of {args.pairs} (target >= 9)")
    print(f"measured slowdown (geometric mean of run medians, all S / all A'): "
          f"{geomean(slow_medians) / geomean(base_medians):.3f}x "
          f"(per-pair ratios median {statistics.median(pair_ratios):.3f}, "
          f"range {min(pair_ratios):.3f}-{max(pair_ratios):.3f}; MACs ratio {macs_ratio:.3f})")
    print(f"run-to-run CV of a group: median {statistics.median(cvs):.1f}%, range "
          f"{min(cvs):.1f}-{max(cvs):.1f}%; runs other programs competed with: "
          f"{contended} of {total_runs}")
    print(f"load average (1, 5, 15 min) before: {', '.join(f'{x:.2f}' for x in load_before)}; "
          f"after: {', '.join(f'{x:.2f}' for x in load_after)}")
    print(f"wall time: {wall:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
