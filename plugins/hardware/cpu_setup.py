"""The cpu backend's set-up: check the request, then build the model and input as they are timed.

Everything here happens before the clock starts; a bad request fails here with
a usage error, before anything heavy is built.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from harness import BenchUsageError, RunRequest

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

    from harness.layers import Layer

DTYPES = ("float32", "bfloat16")


@dataclass
class Prepared:
    """The model and input as they will be timed, plus what the summary records."""

    model: Any  # the callable that is timed (compiled when compile=true)
    eager_model: Any  # the same weights without torch.compile (for the per-layer pass)
    inputs: "torch.Tensor"
    layers: list["Layer"]
    device: str
    dtype: "torch.dtype"
    sync: Callable[[], None]
    threads: int


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip(": ")


def check_request(request: RunRequest) -> None:
    """Reject bad batch and input sizes before anything is built."""
    if not isinstance(request.batch, int) or request.batch <= 0:
        raise BenchUsageError(f"batch size must be a positive integer, not {request.batch}")
    size = tuple(request.input_size)
    if len(size) != 3 or any(not isinstance(s, int) or s <= 0 for s in size):
        raise BenchUsageError(
            f"input size must be three positive integers (C, H, W), not {list(size)}")
    opts = request.options
    if opts.get("threads", "all") not in (None, "all") and (
            not isinstance(opts["threads"], int) or opts["threads"] <= 0):
        raise BenchUsageError(f"threads must be a positive integer, not {opts['threads']}")
    if opts.get("dtype", "float32") not in DTYPES:
        raise BenchUsageError(
            f"unknown dtype '{opts.get('dtype')}'; valid: {', '.join(DTYPES)}")


def check_device(device: str, dtype_name: str) -> None:
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise BenchUsageError("torch sees no CUDA GPU (is this torch build CPU-only, or the "
                              "driver missing?); use --hw cpu")
    if dtype_name != "bfloat16":
        return
    if device == "cuda":
        if not torch.cuda.is_bf16_supported():
            raise BenchUsageError("this GPU has no bfloat16 support; valid dtype here: float32")
    elif not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        raise BenchUsageError(
            "this CPU has no native bfloat16 (needs AVX-512 BW/VL/DQ, AMX or ARM BF16; "
            f"it has {torch.backends.cpu.get_cpu_capability()}); valid dtype here: float32")


def prepare(request: RunRequest, device: str) -> Prepared:
    """Build the network with a fixed seed, take its layer table, convert and place it."""
    import torch

    opts = request.options
    dtype = getattr(torch, opts.get("dtype", "float32"))
    batch, size = request.batch, tuple(request.input_size)
    seed = int(opts.get("seed", 0))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = request.model.build()
    model.eval()
    # The layer table is also the first forward pass: it finds inputs the network cannot take.
    from harness.layers import layer_table

    try:
        layers = layer_table(model, size, batch=batch)
    except (RuntimeError, ValueError) as exc:
        raise BenchUsageError(
            f"model '{request.model.name}' cannot run on input {'x'.join(map(str, size))} "
            f"at batch {batch} ({_first_line(exc)}); its native input is "
            f"{'x'.join(map(str, request.model.input_size))}") from None
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn((batch, *size), generator=generator)
    memory_format = torch.channels_last if opts.get("channels_last") else torch.contiguous_format
    model = model.to(device=device, dtype=dtype, memory_format=memory_format)
    inputs = inputs.to(device=device, dtype=dtype).contiguous(memory_format=memory_format)
    for param in model.parameters():
        param.requires_grad_(False)
    timed = model
    if opts.get("compile"):  # compiled in this process: see cpu_tuning.tuned
        timed = torch.compile(model)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    return Prepared(model=timed, eager_model=model, inputs=inputs, layers=layers,
                    device=device, dtype=dtype, sync=sync, threads=torch.get_num_threads())

