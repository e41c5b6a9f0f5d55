"""Is ``bench run --hw cpu`` as fast as a bare ``torch.utils.benchmark`` loop?

For each model and batch size, one process alternates between the cpu
backend's own run (the ``run`` callable ``bench run --hw cpu`` calls, through
the plugin manager) and a bare ``Timer("model(x)").blocked_autorange()`` on the
same network (same seed, eval mode, inference mode, same thread count). The
order flips every round so drift (other programs, CPU clocks) hits both sides
alike. It prints the ratio of the pooled medians (backend / Timer): 1.0 means the
backend adds nothing; the target band is 0.95-1.05.

On a shared machine other programs distort both sides (OpenMP kernels slow down
many-fold when others take their cores), so the table shows ``others_cores``
(CPU other processes used during the rounds) and the range of per-round ratios;
``--quiet-only 0.1`` throws away and repeats rounds during which others used
more than a tenth of a core, and says how many it threw away.

    .venv/bin/python benchmarks/bench_cpu_vs_timer.py
    .venv/bin/python benchmarks/bench_cpu_vs_timer.py --quiet-only 0.1
    .venv/bin/python benchmarks/bench_cpu_vs_timer.py --models squeezenet1_1 --batches 1 --rounds 5
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

DEFAULT_MODELS = "squeezenet1_1,1.0-SqNxt-23,mobilenet_v1_1.0"
BAND = (0.95, 1.05)


def others_busy(seconds: float = 1.0) -> float:
    """Cores kept busy by other processes over the next ``seconds``."""
    from plugins.hardware.cpu_usage import cpu_seconds, others_cores

    before = cpu_seconds()
    time.sleep(seconds)
    return others_cores(before, cpu_seconds(), seconds) or 0.0


def wait_until_idle(limit: float, threshold: float) -> float:
    """Wait (up to ``limit`` seconds) until other processes use under ``threshold`` cores."""
    deadline = time.monotonic() + limit
    busy = others_busy()
    while busy > threshold and time.monotonic() < deadline:
        busy = others_busy(2.0)
    return busy


def iqr_pct(samples: list[float]) -> float:
    q1, _, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    return 100 * (q3 - q1) / statistics.median(samples)


def compare_one(model_name: str, batch: int, threads: int, rounds: int, min_time: float,
                quiet_only: float | None, wait: float) -> dict[str, object]:
    """Alternate backend and Timer ``rounds`` times on one model and batch size.

    With ``quiet_only`` set, a round during which other processes kept more than that
    many cores busy is thrown away and run again (after waiting up to ``wait`` seconds
    for the machine to go idle), at most ``4 x rounds`` times in all.
    """
    import torch
    from torch.utils.benchmark import Timer

    from harness.plugins.manager import get_plugin_manager
    from harness.specs import RunRequest
    from plugins.hardware.cpu_usage import cpu_seconds, others_cores

    pm = get_plugin_manager()
    spec = pm.model(model_name)
    backend = pm.backend("cpu")
    options = {"threads": str(threads), "min_time": str(min_time), "seed": "0"}

    # The reference: what an expert writes by hand.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = spec.build().eval()
    x = torch.randn((batch, *spec.input_size), generator=torch.Generator().manual_seed(0))
    timer = Timer(stmt="model(x)", globals={"model": model, "x": x}, num_threads=threads)
    with torch.inference_mode():
        timer.blocked_autorange(min_run_time=min_time / 2)  # its warm-up

    def run_backend() -> list[float]:
        request = RunRequest(model=spec, batch=batch, input_size=spec.input_size,
                             options=backend.parse_options(options))
        return backend.run(request).samples

    def run_timer() -> list[float]:
        with torch.inference_mode():
            return list(timer.blocked_autorange(min_run_time=min_time).times)

    backend_samples: list[float] = []
    timer_samples: list[float] = []
    round_ratios, busy, discarded = [], [], 0
    for attempt in range(4 * rounds):
        if len(round_ratios) == rounds:
            break
        if quiet_only is not None and wait > 0:
            wait_until_idle(wait, quiet_only)
        wall0, cpu0 = time.perf_counter(), cpu_seconds()
        if len(round_ratios) % 2 == 0:
            b, t = run_backend(), run_timer()
        else:
            t, b = run_timer(), run_backend()
        others = others_cores(cpu0, cpu_seconds(), time.perf_counter() - wall0) or 0.0
        if quiet_only is not None and others > quiet_only:
            discarded += 1
            continue
        backend_samples += b
        timer_samples += t
        busy.append(others)
        round_ratios.append(statistics.median(b) / statistics.median(t))
    if not round_ratios:
        raise SystemExit(f"{model_name} batch {batch}: no round was quiet enough; "
                         "try later or without --quiet-only")
    b_med = statistics.median(backend_samples)
    t_med = statistics.median(timer_samples)
    ratio = b_med / t_med
    return {
        "model": model_name, "batch": batch, "threads": threads,
        "backend_ms": b_med * 1e3, "timer_ms": t_med * 1e3, "ratio": ratio,
        "paired_ratio": statistics.median(round_ratios),
        "round_ratios": f"{min(round_ratios):.3f}-{max(round_ratios):.3f}",
        "backend_iqr_pct": iqr_pct(backend_samples), "timer_iqr_pct": iqr_pct(timer_samples),
        "n_backend": len(backend_samples), "n_timer": len(timer_samples),
        "rounds": len(round_ratios), "discarded": discarded,
        "others_cores": max(busy),
        "in_band": BAND[0] <= ratio <= BAND[1],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=DEFAULT_MODELS)
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--rounds", type=int, default=20, help="alternations per pair (>= 2)")
    parser.add_argument("--min-time", type=float, default=0.3, help="seconds per measurement")
    parser.add_argument("--check", action="store_true", help="exit 1 if a ratio is off band")
    parser.add_argument("--quiet-only", type=float, default=None, metavar="CORES",
                        help="discard and repeat rounds during which other processes kept more "
                             "than CORES cores busy (for shared machines; e.g. 0.1)")
    parser.add_argument("--wait-idle", type=float, default=600.0, metavar="SECONDS",
                        help="with --quiet-only: wait up to this long for an idle machine "
                             "before each round")
    args = parser.parse_args()

    from tabulate import tabulate

    from harness.environment import capture

    env = capture("cpu")
    print(f"# {env['cpu_model']}, {env['cpu_count']} cores, torch {env['torch']}, "
          f"load average {os.getloadavg()[0]:.2f} at start", flush=True)
    rows = []
    start = time.perf_counter()
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        for batch in [int(b) for b in args.batches.split(",")]:
            row = compare_one(name, batch, args.threads, max(2, args.rounds), args.min_time,
                              args.quiet_only, args.wait_idle)
            rows.append(row)
            print(f"  {name} batch {batch}: ratio {row['ratio']:.3f}", file=sys.stderr, flush=True)
    print(tabulate(rows, headers="keys", floatfmt=".3f"))
    print(f"# ratio = median(bench run --hw cpu samples) / median(Timer.blocked_autorange "
          f"samples), band {BAND[0]}-{BAND[1]}; paired_ratio = median of the per-round ratios, "
          f"round_ratios = their range; "
          f"others_cores = most cores other processes kept busy in a kept round; "
          f"{time.perf_counter() - start:.0f} s")
    off = [r for r in rows if not r["in_band"]]
    return 1 if args.check and off else 0


if __name__ == "__main__":
    sys.exit(main())
