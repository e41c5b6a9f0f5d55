"""The results store: concurrent writers lose nothing; results round-trip; export works."""
from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import textwrap

from harness.store import ResultStore

WRITER = textwrap.dedent("""
    import sys
    from harness.store import ResultStore
    store = ResultStore(sys.argv[1])
    for i in range(200):
        rid = store.add("run", model=f"writer{sys.argv[2]}", hardware="hw",
                        summary={"i": i}, samples=[0.1, 0.2])
        if i % 50 == 0:
            store.add_iterations(rid, [{"iteration": 1, "iter_time_s": 0.5}])
""")


def test_two_concurrent_writers_leave_400_rows(tmp_path):
    path = tmp_path / "shared.sqlite"
    ResultStore(path).close()  # both writers start on an existing database
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(w)])
             for w in (1, 2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    store = ResultStore(path)
    rows = store.list()
    assert len(rows) == 400
    for writer in ("writer1", "writer2"):
        mine = [r.summary["i"] for r in rows if r.model == writer]
        assert sorted(mine) == list(range(200))


def test_result_round_trip_and_sweep_rows(tmp_path):
    store = ResultStore(tmp_path / "s.sqlite")
    rid = store.add("run", model="m", hardware="h", plugin="p", options={"batch": 2},
                    environment={"host": "x"}, summary={"time_s": 0.5, "bad": float("nan")},
                    layers=[{"name": "conv1", "macs": 10}], samples=[0.4, 0.5, 0.6])
    got = store.get(rid)
    assert (got.model, got.hardware, got.plugin, got.status) == ("m", "h", "p", "complete")
    assert got.options == {"batch": 2} and got.environment == {"host": "x"}
    assert got.summary == {"time_s": 0.5, "bad": None}  # NaN is stored as null
    assert got.samples == [0.4, 0.5, 0.6] and got.layers[0]["name"] == "conv1"

    sweep = store.add("sweep", status="running", optimizer="cocoa", problem="logreg",
                      ranks=4, summary={"n": 1000})
    store.add_iterations(sweep, [{"iteration": i, "iter_time_s": 0.1 * i,
                                  "suboptimality": 1.0 / i, "local_steps": 5}
                                 for i in range(1, 4)])
    assert store.iteration_rows() == []  # a running sweep is partial: not analysed
    assert len(store.iteration_rows(statuses=("running",))) == 3
    store.finish(sweep, "complete", summary={"n": 1000, "iterations": 3})
    rows = store.iteration_rows(problem="logreg")
    assert [r["iteration"] for r in rows] == [1, 2, 3]
    assert rows[0]["algorithm"] == "cocoa" and rows[0]["ranks"] == 4 and rows[0]["n"] == 1000
    assert rows[2]["local_steps"] == 5  # extra columns survive
    assert store.iteration_rows(problem="svm") == []


def test_results_commands(bench, site, store_path):
    env = {"PYTHONPATH": str(site)}
    for scale in ("1", "2"):
        assert bench("run", "--model", "toy-net", "--hw", "toy-hw", "--hw-opt",
                     f"ns_per_mac={scale}", env=env).returncode == 0
    listed = bench("results", "list", env=env)
    assert listed.returncode == 0 and listed.stdout.count("toy-net on toy-hw") == 2

    shown = json.loads(bench("results", "show", "2", "--format", "json", env=env).stdout)
    assert shown["options"]["ns_per_mac"] == 2.0
    env_keys = {"host", "cpu_model", "cpu_count", "python", "torch", "harness", "git_commit",
                "plugin", "timestamp_utc"}
    assert env_keys <= set(shown["environment"])
    assert shown["environment"]["plugin"] == "toy"

    exported = json.loads(bench("results", "export", "--format", "json", env=env).stdout)
    assert [r["id"] for r in exported] == [1, 2]
    table = list(csv.DictReader(io.StringIO(
        bench("results", "export", "--format", "csv", env=env).stdout)))
    assert len(table) == 2
    assert float(table[1]["summary.time_s"]) == 2 * float(table[0]["summary.time_s"])


def test_run_output_formats(bench, site, tmp_path):
    env = {"PYTHONPATH": str(site)}
    table = bench("run", "--model", "toy-net", "--hw", "toy-hw", "--layers", env=env)
    assert table.returncode == 0
    assert "stored as result 1" in table.stdout and "time_s" in table.stdout
    assert "fc" in table.stdout  # the per-layer table
    out = tmp_path / "run.csv"
    written = bench("run", "--model", "toy-net", "--hw", "toy-hw", "--format", "csv",
                    "--out", str(out), env=env)
    assert written.returncode == 0 and written.stdout == ""
    row = next(csv.DictReader(out.open()))
    assert row["model"] == "toy-net" and int(row["macs"]) > 0


def test_matrix_ratios_against_baseline(bench, site):
    env = {"PYTHONPATH": str(site)}
    out = bench("matrix", "--model", "toy-net", "--hw", "toy-hw", "--hw-opt", "ns_per_mac=3",
                "--format", "json", env=env)
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    row = payload["rows"][0]
    assert row["speed-up vs toy-net"] == 1.0 and row["id"] == 1
