"""Per-layer times of a cpu run (``--layers``): every cost-bearing torch call timed on its own.

The timed calls are matched to the rows of the layer table and joined with a
rough roofline (peaks estimated in the same run), so a user sees which layers
are compute- or memory-bound on this machine. Runs after the headline
measurement, so it cannot change it.
"""
from __future__ import annotations

import math
import statistics
import time
from typing import TYPE_CHECKING, Any, Callable, Sequence

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

    from harness import RunRequest
    from harness.layers import Layer
    from plugins.hardware.cpu_setup import Prepared

# Instrumented passes for --layers: per-op times are medians over these.
MIN_LAYER_PASSES, MAX_LAYER_PASSES = 10, 200

LAYER_COLUMNS = ("name", "kind", "out_shape", "mmacs", "time_ms", "time_pct", "gflop_per_s",
                 "gb_per_s", "flop_per_byte", "bound", "roof_pct")

PEAKS_LABEL = "estimating peak compute and bandwidth"
_ACTIVATIONS = {"relu", "relu_", "relu6", "hardtanh", "hardtanh_", "sigmoid", "silu", "gelu",
                "leaky_relu", "hardswish", "tanh"}


def call_kind(fname: str, args: tuple, out: Any) -> str | None:
    """The layer-table kind a torch function call becomes, or None if the table skips it.

    Mirrors :func:`harness.layers.layer_table`'s rules, so the timed calls of a
    pass line up one to one with the table's rows.
    """
    import torch

    first = args[0] if args else None
    is_t = isinstance(first, torch.Tensor)
    if fname == "conv2d":
        return "conv"
    if fname == "linear":
        return "fc"
    if fname in {"max_pool2d", "_max_pool2d", "max_pool2d_with_indices"}:
        return "maxpool"
    if fname in {"avg_pool2d", "adaptive_avg_pool2d"} or (fname == "mean" and is_t
                                                           and first.dim() == 4):
        return "avgpool"
    if fname == "batch_norm":
        return "bn"
    if fname in _ACTIVATIONS:
        return "act"
    if fname in {"add", "__add__", "__iadd__", "add_", "__radd__"} and len(args) >= 2 and all(
            isinstance(a, torch.Tensor) and a.dim() >= 2 for a in args[:2]):
        return "add"
    if fname in {"cat", "concat", "concatenate"}:
        return "concat"
    if fname in {"dropout", "dropout_"}:
        return "dropout"
    if fname in {"flatten", "view", "reshape"} and is_t and first.dim() == 4 and isinstance(
            out, torch.Tensor) and out.dim() == 2:
        return "reshape"
    return None


def _table_kind(kind: str) -> str:
    return "conv" if kind in ("conv", "gconv", "dwconv") else kind


