"""The accel backend: SCALE-Sim cycle formulas on hand-computed layers, traffic,
energy bookkeeping, dataflow choice, non-compute layers, and option errors."""
from __future__ import annotations

import itertools
import math

import pytest

from harness.errors import BenchUsageError
from harness.layers import Layer
from harness.specs import RunRequest
from plugins.hardware import accel
from plugins.hardware.accel_model import (
    EYERISS_COSTS,
    AccelConfig,
    compute_cycles,
    cost_compute_layer,
    gemm_view,
    simulate,
    simulate_layer,
)


# --------------------------------------------------------------------------- helpers
def conv(name: str, cin: int, cout: int, in_hw: tuple[int, int], kernel: tuple[int, int],
         stride: tuple[int, int] = (1, 1), padding: tuple[int, int] = (0, 0), groups: int = 1,
         batch: int = 1) -> Layer:
    """A conv layer as harness.layers would record it (output size from PyTorch's rule)."""
    oh = (in_hw[0] + 2 * padding[0] - kernel[0]) // stride[0] + 1
    ow = (in_hw[1] + 2 * padding[1] - kernel[1]) // stride[1] + 1
    kind = "conv" if groups == 1 else ("dwconv" if groups == cin else "gconv")
    macs = batch * oh * ow * cout * (cin // groups) * kernel[0] * kernel[1]
    return Layer(name, kind, (cin, *in_hw), (cout, oh, ow), kernel=kernel, stride=stride,
                 padding=padding, groups=groups, params=cout * cin // groups * kernel[0] * kernel[1],
                 macs=macs, batch=batch, elements=batch * cout * oh * ow)


def fc(name: str, fin: int, fout: int, batch: int = 1) -> Layer:
    return Layer(name, "fc", (fin,), (fout,), params=fin * fout, macs=batch * fin * fout,
                 batch=batch, elements=batch * fout)


def vector(name: str, kind: str, shape: tuple[int, int, int], out: tuple[int, int, int] | None = None,
           kernel: tuple[int, int] = (1, 1)) -> Layer:
    out = out or shape
    return Layer(name, kind, shape, out, kernel=kernel, stride=kernel,
                 elements=out[0] * out[1] * out[2])


def cfg(rows: int = 16, cols: int = 16, **kw) -> AccelConfig:
    return AccelConfig(rows=rows, cols=cols, **kw)


def run_backend(layers: list[Layer], name: str = "accel", **options: str):
    spec = next(s for s in accel.bench_hardware() if s.name == name)
    request = RunRequest(model=None, batch=1, input_size=(3, 8, 8),
                         options=spec.parse_options({k: str(v) for k, v in options.items()}))
    request._layers = layers
    return spec.run(request)


SMALL = conv("small", cin=4, cout=8, in_hw=(5, 5), kernel=(1, 1))          # fits in 16x16
FOLDS = conv("folds", cin=8, cout=20, in_hw=(16, 16), kernel=(3, 3))        # 5x2 WS folds
DEPTHWISE = conv("dw", cin=8, cout=8, in_hw=(12, 12), kernel=(3, 3), groups=8)
FC = fc("fc", 100, 10)


# --------------------------------------------------------------------------- compute cycles
@pytest.mark.parametrize("layer, rows, cols, ws, os_", [
    # WS: (2R + C + T - 2) * ceil(Sr/R) * ceil(Sc/C); OS: (R + C + T - 2) * ...
    # smaller than the array: WS Sr=4 Sc=8 T=25; OS Sr=25 Sc=8 T=4
    (SMALL, 16, 16, (32 + 16 + 25 - 2) * 1 * 1, (16 + 16 + 4 - 2) * 2 * 1),
    # several folds: WS Sr=72 (5 folds) Sc=20 (2) T=196; OS Sr=196 (13) Sc=20 (2) T=72.
    # SCALE-Sim 3.0 reports 2419 and 2651 for this layer (one cycle less).
    (FOLDS, 16, 16, 242 * 10, 102 * 26),
    # depthwise, group by group on 4x4: per group WS Sr=9 (3 folds) Sc=1 T=100;
    # OS Sr=100 (25 folds) Sc=1 T=9
    (DEPTHWISE, 4, 4, 8 * (8 + 4 + 100 - 2) * 3, 8 * (4 + 4 + 9 - 2) * 25),
    # FC at batch 1 is a matrix-vector product: WS Sr=100 (13) Sc=10 (2) T=1; OS Sr=1 Sc=10 T=100
    (FC, 8, 8, (16 + 8 + 1 - 2) * 13 * 2, (8 + 8 + 100 - 2) * 1 * 2),
    # batch 4: matrix-matrix, T=4 in WS, Sr=4 in OS (still one pixel fold)
    (fc("fc4", 100, 10, batch=4), 8, 8, (16 + 8 + 4 - 2) * 13 * 2, (8 + 8 + 100 - 2) * 1 * 2),
])
def test_compute_cycles_match_hand_computed_scalesim_formula(layer, rows, cols, ws, os_):
    config = cfg(rows, cols)
    assert cost_compute_layer(layer, config, "ws").compute_cycles == ws
    assert cost_compute_layer(layer, config, "os").compute_cycles == os_


def test_asymmetric_kernels_strides_and_padding_are_exact():
    import torch.nn as nn

    from harness.layers import layer_table

    net = nn.Sequential(nn.Conv2d(3, 5, (3, 1), stride=(2, 1), padding=(1, 0)),
                        nn.Conv2d(5, 6, (1, 3), stride=(1, 2), padding=(0, 1)))
    first, second = layer_table(net, (3, 9, 7))
    g1, g2 = gemm_view(first), gemm_view(second)
    # (9 + 2 - 3)//2 + 1 = 5 rows, 7 columns; window 3*1*3
    assert (g1.pixels, g1.window, g1.filters) == (35, 9, 5)
    # 5 rows, (7 + 2 - 3)//2 + 1 = 4 columns; window 1*3*5
    assert (g2.pixels, g2.window, g2.filters) == (20, 15, 6)
    assert g1.macs == first.macs and g2.macs == second.macs
    assert compute_cycles("ws", g2, 4, 4) == (8 + 4 + 20 - 2) * math.ceil(15 / 4) * math.ceil(6 / 4)
    assert compute_cycles("os", g1, 4, 4) == (4 + 4 + 9 - 2) * math.ceil(35 / 4) * math.ceil(5 / 4)


def test_fc_batch_from_a_torch_net_is_matrix_matrix():
    import torch.nn as nn

    from harness.layers import layer_table

    (layer,) = [l for l in layer_table(nn.Linear(40, 24), (40,), batch=3)]
    g = gemm_view(layer)
    assert (g.pixels, g.window, g.filters) == (3, 40, 24)
    assert compute_cycles("ws", g, 8, 8) == (16 + 8 + 3 - 2) * 5 * 3


def test_double_buffered_weights_hide_the_load_of_every_fold_but_the_first():
    # rf_words >= 2: WS pays R load cycles once, then (R + C + T - 2) per fold
    g = gemm_view(FOLDS)
    assert compute_cycles("ws", g, 16, 16, rf_words=2) == 16 + 10 * (16 + 16 + 196 - 2)
    assert compute_cycles("os", g, 16, 16, rf_words=2) == compute_cycles("os", g, 16, 16)


def test_depthwise_has_far_lower_utilization_than_a_dense_conv_of_the_same_size():
    dense = conv("dense", cin=32, cout=32, in_hw=(28, 28), kernel=(3, 3), padding=(1, 1))
    dw = conv("dw", cin=32, cout=32, in_hw=(28, 28), kernel=(3, 3), padding=(1, 1), groups=32)
    rows = run_backend([dense, dw]).layers
    assert rows[1]["utilization"] < rows[0]["utilization"] / 5


# --------------------------------------------------------------------------- traffic
def test_array_traffic_of_a_layer_smaller_than_the_array_by_hand():
    c = cost_compute_layer(SMALL, cfg(), "ws").counts
    # T=25 pixels, Sr=4 window rows, Sc=8 filters, one fold
    assert c[("buffer", "ifmap", "reads")] == 25 * 4           # each input row once per fold
    assert c[("pe", "ifmap", "transfers")] == 25 * 4 * 7       # then 7 hops to the right
    assert c[("pe", "psum", "transfers")] == 25 * 8 * 3        # partial sums: 3 hops down
    assert c[("pe", "weight", "transfers")] == 8 * (0 + 1 + 2 + 3)  # weights shift to rows 0..3
    assert c[("rf", "weight", "writes")] == 32 and c[("rf", "weight", "reads")] == 800
    assert c[("buffer", "ofmap", "writes")] == 200 and c[("buffer", "psum", "reads")] == 0
    # large buffers: each operand crosses DRAM exactly once
    assert c[("dram", "ifmap", "reads")] == 4 * 5 * 5
    assert c[("dram", "weight", "reads")] == 32
    assert c[("dram", "ofmap", "writes")] == 200
    assert c[("buffer", "ifmap", "writes")] == 100 and c[("buffer", "ofmap", "reads")] == 200


@pytest.mark.parametrize("layer", [SMALL, FOLDS, DEPTHWISE, FC, fc("fc8", 64, 48, batch=8)])
@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_every_mac_gets_its_operands_from_the_buffer_or_a_neighbour(layer, dataflow):
    c = cost_compute_layer(layer, cfg(8, 4), dataflow).counts
    macs = layer.macs
    assert c[("buffer", "ifmap", "reads")] + c[("pe", "ifmap", "transfers")] == macs
    if dataflow == "os":
        assert c[("buffer", "weight", "reads")] + c[("pe", "weight", "transfers")] == macs
        assert c[("rf", "psum", "reads")] == c[("rf", "psum", "writes")] == macs
    else:
        assert c[("rf", "weight", "reads")] == macs
        # each MAC's partial sum moves once: to the PE below, or out of the array
        g = gemm_view(layer)
        assert (c[("pe", "psum", "transfers")] + c[("buffer", "psum", "writes")]
                + c[("buffer", "ofmap", "writes")]) == g.groups * g.pixels * g.filters * g.window


def test_small_buffers_refetch_inputs_and_spill_partial_sums():
    layer = conv("big", cin=64, cout=64, in_hw=(30, 30), kernel=(3, 3))
    roomy = cost_compute_layer(layer, cfg(ifmap_words=1 << 20, weight_words=1 << 20,
                                          ofmap_words=1 << 20), "ws")
    tight = cost_compute_layer(layer, cfg(ifmap_words=256, weight_words=256, ofmap_words=256), "ws")
    unique_in = 64 * 30 * 30
    assert roomy.counts[("dram", "ifmap", "reads")] == unique_in
    assert roomy.counts[("dram", "psum", "writes")] == 0
    assert tight.counts[("dram", "ifmap", "reads")] > unique_in
    assert tight.counts[("dram", "psum", "writes")] > 0
    assert tight.counts[("dram", "psum", "reads")] == tight.counts[("dram", "psum", "writes")]
    assert tight.compute_cycles == roomy.compute_cycles
    assert tight.total_energy > roomy.total_energy


def test_stalls_are_the_dram_time_the_compute_cannot_hide():
    layer = FC  # 1000 weights, little compute: bandwidth-bound
    fast = cost_compute_layer(layer, cfg(8, 8, dram_bw=1e6), "os")
    slow = cost_compute_layer(layer, cfg(8, 8, dram_bw=0.5), "os")
    words = sum(v for k, v in slow.counts.items() if k[0] == "dram")
    assert fast.stall_cycles == 0
    assert slow.stall_cycles == math.ceil(words / 0.5) - slow.compute_cycles
    assert slow.cycles == math.ceil(words / 0.5)


# --------------------------------------------------------------------------- energy, utilization
COSTS = {"mac": 0.7, "rf": 1.3, "pe": 2.9, "buffer": 5.5, "dram": 211.0}
MIXED = [SMALL, FOLDS, DEPTHWISE, FC,
         conv("stride2", 16, 24, (17, 17), (5, 5), stride=(2, 2), padding=(2, 2)),
         vector("pool", "maxpool", (24, 9, 9), (24, 4, 4), kernel=(3, 3)),
         vector("add", "add", (24, 4, 4)), vector("bn", "bn", (24, 4, 4)),
         vector("act", "act", (24, 4, 4)), vector("cat", "concat", (24, 4, 4))]


@pytest.mark.parametrize("dataflow", ["ws", "os", "best"])
def test_energy_is_the_sum_of_accesses_times_their_costs(dataflow):
    config = cfg(8, 8, dataflow=dataflow, costs=COSTS)
    for cost in simulate(MIXED, config):
        by_hand = sum(n * COSTS[level] for (level, _, _), n in cost.counts.items())
        assert cost.total_energy == pytest.approx(by_hand)
        assert sum(cost.operand_energy(COSTS).values()) == pytest.approx(by_hand)


def test_reported_energy_columns_add_up_and_scale_to_picojoules():
    result = run_backend(MIXED, cost_mac=0.5, pj_per_unit=2)
    s = result.summary
    assert s["energy_unit"] == "pJ" and s["energy_pj"] == s["energy"]
    assert s["energy"] == pytest.approx(sum(r["energy"] for r in result.layers))
    assert s["energy"] == pytest.approx(sum(s[f"energy_{k}"] for k in
                                            ("dram", "buffer", "pe", "rf", "mac")))
    assert s["energy"] == pytest.approx(sum(s[f"energy_{k}"] for k in
                                            ("ifmap", "weight", "psum", "ofmap", "mac")))
    row = result.layers[0]  # SMALL: recompute from its per-operand counts, in pJ
    costs = {"mac": 0.5, **{k: v for k, v in EYERISS_COSTS.items() if k != "mac"}}
    by_hand = 2 * (SMALL.macs * costs["mac"] + sum(
        v * costs[k.split("_")[0]] for k, v in row.items()
        if k.split("_")[0] in ("dram", "buffer", "pe", "rf") and k.count("_") == 2))
    assert row["energy"] == pytest.approx(by_hand)


@pytest.mark.parametrize("rows, cols", [(1, 1), (3, 5), (8, 8), (16, 16), (32, 8)])
def test_utilization_never_exceeds_one(rows, cols):
    layers = [conv(f"c{i}", cin, cout, (hw, hw), (k, k), groups=g)
              for i, (cin, cout, hw, k, g) in enumerate(itertools.product(
                  (1, 3, 16, 64), (1, 8, 33), (1, 7, 20), (1, 3), (1,)))
              if k <= hw]
    layers += [conv("dwx", 16, 16, (9, 9), (3, 3), groups=16), fc("f", 33, 7, batch=5)]
    for dataflow, bw in (("ws", 1e9), ("os", 1e9), ("best", 0.25)):
        for cost in simulate(layers, cfg(rows, cols, dataflow=dataflow, dram_bw=bw)):
            assert 0 < cost.macs <= cost.cycles * rows * cols
    s = run_backend(layers, array=f"{rows}x{cols}").summary
    assert 0 < s["utilization"] <= s["compute_utilization"] <= 1


# --------------------------------------------------------------------------- dataflow choice
def test_best_picks_the_cheaper_dataflow_per_layer():
    for by, measure in (("cycles", lambda c: c.cycles), ("energy", lambda c: c.total_energy)):
        config = cfg(dataflow="best", best_by=by)
        for layer in (SMALL, FOLDS, DEPTHWISE, FC):
            chosen = simulate_layer(layer, config)
            ws, os_ = (cost_compute_layer(layer, config, df) for df in ("ws", "os"))
            assert measure(chosen) == min(measure(ws), measure(os_))
    # FC at batch 1: OS streams the long dot product through, WS folds it 13 times
    assert simulate_layer(FC, cfg(8, 8)).dataflow == "os"


# --------------------------------------------------------------------------- other layers
def test_non_compute_layers_are_costed_or_listed_never_dropped():
    pool = vector("pool", "maxpool", (8, 9, 9), (8, 4, 4), kernel=(3, 3))
    odd = Layer("mystery", "upsample", (8, 4, 4), (8, 8, 8), elements=512)
    layers = [SMALL, pool, vector("add", "add", (8, 4, 4)), vector("bn", "bn", (8, 4, 4)),
              vector("cat", "concat", (8, 4, 4)), odd]
    result = run_backend(layers)
    assert [r["name"] for r in result.layers] == [l.name for l in layers]
    by_name = {r["name"]: r for r in result.layers}
    # pooling: 8*4*4 outputs x 9 window positions on 16 lanes; reads the input from DRAM
    assert by_name["pool"]["compute_cycles"] == math.ceil(8 * 4 * 4 * 9 / 16)
    assert by_name["pool"]["dram_ifmap_reads"] == 8 * 9 * 9
    assert by_name["add"]["dram_ifmap_reads"] == 2 * 128 and by_name["add"]["dram_ofmap_writes"] == 128
    assert by_name["bn"]["cycles"] == 0 and by_name["bn"]["energy"] == 128 * EYERISS_COSTS["mac"]
    assert by_name["cat"]["energy"] == 0 and by_name["cat"]["simulated"]
    assert by_name["mystery"]["simulated"] is False
    assert result.summary["layers_not_simulated"] == 1
    assert any("mystery" in w for w in result.warnings)


def test_presets_differ_only_in_defaults():
    specs = {s.name: s for s in accel.bench_hardware()}
    assert {"accel", "accel-8x8", "accel-16x16", "accel-32x32"} <= set(specs)
    layers = [FOLDS, DEPTHWISE]
    assert run_backend(layers, "accel").summary == run_backend(layers, "accel-16x16").summary
    small = run_backend(layers, "accel-8x8").summary
    same = run_backend(layers, "accel-32x32", array="8x8", ifmap_kib=32, weight_kib=32,
                       ofmap_kib=32, dram_bw=4).summary
    assert small == same and small["array"] == "8x8"


# --------------------------------------------------------------------------- bad configurations
@pytest.mark.parametrize("option, value, words", [
    ("array", "0x16", "ROWSxCOLS"), ("array", "16by16", "ROWSxCOLS"),
    ("dataflow", "rs", "valid: best, os, ws"), ("rf_words", "0", "at least 1"),
    ("ifmap_kib", "-1", "greater than 0"), ("dram_bw", "0", "greater than 0"),
    ("word_bits", "zero", "whole number"), ("cost_dram", "-5", "0 or more"),
])
def test_bad_option_values_name_the_option(option, value, words):
    spec = accel.bench_hardware()[0]
    with pytest.raises(BenchUsageError) as err:
        spec.parse_options([f"{option}={value}"])
    assert option in err.value.message and words in err.value.message


def test_a_buffer_smaller_than_one_tile_is_rejected_naming_it():
    with pytest.raises(BenchUsageError) as err:
        run_backend([SMALL], array="32x32", weight_kib=1)
    assert "weight_kib=1" in err.value.message and "1024 words" in err.value.message


@pytest.mark.parametrize("hw_opt, named", [
    ("dataflow=diagonal", "dataflow"), ("array=4x", "array"), ("ofmap_kib=0.1", "ofmap_kib"),
])
def test_cli_exits_with_code_2_naming_the_option(bench, hw_opt, named):
    proc = bench("run", "--model", "1.0-SqNxt-23", "--hw", "accel", "--hw-opt", hw_opt)
    assert proc.returncode == 2, proc.stderr
    assert named in proc.stderr and "Traceback" not in proc.stderr


# --------------------------------------------------------------------------- a real network
def test_whole_squeezenext_keeps_every_layer_and_consistent_totals():
    from harness.plugins.manager import get_plugin_manager

    pm = get_plugin_manager()
    if "1.0-sqnxt-23" not in pm.models():
        pytest.fail("model plugin 1.0-SqNxt-23 is not installed")
    model = pm.model("1.0-SqNxt-23")
    spec = pm.backend("accel-8x8")
    request = RunRequest(model=model, batch=1, input_size=model.input_size,
                         options=spec.parse_options([]))
    result = spec.run(request)
    layers, s = request.layers(), result.summary
    assert len(result.layers) == len(layers) == s["layers"]
    assert s["layers_not_simulated"] == 0
    assert s["macs"] == sum(l.macs for l in layers if l.is_compute)
    assert s["cycles"] == sum(r["cycles"] for r in result.layers)
    assert s["time_s"] == pytest.approx(s["cycles"] / 500e6)
    assert 0 < s["utilization"] <= 1
    assert s["ws_layers"] + s["os_layers"] == sum(1 for l in layers if l.is_compute)
    assert set(result.layer_columns) <= set(result.layers[0])
