"""How long building every built-in model and its layer table takes. Target: under 10 s.

This is what every backend run pays before it simulates or times anything
(``RunRequest.layers()``: build the network, run ``layer_table`` on the CPU).
For each model it times, in the same run:

- ``build``: ``ModelSpec.build()`` (allocating and initialising the weights);
- ``table``: ``layer_table`` on the CPU at the model's input size, batch 1;
- ``forward``: one plain ``model(x)`` under ``torch.no_grad`` on the same input,
  measured right after the table, as the reference: ``table / forward`` is the
  layer table's overhead over the forward pass it wraps;
- ``meta``: the shape-only table on the meta device (what ``bench inspect`` uses for
  inputs above 4x the default pixel count).

It prints per-family sums, the total of ``build + table`` against the target,
and the ratios. Each figure is the median over ``--rounds`` rounds (the first
round includes one-time costs: oneDNN kernel creation, lazy imports).

    .venv/bin/python benchmarks/bench_models_build.py [--rounds 3] [--threads N] [--models a,b]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TARGET_S = 10.0
BUILT_IN = {"squeezenext", "squeezenet", "alexnet", "vgg", "mobilenet"}


def time_model(spec, torch, layer_table, shape_only_table) -> dict[str, float]:
    start = time.perf_counter()
    model = spec.build()
    built = time.perf_counter()
    layer_table(model, spec.input_size)
    tabled = time.perf_counter()
    with torch.no_grad():
        model.eval()(torch.zeros((1, *spec.input_size)))
    forwarded = time.perf_counter()
    shape_only_table(spec, spec.input_size)
    shaped = time.perf_counter()
    return {"build": built - start, "table": tabled - built, "forward": forwarded - tabled,
            "meta": shaped - forwarded}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's own choice)")
    parser.add_argument("--models", default="",
                        help="comma-separated names (default: all built-in)")
    args = parser.parse_args()

    import torch

    from harness.layers import shape_only_table
    from harness.layers import layer_table
    from harness.plugins.manager import get_plugin_manager

    if args.threads:
        torch.set_num_threads(args.threads)
    pm = get_plugin_manager()
    if args.models:
        specs = [pm.model(n) for n in args.models.split(",") if n.strip()]
    else:
        specs = [s for s in pm.models().values() if pm.plugin_of("models", s.name) in BUILT_IN]

    rounds: list[dict[str, dict[str, float]]] = []
    for _ in range(args.rounds):
        rounds.append({s.name: time_model(s, torch, layer_table, shape_only_table)
                       for s in specs})

    def median(name: str, key: str) -> float:
        return statistics.median(r[name][key] for r in rounds)

    keys = ("build", "table", "forward", "meta")
    families: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys(keys, 0.0))
    counts: dict[str, int] = defaultdict(int)
    for spec in specs:
        counts[spec.family] += 1
        for key in keys:
            families[spec.family][key] += median(spec.name, key)

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{len(specs)} models, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"median of {args.rounds} rounds (seconds); load average {load} on "
          f"{os.cpu_count()} CPUs\n")
    header = f"{'family':<12} {'models':>6} {'build':>8} {'table':>8} {'forward':>8} " \
             f"{'meta':>8} {'table/forward':>14} {'build+table, 1st round':>23}"
    print(header)
    print("-" * len(header))
    first_round: dict[str, float] = defaultdict(float)
    for spec in specs:
        first_round[spec.family] += rounds[0][spec.name]["build"] + rounds[0][spec.name]["table"]
    total = dict.fromkeys(keys, 0.0)
    for family, sums in families.items():
        for key in keys:
            total[key] += sums[key]
        print(f"{family:<12} {counts[family]:>6} {sums['build']:>8.3f} {sums['table']:>8.3f} "
              f"{sums['forward']:>8.3f} {sums['meta']:>8.3f} "
              f"{sums['table'] / sums['forward']:>14.2f} {first_round[family]:>23.3f}")
    first = sum(first_round.values())
    print("-" * len(header))
    print(f"{'all':<12} {len(specs):>6} {total['build']:>8.3f} {total['table']:>8.3f} "
          f"{total['forward']:>8.3f} {total['meta']:>8.3f} "
          f"{total['table'] / total['forward']:>14.2f} {first:>23.3f}\n")

    build_and_table = total["build"] + total["table"]
    print(f"build + layer table, all models: {build_and_table:.2f} s (first round {first:.2f} s); "
          f"target {TARGET_S:.0f} s: {'met' if build_and_table < TARGET_S else 'NOT met'} "
          f"({build_and_table / TARGET_S:.0%} of it)")
    print(f"ratio to the reference (one plain forward pass of every model): "
          f"build+table / forward = {build_and_table / total['forward']:.2f}, "
          f"table / forward = {total['table'] / total['forward']:.2f}")
    print(f"shape-only tables on the meta device, all models: {total['meta']:.2f} s "
          f"({total['meta'] / total['table']:.2f} x the CPU tables)")


if __name__ == "__main__":
    main()
