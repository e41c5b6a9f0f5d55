"""Host backends ``cpu`` (and ``cuda`` when a GPU is visible): run the real network and time it.

The simulator says how a model would run on an accelerator; this backend says
how it runs on the machine in front of the user, so its numbers must survive
comparison with a bare ``torch.utils.benchmark`` loop and with runs made months
later. It therefore measures the way benchmark tools do: inference mode, a
warm-up, iterations per sample calibrated so the clock's overhead is under
0.01 % of a sample (as ``Timer.blocked_autorange`` does), the garbage
collector off while timing (as ``timeit`` does), samples collected until the
minimum time is filled, and the spread reported with the median.

Nothing heavy is imported at module level: ``bench list`` must not load torch.
``cuda`` is registered when NVIDIA device files are present and
``CUDA_VISIBLE_DEVICES`` does not hide them; the run itself then checks that
torch really sees the GPU.
"""
from __future__ import annotations

import gc
import glob
import itertools
import math
import os
import statistics
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

from harness import BenchUsageError, HardwareSpec, OptionSpec, RunRequest, RunResult, hookimpl
from harness.specs import parse_bool

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

    from harness.layers import Layer

# A sample must be long enough that reading the clock costs at most this fraction of it.
MAX_TIMER_OVERHEAD = 1e-4
# Above this many samples, iterations per sample grow instead (keeps stored results small).
MAX_SAMPLES = 1000
# The IQR above which the run is flagged as noisy, as a fraction of the median.
NOISY_IQR = 0.10
# Warm-up goes on while its later half of passes runs faster than this fraction of its earlier
# half (a warm-up that is still speeding up is not over).
SETTLED = 0.95
# Instrumented passes for --layers: per-op times are medians over these.
MIN_LAYER_PASSES, MAX_LAYER_PASSES = 10, 200
DTYPES = ("float32", "bfloat16")


# --------------------------------------------------------------------------- options
def usable_cores() -> int:
    """Cores this process may run on (respects taskset/cgroup affinity)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def parse_threads(text: str) -> int | None:
    """``all`` (every usable core) or a positive integer."""
    if text.strip().lower() in ("all", "", "none"):
        return None
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"expected a positive integer or 'all' (this machine has "
                         f"{usable_cores()} usable cores)") from None
    if value <= 0:
        raise ValueError(f"must be at least 1 (this machine has {usable_cores()} usable cores)")
    return value


parse_threads.__name__ = "threads"


def parse_seconds(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise ValueError("must be a positive number of seconds")
    return value


parse_seconds.__name__ = "seconds"


def parse_warmup(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise ValueError("must be zero or a positive number of seconds")
    return value


parse_warmup.__name__ = "seconds"


def parse_count(text: str) -> int:
    value = int(text)
    if value < 2:
        raise ValueError("must be at least 2 (a spread needs two samples)")
    return value


parse_count.__name__ = "int"


def parse_seed(text: str) -> int:
    value = int(text)
    if not 0 <= value < 2**63:
        raise ValueError("must be between 0 and 2**63-1")
    return value


parse_seed.__name__ = "int"


OPTIONS = (
    OptionSpec("threads", parse_threads, "all",
               "intra-op threads (default all usable cores; the number used is recorded)"),
    OptionSpec("dtype", str, "float32", "weights and input type (bfloat16 only where the "
               "hardware supports it)", choices=DTYPES),
    OptionSpec("channels_last", parse_bool, False, "NHWC memory format for model and input"),
    OptionSpec("compile", parse_bool, False, "wrap the model in torch.compile"),
    OptionSpec("min_time", parse_seconds, 1.0, "seconds of measuring (at least)"),
    OptionSpec("min_samples", parse_count, 10, "samples to collect (at least)"),
    OptionSpec("warmup", parse_warmup, 0.5, "seconds of warm-up (at least 2 passes)"),
    OptionSpec("seed", parse_seed, 0, "seed for the weights and the input batch"),
)


# --------------------------------------------------------------------------- registration
def gpu_visible() -> bool:
    """Cheap check for an NVIDIA GPU that does not import torch (keeps ``bench list`` fast)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return False
    return bool(glob.glob("/dev/nvidia[0-9]*")) or bool(glob.glob("/proc/driver/nvidia/gpus/*"))


