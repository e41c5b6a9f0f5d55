"""Cross-check the accel backend against SCALE-Sim on the same layers.

SCALE-Sim (PyPI ``scalesim``, a cycle-level systolic-array simulator) needs
numpy<2 and pandas<2.3, so it runs in its own virtual environment, created on
first use under ``~/.cache/bench/scalesim-venv`` (or ``$BENCH_SCALESIM_VENV``)
and driven through a subprocess. Nothing of it is a dependency of this project.

Two parts, on the same layers (1x1, 3x1, 1x3, 3x3, 5x5, 7x7 kernels, strides 1
and 2, a depthwise conv, a fully connected layer) and configurations (16x16 and
32x32 arrays, WS and OS):

- ``exact``: accel's default mode against SCALE-Sim's compute cycles, with
  SCALE-Sim given exactly the input rows PyTorch's outputs touch (so both see
  the same output size) and buffers large enough for no stalls. Target: every
  ratio within 2%.
- ``compat``: ``--hw-opt compat=scalesim`` against SCALE-Sim given the padded
  input as a topology file states it (SCALE-Sim then rounds output sizes up)
  and the presets' buffers and DRAM bandwidth (16x16: 32 KB per SRAM of 1-byte
  words and 8 words/cycle; 32x32: 64 KB and 16, the same words as
  accel-16x16/accel-32x32 hold), comparing compute cycles and SCALE-Sim's
  "Total Cycles (incl. prefetch)" with accel's total.

    .venv/bin/python benchmarks/bench_accel_scalesim.py [--part exact|compat|both] [--quick]
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
kb, bw, mode = job.get("kb", 8192), job.get("bw", 10), job.get("mode", "CALC")
config = """[general]
run_name = xcheck
[architecture_presets]
ArrayHeight = {rows}
ArrayWidth = {cols}
IfmapSramSzkB = {kb}
FilterSramSzkB = {kb}
OfmapSramSzkB = {kb}
IfmapOffset = 0
FilterOffset = 10000000
OfmapOffset = 20000000
Dataflow = {df}
Bandwidth = {bw}
ReadRequestBuffer = 32
WriteRequestBuffer = 32
[layout]
IfmapCustomLayout = False
IfmapSRAMBankBandwidth = {bw}
IfmapSRAMBankNum = 1
IfmapSRAMBankPort = 2
FilterCustomLayout = False
FilterSRAMBankBandwidth = {bw}
FilterSRAMBankNum = 1
FilterSRAMBankPort = 2
[sparsity]
SparsitySupport = false
SparseRep = ellpack_block
OptimizedMapping = false
BlockSize = 8
RandomNumberGeneratorSeed = 40
[run_presets]
InterfaceBandwidth = {mode}
UseRamulatorTrace = False
""".format(rows=rows, cols=cols, df=job["dataflow"], kb=kb, bw=bw, mode=mode)
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
        out.append({"cycles": int(items[1]), "stall": int(items[2]), "overall": int(items[0]),
                    "seconds": seconds})
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


def scalesim_padded_row(layer: Any) -> list[Any]:
    """The topology row a user porting the layer writes: the padded input as it is.

    SCALE-Sim then computes ``ceil((H + 2p - k + s) / s)`` output rows, one more
    than PyTorch wherever ``(H + 2p - k)`` is not a multiple of the stride: what
    ``--hw-opt compat=scalesim`` reproduces.
    """
    if layer.kind == "fc":
        return scalesim_row(layer)
    (kh, kw), (sh, _), (ph, pw) = layer.kernel, layer.stride, layer.padding
    ih, iw = layer.in_hw
    cin_g, cout_g = layer.cin // layer.groups, layer.cout // layer.groups
    return [layer.name, ih + 2 * ph, iw + 2 * pw, kh, kw, cin_g, cout_g, sh]


def run_scalesim(layers: list[Any], rows: int, cols: int, dataflow: str,
                 to_row: Any = scalesim_row, memory: dict[str, Any] | None = None
                 ) -> list[dict[str, Any]]:
    """SCALE-Sim's cycles and seconds per layer; grouped layers run one group each
    (as SCALE-Sim itself does for depthwise layers) and are summed.

    ``memory`` sets ``kb`` (each SRAM), ``bw`` (words per cycle) and ``mode``
    (``USER`` bandwidth or SCALE-Sim's stall-free ``CALC``)."""
    topo, owner = [], []
    for index, layer in enumerate(layers):
        groups = layer.groups if layer.kind != "fc" else 1
        for g in range(groups):
            row = to_row(layer)
            row[0] = f"{layer.name.replace(',', '_')}_g{g}"
            topo.append(row)
            owner.append(index)
    job = json.dumps({"array": [rows, cols], "dataflow": dataflow, "layers": topo,
                      **(memory or {})})
    proc = subprocess.run([str(venv_python()), "-c", DRIVER], input=job, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"SCALE-Sim failed:\n{proc.stderr[-3000:]}")
    results = [{"cycles": 0, "stall": 0, "overall": 0, "seconds": 0.0} for _ in layers]
    for index, item in zip(owner, json.loads(proc.stdout)):
        for key in results[index]:
            results[index][key] += item[key]
    return results


def benchmark_layers(extra: bool = False) -> list[Any]:
    """The cross-check layers, built as small PyTorch modules and read through the
    shared layer table, exactly as models are; ``extra`` adds the strided 1x1 layer
    on 28x28 where SCALE-Sim's rounding shows most (15x15 outputs against 14x14)."""
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
    if extra:
        specs.append(("1x1 s2 28x28", 64, 32, (28, 28), (1, 1), 2, (0, 0), 1))
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


def exact_part(args: Any, layers: list[Any]) -> float:
    """accel's default mode against SCALE-Sim's compute cycles; returns the worst |ratio - 1|."""
    from tabulate import tabulate

    from plugins.hardware.accel_model import AccelConfig, cost_compute_layer

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
    print(f"\nexact mode, worst compute-cycle disagreement: {worst:.3%} (target "
          f"{args.tolerance:.0%}): {'PASS' if worst <= args.tolerance else 'FAIL'}")
    print(f"simulation time, all {len(rows)} layer runs: SCALE-Sim {total_theirs:.1f} s, "
          f"accel {total_ours * 1e3:.2f} ms ({total_theirs / total_ours:,.0f}x faster)")
    return worst


# Per array: SCALE-Sim KB per SRAM (1-byte words, so KB x 1024 words) and DRAM words/cycle,
# the same words as the accel presets' 16-bit partitions hold.
COMPAT_MEMORY = {"16x16": (32, 8), "32x32": (64, 16)}


def compat_part(args: Any, layers: list[Any]) -> tuple[float, float]:
    """compat=scalesim against SCALE-Sim given the padded input and the presets' memory.

    Returns the worst |ratio - 1| of compute cycles and of total cycles."""
    from tabulate import tabulate

    from plugins.hardware.accel_model import AccelConfig, cost_compute_layer

    rows, worst_compute, errors = [], 0.0, {True: [], False: []}  # by "a stream spills"
    for array in args.arrays.split(","):
        r, c = (int(n) for n in array.split("x"))
        kb, bw = COMPAT_MEMORY.get(array, (32, 8))
        words = kb * 1024
        for dataflow in args.dataflows.split(","):
            exact = AccelConfig(rows=r, cols=c, dataflow=dataflow)
            compat = AccelConfig(rows=r, cols=c, dataflow=dataflow, ifmap_words=words,
                                 weight_words=words, ofmap_words=words, dram_bw=bw,
                                 compat="scalesim")
            print(f"SCALE-Sim: {array} {dataflow}, {kb} KB SRAMs, {bw} words/cycle "
                  f"({len(layers)} layers) ...", file=sys.stderr)
            theirs = run_scalesim(layers, r, c, dataflow, to_row=scalesim_padded_row,
                                  memory={"kb": kb, "bw": bw, "mode": "USER"})
            for layer, ref in zip(layers, theirs):
                plain = cost_compute_layer(layer, exact, dataflow).compute_cycles
                cost = cost_compute_layer(layer, compat, dataflow)
                ref_compute = ref["cycles"] - ref["stall"]
                compute_ratio = cost.compute_cycles / ref_compute
                total_ratio = cost.cycles / ref["overall"]
                worst_compute = max(worst_compute, abs(compute_ratio - 1))
                spills = "exceeds" in cost.loop_order
                errors[spills].append(abs(total_ratio - 1))
                rows.append([array, dataflow, layer.name, ref_compute, plain,
                             f"{plain / ref_compute:.3f}", cost.compute_cycles,
                             f"{compute_ratio:.4f}", ref["overall"], cost.cycles,
                             f"{total_ratio:.3f}", "spills" if spills else "fits"])
    print(tabulate(rows, headers=["array", "df", "layer", "SCALE-Sim compute", "exact compute",
                                  "ratio", "compat compute", "ratio",
                                  "SCALE-Sim total (incl. prefetch)", "compat total",
                                  "ratio", "streams"], intfmt=","))
    print(f"\ncompat=scalesim: worst compute-cycle disagreement {worst_compute:.3%}")
    for spills, label in ((False, "every stream fits half its SRAM"),
                          (True, "a stream exceeds half its SRAM")):
        if errors[spills]:
            print(f"total cycles, {label}: {len(errors[spills])} runs, median "
                  f"{statistics.median(errors[spills]):.2%}, worst {max(errors[spills]):.2%} off")
    return worst_compute, max(errors[True] + errors[False])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arrays", default="16x16,32x32")
    parser.add_argument("--dataflows", default="ws,os")
    parser.add_argument("--part", choices=("exact", "compat", "both"), default="both")
    parser.add_argument("--quick", action="store_true", help="only the first four layers")
    parser.add_argument("--tolerance", type=float, default=0.02)
    args = parser.parse_args()

    ensure_scalesim()
    failed = False
    if args.part in ("exact", "both"):
        layers = benchmark_layers()[: 4 if args.quick else None]
        failed |= exact_part(args, layers) > args.tolerance
    if args.part in ("compat", "both"):
        layers = benchmark_layers(extra=True)
        layers = layers[:4] + layers[-1:] if args.quick else layers
        worst_compute, _ = compat_part(args, layers)
        failed |= worst_compute > args.tolerance
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
