"""Cross-check the accel backend's compute cycles against SCALE-Sim on the same layers.

SCALE-Sim (PyPI ``scalesim``, a cycle-level systolic-array simulator) needs
numpy<2 and pandas<2.3, so it runs in its own virtual environment, created on
first use under ``~/.cache/bench/scalesim-venv`` (or ``$BENCH_SCALESIM_VENV``)
and driven through a subprocess. Nothing of it is a dependency of this project.

For every layer (1x1, 3x1, 1x3, 3x3, 5x5, 7x7 kernels, strides 1 and 2, a
depthwise conv, a fully connected layer) and every configuration (16x16 and
32x32 arrays, WS and OS) it prints both cycle counts, their ratio, and the time
each simulator took. Target: every ratio within 2%.

    .venv/bin/python benchmarks/bench_accel_scalesim.py [--arrays 16x16,32x32] [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

VENV = Path(os.environ.get("BENCH_SCALESIM_VENV", Path.home() / ".cache/bench/scalesim-venv"))
SCALESIM_REQUIREMENTS = ["scalesim==3.0.0", "numpy<2", "pandas<2.3"]

# Runs inside the SCALE-Sim venv: reads {"array", "dataflow", "layers"} on stdin and
# prints, per layer, SCALE-Sim's compute cycles, stall cycles and wall time.
DRIVER = r'''
import json, os, sys, tempfile, time
job = json.load(sys.stdin)
from scalesim.scale_sim import scalesim
rows, cols = job["array"]
config = """[general]
run_name = xcheck
[architecture_presets]
ArrayHeight = {rows}
ArrayWidth = {cols}
IfmapSramSzkB = 8192
FilterSramSzkB = 8192
OfmapSramSzkB = 8192
IfmapOffset = 0
FilterOffset = 10000000
OfmapOffset = 20000000
Dataflow = {df}
Bandwidth = 10
ReadRequestBuffer = 32
WriteRequestBuffer = 32
[layout]
IfmapCustomLayout = False
IfmapSRAMBankBandwidth = 10
IfmapSRAMBankNum = 10
IfmapSRAMBankPort = 2
FilterCustomLayout = False
FilterSRAMBankBandwidth = 10
FilterSRAMBankNum = 10
FilterSRAMBankPort = 2
[sparsity]
SparsitySupport = false
SparseRep = ellpack_block
OptimizedMapping = false
BlockSize = 8
RandomNumberGeneratorSeed = 40
[run_presets]
InterfaceBandwidth = CALC
UseRamulatorTrace = False
""".format(rows=rows, cols=cols, df=job["dataflow"])
header = "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n"
out = []
with tempfile.TemporaryDirectory() as tmp:
    cfg = os.path.join(tmp, "scale.cfg")
    open(cfg, "w").write(config)
    for i, layer in enumerate(job["layers"]):
        topo = os.path.join(tmp, f"layer{i}.csv")
        open(topo, "w").write(header + ", ".join(str(v) for v in layer) + ",\n")
        start = time.perf_counter()
        sim = scalesim(save_disk_space=True, verbose=False, config=cfg, topology=topo, layout=topo)
        sim.run_scale(top_path=os.path.join(tmp, f"out{i}"))
        seconds = time.perf_counter() - start
        items = sim.runner.single_layer_sim_object_list[0].get_compute_report_items()
        out.append({"cycles": int(items[1]), "stall": int(items[2]), "seconds": seconds})
        print(json.dumps(out[-1]), file=sys.stderr, flush=True)
json.dump(out, sys.stdout)
'''


def venv_python() -> Path:
    return VENV / "bin" / "python"


def scalesim_ready() -> bool:
    python = venv_python()
    return python.exists() and subprocess.run(
        [str(python), "-c", "import scalesim.scale_sim"], capture_output=True).returncode == 0


def ensure_scalesim() -> None:
    """Create the throwaway venv with SCALE-Sim in it unless it is already there."""
    if scalesim_ready():
        return
    print(f"installing SCALE-Sim into {VENV} (once) ...", file=sys.stderr)
    VENV.parent.mkdir(parents=True, exist_ok=True)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(venv_python()), "-m", "pip", "install", "-q", *SCALESIM_REQUIREMENTS],
                   check=True)


def scalesim_row(layer: Any) -> list[Any]:
    """One SCALE-Sim topology row for a conv/fc layer of harness.layers.

    SCALE-Sim takes the padded input and computes ``ceil((H - k + s) / s)`` output
    rows, which differs from PyTorch's floor rule when ``(H - k)`` is not a
    multiple of ``s``; passing exactly the rows the outputs touch,
    ``(out - 1) * s + k``, makes both see the same output size.
    """
    if layer.kind == "fc":
        return [layer.name, 1, 1, 1, 1, layer.in_shape[-1], layer.out_shape[-1], 1]
    (kh, kw), (sh, sw) = layer.kernel, layer.stride
    assert sh == sw, "SCALE-Sim's topology format has one stride for both directions"
    oh, ow = layer.out_hw
    cin_g, cout_g = layer.cin // layer.groups, layer.cout // layer.groups
    return [layer.name, (oh - 1) * sh + kh, (ow - 1) * sw + kw, kh, kw, cin_g, cout_g, sh]


def run_scalesim(layers: list[Any], rows: int, cols: int, dataflow: str) -> list[dict[str, Any]]:
    """SCALE-Sim's cycles and seconds per layer; grouped layers run one group each
    (as SCALE-Sim itself does for depthwise layers) and are summed."""
    topo, owner = [], []
    for index, layer in enumerate(layers):
        groups = layer.groups if layer.kind != "fc" else 1
        for g in range(groups):
            row = scalesim_row(layer)
            row[0] = f"{layer.name.replace(',', '_')}_g{g}"
            topo.append(row)
            owner.append(index)
    job = json.dumps({"array": [rows, cols], "dataflow": dataflow, "layers": topo})
    proc = subprocess.run([str(venv_python()), "-c", DRIVER], input=job, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"SCALE-Sim failed:\n{proc.stderr[-3000:]}")
    results = [{"cycles": 0, "stall": 0, "seconds": 0.0} for _ in layers]
    for index, item in zip(owner, json.loads(proc.stdout)):
        for key in results[index]:
            results[index][key] += item[key]
    return results


def benchmark_layers() -> list[Any]:
    """The cross-check layers, built as small PyTorch modules and read through the
    shared layer table, exactly as models are."""
    import torch.nn as nn

    from harness.layers import layer_table

    specs = [
        # name, cin, cout, input HxW, kernel, stride, padding, groups
        ("1x1 s1", 48, 40, (14, 14), (1, 1), 1, (0, 0), 1),
        ("1x1 s2", 32, 48, (14, 14), (1, 1), 2, (0, 0), 1),
        ("3x1 s1", 24, 40, (14, 14), (3, 1), 1, (1, 0), 1),
        ("1x3 s1", 24, 40, (14, 14), (1, 3), 1, (0, 1), 1),
        ("3x3 s1", 32, 48, (14, 14), (3, 3), 1, (1, 1), 1),
        ("3x3 s2", 32, 48, (15, 15), (3, 3), 2, (1, 1), 1),
        ("5x5 s1", 16, 36, (12, 12), (5, 5), 1, (2, 2), 1),
        ("5x5 s2", 16, 24, (13, 13), (5, 5), 2, (2, 2), 1),
        ("7x7 s1", 8, 16, (12, 12), (7, 7), 1, (3, 3), 1),
        ("7x7 s2", 3, 64, (32, 32), (7, 7), 2, (3, 3), 1),
        ("dw3x3 s1", 16, 16, (14, 14), (3, 3), 1, (1, 1), 16),
    ]
    layers = []
    for name, cin, cout, hw, kernel, stride, padding, groups in specs:
        module = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, groups=groups)
        (layer,) = layer_table(module, (cin, *hw))
        layer.name = name
        layers.append(layer)
    (fc,) = layer_table(nn.Linear(1024, 100), (1024,))
    fc.name = "fc 1024>100"
    layers.append(fc)
    return layers


def time_ours(layer: Any, cfg: Any, repeats: int = 200) -> float:
    """Median seconds to cost one layer with the accel model."""
    from plugins.hardware.accel_model import simulate_layer

    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        simulate_layer(layer, cfg)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arrays", default="16x16,32x32")
    parser.add_argument("--dataflows", default="ws,os")
    parser.add_argument("--quick", action="store_true", help="only the first four layers")
    parser.add_argument("--tolerance", type=float, default=0.02)
    args = parser.parse_args()

    from tabulate import tabulate

    from plugins.hardware.accel_model import AccelConfig, cost_compute_layer

    ensure_scalesim()
    layers = benchmark_layers()[: 4 if args.quick else None]
    rows, worst = [], 0.0
    for array in args.arrays.split(","):
        r, c = (int(n) for n in array.split("x"))
        for dataflow in args.dataflows.split(","):
            cfg = AccelConfig(rows=r, cols=c, dataflow=dataflow)
            print(f"SCALE-Sim: {array} {dataflow} ({len(layers)} layers) ...", file=sys.stderr)
            theirs = run_scalesim(layers, r, c, dataflow)
            for layer, ref in zip(layers, theirs):
                ours = cost_compute_layer(layer, cfg, dataflow).compute_cycles
                ratio = ours / ref["cycles"]
                worst = max(worst, abs(ratio - 1))
                ours_s = time_ours(layer, cfg)
                rows.append([array, dataflow, layer.name, ref["cycles"], ours, f"{ratio:.5f}",
                             ref["stall"], f"{ref['seconds']:.3f}", f"{ours_s * 1e6:.1f}",
                             f"{ref['seconds'] / ours_s:,.0f}x"])
    print(tabulate(rows, headers=["array", "df", "layer", "SCALE-Sim cycles", "accel cycles",
                                  "ratio", "SCALE-Sim stalls", "SCALE-Sim s", "accel us",
                                  "accel faster"], intfmt=","))
    total_theirs = sum(float(r[7]) for r in rows)
    total_ours = sum(float(r[8]) for r in rows) * 1e-6
    print(f"\nworst cycle disagreement: {worst:.3%} (target {args.tolerance:.0%}): "
          f"{'PASS' if worst <= args.tolerance else 'FAIL'}")
    print(f"simulation time, all {len(rows)} layer runs: SCALE-Sim {total_theirs:.1f} s, "
          f"accel {total_ours * 1e3:.2f} ms ({total_theirs / total_ours:,.0f}x faster)")
    return 0 if worst <= args.tolerance else 1


if __name__ == "__main__":
    raise SystemExit(main())
