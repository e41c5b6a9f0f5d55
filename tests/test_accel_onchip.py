"""accel's on-chip policies (onchip=none|fuse|reuse): the default is untouched, keeping data
on chip never adds DRAM traffic, a small residual network gives the hand-computed counts,
and the global buffer's capacity is respected."""
from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import torch.nn as nn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.errors import BenchUsageError
from harness.layers import NETWORK_INPUT, layer_table
from harness.specs import RunRequest
from plugins.hardware import accel
from plugins.hardware.accel_model import AccelConfig, simulate, simulate_with_plan


def dram(cost) -> int:
    return sum(v for k, v in cost.counts.items() if k[0] == "dram")


def counts(cost, level: str, operand: str, kind: str) -> int:
    return cost.counts.get((level, operand, kind), 0)


def run_backend(layers, name="accel", **options):
    spec = next(s for s in accel.bench_hardware() if s.name == name)
    request = RunRequest(model=None, batch=1, input_size=(3, 8, 8),
                         options=spec.parse_options({k: str(v) for k, v in options.items()}))
    request._layers = layers
    return spec.run(request)


class Residual(nn.Module):
    """x -> conv1 -> relu -> conv2 -> (+ conv1's output) -> relu -> conv3: the smallest
    network with a shortcut (conv1's output is read by conv2 and by the add)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(4, 8, 1, bias=False)
        self.conv2 = nn.Conv2d(8, 8, 1, bias=False)
        self.conv3 = nn.Conv2d(8, 2, 1, bias=False)

    def forward(self, x):
        a = torch.relu(self.conv1(x))
        return self.conv3(torch.relu(self.conv2(a) + a))


RESIDUAL = layer_table(Residual(), (4, 8, 8))  # input 256 words, feature maps 512, output 128
NAMES = [l.name for l in RESIDUAL]


def by_name(costs):
    return {c.name: c for c in costs}


def small(ifmap_words: int, ofmap_words: int, onchip: str, **kw) -> AccelConfig:
    return AccelConfig(rows=4, cols=4, dataflow="ws", ifmap_words=ifmap_words,
                       weight_words=1024, ofmap_words=ofmap_words, onchip=onchip, **kw)


# --------------------------------------------------------------------------- the layer graph
def test_the_layer_table_says_which_rows_each_operation_reads():
    class Fire(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.squeeze = nn.Conv2d(3, 4, 1)
            self.e1 = nn.Conv2d(4, 6, 1)
            self.e3 = nn.Conv2d(4, 6, 3, padding=1)
            self.fc = nn.Linear(12, 5)

        def forward(self, x):
            s = torch.relu(self.squeeze(x))
            y = torch.cat([self.e1(s), self.e3(s)], 1)
            return self.fc(y.mean((2, 3)).reshape(1, 12))  # untracked reshape: passes through

    rows = layer_table(Fire(), (3, 6, 6))
    sources = {l.name: l.extra["sources"] for l in rows}
    index = {l.name: i for i, l in enumerate(rows)}
    assert sources["squeeze"] == [NETWORK_INPUT]
    assert sources["e1"] == sources["e3"] == [index["relu"]]
    assert sources["concat"] == [index["e1"], index["e3"]]
    assert sources["avgpool"] == [index["concat"]]
    assert sources["fc"] == [index["avgpool"]]
    add = next(l for l in RESIDUAL if l.kind == "add")  # conv2(a) + a, a = relu(conv1(x))
    assert add.extra["sources"] == [NAMES.index("conv2"), NAMES.index("relu")]


# --------------------------------------------------------------------------- the default
def test_onchip_none_is_the_default_and_changes_nothing():
    default = run_backend(RESIDUAL)
    none = run_backend(RESIDUAL, onchip="none")
    assert none.summary == default.summary and none.layers == default.layers
    assert "input_from" not in default.layer_columns and "onchip" not in default.summary
    # the pinned figure of the reference preset on v5, from before the option existed
    from harness.plugins.manager import get_plugin_manager

    pm = get_plugin_manager()
    spec = pm.backend("accel-16x16")
    model = pm.model("1.0-SqNxt-23v5")
    summary = spec.run(RunRequest(model=model, batch=1, input_size=model.input_size,
                                  options=spec.parse_options([]))).summary
    assert (summary["cycles"], summary["energy"], summary["dram_accesses"]) == \
        (1685933, 3752179040.0, 9972104)


# --------------------------------------------------------------------------- hand-checked
def test_reuse_keeps_the_small_network_on_chip_with_the_hand_computed_counts():
    """Pool of 2 x 1024 words: everything fits. conv1 reads the input from DRAM (256)
    and its 4x8 weights (32); its output (512) stays for conv2 and the shortcut; conv2
    (weights 64) computes the add in its output stage, reading the shortcut from the
    buffer (512 reads), and keeps the sum for conv3, which reads 16 weights and writes
    the network's output (128) to DRAM."""
    costs, plan = simulate_with_plan(RESIDUAL, small(1024, 1024, "reuse"))
    c = by_name(costs)
    assert (counts(c["conv1"], "dram", "ifmap", "reads"), counts(c["conv1"], "dram", "weight", "reads"),
            counts(c["conv1"], "dram", "ofmap", "writes")) == (256, 32, 0)
    assert (c["conv1"].input_from, c["conv1"].output_to) == ("dram", "buffer")
    assert dram(c["conv2"]) == 64 and (c["conv2"].input_from, c["conv2"].output_to) == ("buffer", "buffer")
    add = c["add"]
    assert (add.input_from, add.output_to) == ("array+buffer", "in conv2")
    assert dram(add) == 0 and counts(add, "buffer", "ifmap", "reads") == 512
    assert add.vector_ops == 512 and add.compute_cycles == 0 and add.stall_cycles == 0
    assert (dram(c["conv3"]), counts(c["conv3"], "dram", "ofmap", "writes")) == (16 + 128, 128)
    assert sum(map(dram, costs)) == 256 + 32 + 64 + 16 + 128
    assert (plan.fused_adds, plan.resident_values) == (1, 2)
    # every word of activations in the buffer is also counted where it is read and written
    assert counts(c["conv2"], "buffer", "ofmap", "writes") == 512


