"""The cell engine (harness.cells) and ``bench matrix`` on it: --vary expansion, parallel
runs that match sequential ones, failures as rows, streamed CSV, what gets stored."""
from __future__ import annotations

import csv
import io
import json

import pytest

from harness import BenchUsageError, HardwareSpec, RunResult, hookimpl
from harness.cells import (
    Cell,
    HardwarePoint,
    Variation,
    grid,
    hardware_points,
    parse_vary,
    run_cell,
    run_cells,
)
from harness.cli import run_one
from harness.plugins import manager
from harness.store import ResultStore

PM = manager.get_plugin_manager()
ACCEL = [PM.backend("accel-8x8"), PM.backend("accel-16x16")]


@pytest.mark.parametrize("text,expected", [
    ("dataflow=ws,os", Variation("dataflow", ("ws", "os"))),
    ("accel-8x8:dataflow= ws , os", Variation("dataflow", ("ws", "os"), "accel-8x8")),
    ("ifmap_kib=16", Variation("ifmap_kib", ("16",))),
    ("array=4x4,8x8,16x16", Variation("array", ("4x4", "8x8", "16x16"))),
])
def test_parse_vary(text, expected):
    assert parse_vary(text) == expected
    assert parse_vary(str(expected)) == expected  # str() is the command-line form


@pytest.mark.parametrize("text,words", [
    ("dataflow", r"is not \[BACKEND:\]KEY=V1,V2"),
    ("dataflow=", "is not"),
    ("dataflow=ws,,os", "is not"),
    ("=ws", "is not"),
    ("dataflow=ws,ws", "repeats ws"),
])
def test_bad_vary_is_a_one_line_usage_error(text, words):
    with pytest.raises(BenchUsageError, match=words):
        parse_vary(text)


def test_points_are_the_cartesian_product_per_backend():
    points = hardware_points(ACCEL, ["accel-16x16:rf_words=2"],
                             ["dataflow=ws,os", "accel-16x16:ifmap_kib=32,64"])
    assert [p.label for p in points] == [
        "accel-8x8 dataflow=ws", "accel-8x8 dataflow=os",
        "accel-16x16 dataflow=ws ifmap_kib=32", "accel-16x16 dataflow=ws ifmap_kib=64",
        "accel-16x16 dataflow=os ifmap_kib=32", "accel-16x16 dataflow=os ifmap_kib=64",
    ]
    assert points[2].options == ("rf_words=2", "dataflow=ws", "ifmap_kib=32")
    assert hardware_points(ACCEL) == [HardwarePoint("accel-8x8"), HardwarePoint("accel-16x16")]


@pytest.mark.parametrize("hw_opts,vary,words", [
    ((), ["nonsense=1,2"], "unknown option for the chosen backends in --vary 'nonsense'"),
    ((), ["accel-64x64:dataflow=ws"], "unknown backend in --vary 'accel-64x64'"),
    ((), ["accel-8x8:colour=red"], "unknown option for hardware 'accel-8x8'"),
    (["dataflow=ws"], ["dataflow=ws,os"], "both in --hw-opt and --vary"),
    ((), ["dataflow=ws,os", "accel-8x8:dataflow=os"], "sets 'dataflow' twice"),
    ((), ["array=8x8,banana"], "bad value 'banana'"),
    ((), ["dataflow=ws,diagonal"], "unknown value for hardware 'accel-8x8' option 'dataflow'"),
])
def test_bad_points_fail_before_anything_runs(hw_opts, vary, words):
    with pytest.raises(BenchUsageError, match=words):
        hardware_points(ACCEL, hw_opts, vary)


def test_parallel_cells_match_sequential_runs_and_failures_are_results():
    points = hardware_points(ACCEL, vary=["dataflow=ws,os"])
    cells = grid(["squeezenet1_1", "mobilenet_v1_0.25"], points)
    cells.append(Cell("squeezenet1_1", points[0], input_size=8))  # too small for the network
    cells.append(Cell("no-such-net", points[0]))
    results = list(run_cells(cells, jobs=2, min_cells_per_worker=0))  # in worker processes
    assert sorted(r.index for r in results) == list(range(len(cells)))
    by_index = {r.index: r for r in results}
    for index, cell in enumerate(cells[:-2]):
        res = by_index[index]
        assert res.ok and res.cell == cell and res.result.layers == []  # dropped in the worker
        _, direct = run_one(cell.model, cell.point.backend, hw_opts=list(cell.point.options))
        assert res.summary == direct.summary
    too_small, unknown = by_index[len(cells) - 2], by_index[len(cells) - 1]
    assert not too_small.ok and "does not fit model 'squeezenet1_1'" in too_small.error
    assert not unknown.ok and "unknown model 'no-such-net'" in unknown.error
    assert "\n" not in too_small.error + unknown.error


