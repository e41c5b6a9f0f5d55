"""Start-up cost of `bench --help`: median wall time, the share spent importing,
and the ratio to a bare `python -c pass` measured in the same run.

    python benchmarks/bench_startup.py [--repeat 15]
"""
from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time


def wall(cmd: list[str], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - t0)
    return times


def import_seconds(cmd: list[str]) -> float:
    """Sum of top-level cumulative import times reported by `-X importtime`."""
    err = subprocess.run(cmd, capture_output=True, text=True).stderr
    total = 0
    for line in err.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if m and len(m.group(2)) == 1:  # top-level imports only (one space of indent)
            total += int(m.group(1))
    return total / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()
    py = sys.executable
    bare = wall([py, "-c", "pass"], args.repeat)
    help_ = wall([py, "-m", "harness", "--help"], args.repeat)
    list_ = wall([py, "-m", "harness", "list", "models"], args.repeat)
    imports = statistics.median(import_seconds([py, "-X", "importtime", "-m", "harness",
                                                "--help"]) for _ in range(5))
    med_bare, med_help, med_list = map(statistics.median, (bare, help_, list_))
    print(f"python -c pass        median {med_bare * 1e3:7.1f} ms  (reference)")
    print(f"bench --help          median {med_help * 1e3:7.1f} ms  "
          f"ratio to bare python {med_help / med_bare:5.2f}x")
    print(f"bench list models     median {med_list * 1e3:7.1f} ms  "
          f"ratio to bare python {med_list / med_bare:5.2f}x")
    print(f"importing (bench --help, -X importtime) {imports * 1e3:7.1f} ms = "
          f"{imports / med_help:.0%} of its wall time")


if __name__ == "__main__":
    main()