def test_fuse_moves_the_add_into_conv2_and_keeps_every_feature_map_in_dram():
    none = by_name(simulate(RESIDUAL, small(1024, 1024, "none", dram_bw=1.0)))
    fuse = by_name(simulate(RESIDUAL, small(1024, 1024, "fuse", dram_bw=1.0)))
    # the default add reads both operands (2 x 512) and writes the sum (512) on the vector unit
    assert dram(none["add"]) == 3 * 512 and none["add"].compute_cycles == 512 // 4
    # fused: only the shortcut is read, by conv2's output stage; conv2 writes the sum
    assert dram(fuse["add"]) == 512 and fuse["add"].compute_cycles == 0
    assert (fuse["add"].input_from, fuse["add"].output_to) == ("array+dram", "in conv2")
    for name in ("conv1", "conv2", "conv3"):
        assert dram(fuse[name]) == dram(none[name])
        assert (fuse[name].input_from, fuse[name].output_to) == ("dram", "dram")
    assert sum(map(dram, fuse.values())) == sum(map(dram, none.values())) - 2 * 512
    # its DRAM words extend conv2's transfer time (1 word/cycle): the add's stall is the
    # difference between conv2 with and without them
    conv2, add = fuse["conv2"], fuse["add"]
    together = math.ceil((dram(conv2) + 512) / 1) - conv2.compute_cycles
    assert add.stall_cycles == together - conv2.stall_cycles > 0


def test_a_feature_map_larger_than_the_buffer_goes_to_dram():
    """Pool of 2 x 256 words: conv1's 512-word output cannot stay, nor can the sum."""
    c = by_name(simulate(RESIDUAL, small(256, 256, "reuse")))
    for name in ("conv1", "conv2", "conv3"):
        assert c[name].output_to == "dram" and c[name].input_from == "dram"
    assert counts(c["conv1"], "dram", "ofmap", "writes") == 512
    assert c["add"].input_from == "array+dram" and dram(c["add"]) == 512