def run_cpu(request: RunRequest) -> RunResult:
    return measure_run(request, "cpu")


def run_cuda(request: RunRequest) -> RunResult:
    return measure_run(request, "cuda")


@hookimpl
def bench_hardware() -> list[HardwareSpec]:
    specs = [HardwareSpec(
        name="cpu",
        description="this machine's CPU: real PyTorch inference, median of calibrated samples",
        options=OPTIONS, run=run_cpu, timing_sensitive=True,
    )]
    if gpu_visible():
        specs.append(HardwareSpec(
            name="cuda",
            description="this machine's NVIDIA GPU: real PyTorch inference, synchronized timing",
            options=OPTIONS, run=run_cuda, timing_sensitive=True,
        ))
    return specs


# --------------------------------------------------------------------------- set-up
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
    if opts.get("compile"):
        import torch._inductor.config as inductor_config

        # Compile in this process: a pool of compile workers keeps running after the first
        # pass and, on a small machine, slows the timed passes many times over.
        inductor_config.compile_threads = 1
        timed = torch.compile(model)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    return Prepared(model=timed, eager_model=model, inputs=inputs, layers=layers,
                    device=device, dtype=dtype, sync=sync, threads=torch.get_num_threads())


# --------------------------------------------------------------------------- timing
@dataclass
class Measurement:
    """Per-iteration times of each sample, and how they were taken."""

    samples: list[float]  # seconds per forward pass, one entry per sample
    iters_per_sample: int
    timer_overhead_s: float
    warmup_passes: int
    warmup_s: float

    def stats(self) -> dict[str, float]:
        s = sorted(self.samples)
        q1, _, q3 = statistics.quantiles(s, n=4, method="inclusive")
        return {"median": statistics.median(s), "iqr": q3 - q1, "min": s[0],
                "mean": statistics.fmean(s), "q1": q1, "q3": q3}


def timer_overhead(sync: Callable[[], None], clock: Callable[[], float]) -> float:
    """Median cost of one timed empty block: a sync and two clock reads."""
    costs = []
    for _ in range(21):
        sync()
        t0 = clock()
        sync()
        costs.append(clock() - t0)
    return statistics.median(costs)


