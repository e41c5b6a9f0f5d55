"""``bench inspect``: a model's layer table (shapes, kernels, parameters, MACs) with totals.

The table is :func:`harness.layers.layer_table`, the one every backend uses,
computed on the CPU with one thread (a shape table needs no speed, and two
OpenMP threads on a shared 2-core machine can make small convolutions ten
times slower). Inputs with more than ``META_ABOVE`` times the model's default
pixel count are inspected on PyTorch's ``meta`` device instead: the same
function, the same rows, but no weights are initialised and no activations
computed, so ``--input-size 4096`` costs neither minutes nor gigabytes. (For
default sizes the meta device is slower: its first use imports torch's
compiler stack, about 2 s.)
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import click

from harness.cli import format_option
from harness.errors import BenchUsageError
from harness.output import render, to_json, write
from harness.plugins.manager import get_plugin_manager

TABLE_COLUMNS = ["name", "kind", "in_shape", "out_shape", "kernel", "stride", "padding",
                 "groups", "params", "macs"]
META_ABOVE = 4  # inputs above 4x the default pixel count: shape-only, on the meta device


@contextmanager
def _one_thread() -> Iterator[None]:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def cpu_table(spec: Any, input_size: tuple[int, ...], batch: int = 1) -> list:
    """The layer table computed for real: build the model, run it once."""
    from harness.layers import layer_table

    with _one_thread():
        return layer_table(spec.build(), input_size, batch=batch)


def shape_only_table(spec: Any, input_size: tuple[int, ...], batch: int = 1) -> list:
    """The same layer table on the meta device: shapes only, no memory, no compute."""
    import torch
    import torch.nn.functional as F
    from torch.overrides import TorchFunctionMode

    from harness.layers import layer_table

    class SkipBatchNormMath(TorchFunctionMode):
        """On meta, BatchNorm runs a slow Python decomposition only to return its
        input's shape; answer that shape directly. The layer table, a mode above
        this one, has already recorded the call with its arguments."""

        def __torch_function__(self, func, types, args=(), kwargs=None):
            if func is F.batch_norm:
                return torch.empty_like(args[0])
            return func(*args, **(kwargs or {}))

    with torch.device("meta"):
        model = spec.build()
        with SkipBatchNormMath():
            return layer_table(model, input_size, batch=batch)


def smallest_input(spec: Any) -> int | None:
    """The smallest square input side the model accepts, or None if its default fails.

    Bisection with plain forward passes of one model (valid sizes form an
    upward-closed range for convolution and pooling networks).
    """
    import torch

    channels, default = spec.input_size[0], max(spec.input_size[1:])
    model = spec.build().eval()

    def fits(side: int) -> bool:
        try:
            with torch.no_grad():
                model(torch.zeros((1, channels, side, side)))
        except RuntimeError:
            return False
        return True

    with _one_thread():
        if not fits(default):
            return None
        low, high = 1, default  # high fits
        while low < high:
            middle = (low + high) // 2
            if fits(middle):
                high = middle
            else:
                low = middle + 1
    return high


def _pixels(size: tuple[int, ...]) -> int:
    return int(size[-1]) * int(size[-2])


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def model_layers(spec: Any, input_size: tuple[int, ...], batch: int = 1) -> list:
    """The layer table of ``spec`` at ``input_size`` (see the module docstring for where).

    A size the model cannot take is a :class:`BenchUsageError` naming the sizes
    that work.
    """
    if _pixels(input_size) > META_ABOVE * _pixels(spec.input_size):
        try:
            return shape_only_table(spec, input_size, batch)
        except (RuntimeError, NotImplementedError):
            pass  # an operation the meta device cannot run: compute it for real
    try:
        return cpu_table(spec, input_size, batch)
    except RuntimeError as exc:
        error = exc
    side = input_size[-1]
    smallest = smallest_input(spec)
    if smallest is not None and side < smallest:
        raise BenchUsageError(
            f"input size {side} does not fit model '{spec.name}' ({_reason(error)}); "
            f"valid: {smallest} or more (default {spec.input_size[-1]})"
        )
    raise BenchUsageError(f"model '{spec.name}' fails at input size {side}: {_reason(error)}")


def _check_positive(option: str, value: int | None) -> None:
    if value is not None and value <= 0:
        raise BenchUsageError(f"{option} must be a positive integer, not {value}")


@click.command("inspect")
@click.option("--model", "model_name", required=True, help="Model name (see `bench list models`).")
@click.option("--input-size", type=int, default=None,
              help="Input height and width (default: the model's).")
@click.option("--batch", type=int, default=1, show_default=True,
              help="Batch size (MACs cover the whole batch).")
@format_option()
@click.option("--out", type=click.Path(dir_okay=False), help="Write the output to this file.")
def command(model_name: str, input_size: int | None, batch: int, fmt: str,
            out: str | None) -> None:
    """Print a model's layer table with totals: shapes, kernel, stride, padding, groups,
    parameters and MACs of every operation, as every hardware backend sees them."""
    from harness.layers import totals

    _check_positive("--input-size", input_size)
    _check_positive("--batch", batch)
    spec = get_plugin_manager().model(model_name)
    size = spec.input_size if input_size is None else (spec.input_size[0], input_size, input_size)
    layers = model_layers(spec, size, batch)
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
