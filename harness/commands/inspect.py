"""``bench inspect``: a model's layer table (shapes, kernels, parameters, MACs) with totals.

The table comes from :func:`harness.layers.model_layers`, the same one every
backend uses (traced at batch 1 and scaled, so any batch costs what batch 1
costs; shape-only on the meta device for very large inputs; sizes a network
cannot take are one-line errors).
"""
from __future__ import annotations

from typing import Any

import click

from harness import params
from harness.cli import format_option
from harness.layer_cache import cached_layers
from harness.output import render, to_json, write
from harness.plugins.manager import get_plugin_manager

TABLE_COLUMNS = ["name", "kind", "in_shape", "out_shape", "kernel", "stride", "padding",
                 "groups", "params", "macs"]


@click.command("inspect")
@click.option("--model", "model_name", required=True, help="Model name (see `bench list models`).")
@click.option("--input-size", type=params.INPUT_SIZE, default=None,
              help="Input height and width (default: the model's).")
@click.option("--batch", type=params.BATCH, default=1, show_default=True,
              help="Batch size (MACs cover the whole batch).")
@format_option()
@click.option("--out", type=params.OUTPUT_FILE, help="Write the output to this file.")
def command(model_name: str, input_size: int | None, batch: int, fmt: str,
            out: str | None) -> None:
    """Print a model's layer table with totals: shapes, kernel, stride, padding, groups,
    parameters and MACs of every operation, as every hardware backend sees them."""
    from harness.layers import totals

    spec = get_plugin_manager().model(model_name)
    size = spec.sized(input_size)
    layers = cached_layers(spec, size, batch)  # traced once per model and size
    sums = totals(layers)
    if fmt == "json":
        write(to_json({"model": spec.name, "input_size": list(size), "batch": batch,
                       "layers": [layer.as_dict() for layer in layers], "totals": sums}), out)
        return
    rows = [layer.as_dict() for layer in layers]
    if fmt == "csv":
        write(render(rows, "csv", TABLE_COLUMNS), out)
        return
    rows.append({"name": "total", "kind": f"{sums['compute_layers']} compute",
                 "params": sums["params"], "macs": sums["macs"]})
    title = (f"{spec.name}: input {'x'.join(map(str, size))}, batch {batch}; "
             f"{sums['layers']} layers, {sums['params']:,} parameters "
             f"({sums['params_conv_fc']:,} in conv/fc), {sums['macs']:,} MACs")
    write(title + "\n\n" + render(rows, "table", TABLE_COLUMNS), out)
