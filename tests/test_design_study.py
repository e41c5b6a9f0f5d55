"""bench design-study: the SqueezeNext table, headline ratios against the paper, the per-layer
utilisation view, the sensitivity runs and the plots, from one command."""
from __future__ import annotations

import json

import pytest

from harness.commands.design_study import PAPER, TOLERANCE, VARIANTS


def test_one_command_gives_the_table_ratios_views_and_plots(bench, tmp_path):
    proc = bench("design-study", "--no-store", "--format", "json", "--plot-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    table = {(r["hardware"], r["model"]): r for r in out["table"]}
    assert len(table) == 3 * 7
    for hw in ("accel-8x8", "accel-16x16", "accel-32x32"):
        speed = [table[(hw, v)]["speed-up vs squeezenet1_0"] for v in VARIANTS]
        energy = [table[(hw, v)]["energy eff. vs squeezenet1_0"] for v in VARIANTS]
        # the paper's point: each step v1 -> v5 makes the network faster and cheaper
        assert speed == sorted(speed) and energy == sorted(energy), hw
        assert table[(hw, "squeezenet1_0")]["speed-up vs squeezenet1_0"] == 1
    ref = table[("accel-16x16", "1.0-SqNxt-23v5")]
    by_ratio = {r["ratio"]: r for r in out["headline"]}
    for (base, metric), paper in PAPER.items():
        row = by_ratio[f"1.0-SqNxt-23v5 {metric} vs {base}"]
        assert row["paper"] == paper and row["this run"] == ref[f"{metric} vs {base}"]
        assert row["within 15%"] == ("yes" if abs(row["this run"] / paper - 1) <= TOLERANCE else "no")
    # figures of the 16x16 preset (pinned: a change to the simulator shows up here)
    assert ref["speed-up vs squeezenet1_0"] == pytest.approx(2.559, abs=1e-3)
    assert ref["energy eff. vs squeezenet1_0"] == pytest.approx(2.540, abs=1e-3)
    assert ref["speed-up vs alexnet"] == pytest.approx(5.991, abs=1e-3)
    assert ref["energy eff. vs alexnet"] == pytest.approx(5.196, abs=1e-3)
    assert "array 16x16, buffers 64/64/64 KiB" in out["configuration"]
    for variant in VARIANTS:  # the parts cover every cycle, and v5 fills the PEs better
        assert sum(r["share of cycles"] for r in out["layer_roles"][variant]) == pytest.approx(1)
        assert sum(r["share of cycles"] for r in out["stages"][variant]) == pytest.approx(1)
    stage1 = {v: next(r for r in out["stages"][v] if r["part"] == "stage 1") for v in VARIANTS}
    assert stage1["1.0-SqNxt-23v5"]["cycles"] < stage1["1.0-SqNxt-23"]["cycles"] / 2
    # the same ratios under each on-chip policy: fusing adds and keeping feature maps in the
    # buffer help SqueezeNext more than either baseline (pinned figures of the 16x16 preset)
    modes = {r["onchip"]: r for r in out["onchip"]}
    assert list(modes) == ["none", "fuse", "reuse"]
    for key in ("speed-up vs squeezenet1_0", "energy eff. vs squeezenet1_0",
                "speed-up vs alexnet", "energy eff. vs alexnet"):
        assert modes["none"][key] == ref[key]
        assert modes["none"][key] < modes["fuse"][key] < modes["reuse"][key]
    assert [round(modes["reuse"][k], 3) for k in ("speed-up vs squeezenet1_0",
            "energy eff. vs squeezenet1_0", "speed-up vs alexnet", "energy eff. vs alexnet")] \
        == [3.065, 3.398, 7.177, 6.958]
    assert all(r["all within 15%"] == "no" for r in out["onchip"])
    implied = out["baselines"][-1]
    assert implied["onchip"] == "paper (implied)"
    assert implied["squeezenet1_0 energy eff. vs alexnet"] == pytest.approx(7.5 / 2.25)
    sens = out["sensitivity"]
    same = next(r for r in sens if r["parameter"] == "dram_bw" and r["value"] == 8)
    assert same["speed-up vs alexnet"] == pytest.approx(ref["speed-up vs alexnet"])
    assert {r["parameter"] for r in sens} >= {"array", "dram_bw", "cost_dram", "batch"}
    assert {r["value"] for r in sens if r["parameter"] == "onchip"} == {"none", "fuse", "reuse"}
    for name in ("ratios", "layers", "onchip", "sensitivity"):
        assert (tmp_path / f"design_study_{name}.png").read_bytes().startswith(b"\x89PNG")
        assert (tmp_path / f"design_study_{name}.svg").stat().st_size > 10000
