"""accel's compat=scalesim: SCALE-Sim 3.0's output-size rounding and memory model.

The reference figures are SCALE-Sim 3.0.0's own reports for these layers, measured by
benchmarks/bench_accel_scalesim.py (compat part: the padded input as the topology row,
32 KB SRAMs of 1-byte words and 8 words/cycle for 16x16, 64 KB and 16 for 32x32).
"""
from __future__ import annotations

import pytest

from harness import BenchUsageError, ModelSpec, RunRequest
from harness.layers import layer_table
from plugins.hardware.accel import bench_hardware
from plugins.hardware.accel_model import AccelConfig, cost_compute_layer, scalesim_output_size


def conv_layer(cin, cout, hw, kernel, stride, padding, groups=1):
    import torch.nn as nn

    (layer,) = layer_table(nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding,
                                     groups=groups), (cin, hw, hw))
    return layer


def test_scalesim_rounds_output_sizes_up_where_pytorch_floors():
    layer = conv_layer(64, 32, 28, 1, 2, 0)
    assert layer.out_hw == (14, 14)  # PyTorch: floor(27 / 2) + 1
    assert scalesim_output_size(28, 1, 2, 0) == 15  # SCALE-Sim: ceil((28 - 1 + 2) / 2)
    assert scalesim_output_size(14, 3, 2, 1) == 8 and conv_layer(8, 8, 14, 3, 2, 1).out_hw == (7, 7)
    assert scalesim_output_size(15, 3, 2, 1) == 8 == conv_layer(8, 8, 15, 3, 2, 1).out_hw[0]
    assert scalesim_output_size(14, 3, 1, 1) == 14


@pytest.mark.parametrize("array, dataflow, layer_args, compute, total", [
    # the strided 1x1 on 28x28: PyTorch-exact is 13% short of SCALE-Sim here
    ((16, 16), "os", (64, 32, 28, 1, 2, 0), 2_819, 5_638),
    ((32, 32), "ws", (32, 48, 15, 3, 2, 1), 2_843, 5_722),
    ((16, 16), "os", (48, 40, 14, 1, 1, 0), 3_041, 5_268),
    ((16, 16), "ws", (16, 16, 14, 3, 1, 1, 16), 3_856, 10_512),  # depthwise, group by group
])
def test_compat_matches_scalesim_reports_when_streams_fit(array, dataflow, layer_args,
                                                          compute, total):
    rows, cols = array
    words, bw = (32 if rows == 16 else 64) * 1024, (8 if rows == 16 else 16)
    layer = conv_layer(*layer_args)
    cfg = AccelConfig(rows=rows, cols=cols, dataflow=dataflow, ifmap_words=words,
                      weight_words=words, ofmap_words=words, dram_bw=bw, compat="scalesim")
    cost = cost_compute_layer(layer, cfg, dataflow)
    assert cost.compute_cycles == compute
    assert cost.cycles == total
    assert cost.loop_order == "SCALE-Sim: streams fit"
    exact = cost_compute_layer(layer, AccelConfig(rows=rows, cols=cols, dataflow=dataflow), dataflow)
    if layer.stride[0] > 1 and layer_args[2] == 28:
        assert exact.compute_cycles / compute == pytest.approx(0.867, abs=0.001)


def _tiny():
    import torch.nn as nn

    return nn.Sequential(nn.Conv2d(3, 16, 1, stride=2), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(16 * 7 * 7, 10))


def test_backend_option_default_is_exact_and_compat_drops_what_scalesim_does_not_simulate():
    accel = next(spec for spec in bench_hardware() if spec.name == "accel")
    assert accel.parse_options([])["compat"] == "exact"
    model = ModelSpec(name="t", family="t", builder=_tiny, input_size=(3, 28, 28), num_classes=10)

    def run(*pairs):
        request = RunRequest(model=model, batch=1, input_size=model.input_size,
                             options=accel.parse_options(list(pairs)))
        return accel.run(request)

    exact, compat = run(), run("compat=scalesim")
    by_name = {row["name"]: row for row in compat.layers}
    pool = next(row for row in compat.layers if row["kind"] == "maxpool")
    assert pool["cycles"] == 0 and "not in SCALE-Sim's model" in pool["note"]
    assert any(r["kind"] == "maxpool" and r["cycles"] > 0 for r in exact.layers)
    conv = next(row for row in by_name.values() if row["kind"] == "conv")
    exact_conv = next(row for row in exact.layers if row["kind"] == "conv")
    assert conv["compute_cycles"] > exact_conv["compute_cycles"]  # 15x15 outputs, not 14x14
    with pytest.raises(BenchUsageError, match="compat=scalesim needs rf_words=1"):
        run("compat=scalesim", "rf_words=2")
    with pytest.raises(BenchUsageError, match="did you mean 'scalesim'"):
        run("compat=scalesm")