def test_what_stays_alive_counts_against_the_buffer():
    """Pool of 512 + 256 words. conv1's output (512) fits beside conv1's input staging
    (256) and beside conv2's output staging (256, the output partition), so it stays;
    but the sum (512) cannot join it while conv2 runs, since the shortcut is still
    alive: 512 + 512 > 768. So the sum goes to DRAM and conv3 reads it from there."""
    costs, plan = simulate_with_plan(RESIDUAL, small(512, 256, "reuse"))
    c = by_name(costs)
    assert c["conv1"].output_to == "buffer"
    assert (c["conv2"].input_from, c["conv2"].output_to) == ("buffer", "dram")
    assert c["add"].input_from == "array+buffer"
    assert c["conv3"].input_from == "dram"
    assert plan.peak_words == 768
    # one word less of pool and conv1's output cannot stay either
    c = by_name(simulate(RESIDUAL, small(511, 256, "reuse")))
    assert c["conv1"].output_to == "dram"


def test_concatenated_parts_stay_alive_until_the_concatenation_is_read():
    class Fire(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.squeeze = nn.Conv2d(4, 2, 1, bias=False)
            self.e1 = nn.Conv2d(2, 4, 1, bias=False)
            self.e3 = nn.Conv2d(2, 4, 3, padding=1, bias=False)
            self.next = nn.Conv2d(8, 2, 1, bias=False)

        def forward(self, x):
            s = torch.relu(self.squeeze(x))
            return self.next(torch.cat([self.e1(s), self.e3(s)], 1))

    rows = layer_table(Fire(), (4, 8, 8))  # squeeze 128 words, e1 and e3 256 each
    c = by_name(simulate(rows, small(1024, 1024, "reuse")))
    assert [c[n].output_to for n in ("squeeze", "e1", "e3")] == ["buffer"] * 3
    assert c["next"].input_from == "buffer" and dram(c["next"]) == 16 + 128
    # While e3 runs, the squeeze output (its input, 128) and e1's output (256) are alive.
    # Pool 512 + 64: e1 fits beside them and e3's output staging (128 + 256 + 64), but e3's
    # own output does not (128 + 256 + 256 > 576): it goes to DRAM, and `next` reads half
    # of its input (e1) from the buffer and half (e3) from DRAM.
    c = by_name(simulate(rows, small(512, 64, "reuse")))
    assert [c[n].output_to for n in ("squeeze", "e1", "e3")] == ["buffer", "buffer", "dram"]
    assert c["next"].input_from == "mixed"
    assert counts(c["next"], "dram", "ifmap", "reads") == 256
    # pool 2 x 256: e1 cannot stay while e3 runs (128 + 256 + 256 > 512), nor can e3
    c = by_name(simulate(rows, small(256, 256, "reuse")))
    assert [c[n].output_to for n in ("squeeze", "e1", "e3")] == ["buffer", "dram", "dram"]
    assert c["next"].input_from == "dram" and counts(c["next"], "dram", "ifmap", "reads") == 512


def test_a_table_without_sources_falls_back_to_dram_with_a_warning():
    bare = [replace(l, extra={k: v for k, v in l.extra.items() if k != "sources"})
            for l in RESIDUAL]
    result = run_backend(bare, onchip="reuse")
    assert any("onchip=reuse ignored" in w for w in result.warnings)
    assert result.summary == run_backend(bare).summary


def test_rows_say_where_each_operand_came_from():
    result = run_backend(RESIDUAL, onchip="reuse")
    assert result.layer_columns[-2:] == ["input_from", "output_to"]
    rows = {r["name"]: r for r in result.layers}
    assert rows["conv1"]["input_from"] == "dram" and rows["relu"]["input_from"] == "-"
    assert rows["add"]["output_to"] == "in conv2"
    assert result.summary["onchip"] == "reuse" and result.summary["fused_adds"] == 1
    assert result.summary["activation_buffer_peak_words"] <= result.summary["activation_buffer_words"]


def test_option_errors_name_the_option():
    spec = next(s for s in accel.bench_hardware() if s.name == "accel")
    with pytest.raises(BenchUsageError, match="onchip.*fuse, none, reuse|none, fuse, reuse"):
        spec.parse_options({"onchip": "always"})
    with pytest.raises(BenchUsageError, match="compat=scalesim needs onchip=none"):
        run_backend(RESIDUAL, compat="scalesim", onchip="fuse")


# --------------------------------------------------------------------------- properties
class Program(nn.Module):
    """A random network: a stem, then plain convs, residual pairs, fire modules, pools."""

    def __init__(self, steps: list[tuple], channels: int) -> None:
        super().__init__()
        self.steps = steps
        self.mods = nn.ModuleList()
        c = channels
        for kind, width in steps:
            if kind == "conv":
                self.mods.append(nn.Conv2d(c, width, 3, padding=1, bias=False))
                c = width
            elif kind == "res":
                self.mods.append(nn.ModuleList([nn.Conv2d(c, width, 1, bias=False),
                                                nn.Conv2d(width, c, 3, padding=1, bias=False)]))
            elif kind == "fire":
                self.mods.append(nn.ModuleList([nn.Conv2d(c, width, 1), nn.Conv2d(width, c, 1),
                                                nn.Conv2d(width, c, 3, padding=1)]))
                c = 2 * c
            else:
                self.mods.append(nn.MaxPool2d(2))

    def forward(self, x):
        for (kind, _), mod in zip(self.steps, self.mods):
            if kind == "conv":
                x = torch.relu(mod(x))
            elif kind == "res":
                x = torch.relu(mod[1](torch.relu(mod[0](x))) + x)
            elif kind == "fire":
                s = torch.relu(mod[0](x))
                x = torch.cat([mod[1](s), mod[2](s)], 1)
            else:
                x = mod(x)
        return x


programs = st.lists(st.tuples(st.sampled_from(["conv", "res", "fire", "pool"]),
                              st.integers(1, 12)), min_size=1, max_size=6)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=programs, side=st.sampled_from([4, 8, 16]), channels=st.integers(1, 6),
       words=st.tuples(st.integers(16, 3000), st.integers(16, 3000)),
       array=st.sampled_from([(4, 4), (2, 8)]), bw=st.sampled_from([1.0, 4.0]))
