"""How long Hemingway takes to fit and rank 5 algorithms over m = 1..128 (target: < 1 s).

Synthetic sweeps of five algorithms measured at m = 1, 2, 4, ..., 128 (eight
sizes, about 26,000 per-iteration rows) are written to a CSV file. The timed
work is what ``bench rank --max-ranks 128`` does after reading them: fit both
models per algorithm (with the cross-validated choice of convergence family)
and rank all 640 (algorithm, m) pairs with 200 bootstrap resamples.

References measured in the same run, on the same data:
- reading and checking the CSV file (``--input``), which every ranking pays;
- one ``numpy.linalg.lstsq`` per algorithm on the same rows the convergence
  model is fitted to (level crossings x every candidate column), i.e. the
  cost of a single unconstrained fit without model selection or bootstrap.

Run: .venv/bin/python benchmarks/bench_hemingway_fit.py [--repeats 5]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from plugins.hemingway.convergence import LevelPoints  # noqa: E402
from plugins.hemingway.measurements import from_file  # noqa: E402
from plugins.hemingway.fitting import fit_all  # noqa: E402
from plugins.hemingway.ranking import Objective, rank  # noqa: E402
from plugins.hemingway.synthetic import EXAMPLE_ALGORITHMS, generate, write_csv  # noqa: E402
from plugins.hemingway.system_model import resolve_terms  # noqa: E402

EPS = 1e-4
N = 20000
SIZES = (1, 2, 4, 8, 16, 32, 64, 128)
MAX_RANKS = 128


def timed(work, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    rows = generate(EXAMPLE_ALGORITHMS, SIZES, N, EPS, seed=0)
    terms = resolve_terms([])
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "sweep.csv")
        write_csv(rows, path)
        load_s, data = timed(lambda: from_file(path, None), args.repeats)

    def fit_and_rank():
        fits, _ = fit_all(data, EPS, terms)
        return fits, rank(fits, EPS, MAX_RANKS, Objective(), terms, draws=200, seed=0)

    work_s, (fits, ranking) = timed(fit_and_rank, args.repeats)
    fit_s, _ = timed(lambda: fit_all(data, EPS, terms), args.repeats)

    designs = []
    for fit in fits:
        points = LevelPoints.concatenate(fit.level_points)
        designs.append((points.features / points.iterations[:, None], np.ones(len(points.m))))
    lstsq_s, _ = timed(lambda: [np.linalg.lstsq(a, b, rcond=None) for a, b in designs],
                       args.repeats)

    best = ranking[0]
    print(f"{len(rows)} per-iteration rows, {len(EXAMPLE_ALGORITHMS)} algorithms measured at "
          f"m={','.join(map(str, SIZES))}; ranked m=1..{MAX_RANKS} ({len(ranking)} pairs), "
          f"200 bootstrap resamples; median of {args.repeats} runs")
    print(f"fit + rank            {work_s:8.3f} s   (target < 1 s: "
          f"{'met' if work_s < 1 else 'NOT met'})")
    print(f"  of which fitting    {fit_s:8.3f} s")
    print(f"reference: load CSV   {load_s:8.3f} s   fit+rank / load  = {work_s / load_s:6.2f}")
    print(f"reference: lstsq x{len(designs)}     {lstsq_s:8.4f} s   fit+rank / lstsq = "
          f"{work_s / lstsq_s:6.1f}")
    print(f"best: {best['algorithm']} on m={best['m']}, predicted {best['time_s']:.3g} s")


if __name__ == "__main__":
    main()
