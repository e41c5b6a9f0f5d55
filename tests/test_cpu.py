"""The cpu backend: option checks, what a run stores, the timing loop, --repeat groups."""
from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, make_distribution, one_line_error

TINY_PLUGIN = '''
from harness import ModelSpec, hookimpl


def build():
    import torch.nn as nn

    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(16, 10),
    )


def build_strided():
    import torch.nn as nn

    # Three stride-4 convolutions without padding: inputs under 64x64 shrink to nothing.
    return nn.Sequential(nn.Conv2d(3, 4, 4, stride=4), nn.Conv2d(4, 4, 4, stride=4),
                         nn.Conv2d(4, 4, 4, stride=4), nn.Flatten(), nn.Linear(4, 10))


@hookimpl
def bench_models():
    return [
        ModelSpec("tiny-cnn", "test", build, input_size=(3, 16, 16), num_classes=10),
        ModelSpec("tiny-strided", "test", build_strided, input_size=(3, 64, 64), num_classes=10),
    ]
'''

FAST = ["--hw-opt", "min_time=0.05", "--hw-opt", "warmup=0.02", "--hw-opt", "min_samples=5"]


@pytest.fixture(scope="module")
def tiny_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("tiny_site")
    make_distribution(site, "bench-tiny", "0.1", {"tiny": "bench_tiny"},
                      {"bench_tiny.py": TINY_PLUGIN})
    return site


@pytest.fixture
def tiny_bench(bench, tiny_site):
    def run(*args: str) -> subprocess.CompletedProcess:
        return bench(*args, env={"PYTHONPATH": str(tiny_site)})

    return run


# --------------------------------------------------------------------------- option checks
BAD_OPTIONS = [
    (["--batch", "0"], ["--batch", "positive"]),
    (["--batch", "-3"], ["--batch", "positive"]),
    (["--hw-opt", "threads=0"], ["threads", "at least 1", "usable cores"]),
    (["--hw-opt", "threads=-2"], ["threads", "at least 1"]),
    (["--hw-opt", "threads=1.5"], ["threads", "positive integer"]),
    (["--hw-opt", "threads=many"], ["threads", "positive integer or 'all'"]),
    (["--hw-opt", "dtype=float16"], ["dtype", "'float16'", "valid: bfloat16, float32"]),
    (["--hw-opt", "min_time=0"], ["min_time", "positive number of seconds"]),
    (["--hw-opt", "min_samples=1"], ["min_samples", "at least 2"]),
    (["--hw-opt", "channels_last=maybe"], ["channels_last", "true or false"]),
]


@pytest.mark.parametrize("args,words", BAD_OPTIONS, ids=[" ".join(a) for a, _ in BAD_OPTIONS])
def test_bad_option_exits_2_with_a_clear_message(tiny_bench, args, words):
    line = one_line_error(tiny_bench("run", "--model", "tiny-cnn", "--hw", "cpu", *args))
    for word in words:
        assert word in line, line


def test_input_the_network_cannot_take_is_a_usage_error(tiny_bench):
    line = one_line_error(tiny_bench("run", "--model", "tiny-strided", "--hw", "cpu",
                                     "--input-size", "32", *FAST))
    assert "cannot run on input 3x32x32" in line and "native input is 3x64x64" in line


def test_bfloat16_runs_only_where_the_cpu_supports_it(tiny_bench):
    import torch

    out = tiny_bench("run", "--model", "tiny-cnn", "--hw", "cpu", "--hw-opt", "dtype=bfloat16",
                     "--format", "json", *FAST)
    if torch.ops.mkldnn._is_mkldnn_bf16_supported():
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["summary"]["dtype"] == "bfloat16"
    else:
        line = one_line_error(out)
        assert "no native bfloat16" in line and "float32" in line


def test_backend_rejects_a_bad_batch_itself():
    """Callers other than the CLI (matrix, scripts) get the same check."""
    from harness.errors import BenchUsageError
    from harness.specs import ModelSpec, RunRequest
    from harness.specs import parse_options
    from plugins.hardware.cpu import OPTIONS, run_cpu

    spec = ModelSpec("x", "test", lambda: None)
    options = parse_options(OPTIONS, [], "hardware 'cpu'")
    with pytest.raises(BenchUsageError, match="batch size must be a positive integer"):
        run_cpu(RunRequest(model=spec, batch=0, input_size=(3, 8, 8), options=options))
    with pytest.raises(BenchUsageError, match="input size must be three positive integers"):
        run_cpu(RunRequest(model=spec, batch=1, input_size=(3, 0, 8), options=options))