def test_keeping_data_on_chip_never_adds_dram_traffic(steps, side, channels, words, array, bw):
    steps = [s for s in steps if s[0] != "pool"] + [s for s in steps if s[0] == "pool"][:2]
    rows = layer_table(Program(steps, channels), (channels, side, side))
    for dataflow in ("ws", "os", "best"):
        cfg = AccelConfig(rows=array[0], cols=array[1], dataflow=dataflow, ifmap_words=words[0],
                          weight_words=256, ofmap_words=words[1], dram_bw=bw)
        base = simulate(rows, cfg)
        for mode in ("fuse", "reuse"):
            new, plan = simulate_with_plan(rows, replace(cfg, onchip=mode))
            assert sum(c.cycles for c in new) <= sum(c.cycles for c in base)
            assert sum(c.macs for c in new) == sum(c.macs for c in base)
            if dataflow != "best":  # 'best' may trade DRAM words for cycles, layer by layer
                assert sum(map(dram, new)) <= sum(map(dram, base))
                assert sum(c.total_energy for c in new) <= sum(c.total_energy for c in base) * (1 + 1e-12)
            assert plan.peak_words <= words[0] + words[1]
            for a, b in zip(base, new):
                if a.dataflow == b.dataflow:  # 'best' may trade DRAM words for cycles
                    assert dram(b) <= dram(a), (mode, dataflow, b.name)
                if b.output_to == "buffer":
                    assert counts(b, "dram", "ofmap", "writes") == 0
                    assert counts(b, "dram", "psum", "writes") == 0
                if b.input_from == "buffer":
                    assert counts(b, "dram", "ifmap", "reads") == 0


@pytest.mark.parametrize("hw", ["accel-8x8", "accel-16x16", "accel-32x32"])
def test_real_networks_move_less_dram_traffic_on_chip(hw):
    from harness.plugins.manager import get_plugin_manager

    pm = get_plugin_manager()
    spec = pm.backend(hw)
    for name in ("1.0-SqNxt-23v5", "squeezenet1_0", "alexnet"):
        model = pm.model(name)
        results = {}
        for mode in ("none", "fuse", "reuse"):
            request = RunRequest(model=model, batch=1, input_size=model.input_size,
                                 options=spec.parse_options([f"onchip={mode}"]))
            results[mode] = request, spec.run(request).summary
        none, fuse, reuse = (results[m][1] for m in ("none", "fuse", "reuse"))
        assert reuse["dram_accesses"] <= fuse["dram_accesses"] <= none["dram_accesses"]
        assert reuse["cycles"] <= none["cycles"] and reuse["energy"] <= none["energy"]
        assert reuse["macs"] == none["macs"]
        adds = sum(1 for l in results["none"][0].layers() if l.kind == "add")
        assert fuse["fused_adds"] == reuse["fused_adds"] == adds
