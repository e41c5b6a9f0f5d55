"""What the on-chip policies cost in simulation time, against onchip=none in the same run.

For each model the layer table is read once (cache or trace, not timed); then the
accel backend's ``run`` (plan, simulation, per-layer rows and totals) is timed
``--repeats`` times per policy, interleaved so that the machine's noise hits all
three alike; the fastest of the repeats (the least disturbed by other processes on a
shared machine) and the median are printed, with the ratio of the fastest to
``onchip=none``'s.
The figures the policies produce (cycles, DRAM words, energy) are printed too,
so a run also shows what each policy changes. Target: ``reuse`` within 3x of
``none`` on every model (a plan is one pass over the table plus a capacity check
per feature map).

    .venv/bin/python benchmarks/bench_accel_onchip.py [--models ...] [--hw accel] [--repeats 15]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEFAULT_MODELS = "1.0-SqNxt-23v5,1.0-SqNxt-44,squeezenet1_0,alexnet,vgg19,mobilenet_v1_1.0"
MODES = ("none", "fuse", "reuse")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=DEFAULT_MODELS)
    parser.add_argument("--hw", default="accel")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--target", type=float, default=3.0, help="max reuse/none time ratio")
    args = parser.parse_args()

    from tabulate import tabulate

    from harness.plugins.manager import get_plugin_manager
    from harness.specs import RunRequest

    pm = get_plugin_manager()
    spec = pm.backend(args.hw)
    rows, worst = [], 0.0
    for name in args.models.split(","):
        model = pm.model(name)
        layers = RunRequest(model=model, batch=1, input_size=model.input_size,
                            options=spec.parse_options([])).layers()
        requests = {}
        for mode in MODES:
            request = RunRequest(model=model, batch=1, input_size=model.input_size,
                                 options=spec.parse_options([f"onchip={mode}"]))
            request._layers = layers
            requests[mode] = request
        times: dict[str, list[float]] = {m: [] for m in MODES}
        summaries = {}
        for _ in range(args.repeats):
            for mode in MODES:
                start = time.perf_counter()
                summaries[mode] = spec.run(requests[mode]).summary
                times[mode].append(time.perf_counter() - start)
        base = min(times["none"])
        for mode in MODES:
            fastest, median = min(times[mode]), statistics.median(times[mode])
            s = summaries[mode]
            worst = max(worst, fastest / base) if mode == "reuse" else worst
            rows.append({"model": name, "layers": len(layers), "onchip": mode,
                         "run ms (fastest)": fastest * 1e3, "median": median * 1e3,
                         "x none": fastest / base,
                         "cycles": s["cycles"], "DRAM words": s["dram_accesses"],
                         "energy": s["energy"],
                         "maps on chip": s.get("feature_maps_on_chip", "-"),
                         "fused adds": s.get("fused_adds", "-")})
    print(f"accel backend run time by on-chip policy ({args.hw}, {args.repeats} repeats, "
          "interleaved; ratios against onchip=none in this run)\n")
    print(tabulate(rows, headers="keys", floatfmt=".4g", intfmt=","))
    verdict = "meets" if worst <= args.target else "MISSES"
    print(f"\nworst reuse/none ratio {worst:.2f}x: {verdict} the {args.target:g}x target")
    return 0 if worst <= args.target else 1


if __name__ == "__main__":
    sys.exit(main())
