"""``bench inspect``: the layer table with totals, in table, JSON and CSV, for every model."""
from __future__ import annotations

import csv
import io
import json
from functools import lru_cache

import pytest
from click.testing import CliRunner

from harness.commands.inspect import command
from harness.errors import BenchUsageError
from harness.layers import model_layers, smallest_input
from harness.layers import totals
from harness.plugins.manager import get_plugin_manager

BUILT_IN_PLUGINS = {"squeezenext", "squeezenet", "alexnet", "vgg", "mobilenet"}
PM = get_plugin_manager()
ALL_NAMES = [s.name for s in PM.models().values()
             if PM.plugin_of("models", s.name) in BUILT_IN_PLUGINS]


def test_every_built_in_model_is_covered_here():
    assert len(ALL_NAMES) == 30  # the 22 SqueezeNext variants and the 8 comparison networks


def invoke(*args: str):
    return CliRunner().invoke(command, list(args), catch_exceptions=False)


@lru_cache(maxsize=None)
def inspected_json(name: str) -> dict:
    result = invoke("--model", name, "--format", "json")
    assert result.exit_code == 0, (name, result.output)
    return json.loads(result.output)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_inspect_json_carries_layers_and_totals(name):
    payload = inspected_json(name)
    spec = PM.model(name)
    assert set(payload) == {"model", "input_size", "batch", "layers", "totals"}
    assert payload["model"] == spec.name and payload["input_size"] == list(spec.input_size)
    layers = payload["layers"]
    assert layers[0]["in_shape"] == list(spec.input_size) and layers[-1]["out_shape"] == [1000]
    assert payload["totals"]["macs"] == sum(l["macs"] for l in layers) > 0
    assert payload["totals"]["params"] == sum(l["params"] for l in layers) > 0
    assert payload["totals"]["layers"] == len(layers)
    for layer in layers:
        assert {"name", "kind", "in_shape", "out_shape", "kernel", "stride", "padding",
                "groups", "params", "macs"} <= set(layer)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_inspect_table_lists_every_layer_and_ends_with_the_totals(name):
    result = invoke("--model", name)
    assert result.exit_code == 0, (name, result.output)
    payload = inspected_json(name)
    sums = payload["totals"]
    lines = result.output.rstrip("\n").splitlines()
    assert lines[0].startswith(f"{PM.model(name).name}: input ")
    assert f"{sums['macs']:,} MACs" in lines[0]
    assert lines[2].split() == ["name", "kind", "in_shape", "out_shape", "kernel", "stride",
                                "padding", "groups", "params", "macs"]
    rows = lines[4:-1]  # title, blank, header, rule, rows, total
    assert [r.split()[0] for r in rows] == [l["name"] for l in payload["layers"]]
    total = lines[-1].split()
    assert total[:2] == ["total", str(sums["compute_layers"])]
    assert total[-2:] == [f"{sums['params']:,}", f"{sums['macs']:,}"]


def test_reference_numbers_through_the_command():
    payload = json.loads(invoke("--model", "1.0-sqnxt-23", "--format", "json").output)
    assert payload["model"] == "1.0-SqNxt-23"  # found case-insensitively
    assert (payload["totals"]["params"], payload["totals"]["params_conv_fc"],
            payload["totals"]["macs"]) == (717_280, 705_728, 277_999_808)
    first = payload["layers"][0]
    assert (first["name"], first["kind"], first["out_shape"], first["kernel"]) == \
        ("stem.conv", "conv", [64, 111, 111], [7, 7])


def test_input_size_and_batch_change_shapes_and_macs_not_params():
    one = json.loads(invoke("--model", "2.0-SqNxt-23v5", "--format", "json", "--input-size",
                            "224").output)
    four = json.loads(invoke("--model", "2.0-SqNxt-23v5", "--format", "json", "--input-size",
                             "224", "--batch", "4").output)
    assert one["input_size"] == [3, 224, 224] and one["totals"]["macs"] == 697_960_192
    assert four["totals"]["macs"] == 4 * one["totals"]["macs"]
    assert four["totals"]["params"] == one["totals"]["params"] == 3_222_912