def time_blocks(
    run_once: Callable[[], Any],
    sync: Callable[[], None],
    *,
    min_time: float,
    min_samples: int,
    warmup: float,
    progress: Callable[[int, int, str], None],
    clock: Callable[[], float] = time.perf_counter,
) -> Measurement:
    """Warm up, calibrate iterations per sample, then collect samples until min_time.

    Each sample times ``iters`` back-to-back calls between two clock reads (with
    a device sync before each read) and is stored divided by ``iters``.
    """
    overhead = timer_overhead(sync, clock)

    # Warm-up: the first pass pays for lazy initialisation (and compiling), so the warm-up
    # time counts after it; then go on while passes are still getting faster.
    warm_times: list[float] = []
    warm_start = clock()
    settle_deadline = math.inf
    while True:
        sync()
        t0 = clock()
        run_once()
        sync()
        t1 = clock()
        warm_times.append(t1 - t0)
        if len(warm_times) == 1:
            first_done = t1
            settle_deadline = t1 + max(5 * warmup, 5.0)
        since_first = t1 - first_done
        progress(int(min(since_first, warmup) * 1000), int(warmup * 1000) or 1, "warming up")
        after_first = warm_times[1:]
        if len(after_first) < 4 or since_first < warmup:
            continue
        half = len(after_first) // 2  # settled: the later half is no faster than the earlier
        if (statistics.median(after_first[half:]) >= SETTLED * statistics.median(after_first[:half])
                or t1 > settle_deadline):
            break
    per_iter = statistics.median(warm_times[-max(1, (len(warm_times) - 1) // 4):])
    warmup_s = clock() - warm_start

    iters = max(1, math.ceil(overhead / (MAX_TIMER_OVERHEAD * per_iter)),
                math.ceil(min_time / (MAX_SAMPLES * per_iter)))
    expected_total = max(min_time, min_samples * iters * per_iter)

    samples: list[float] = []
    measured = 0.0
    repeat = itertools.repeat
    gc.collect()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        while measured < min_time or len(samples) < min_samples:
            sync()
            t0 = clock()
            for _ in repeat(None, iters):
                run_once()
            sync()
            elapsed = clock() - t0
            samples.append(elapsed / iters)
            measured += elapsed
            progress(int(min(measured, expected_total) * 1000), int(expected_total * 1000),
                     "measuring")
    finally:
        if gc_was_enabled:
            gc.enable()
    return Measurement(samples=samples, iters_per_sample=iters, timer_overhead_s=overhead,
                       warmup_passes=len(warm_times), warmup_s=warmup_s)


# --------------------------------------------------------------------------- memory
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc mallopt() parameters


def _glibc() -> Any:
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.gnu_get_libc_version  # only glibc has it
    except (OSError, AttributeError):
        return None
    return libc


def keep_freed_memory() -> bool:
    """Stop glibc from handing freed activations back to the OS between passes.

    By default glibc serves large blocks with mmap and trims the heap top when
    they are freed, so every forward pass faults its activation memory back in
    (measured here: ~1,600 page faults per SqueezeNet 1.1 pass at batch 1, ~15%
    of its time; ~12,000 per 1.0-SqNxt-23 pass at batch 8). Serving everything
    from the heap and never trimming it removes that cost, as jemalloc or
    tcmalloc would. Process-wide and kept; :func:`release_freed_memory` gives
    memory back between runs. False where the C library is not glibc.
    """
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) and libc.mallopt(_M_MMAP_MAX, 0))


def release_freed_memory() -> None:
    """Return free heap memory to the OS (so a run's peak RSS is not a previous run's)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark for this process (Linux >= 4.0); False if impossible."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_rss_mib() -> float | None:
    """Peak resident memory of this process (since the last reset), MiB."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    except (ImportError, OSError):
        return None


def cpu_seconds() -> tuple[float, float] | None:
    """(busy CPU seconds of the whole machine, CPU seconds of this process), or None
    where ``/proc/stat`` is missing. Their deltas tell how much CPU others took."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = [int(v) for v in fh.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + fields[4]  # idle + iowait
    own = os.times()
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK"), own.user + own.system


def others_cores(before: tuple[float, float] | None, after: tuple[float, float] | None,
                 seconds: float) -> float | None:
    """Cores other processes kept busy between two :func:`cpu_seconds` readings."""
    if before is None or after is None or seconds <= 0:
        return None
    return max(0.0, (after[0] - before[0]) - (after[1] - before[1])) / seconds


# --------------------------------------------------------------------------- the run
def one_bar(
    report: Callable[[int, int, str], None] | None, phases: Sequence[tuple[str, float]]
) -> Callable[[int, int, str], None]:
    """Turn per-phase progress into one bar over the whole run (phases weighted by seconds)."""
    if report is None:
        return lambda done, total, label: None
    spans: dict[str, tuple[float, float]] = {}
    start = 0.0
    for label, seconds in phases:
        spans[label] = (start, seconds)
        start += seconds
    whole = start or 1.0

    def progress(done: int, total: int, label: str) -> None:
        begin, span = spans.get(label, (0.0, 0.0))
        fraction = min(done / total, 1.0) if total else 1.0
        report(int(1000 * (begin + span * fraction)), int(1000 * whole), label)

    return progress


def measure_run(request: RunRequest, device: str) -> RunResult:
    """What ``bench run --hw cpu`` (or ``cuda``) does."""
    import torch

    check_request(request)
    opts = request.options
    check_device(device, opts.get("dtype", "float32"))
    progress = one_bar(request.progress, [
        ("building model", 0.0),
        ("warming up", float(opts.get("warmup", 0.5))),
        ("measuring", float(opts.get("min_time", 1.0))),
        ("timing layers", float(opts.get("min_time", 1.0)) if request.per_layer else 0.0),
        (PEAKS_LABEL, 0.0),
    ])
    warnings: list[str] = []

    threads_before = torch.get_num_threads()
    threads = opts.get("threads", "all")
    threads = usable_cores() if threads in (None, "all") else threads
    if threads > usable_cores():
        warnings.append(f"threads={threads} is more than the {usable_cores()} usable cores: "
                        "threads compete with each other")
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    gc.collect()
    release_freed_memory()
    steady_heap = keep_freed_memory()
    rss_reset = reset_peak_rss()
    torch.set_num_threads(threads)
    try:
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        progress(0, 1, "building model")
        prepared = prepare(request, device)
        opts["threads"] = prepared.threads  # stored with the options: the number really used

        model, inputs = prepared.model, prepared.inputs

        def run_once() -> Any:
            return model(inputs)

        cpu_before, wall_before = cpu_seconds(), time.perf_counter()
        with torch.inference_mode():
            try:
                measurement = time_blocks(
                    run_once, prepared.sync, min_time=float(opts.get("min_time", 1.0)),
                    min_samples=int(opts.get("min_samples", 10)),
                    warmup=float(opts.get("warmup", 0.5)), progress=progress)
            except Exception as exc:
                if opts.get("compile"):
                    raise BenchUsageError(f"torch.compile failed ({_first_line(exc)}); "
                                          "run with --hw-opt compile=false") from None
                raise
        others = others_cores(cpu_before, cpu_seconds(), time.perf_counter() - wall_before)
        peak = peak_rss_mib()
        peak_gpu = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None

        summary = summarize(request, prepared, measurement, device)
        summary["peak_rss_mib"] = peak
        summary["steady_heap"] = steady_heap
        if not rss_reset:
            summary["peak_rss_note"] = "peak over the whole process (could not reset the mark)"
        if peak_gpu is not None:
            summary["peak_gpu_mem_mib"] = peak_gpu
        if load_before is not None:
            summary["load_avg_1m_before"] = round(load_before, 2)
        if others is not None:
            summary["others_cpu_cores"] = round(others, 2)
            spare = (os.cpu_count() or threads) - threads
            if others > spare + 0.25:
                warnings.append(
                    f"other processes kept {others:.1f} cores busy while this run used "
                    f"{threads} of {os.cpu_count()}: they competed for the CPU, so these times "
                    "are too slow (measure on an idle machine or with fewer threads)")
        stats = measurement.stats()
        if stats["iqr"] > NOISY_IQR * stats["median"]:
            warnings.append(
                f"noisy measurement: IQR is {100 * stats['iqr'] / stats['median']:.0f}% of the "
                f"median (over {100 * NOISY_IQR:.0f}%); close other programs or raise min_time")

        layers: list[dict[str, Any]] = []
        columns: list[str] | None = None
        if request.per_layer:  # after the headline: it cannot change it
            layers, extra, layer_warnings = per_layer_profile(request, prepared, progress)
            summary.update(extra)
            warnings.extend(layer_warnings)
            columns = list(LAYER_COLUMNS)
        return RunResult(summary=summary, layers=layers, samples=list(measurement.samples),
                         warnings=warnings, layer_columns=columns)
    finally:
        torch.set_num_threads(threads_before)


def summarize(request: RunRequest, prepared: Prepared, m: Measurement,
              device: str) -> dict[str, Any]:
    import torch

    stats = m.stats()
    macs = sum(layer.macs for layer in prepared.layers)
    median = stats["median"]
    summary: dict[str, Any] = {
        "time_s": median,
        "median_ms": median * 1e3,
        "iqr_ms": stats["iqr"] * 1e3,
        "iqr_pct": 100 * stats["iqr"] / median,
        "min_ms": stats["min"] * 1e3,
        "mean_ms": stats["mean"] * 1e3,
        "samples": len(m.samples),
        "iters_per_sample": m.iters_per_sample,
        "measured_s": sum(m.samples) * m.iters_per_sample,
        "throughput": request.batch / median,
        "throughput_unit": "images/s",
        "macs": macs,
        "gflop_per_s": 2 * macs / median / 1e9,
        "batch": request.batch,
        "input_size": list(request.input_size),
        "threads": prepared.threads,
        "dtype": str(prepared.dtype).removeprefix("torch."),
        "channels_last": bool(request.options.get("channels_last")),
        "compile": bool(request.options.get("compile")),
        "warmup_passes": m.warmup_passes,
        "warmup_s": m.warmup_s,
        "timer_overhead_ns": m.timer_overhead_s * 1e9,
        "device": device,
    }
    if device == "cuda":
        summary["device_name"] = torch.cuda.get_device_name()
    else:
        summary["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    return summary


# --------------------------------------------------------------------------- per layer
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
