"""Does ``bench compare --rerun`` tell noise from change? False alarms and power, measured.

Does what a user would: stores one ``bench run`` of each cell, then
``bench compare A B --rerun K``, which measures both cells again, interleaved
A B B A ..., and tests the pairs:

- 10 identical pairs (A against a second stored run of A): how many compares call a
  significant change (target: at most 1 of 10);
- 10 pairs with a real slowdown of about 20%: the same network on a larger input
  (227 -> 249 pixels: 1.203x the MACs, measured ratio printed): how many are
  called slower (target: at least 9 of 10).

The second line of each count is the unpaired Welch test on the same re-runs
(pairing ignored, as ``bench compare gA gB`` without --rerun would test two
groups): it shows what the machine's drift costs a test that cannot pair.
Results go to a private store in a temporary folder. Prints the counts, the
measured slowdown (geometric mean of every slowdown pair's B/A), the spread of
the pair ratios and of runs within a group, how many runs other programs
competed with, the load average before and after, and the wall time.

    .venv/bin/python benchmarks/bench_compare.py [--pairs 10] [--rerun 10]
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


def store_run(store: Path, args: argparse.Namespace, input_size: int | None) -> str:
    cmd = ["run", "--model", args.model, "--hw", "cpu", "--quiet",
           "--hw-opt", f"threads={args.threads}", "--hw-opt", f"min_time={args.min_time}",
           "--hw-opt", "warmup=0.1", "--hw-opt", "min_samples=5"]
    if input_size is not None:
        cmd += ["--input-size", str(input_size)]
    return str(bench(store, *cmd)["id"])


def geomean(values: list[float]) -> float:
    return math.exp(statistics.fmean(math.log(v) for v in values))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--rerun", type=int, default=10, help="runs per side (>= 2)")
    parser.add_argument("--model", default="squeezenet1_1")
    parser.add_argument("--min-time", type=float, default=0.15)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.pairs < 1 or args.rerun < 2:
        parser.error("--pairs must be at least 1 and --rerun at least 2")

    load_before = os.getloadavg()
    start = time.perf_counter()
    called = {"same": 0, "slow": 0, "same_welch": 0, "slow_welch": 0}
    slow_ratios: list[float] = []
    pair_ratios: list[float] = []
    cvs: list[float] = []
    contended, total_runs = 0, 0
    with tempfile.TemporaryDirectory(prefix="bench-compare-") as tmp:
        store = Path(tmp) / "results.sqlite"
        for i in range(1, args.pairs + 1):
            a, a2, s = (store_run(store, args, None), store_run(store, args, None),
                        store_run(store, args, SLOW_INPUT))
            same = bench(store, "compare", a, a2, "--rerun", str(args.rerun))
            slow = bench(store, "compare", a, s, "--rerun", str(args.rerun))
            called["same"] += same["significant"]
            called["slow"] += slow["verdict"] == "slower"
            called["same_welch"] += same["unpaired"]["verdict"] != "no significant change"
            called["slow_welch"] += slow["unpaired"]["verdict"] == "slower"
            slow_ratios.append(slow["ratio_b_over_a"])
            pair_ratios += slow["pair_ratios"]
            for result in (same, slow):
                for side in (result["a"], result["b"]):
                    cvs.append(side["run_to_run_cv_pct"])
                    contended += side["contended_runs"]
                    total_runs += side["runs"]
            print(f"pair {i:2d}: identical {same['ratio_b_over_a']:.3f}x p={same['p_value']:.3g}"
                  f" -> {same['verdict']} (Welch p={same['unpaired']['p_value']:.3g}); slowdown "
                  f"{slow['ratio_b_over_a']:.3f}x (CI {slow['ci_low']:.3f}-{slow['ci_high']:.3f})"
                  f" p={slow['p_value']:.3g} -> {slow['verdict']} (Welch p="
                  f"{slow['unpaired']['p_value']:.3g} -> {slow['unpaired']['verdict']}); "
                  f"run-to-run CV {slow['a']['run_to_run_cv_pct']:.1f}%", flush=True)
    wall = time.perf_counter() - start
    load_after = os.getloadavg()
    macs_ratio = (SLOW_INPUT / 227) ** 2
    n = args.pairs
    print()
    print(f"model {args.model}, threads={args.threads}, bench compare A B --rerun {args.rerun} "
          f"(interleaved A B B A, paired t-test), min_time={args.min_time}s, {n} pairs of each")
    print(f"identical pairs called significant: {called['same']} of {n} (target <= 1); "
          f"unpaired Welch on the same runs: {called['same_welch']} of {n}")
    print(f"slowdown pairs called slower:       {called['slow']} of {n} (target >= 9); "
          f"unpaired Welch on the same runs: {called['slow_welch']} of {n}")
    print(f"measured slowdown (geometric mean of the compares' ratios): "
          f"{geomean(slow_ratios):.3f}x (per compare {min(slow_ratios):.3f}-"
          f"{max(slow_ratios):.3f}; single adjacent pairs {min(pair_ratios):.3f}-"
          f"{max(pair_ratios):.3f}; MACs ratio {macs_ratio:.3f})")
    print(f"run-to-run CV within a re-run group: median {statistics.median(cvs):.1f}%, range "
          f"{min(cvs):.1f}-{max(cvs):.1f}%; runs other programs competed with: "
          f"{contended} of {total_runs}")
    print(f"load average (1, 5, 15 min) before: {', '.join(f'{x:.2f}' for x in load_before)}; "
          f"after: {', '.join(f'{x:.2f}' for x in load_after)}")
    print(f"wall time: {wall:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