def timed_pass(model: Any, inputs: Any, sync: Callable[[], None]) -> list[tuple[str, float]]:
    """One forward pass with every cost-bearing torch call timed: ``[(kind, seconds)]``."""
    from torch.overrides import TorchFunctionMode

    clock = time.perf_counter
    calls: list[tuple[str, float]] = []

    class OpTimer(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            sync()
            t0 = clock()
            out = func(*args, **kwargs)
            sync()
            elapsed = clock() - t0
            kind = call_kind(getattr(func, "__name__", ""), args, out)
            if kind is not None:
                calls.append((kind, elapsed))
            return out

    with OpTimer():
        model(inputs)
    return calls


def align(layers: Sequence["Layer"], calls: Sequence[tuple[str, float]]) -> list[float | None]:
    """Each layer row's time: the next timed call of the same kind, in execution order."""
    times: list[float | None] = []
    j = 0
    for layer in layers:
        want = _table_kind(layer.kind)
        while j < len(calls) and calls[j][0] != want:
            j += 1
        if j < len(calls):
            times.append(calls[j][1])
            j += 1
        else:
            times.append(None)
    return times


def estimate_peaks(device: str, dtype: "torch.dtype", sync: Callable[[], None]) -> tuple[float, float]:
    """Rough roofline: best GFLOP/s of a square matmul, best GB/s of a large copy."""
    import torch

    clock = time.perf_counter
    n = 1024
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    best = math.inf
    for i in range(21):
        sync()
        t0 = clock()
        torch.mm(a, b)
        sync()
        if i:  # the first call initialises the BLAS
            best = min(best, clock() - t0)
    peak_gflops = 2 * n**3 / best / 1e9
    del a, b
    # 256 MiB each way: larger than any cache, so this is memory bandwidth.
    src = torch.ones(64 * 2**20, device=device)
    dst = torch.empty_like(src)
    best = math.inf
    for i in range(7):
        sync()
        t0 = clock()
        dst.copy_(src)
        sync()
        if i:
            best = min(best, clock() - t0)
    bandwidth_gbs = 2 * src.numel() * src.element_size() / best / 1e9
    return peak_gflops, bandwidth_gbs


def per_layer_profile(
    request: RunRequest, prepared: Prepared, progress: Callable[[int, int, str], None]
) -> tuple[list[dict[str, Any]], dict[str, Any], list[str]]:
    """Per-layer times from separate instrumented passes, joined with the layer table.

    Each cost-bearing call is timed on its own (synchronised on a GPU); the median
    over several passes is kept. Peaks for the roofline note are estimated here
    with a matmul and a copy, and reported as estimates.
    """
    import torch

    warnings: list[str] = []
    if request.options.get("compile"):
        warnings.append("per-layer times are of the eager model: torch.compile fuses layers, "
                        "so they do not add up to the compiled headline")
    model, inputs, sync = prepared.eager_model, prepared.inputs, prepared.sync
    budget = float(request.options.get("min_time", 1.0))
    per_pass: list[list[float | None]] = []
    start = time.perf_counter()
    with torch.inference_mode():
        first = timed_pass(model, inputs, sync)  # also warms the instrumented path
        if [kind for kind, _ in first] != [_table_kind(layer.kind) for layer in prepared.layers]:
            warnings.append("the timed calls do not match the layer table one to one (a "
                            "data-dependent forward?): per-layer times are matched by kind and "
                            "order, and may be misplaced")
        while len(per_pass) < MIN_LAYER_PASSES or (
                time.perf_counter() - start < budget and len(per_pass) < MAX_LAYER_PASSES):
            per_pass.append(align(prepared.layers, timed_pass(model, inputs, sync)))
            progress(int(min(time.perf_counter() - start, budget) * 1000), int(budget * 1000),
                     "timing layers")
    progress(0, 1, PEAKS_LABEL)
    peak_gflops, bandwidth = estimate_peaks(prepared.device, prepared.dtype, sync)
    ridge = peak_gflops / bandwidth
    elem_size = torch.tensor([], dtype=prepared.dtype).element_size()

    times: list[float | None] = []
    for i in range(len(prepared.layers)):
        column = [p[i] for p in per_pass if p[i] is not None]
        times.append(statistics.median(column) if column else None)
    total = sum(t for t in times if t is not None)
    if any(t is None for t in times):
        warnings.append("some layer-table rows had no matching timed call (their time is blank)")

    rows = []
    for layer, t in zip(prepared.layers, times):
        flop = 2 * layer.macs
        in_elems = math.prod(layer.in_shape) * layer.batch if layer.in_shape else 0
        if layer.kind == "concat" and layer.extra.get("inputs"):
            in_elems = sum(math.prod(s) for s in layer.extra["inputs"]) * layer.batch
        moved = (in_elems + layer.elements + layer.params) * elem_size
        intensity = flop / moved if moved else 0.0
        row: dict[str, Any] = {
            "name": layer.name, "kind": layer.kind, "out_shape": list(layer.out_shape),
            "mmacs": layer.macs / 1e6, "time_ms": t * 1e3 if t is not None else None,
            "time_pct": 100 * t / total if t is not None and total else None,
            "gflop_per_s": flop / t / 1e9 if t and flop else None,
            "gb_per_s": moved / t / 1e9 if t and moved else None,
            "flop_per_byte": intensity,
            "bound": ("compute" if intensity >= ridge else "memory") if moved else None,
            "roof_pct": None,
        }
        if t:
            if flop:  # attainable = min(peak, intensity x bandwidth)
                row["roof_pct"] = 100 * (flop / t / 1e9) / min(peak_gflops, intensity * bandwidth)
            elif moved:
                row["roof_pct"] = 100 * (moved / t / 1e9) / bandwidth
        rows.append(row)
    extra = {
        "layers_sum_ms": total * 1e3,
        "layer_passes": len(per_pass),
        "peak_gflop_per_s_est": peak_gflops,
        "mem_gb_per_s_est": bandwidth,
        "ridge_flop_per_byte": ridge,
        "roofline_note": "peaks estimated here: best 1024x1024 matmul and a 256 MiB copy; "
                         "bound = compute if flop/byte >= ridge",
    }
    return rows, extra, warnings