def test_csv_has_one_row_per_layer_and_out_writes_a_file(tmp_path):
    result = invoke("--model", "mobilenet_v1_0.25", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(result.output)))
    layers = model_layers(get_plugin_manager().model("mobilenet_v1_0.25"), (3, 224, 224))
    assert len(rows) == len(layers)
    assert rows[3]["name"] == "block1.dw.conv" and rows[3]["kind"] == "dwconv"
    assert rows[3]["groups"] == "8" and rows[3]["in_shape"] == "[8, 112, 112]"
    assert sum(int(r["macs"]) for r in rows) == totals(layers)["macs"]

    out = tmp_path / "sqnxt.json"
    result = invoke("--model", "1.0-G-SqNxt-23", "--format", "json", "--out", str(out))
    assert result.exit_code == 0 and result.stdout == ""
    assert json.loads(out.read_text())["totals"]["params_conv_fc"] == 531_520


def test_large_inputs_are_counted_without_running_them():
    """Above 4x the default pixels the table is shape-only (meta device): VGG-19 at 1024
    would otherwise need about 400 GMACs and gigabytes of activations."""
    small = json.loads(invoke("--model", "vgg19", "--format", "json").output)
    large = json.loads(invoke("--model", "vgg19", "--format", "json", "--input-size",
                              "1024").output)

    def macs(payload: dict, kind: str) -> int:
        return sum(l["macs"] for l in payload["layers"] if l["kind"] == kind)

    # every feature map scales by 1024/224 per side; the classifier sees 7x7 either way
    assert macs(large, "conv") * 224 * 224 == macs(small, "conv") * 1024 * 1024
    assert macs(large, "fc") == macs(small, "fc")
    assert large["totals"]["params"] == small["totals"]["params"]
    pool = next(l for l in large["layers"] if l["name"] == "avgpool")
    assert (pool["in_shape"], pool["out_shape"]) == ([512, 32, 32], [512, 7, 7])


@pytest.mark.parametrize("args,words", [
    (["--model", "squeezenet1_1", "--input-size", "12"],
     ["input size 12 does not fit model 'squeezenet1_1'", "valid: 17 or more", "default 227"]),
    (["--model", "alexnet", "--input-size", "62"], ["valid: 63 or more"]),
    (["--model", "1.0-SqNxt-23", "--input-size", "0"], ["--input-size must be a positive"]),
    (["--model", "1.0-SqNxt-23", "--input-size", "-5"], ["--input-size must be a positive"]),
    (["--model", "1.0-SqNxt-23", "--batch", "0"], ["--batch must be a positive integer"]),
    (["--model", "1.0-SqNx-23"], ["unknown model '1.0-SqNx-23'",
                                   "did you mean '1.0-SqNxt-23'", "valid:"]),
    (["--model", "alexnet", "--format", "xml"], ["'xml' is not one of"]),
])
def test_user_errors_are_one_line_with_exit_code_2(args, words):
    result = CliRunner().invoke(command, args)
    assert result.exit_code == 2, result.output
    message = result.output.strip().splitlines()[-1]
    for word in words:
        assert word in message, message


@pytest.mark.parametrize("name", ["alexnet", "squeezenet1_0", "1.0-SqNxt-23v5"])
def test_smallest_input_is_the_boundary(name):
    spec = get_plugin_manager().model(name)
    side = smallest_input(spec)
    assert 1 < side < spec.input_size[-1]
    model_layers(spec, (3, side, side))  # works
    with pytest.raises(Exception, match="does not fit"):
        model_layers(spec, (3, side - 1, side - 1))


def test_bench_inspect_end_to_end(bench):
    done = bench("inspect", "--model", "2.0-SqNxt-23v5", "--format", "json")
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert (payload["totals"]["params_conv_fc"], payload["totals"]["params"],
            payload["totals"]["macs"]) == (3_194_560, 3_222_912, 702_592_000)
    done = bench("inspect", "--model", "vgg19", "--input-size", "0")
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "--input-size must be a positive integer" in done.stderr


def test_flat_input_models_get_a_table_and_one_line_errors():
    """An FC-only model takes ``input_size=(features,)``; its table and its errors work."""
    import torch.nn as nn

    from harness import ModelSpec

    def mlp(features_in: int) -> nn.Module:
        return nn.Sequential(nn.Linear(features_in, 100), nn.ReLU(), nn.Linear(100, 10))

    spec = ModelSpec(name="mlp", family="mlp", builder=lambda: mlp(784), input_size=(784,),
                     num_classes=10)
    layers = model_layers(spec, (784,), batch=4)
    assert [l.kind for l in layers] == ["fc", "act", "fc"]
    assert sum(l.macs for l in layers) == 4 * (784 * 100 + 100 * 10)
    broken = ModelSpec(name="mlp-bad", family="mlp", builder=lambda: mlp(780), input_size=(784,),
                       num_classes=10)
    with pytest.raises(BenchUsageError, match="fails at input size 784"):
        model_layers(broken, (784,))
