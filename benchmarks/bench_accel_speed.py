"""How fast the accel backend simulates whole networks, against SCALE-Sim's seconds per layer.

For each model it builds the layer table once (PyTorch, reported but not part
of the simulation time), then times the backend's ``run`` (simulation, per-layer
rows and totals) many times and prints the median. If the SCALE-Sim venv of
bench_accel_scalesim.py exists, it also runs SCALE-Sim, in the same run, on a
few of the first model's compute layers (those at the 25th, 50th and 75th
percentile of compute cycles) and prints SCALE-Sim's seconds per layer and the
ratio to a whole-model accel run. Target: under 50 ms per whole model.

    .venv/bin/python benchmarks/bench_accel_speed.py [--models ...] [--hw accel] [--repeats 30]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

DEFAULT_MODELS = ("1.0-SqNxt-23,1.0-SqNxt-23v2,1.0-SqNxt-23v3,1.0-SqNxt-23v4,1.0-SqNxt-23v5,"
                  "1.0-SqNxt-34,1.0-SqNxt-44,2.0-SqNxt-23")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=DEFAULT_MODELS)
    parser.add_argument("--hw", default="accel")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--scalesim-layers", type=int, default=3,
                        help="SCALE-Sim reference layers (0 to skip)")
    parser.add_argument("--target-ms", type=float, default=50.0)
    args = parser.parse_args()

    from tabulate import tabulate

    import os

    # "layer table s (once)" is the trace itself, not a read of the layer-table cache.
    os.environ.setdefault("BENCH_LAYER_CACHE", "off")
    from harness.plugins.manager import get_plugin_manager
    from harness.specs import RunRequest
    from plugins.hardware.accel import config_from_options
    from plugins.hardware.accel_model import simulate

    pm = get_plugin_manager()
    spec = pm.backend(args.hw)
    options = spec.parse_options([])
    cfg = config_from_options(options)
    rows, medians, first = [], [], None
    for name in args.models.split(","):
        model = pm.model(name)
        request = RunRequest(model=model, batch=1, input_size=model.input_size, options=options)
        start = time.perf_counter()
        layers = request.layers()
        table_s = time.perf_counter() - start
        first = first or (name, layers)
        run_s, sim_s = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            spec.run(request)
            run_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            simulate(layers, cfg)
            sim_s.append(time.perf_counter() - start)
        median = statistics.median(run_s)
        medians.append(median)
        compute = sum(1 for layer in layers if layer.is_compute)
        rows.append([name, len(layers), compute, f"{table_s:.2f}", f"{median * 1e3:.2f}",
                     f"{statistics.median(sim_s) * 1e3:.2f}", f"{min(run_s) * 1e3:.2f}",
                     f"{median / len(layers) * 1e6:.0f}"])
    print(f"backend {spec.name} ({cfg.rows}x{cfg.cols}, dataflow={cfg.dataflow}), "
          f"{args.repeats} repeats per model\n")
    print(tabulate(rows, headers=["model", "layers", "conv/fc", "layer table s (once)",
                                  "run median ms", "simulate median ms", "run min ms",
                                  "us per layer"]))
    worst = max(medians)
    print(f"\nslowest whole-model median: {worst * 1e3:.2f} ms (target < {args.target_ms:g} ms): "
          f"{'PASS' if worst * 1e3 < args.target_ms else 'FAIL'}")

    if args.scalesim_layers <= 0:
        return 0
    from bench_accel_scalesim import run_scalesim, scalesim_ready

    if not scalesim_ready():
        print("SCALE-Sim reference: skipped, no SCALE-Sim venv (run bench_accel_scalesim.py "
              "once to create it)")
        return 0
    from plugins.hardware.accel_model import cost_compute_layer

    name, layers = first
    compute = [layer for layer in layers if layer.is_compute and layer.stride[0] == layer.stride[1]]
    compute.sort(key=lambda layer: cost_compute_layer(layer, cfg, "ws").compute_cycles)
    picks = [compute[int(q * (len(compute) - 1))] for q in
             [(i + 1) / (args.scalesim_layers + 1) for i in range(args.scalesim_layers)]]
    ref = run_scalesim(picks, cfg.rows, cfg.cols, "ws")
    per_layer = statistics.mean(r["seconds"] for r in ref)
    whole = statistics.median(medians[:1])
    print(f"\nSCALE-Sim reference ({cfg.rows}x{cfg.cols} WS) on {len(picks)} layers of {name}: "
          + ", ".join(f"{p.name} {r['seconds']:.2f} s" for p, r in zip(picks, ref)))
    print(f"SCALE-Sim: {per_layer:.2f} s per layer; accel: {whole * 1e3:.2f} ms per whole "
          f"{name} ({len(layers)} layers)")
    print(f"one whole-model accel run is {per_layer / whole:,.0f}x faster than one SCALE-Sim "
          f"layer; at that rate SCALE-Sim would need ~"
          f"{per_layer * sum(1 for l in layers if l.is_compute):.0f} s for the model's compute "
          f"layers (a lower bound: its time grows with a layer's cycles, and the largest "
          f"layers are not in the sample)")
    return 0 if worst * 1e3 < args.target_ms else 1


if __name__ == "__main__":
    raise SystemExit(main())
