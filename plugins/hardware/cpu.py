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

The plugin itself is this module: options, registration and the run. Its parts
live beside it, one job each: ``cpu_setup`` (check the request, build the
model), ``cpu_tuning`` (what the run changes in the process), ``cpu_timing``
(the timing loop), ``cpu_usage`` (peak memory, other programs' CPU) and
``cpu_profile`` (per-layer times for ``--layers``).
"""
from __future__ import annotations

import gc
import glob
import math
import os
import time
from typing import Any, Callable, Sequence

from harness import BenchUsageError, HardwareSpec, OptionSpec, RunRequest, RunResult, hookimpl
from harness.specs import parse_bool
from plugins.hardware.cpu_profile import LAYER_COLUMNS, PEAKS_LABEL, per_layer_profile
from plugins.hardware.cpu_setup import (DTYPES, Prepared, _first_line, check_device,
                                        check_request, prepare)
from plugins.hardware.cpu_timing import Measurement, time_blocks
from plugins.hardware.cpu_tuning import tuned, usable_cores
from plugins.hardware.cpu_usage import cpu_seconds, others_cores, peak_rss_mib, reset_peak_rss

# The IQR above which the run is flagged as noisy, as a fraction of the median.
NOISY_IQR = 0.10


# --------------------------------------------------------------------------- options
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
    OptionSpec("steady_heap", parse_bool, True, "tell glibc to keep freed memory (no page "
               "faults per pass); false leaves its defaults (recorded in the summary)"),
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

    threads = opts.get("threads", "all")
    threads = usable_cores() if threads in (None, "all") else threads
    if threads > usable_cores():
        warnings.append(f"threads={threads} is more than the {usable_cores()} usable cores: "
                        "threads compete with each other")
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    gc.collect()
    with tuned(threads, steady_heap=bool(opts.get("steady_heap", True)),
               compile=bool(opts.get("compile"))) as changes:
        rss_reset = reset_peak_rss()
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
        summary.update(changes)
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