# --------------------------------------------------------------------------- what a run stores
def test_stored_run_carries_samples_environment_and_options(tiny_bench):
    out = tiny_bench("run", "--model", "tiny-cnn", "--hw", "cpu", "--batch", "2",
                     "--hw-opt", "threads=1", "--hw-opt", "channels_last=true",
                     "--format", "json", *FAST)
    assert out.returncode == 0, out.stderr
    printed = json.loads(out.stdout)
    shown = tiny_bench("results", "show", str(printed["id"]), "--format", "json")
    assert shown.returncode == 0, shown.stderr
    stored = json.loads(shown.stdout)

    samples = stored["samples"]
    summary = stored["summary"]
    assert len(samples) == summary["samples"] >= 5
    assert all(s > 0 for s in samples)
    # The headline is the median of exactly the stored samples.
    assert summary["time_s"] == pytest.approx(statistics.median(samples), rel=1e-12)
    assert summary["median_ms"] == pytest.approx(1e3 * statistics.median(samples), rel=1e-12)
    assert summary["min_ms"] == pytest.approx(1e3 * min(samples), rel=1e-12)
    assert summary["throughput"] == pytest.approx(2 / summary["time_s"])
    assert summary["macs"] > 0
    assert summary["gflop_per_s"] == pytest.approx(2 * summary["macs"] / summary["time_s"] / 1e9)
    assert summary["peak_rss_mib"] > 0

    assert stored["options"]["threads"] == 1 and summary["threads"] == 1
    assert stored["options"]["channels_last"] is True and summary["channels_last"] is True
    assert stored["options"]["dtype"] == "float32"
    assert stored["options"]["batch"] == 2
    assert stored["options"]["min_time"] == 0.05
    env = stored["environment"]
    assert env["torch"] and env["host"] and env["cpu_count"] >= 1 and env["plugin"] == "cpu"


def test_default_threads_is_every_usable_core_and_is_recorded(tiny_bench):
    import os

    out = tiny_bench("run", "--model", "tiny-cnn", "--hw", "cpu", "--format", "json", *FAST)
    assert out.returncode == 0, out.stderr
    printed = json.loads(out.stdout)
    assert printed["options"]["threads"] == len(os.sched_getaffinity(0))
    assert printed["summary"]["threads"] == len(os.sched_getaffinity(0))


def test_per_layer_rows_join_the_layer_table(tiny_bench):
    out = tiny_bench("run", "--model", "tiny-cnn", "--hw", "cpu", "--layers",
                     "--hw-opt", "threads=1", "--format", "json", *FAST)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    layers = result["layers"]
    kinds = [row["kind"] for row in layers]
    assert kinds == ["conv", "bn", "act", "dwconv", "act", "maxpool", "conv", "act", "avgpool",
                     "reshape", "fc"]
    assert all(row["time_ms"] is not None and row["time_ms"] > 0 for row in layers)
    assert sum(row["mmacs"] for row in layers) * 1e6 == pytest.approx(result["summary"]["macs"])
    for row in layers:
        assert row["bound"] in ("compute", "memory")
        if row["mmacs"]:
            assert row["gflop_per_s"] == pytest.approx(
                2 * row["mmacs"] * 1e6 / (row["time_ms"] / 1e3) / 1e9)
    assert sum(row["time_pct"] for row in layers) == pytest.approx(100)
    assert result["summary"]["peak_gflop_per_s_est"] > 0
    assert result["summary"]["mem_gb_per_s_est"] > 0