def test_per_layer_cells_keep_their_rows():
    res = run_cell(0, Cell("squeezenet1_1", HardwarePoint("accel"), per_layer=True))
    assert res.ok and len(res.result.layers) == len(res.fields["layers"]) > 10


class Timed:
    """A timing-sensitive backend that records the order cells reach it."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    @hookimpl
    def bench_hardware(self):
        def run(request):
            self.seen.append(request.model.name)
            return RunResult(summary={"time_s": 1.0})

        return [HardwareSpec("stopwatch", "times the wall clock", (), run, timing_sensitive=True)]


def test_timing_sensitive_cells_run_last_one_at_a_time(monkeypatch):
    fresh = manager.BenchPluginManager(disabled=[])
    fresh.load_entry_points()
    timed = Timed()
    fresh.register(timed, "stopwatch")
    monkeypatch.setattr(manager, "_default", fresh)
    cells = [Cell("squeezenet1_1", HardwarePoint("stopwatch")),
             Cell("squeezenet1_1", HardwarePoint("accel")),
             Cell("mobilenet_v1_0.25", HardwarePoint("stopwatch")),
             Cell("mobilenet_v1_0.25", HardwarePoint("accel"))]
    order = [r.index for r in run_cells(cells, jobs=1)]
    assert order == [1, 3, 0, 2] and timed.seen == ["squeezenet1_1", "mobilenet_v1_0.25"]


def test_few_warm_cells_run_here_many_in_workers():
    from harness.cells import cell_workers

    assert cell_workers(10, 2) == 1 and cell_workers(1000, 2) == 2 and cell_workers(1000, 1) == 1
    assert cell_workers(2, 2, min_cells_per_worker=0) == 2 and cell_workers(1, 2, 0) == 1


def test_jobs_must_be_positive():
    with pytest.raises(BenchUsageError, match="jobs must be a positive integer"):
        list(run_cells([], jobs=0))


# --------------------------------------------------------------------------- bench matrix
def test_matrix_varies_options_streams_csv_and_stores_summaries(bench, store_path):
    out = bench("matrix", "--model", "squeezenet1_1,mobilenet_v1_0.25", "--hw",
                "accel-8x8,accel-16x16", "--vary", "dataflow=ws,os", "--format", "csv")
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert len(rows) == 8
    assert {r["hardware"] for r in rows} == {f"accel-{a} dataflow={d}" for a in ("8x8", "16x16")
                                             for d in ("ws", "os")}
    assert all(float(r["speed-up vs squeezenet1_1"]) == 1.0 for r in rows
               if r["model"] == "squeezenet1_1")
    assert "8 cells in" in out.stderr
    with ResultStore(store_path) as store:
        stored = store.list()
        assert len(stored) == 8 and {int(r["id"]) for r in rows} == {s.id for s in stored}
        # Without --layers only the compact per-layer table compare reads is stored.
        from plugins.hardware.accel import COMPARED_COLUMNS

        assert all(s.layers and all(tuple(r) == COMPARED_COLUMNS for r in s.layers)
                   and sum(r["cycles"] for r in s.layers) == s.summary["cycles"] > 0
                   for s in stored)
        assert {s.options["dataflow"] for s in stored} == {"ws", "os"}
        assert len({s.environment["timestamp_utc"] for s in stored}) >= 1
        assert all(s.environment["plugin"] == "accel" for s in stored)


def test_matrix_json_ratios_match_the_stored_summaries(bench, store_path):
    out = bench("matrix", "--model", "mobilenet_v1_0.25,squeezenet1_1", "--hw", "accel",
                "--vary", "dataflow=ws,os", "--baseline", "squeezenet1_1", "--layers",
                "--format", "json", "--jobs", "1")
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    assert payload["baseline"] == "squeezenet1_1"
    rows = payload["rows"]
    assert [(r["hardware"], r["model"]) for r in rows] == [
        ("accel dataflow=ws", "mobilenet_v1_0.25"), ("accel dataflow=ws", "squeezenet1_1"),
        ("accel dataflow=os", "mobilenet_v1_0.25"), ("accel dataflow=os", "squeezenet1_1")]
    with ResultStore(store_path) as store:
        for row in rows:
            mine = store.get(row["id"])
            base = next(store.get(r["id"]) for r in rows
                        if r["model"] == "squeezenet1_1" and r["hardware"] == row["hardware"])
            assert mine.layers  # --layers stores the per-layer rows
            assert row["speed-up vs squeezenet1_1"] == pytest.approx(
                base.summary["time_s"] / mine.summary["time_s"])
            assert row["energy eff. vs squeezenet1_1"] == pytest.approx(
                base.summary["energy"] / mine.summary["energy"])


def test_a_failing_cell_is_a_row_and_the_others_are_kept(bench, site, store_path):
    env = {"PYTHONPATH": str(site)}
    out = bench("matrix", "--model", "toy-net", "--hw", "toy-hw,accel", "--batch", "65",
                "--format", "json", env=env)
    assert out.returncode == 0, out.stderr
    rows = {r["hardware"]: r for r in json.loads(out.stdout)["rows"]}
    assert "takes batches up to 64" in rows["toy-hw"]["error"]
    assert rows["accel"]["MACs"] > 0 and "error" not in rows["accel"]
    assert "warning: toy-net on toy-hw failed" in out.stderr
    with ResultStore(store_path) as store:
        assert [r.hardware for r in store.list()] == ["accel"]


def test_matrix_table_streams_aligned_rows(bench):
    out = bench("matrix", "--model", "squeezenet1_1", "--hw", "accel-8x8,accel-32x32",
                "--no-store", "--quiet")
    assert out.returncode == 0 and out.stderr == ""
    lines = out.stdout.splitlines()
    assert lines[0].split()[:2] == ["hardware", "model"] and set(lines[1]) <= {"-", " "}
    assert [l.split()[0] for l in lines[2:]] == ["accel-8x8", "accel-32x32"]
    assert len({len(l) for l in lines[:2]}) == 1  # header and rule line up


GATED = '''
import os, time
from harness import HardwareSpec, OptionSpec, RunResult, hookimpl


def run(request):
    gate = request.options["wait_for"]
    if gate != "no":  # this cell finishes only once the test has seen the first row
        deadline = time.monotonic() + 120
        while not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.02)
    return RunResult(summary={"time_s": 1.0 + len(gate)})


@hookimpl
def bench_hardware():
    return [HardwareSpec("gated", "waits for a file", (OptionSpec("wait_for", str, "no"),), run)]
'''


def test_matrix_prints_each_row_when_its_cell_finishes(tmp_path, site, store_path):
    """The second cell waits until the test has read the first cell's row: only a matrix
    that streams its rows gets past it (a buffered one would wait for the gate forever)."""
    import os
    import select
    import subprocess
    import sys

    from conftest import REPO, make_distribution

    make_distribution(site, "bench-gated", "1.0", {"gated": "bench_gated"},
                      {"bench_gated.py": GATED})
    gate = tmp_path / "gate"
    env = {**os.environ, "PYTHONPATH": str(site), "BENCH_STORE": str(store_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "matrix", "--model", "toy-net", "--hw", "gated",
         "--vary", f"wait_for=no,{gate}", "--format", "csv"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=str(REPO))
    try:
        lines = []
        while len(lines) < 2:  # the header, then the first cell's row
            ready, _, _ = select.select([proc.stdout], [], [], 60)
            assert ready, f"no row within 60 s; got {lines}"
            lines.append(proc.stdout.readline())
        assert lines[1].startswith("gated wait_for=no,toy-net,") and not gate.exists()
        gate.touch()
        rest, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert rest.startswith(f"gated wait_for={gate},toy-net,")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_redraws_one_line_on_a_terminal_and_is_silent_elsewhere():
    from harness.cells import CellProgress, CellResult

    point = HardwarePoint("accel-8x8", ("dataflow=ws",), (("dataflow", "ws"),))
    done = CellResult(0, Cell("squeezenet1_1", point))
    failed = CellResult(1, Cell("alexnet", point), error="boom")
    screen = Terminal()
    progress = CellProgress(2, stream=screen)
    progress.update(done)
    progress.update(failed)
    progress.close()
    frames = screen.getvalue().split("\r")
    assert "[1/2] " in frames[1] and "squeezenet1_1 on accel-8x8 dataflow=ws" in frames[1]
    assert "[2/2, 1 failed]" in frames[2] and "\n" not in screen.getvalue()
    assert frames[-1] == ""  # closed: the line is blanked, the cursor back at its start
    log = io.StringIO()
    CellProgress(2, stream=log).update(done)
    assert log.getvalue() == ""  # not a terminal: nothing
    CellProgress(2, stream=log, force=True).update(done)
    assert log.getvalue().startswith("[1/2] ") and log.getvalue().endswith("\n")
    quiet = Terminal()
    CellProgress(2, quiet=True, stream=quiet).update(done)
    assert quiet.getvalue() == ""
