"""accel presets and energy tables as data files: the built-ins, validation with one-line
errors naming the field, user files through BENCH_ACCEL_PRESETS, and the plugin hook."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.errors import BenchUsageError
from plugins.hardware import accel, accel_presets
from plugins.hardware.accel_model import EYERISS_COSTS

from conftest import make_distribution

BASE = accel.accel_options()


def load(tmp_path: Path, text: str, name: str = "chip.toml") -> accel_presets.Preset:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return accel_presets.load_preset(path, BASE, accel.config_from_options)


def error_of(tmp_path: Path, text: str, name: str = "chip.toml") -> str:
    with pytest.raises(BenchUsageError) as err:
        load(tmp_path, text, name)
    message = err.value.message
    assert "\n" not in message
    return message


# --------------------------------------------------------------------------- built-ins
def test_builtin_presets_are_the_files_with_the_old_defaults():
    found = {p.name: p for p in accel.presets(BASE) if p.origin == "built-in"}
    expected = {"accel-8x8": ("8x8", 32.0, 4.0), "accel-16x16": ("16x16", 64.0, 8.0),
                "accel-32x32": ("32x32", 128.0, 16.0)}
    assert set(found) == set(expected)
    for name, (array, kib, bw) in expected.items():
        v = found[name].values
        assert (v["array"], v["ifmap_kib"], v["weight_kib"], v["ofmap_kib"], v["dram_bw"]) == (
            array, kib, kib, kib, bw)
        assert found[name].energy.name == "eyeriss"
    specs = [s.name for s in accel.bench_hardware()]
    assert specs[:4] == ["accel", "accel-8x8", "accel-16x16", "accel-32x32"]


def test_the_eyeriss_table_file_is_the_cost_model_default():
    table = accel_presets.load_energy("eyeriss")
    assert table.costs == EYERISS_COSTS
    assert {o.name: o.default for o in BASE if o.name.startswith("cost_")} == {
        f"cost_{k}": v for k, v in EYERISS_COSTS.items()}


def test_a_whole_network_gives_the_figures_it_gave_before_presets_were_files():
    from harness.cli import run_one

    _, result = run_one("1.0-SqNxt-23", "accel")
    s = result.summary  # the README's figures from before this change
    assert (s["cycles"], s["compute_cycles"], s["dram_accesses"]) == (2179997, 1650084, 12697801)
    assert s["energy"] == pytest.approx(4744993854, abs=1)
    _, result8 = run_one("1.0-SqNxt-23", "accel-8x8")
    _, same = run_one("1.0-SqNxt-23", "accel-32x32", hw_opts=[
        "array=8x8", "ifmap_kib=32", "weight_kib=32", "ofmap_kib=32", "dram_bw=4"])
    assert result8.summary == same.summary


# --------------------------------------------------------------------------- validation
def test_a_copied_and_edited_preset_loads_in_toml_and_json(tmp_path):
    text = accel_presets.builtin_preset_files()[0].read_text()
    text = text.replace('name = "accel-8x8"', 'name = "my-chip"').replace("dram_bw = 4", "dram_bw = 2.5")
    toml = load(tmp_path, text)
    assert toml.name == "my-chip" and toml.values["dram_bw"] == 2.5
    assert toml.values["cost_dram"] == 200.0 and toml.energy.name == "eyeriss"
    as_json = {"name": "my-chip", "array": "8x8", "ifmap_kib": 32, "weight_kib": 32,
               "ofmap_kib": 32, "dram_bw": 2.5, "energy": "eyeriss"}
    loaded = load(tmp_path, json.dumps(as_json), "chip.json")
    assert loaded.values == toml.values


def test_a_typo_in_a_field_name_names_it_and_the_valid_fields(tmp_path):
    message = error_of(tmp_path, 'name = "x"\narray = "8x8"\ndram_bandwidth = 4\n')
    assert "chip.toml" in message and "unknown field 'dram_bandwidth'" in message
    assert "did you mean 'dram_bw'?" in message
    assert "valid fields: array, best_by," in message and "energy" in message


@pytest.mark.parametrize("line, field, words", [
    ("ifmap_kib = -64", "ifmap_kib", "must be greater than 0"),
    ("dram_bw = 0", "dram_bw", "must be greater than 0"),
    ("rf_words = -1", "rf_words", "at least 1"),
    ("cost_dram = -200", "cost_dram", "0 or more"),
    ('array = "16x0"', "array", "ROWSxCOLS"),
    ('dataflow = "rs"', "dataflow", "valid: ws, os, best"),
    ('weight_kib = "lots"', "weight_kib", "expected a number"),
    ("word_bits = [16]", "word_bits", "expected"),
    ('name = "my chip"', "name", "no spaces"),
])
def test_bad_values_name_the_field(tmp_path, line, field, words):
    message = error_of(tmp_path, f'description = "test"\n{line}\n')
    assert f"field '{field}'" in message and words in message, message


def test_a_buffer_below_one_tile_is_caught_when_the_file_is_read(tmp_path):
    message = error_of(tmp_path, 'array = "32x32"\nweight_kib = 1\n')
    assert message.startswith(str(tmp_path / "chip.toml")) and "weight_kib=1" in message


def test_malformed_files_and_unknown_suffixes_are_one_line_errors(tmp_path):
    assert "not valid TOML" in error_of(tmp_path, 'array = "8x8\n')
    assert "not valid JSON" in error_of(tmp_path, '{"array": ', "chip.json")
    assert "expected a .toml or .json file" in error_of(tmp_path, "array: 8x8", "chip.yaml")
    with pytest.raises(BenchUsageError, match="missing.toml' does not exist"):
        accel_presets.load_preset(tmp_path / "missing.toml", BASE)
    with pytest.raises(BenchUsageError, match="is a directory, not a file"):
        accel_presets.load_preset(tmp_path, BASE)


def test_energy_tables_by_name_by_relative_path_and_inline(tmp_path):
    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "cheap-dram.toml").write_text(
        'source = "made up"\nmac = 1\nrf = 1\npe = 2\nbuffer = 6\ndram = 50\n')
    by_path = load(tmp_path, 'energy = "tables/cheap-dram.toml"\ncost_pe = 3\n')
    assert by_path.energy.name == "cheap-dram" and by_path.values["cost_dram"] == 50.0
    assert by_path.values["cost_pe"] == 3.0  # an explicit cost_* overrides the table's level
    inline = load(tmp_path, "[energy]\nmac = 0.5\nrf = 1\npe = 2\nbuffer = 6\ndram = 400\n")
    assert inline.values["cost_mac"] == 0.5 and inline.values["cost_dram"] == 400.0
    message = error_of(tmp_path, 'energy = "eyeris"\n')
    assert "field 'energy'" in message and "valid: eyeriss" in message
    assert "missing field 'dram'" in error_of(tmp_path, "[energy]\nmac = 1\nrf = 1\npe = 2\nbuffer = 6\n")
    message = error_of(tmp_path, "[energy]\nmac = 1\nrf = 1\npe = 2\nbuffer = -6\ndram = 200\n")
    assert "field 'buffer'" in message and ">= 0" in message
    assert "unknown field 'dramm'" in error_of(
        tmp_path, "[energy]\nmac = 1\nrf = 1\npe = 2\nbuffer = 6\ndram = 200\ndramm = 1\n")


def test_discover_keeps_invalid_presets_with_their_error_and_their_name(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text('name = "fast-chip"\narray = "8x8"\ndram_bw = 64\n')
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "broken-chip"\narray = "8x8"\nifmap_kib = -1\n')
    found = accel_presets.discover(BASE, accel.config_from_options, env=str(tmp_path))
    by_name = {p.name: p for p in found}
    assert by_name["fast-chip"].values["dram_bw"] == 64.0 and not by_name["fast-chip"].error
    assert "ifmap_kib" in by_name["broken-chip"].error
    assert [p.name for p in found][:3] == ["accel-8x8", "accel-16x16", "accel-32x32"]


# --------------------------------------------------------------------------- through bench
def test_user_preset_files_run_and_bad_ones_exit_2_naming_the_field(bench, tmp_path):
    chip = tmp_path / "chip.toml"
    chip.write_text('name = "my-chip"\narray = "8x8"\nifmap_kib = 32\nweight_kib = 32\n'
                    'ofmap_kib = 32\ndram_bw = 4\n')
    env = {"BENCH_ACCEL_PRESETS": str(chip)}
    mine = bench("run", "--model", "squeezenet1_1", "--hw", "my-chip", "--format", "json",
                 "--no-store", env=env)
    assert mine.returncode == 0, mine.stderr
    builtin = bench("run", "--model", "squeezenet1_1", "--hw", "accel-8x8", "--format", "json",
                    "--no-store")
    assert json.loads(mine.stdout)["summary"] == json.loads(builtin.stdout)["summary"]

    chip.write_text('name = "my-chip"\narray = "8x8"\nweight_kib = -32\n')
    for args in (("run", "--model", "squeezenet1_1", "--hw", "my-chip"),
                 ("preset", "check", str(chip))):
        proc = bench(*args, env=env)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "field 'weight_kib'" in lines[0] and "Traceback" not in proc.stderr
    chip.write_text('name = "my-chip"\narrray = "8x8"\n')
    proc = bench("preset", "check", str(chip))
    assert proc.returncode == 2 and "unknown field 'arrray' (did you mean 'array'?)" in proc.stderr


def test_preset_show_prints_a_file_that_checks(bench, tmp_path):
    shown = bench("preset", "show", "accel-32x32")
    assert shown.returncode == 0 and 'array = "32x32"' in shown.stdout
    copy = tmp_path / "copy.toml"
    copy.write_text(shown.stdout)
    checked = bench("preset", "check", str(copy))
    assert checked.returncode == 0 and "preset 'accel-32x32': 32x32 PEs" in checked.stdout
    unknown = bench("preset", "show", "accel-64x64")
    assert unknown.returncode == 2 and "valid: accel-16x16" in unknown.stderr


def test_a_third_party_package_ships_presets_through_the_hook(bench, tmp_path):
    site = tmp_path / "site"
    module = '''
from pathlib import Path
from harness import hookimpl

@hookimpl
def bench_accel_presets():
    return [{"name": "vendor-64x64", "array": "64x64", "dram_bw": 32, "weight_kib": 256},
            Path(__file__).with_name("vendor_small.toml"),
            {"name": "vendor-broken", "array": "4x4", "dram_bw": -1}]
'''
    make_distribution(site, "bench-vendor", "1.0", {"vendor": "bench_vendor"}, {
        "bench_vendor/__init__.py": module,
        "bench_vendor/vendor_small.toml": 'name = "vendor-4x4"\narray = "4x4"\nifmap_kib = 4\n'})
    env = {"PYTHONPATH": str(site)}
    listed = {h["name"]: h for h in json.loads(
        bench("list", "hardware", "--format", "json", env=env).stdout)}
    assert "64x64 PEs" in listed["vendor-64x64"]["description"]
    assert "4x4 PEs" in listed["vendor-4x4"]["description"]
    assert listed["vendor-broken"]["description"].startswith("INVALID preset (plugin vendor)")
    run = bench("run", "--model", "squeezenet1_1", "--hw", "vendor-64x64", "--no-store",
                "--format", "json", env=env)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["summary"]["array"] == "64x64"
    broken = bench("run", "--model", "squeezenet1_1", "--hw", "vendor-broken", env=env)
    assert broken.returncode == 2 and "field 'dram_bw'" in broken.stderr