def test_timed_calls_match_the_layer_table_one_to_one():
    """Inline adds and concatenations count; a 2-D view is not a flatten and does not."""
    import torch
    import torch.nn as nn

    from harness.layers import layer_table
    from plugins.hardware.cpu_profile import _table_kind, align, timed_pass

    class Residual(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv2d(4, 4, 3, padding=1)
            self.b = nn.Conv2d(4, 4, 1, groups=2)
            self.fc = nn.Linear(8 * 8 * 8, 3)

        def forward(self, x):
            y = torch.relu(self.a(x)) + x
            y = torch.cat([y, self.b(y)], dim=1)
            y = torch.flatten(y, 1).view(-1, 8 * 8 * 8)
            return self.fc(y)

    model = Residual().eval()
    layers = layer_table(model, (4, 8, 8), batch=2)
    with torch.inference_mode():
        calls = timed_pass(model, torch.randn(2, 4, 8, 8), lambda: None)
    assert [k for k, _ in calls] == [_table_kind(l.kind) for l in layers] == [
        "conv", "act", "add", "conv", "concat", "reshape", "fc"]
    times = align(layers, calls)
    assert times == [t for _, t in calls] and all(t > 0 for t in times)


def test_listing_backends_does_not_import_torch():
    code = ("import sys\nfrom plugins.hardware.cpu import bench_hardware\n"
            "names = [s.name for s in bench_hardware()]\n"
            "assert 'cpu' in names, names\nassert 'torch' not in sys.modules\nprint('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=str(REPO))
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_cuda_is_registered_only_when_a_gpu_is_visible(monkeypatch):
    from plugins.hardware import cpu

    monkeypatch.setattr(cpu.glob, "glob",
                        lambda pattern: ["/dev/nvidia0"] if pattern.startswith("/dev/") else [])
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert [s.name for s in cpu.bench_hardware()] == ["cpu", "cuda"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert [s.name for s in cpu.bench_hardware()] == ["cpu"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert [s.name for s in cpu.bench_hardware()] == ["cpu"]
    monkeypatch.setattr(cpu.glob, "glob", lambda pattern: [])
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert [s.name for s in cpu.bench_hardware()] == ["cpu"]
    assert all(s.timing_sensitive for s in cpu.bench_hardware())


def test_steady_heap_is_recorded_and_can_be_switched_off(tiny_bench):
    from plugins.hardware.cpu_tuning import _glibc

    def summary(*opts: str) -> dict:
        out = tiny_bench("run", "--model", "tiny-cnn", "--hw", "cpu", "--no-store",
                         "--format", "json", *FAST, *opts)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    on = summary()
    assert on["summary"]["steady_heap"] is (_glibc() is not None)
    off = summary("--hw-opt", "steady_heap=false")
    assert off["summary"]["steady_heap"] is False
    assert off["options"]["steady_heap"] is False and on["options"]["steady_heap"] is True


def test_process_changes_are_undone_or_recorded():
    """Threads and inductor's compile workers come back; steady_heap=false undoes the heap."""
    import torch
    import torch._inductor.config as inductor_config

    from plugins.hardware import cpu_tuning

    threads, workers = torch.get_num_threads(), inductor_config.compile_threads
    with cpu_tuning.tuned(1, steady_heap=True, compile=True) as changes:
        assert torch.get_num_threads() == 1 and inductor_config.compile_threads == 1
    assert changes["inductor_compile_threads"] == 1
    assert torch.get_num_threads() == threads and inductor_config.compile_threads == workers
    if cpu_tuning._glibc() is not None:
        assert changes["steady_heap"] is True and cpu_tuning._steady_heap_on
    with cpu_tuning.tuned(1, steady_heap=False, compile=False) as changes:
        assert not cpu_tuning._steady_heap_on
    assert changes == {"steady_heap": False}


# --------------------------------------------------------------------------- the timing loop
class FakeMachine:
    """A clock that only moves when work is done: each read costs ``read_cost`` seconds,
    and each pass costs what ``pass_cost(n)`` says for the n-th pass."""

    def __init__(self, pass_cost, read_cost: float = 100e-9) -> None:
        self.now = 0.0
        self.passes = 0
        self.pass_cost = pass_cost
        self.read_cost = read_cost

    def clock(self) -> float:
        self.now += self.read_cost
        return self.now

    def run_once(self) -> None:
        self.now += self.pass_cost(self.passes)
        self.passes += 1


def measure(machine: FakeMachine, **kw):
    from plugins.hardware.cpu_timing import time_blocks

    calls = []
    m = time_blocks(machine.run_once, lambda: None, clock=machine.clock,
                    progress=lambda d, t, label: calls.append((d, t, label)),
                    **{"min_time": 0.5, "min_samples": 10, "warmup": 0.1, **kw})
    return m, calls


def test_short_passes_are_grouped_so_the_clock_costs_under_a_ten_thousandth():
    from plugins.hardware.cpu_timing import MAX_TIMER_OVERHEAD

    machine = FakeMachine(lambda n: 10e-6)  # 10 us passes, 100 ns clock reads
    m, calls = measure(machine)
    assert m.timer_overhead_s == pytest.approx(100e-9)
    # 100 x 10 us = 1 ms, of which 100 ns is 1e-4 (101 when rounding lands just above).
    assert m.iters_per_sample in (100, 101)
    assert m.timer_overhead_s / (m.iters_per_sample * 10e-6) <= MAX_TIMER_OVERHEAD * 1.000001
    # Samples are per pass, with the clock's cost spread over the block.
    assert all(s == pytest.approx(10e-6 + 100e-9 / m.iters_per_sample) for s in m.samples)
    assert sum(m.samples) * m.iters_per_sample >= 0.5  # min_time filled
    assert calls and calls[-1][2] == "measuring" and calls[-1][0] == calls[-1][1]


def test_long_passes_are_one_per_sample_and_min_samples_wins_over_min_time():
    machine = FakeMachine(lambda n: 0.2)
    m, _ = measure(machine, min_time=0.5, min_samples=7)
    assert m.iters_per_sample == 1
    assert len(m.samples) == 7  # 0.5 s would need only 3


def test_warm_up_waits_until_passes_stop_getting_faster():
    # A compile-like first pass, then passes that keep speeding up (caches, clocks) long
    # after the 0.05 s warm-up asked for.
    def cost(n: int) -> float:
        return 5.0 if n == 0 else 1e-3 + 4e-3 * math.exp(-n / 30)

    machine = FakeMachine(cost)
    m, _ = measure(machine, warmup=0.05)
    assert m.warmup_passes > 150
    assert max(m.samples) < 1.01e-3  # none of the slow passes leaked into the samples


def test_warm_up_gives_up_at_its_deadline():
    machine = FakeMachine(lambda n: 1e-3 * (1 + 1000 / (n + 1)))  # faster and faster
    m, _ = measure(machine, warmup=0.1, min_time=0.01)
    first_pass = 1e-3 * 1001
    assert 5.0 <= m.warmup_s - first_pass < 5.1  # max(5 x warmup, 5 s) after the first pass


def test_garbage_collector_is_off_while_timing_and_restored():
    import gc

    seen = []
    machine = FakeMachine(lambda n: 1e-3)
    original = machine.run_once
    machine.run_once = lambda: (seen.append(gc.isenabled()), original())
    assert gc.isenabled()
    m, _ = measure(machine, min_time=0.02, min_samples=3)
    assert gc.isenabled()
    assert seen[-len(m.samples):] == [False] * len(m.samples)


# --------------------------------------------------------------------------- --repeat
def test_repeat_stores_each_run_in_its_own_process_as_one_group(tiny_bench, store_path):
    from harness.store import ResultStore

    out = tiny_bench("run", "--model", "tiny-cnn", "--hw", "cpu", "--repeat", "3",
                     "--hw-opt", "threads=1", *FAST)
    assert out.returncode == 0, out.stderr
    assert "3 runs in separate processes, stored as group g1" in out.stdout
    assert "run-to-run CV" in out.stdout
    assert "compare with: bench compare g1 <other group> [--rerun 3]" in out.stdout
    with ResultStore(store_path) as store:
        runs = store.group("g1")
        info = store.group_info(1)
    assert [r.group_id for r in runs] == [1, 1, 1] and len(runs) == 3
    assert info["planned_runs"] == 3 and "tiny-cnn on cpu" in info["label"]
    for run in runs:  # each run's row in the table is its own stored median
        assert f"{run.summary['median_ms']:.4g}" in out.stdout
    compared = tiny_bench("compare", "g1", "g1", "--format", "json")
    assert compared.returncode == 0, compared.stderr
    result = json.loads(compared.stdout)
    assert result["verdict"] == "no significant change" and result["ratio_b_over_a"] == 1.0
    assert result["a"]["results"] == [r.id for r in runs]


def test_compare_rerun_measures_both_stored_cells_again_as_two_groups(tiny_bench, store_path):
    from harness.store import ResultStore

    for size in ([], ["--input-size", "48"]):
        out = tiny_bench("run", "--model", "tiny-cnn", "--hw", "cpu", "--hw-opt", "threads=1",
                         *size, *FAST)
        assert out.returncode == 0, out.stderr
    out = tiny_bench("compare", "1", "2", "--rerun", "2")
    assert out.returncode == 0, out.stderr
    assert "re-measured as g1 and g2: 2 runs of each, interleaved A B B A" in out.stdout
    assert "A: group g1, 2 runs, re-run of 1" in out.stdout
    assert "paired t-test on log(B/A)" in out.stdout and "verdict: " in out.stdout
    with ResultStore(store_path) as store:
        stored_a, stored_b = store.get(1), store.get(2)
        ga, gb = store.group("g1"), store.group("g2")
    assert [r.id for r in ga] == [3, 6] and [r.id for r in gb] == [4, 5]  # A B B A
    for new, old in ((ga, stored_a), (gb, stored_b)):  # the same cell, option for option
        for run in new:
            assert run.options == old.options


def test_repeat_json_lists_every_run_and_the_group(tiny_bench):
    out = tiny_bench("run", "--model", "tiny-cnn", "--hw", "cpu", "--repeat", "2",
                     "--format", "json", *FAST)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["group"] == "g1" and len(result["runs"]) == 2 and result["results"] == [1, 2]
    assert result["summary"]["runs"] == 2
    medians = [r["summary"]["time_s"] for r in result["runs"]]
    assert result["summary"]["geomean_ms"] == pytest.approx(
        1e3 * math.sqrt(medians[0] * medians[1]))


def test_repeat_range_and_errors(tiny_bench, store_path):
    from harness.store import ResultStore

    for bad in ("0", "-1", "101", "x"):
        out = tiny_bench("run", "--model", "tiny-cnn", "--hw", "cpu", "--repeat", bad)
        line = one_line_error(out)
        assert "--repeat" in line, line
    line = one_line_error(tiny_bench("run", "--model", "tiny-cnnn", "--hw", "cpu",
                                     "--repeat", "3"))
    assert "unknown model 'tiny-cnnn'" in line
    # A run that fails in its process stops the group, leaves no empty group behind.
    line = one_line_error(tiny_bench("run", "--model", "tiny-strided", "--hw", "cpu",
                                     "--input-size", "32", "--repeat", "2", *FAST))
    assert "run 1 of 2 failed" in line and "cannot run on input 3x32x32" in line
    with ResultStore(store_path) as store:
        assert store.count() == 0
        with pytest.raises(Exception, match="the store has no groups"):
            store.group("g1")
    line = one_line_error(tiny_bench("run", "--model", "tiny-cnn", "--hw", "cpu",
                                     "--group-id", "7", *FAST))
    assert "no group g7" in line


def test_repeat_on_a_simulator_runs_once_and_says_why(bench, store_path):
    from harness.store import ResultStore

    out = bench("run", "--model", "squeezenet1_1", "--hw", "accel", "--repeat", "4")
    assert out.returncode == 0, out.stderr
    assert "accel is deterministic" in out.stderr and "runs once" in out.stderr
    with ResultStore(store_path) as store:
        assert store.count() == 1 and store.list()[0].group_id is None


def test_each_repeat_is_a_fresh_bench_run_process(tmp_path):
    from harness.repeat import child_command
    from harness.store import ResultStore

    with ResultStore(tmp_path / "s.sqlite") as store:
        cmd = child_command("m", "cpu", 4, 64, ["threads=1"], False, store, 5)
    assert cmd[:4] == [sys.executable, "-m", "harness", "run"]
    assert cmd[cmd.index("--group-id") + 1] == "5"
    assert cmd[cmd.index("--store") + 1] == str(tmp_path / "s.sqlite")
    assert "--quiet" in cmd and cmd[cmd.index("--format") + 1] == "json"
    assert cmd[cmd.index("--hw-opt") + 1] == "threads=1" and "--input-size" in cmd
    assert "--no-store" in child_command("m", "cpu", 1, None, [], False, None, None)
