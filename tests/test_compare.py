"""`bench compare`: simulated results per metric and per layer, timed runs run against run."""
from __future__ import annotations

import json
import math
import random
import sqlite3
import statistics
from pathlib import Path

import pytest

from conftest import one_line_error
from harness.store import ResultStore
from harness.timed_compare import NO_CHANGE, Side, compare_timed, welch_log


def compare_json(bench, a: str, b: str, *extra: str) -> dict:
    out = bench("compare", a, b, "--format", "json", *extra)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


# --------------------------------------------------------------------------- simulated
@pytest.fixture
def accel_pair(bench, store_path) -> tuple[str, str]:
    """SqueezeNet 1.1 on a 16x16 and on an 8x8 array."""
    for opts in ([], ["--hw-opt", "array=8x8"]):
        out = bench("run", "--model", "squeezenet1_1", "--hw", "accel", *opts)
        assert out.returncode == 0, out.stderr
    return "1", "2"


def test_accel_compare_gives_exact_per_metric_ratios_and_the_most_changed_layers(
        bench, store_path, accel_pair):
    result = compare_json(bench, *accel_pair, "--top", "4")
    with ResultStore(store_path) as store:
        a, b = store.get(1), store.get(2)
    assert result["kind"] == "simulated"
    metrics = {row["metric"]: row for row in result["metrics"]}
    for key in ("cycles", "stall_cycles", "energy", "energy_dram", "energy_buffer",
                "energy_rf", "energy_mac", "utilization", "dram_accesses"):
        assert metrics[key]["A"] == a.summary[key] and metrics[key]["B"] == b.summary[key]
        assert metrics[key]["B/A"] == b.summary[key] / a.summary[key]
    assert metrics["cycles"]["B/A"] > 1  # a quarter of the PEs
    assert metrics["macs"]["B/A"] == 1.0

    layers = result["layers"]
    assert layers["compared"] and layers["matched"] == len(a.layers)
    assert layers["only_in_a"] == [] and layers["only_in_b"] == []
    top = layers["top"]
    assert len(top) == 4
    shares = [row["share_of_a_pct"] for row in top]
    assert shares == sorted(shares, reverse=True)
    by_name = {row["name"]: row for row in a.layers}
    first = top[0]
    assert first["cycles_a"] == by_name[first["layer"]]["cycles"]
    # The most changed layer's change is the largest share of A's total cycles or energy.
    changes = [max(abs(rb["cycles"] - ra["cycles"]) / a.summary["cycles"],
                   abs(rb["energy"] - ra["energy"]) / a.summary["energy"])
               for ra, rb in zip(a.layers, b.layers)]
    assert first["share_of_a_pct"] == pytest.approx(100 * max(changes))
    assert "option array: 16x16 vs 8x8" in result["differences"]

    table = bench("compare", *accel_pair, "--top", "3")
    assert table.returncode == 0, table.stderr
    assert "ratios are exact" in table.stdout and f"{a.summary['cycles']:,}" in table.stdout
    assert "the 3 that changed most" in table.stdout and first["layer"] in table.stdout


def test_a_changed_dataflow_shows_in_the_compare(bench, store_path):
    for flow in ("ws", "os"):
        assert bench("run", "--model", "squeezenet1_1", "--hw", "accel",
                     "--hw-opt", f"dataflow={flow}").returncode == 0
    result = compare_json(bench, "1", "2")
    assert result["layers"]["changed"] > 0 and result["layers"]["top"]
    assert "option dataflow: ws vs os" in result["differences"]
    identical = compare_json(bench, "1", "1")
    assert all(row["B/A"] in (1.0, None) for row in identical["metrics"])
    assert identical["layers"]["changed"] == 0 and identical["layers"]["top"] == []


def test_layers_only_on_one_side_are_listed_and_old_results_still_compare(
        bench, store_path, accel_pair):
    with ResultStore(store_path) as store:
        a, b = store.get(1), store.get(2)
        renamed = [dict(row, name="new." + row["name"]) if i < 2 else row
                   for i, row in enumerate(b.layers)]
        store.add("run", plugin="accel", model=b.model, hardware="accel", options=b.options,
                  summary=b.summary, layers=renamed)  # 3
        store.add("run", plugin="accel", model=a.model, hardware="accel", options=a.options,
                  summary=a.summary)  # 4: stored before compact rows existed
    result = compare_json(bench, "1", "3")
    assert result["layers"]["only_in_a"] == [row["name"] for row in a.layers[:2]]
    assert result["layers"]["only_in_b"] == [row["name"] for row in renamed[:2]]
    assert result["layers"]["matched"] == len(a.layers) - 2
    old = compare_json(bench, "4", "2")
    assert not old["layers"]["compared"] and "result 4 stored no per-layer rows" in old[
        "layers"]["reason"]
    assert old["metrics"][0]["metric"] == "cycles"


# --------------------------------------------------------------------------- timed
def runs(seed: int, median: float, n_runs: int, run_sd: float = 0.03,
         n_samples: int = 30) -> list[list[float]]:
    """Runs of skewed samples whose medians drift from run to run (log-normal, ``run_sd``)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n_runs):
        run_median = median * rng.lognormvariate(0, run_sd)
        out.append([run_median * 0.97 + rng.expovariate(1 / (run_median * 0.03))
                    for _ in range(n_samples)])
    return out


def side(label: str, sample_sets: list[list[float]], first_id: int = 1) -> Side:
    from harness.store import StoredResult

    return Side(label, [StoredResult(id=first_id + i, kind="run", status="complete",
                                     created_utc="t", model="m", hardware="cpu", samples=s)
                        for i, s in enumerate(sample_sets)])


def test_identical_groups_are_no_significant_change_even_when_runs_drift():
    """Within-run samples would call the drift significant; runs as the unit do not."""
    from scipy.stats import mannwhitneyu

    called = 0
    for seed in range(40):
        a, b = runs(seed, 0.010, 5), runs(1000 + seed, 0.010, 5)
        result = compare_timed(side("g1", a), side("g2", b), alpha=0.05, min_effect=0.0)
        called += result["significant"]
        assert result["ci_low"] <= result["ratio_b_over_a"] <= result["ci_high"]
    assert called <= 6  # alpha 0.05 of 40 is 2 on average; far from "most of them"
    # The within-run test on the same kind of data is fooled by the drift most of the time.
    fooled = sum(mannwhitneyu(runs(s, 0.010, 1)[0], runs(500 + s, 0.010, 1)[0]).pvalue < 0.05
                 for s in range(40))
    assert fooled > 20


def test_a_twenty_percent_shift_with_small_variance_is_slower_and_the_reverse_faster():
    a, b = side("g1", runs(1, 0.010, 5, run_sd=0.02)), side("g2", runs(2, 0.012, 5, 0.02))
    slower = compare_timed(a, b, alpha=0.05, min_effect=0.10)
    assert slower["verdict"] == "slower" and slower["significant"]
    assert slower["ratio_b_over_a"] == pytest.approx(1.2, rel=0.05)
    assert slower["ci_low"] > 1.1 and slower["p_value"] < 0.001
    faster = compare_timed(b, a, alpha=0.05, min_effect=0.10)
    assert faster["verdict"] == "faster"
    assert faster["ratio_b_over_a"] == pytest.approx(1 / slower["ratio_b_over_a"])


def test_min_effect_guards_a_significant_but_small_change():
    a, b = side("g1", runs(3, 0.0100, 6, 0.002)), side("g2", runs(4, 0.0103, 6, 0.002))
    result = compare_timed(a, b, alpha=0.05, min_effect=0.10)
    assert result["p_value"] < 0.05 and result["verdict"] == NO_CHANGE
    assert "min-effect" in result["reason"]
    assert compare_timed(a, b, alpha=0.05, min_effect=0.01)["verdict"] == "slower"


def test_welch_on_log_medians_matches_scipy_and_is_symmetric():
    from scipy.stats import ttest_ind
    import math

    ma, mb = [0.010, 0.011, 0.0105], [0.012, 0.0125, 0.0118, 0.0121]
    res = welch_log(ma, mb, 0.95)
    ref = ttest_ind([math.log(m) for m in mb], [math.log(m) for m in ma], equal_var=False)
    assert res["p_value"] == pytest.approx(ref.pvalue)
    gm = lambda xs: math.exp(statistics.fmean(math.log(x) for x in xs))  # noqa: E731
    assert res["ratio"] == pytest.approx(gm(mb) / gm(ma))
    back = welch_log(mb, ma, 0.95)
    assert back["ratio"] == pytest.approx(1 / res["ratio"])
    assert back["ci_low"] == pytest.approx(1 / res["ci_high"])


def test_one_run_per_side_is_only_indicative_however_different():
    a, b = side("1", runs(5, 0.010, 1)), side("2", runs(6, 0.020, 1), first_id=2)
    result = compare_timed(a, b, alpha=0.05, min_effect=0.10)
    assert result["verdict"] == "indicative only" and not result["significant"]
    assert result["p_value"] is None and result["p_within_run"] < 0.05
    assert "A and B are single runs" in result["reason"]
    assert "bench compare 1 2 --rerun 10" in result["reason"]
    assert result["ratio_b_over_a"] == pytest.approx(2.0, rel=0.1)
    mixed = compare_timed(side("g1", runs(7, 0.01, 4)), b, alpha=0.05, min_effect=0.10)
    assert mixed["verdict"] == "indicative only" and "B is a single run" in mixed["reason"]


def add_group(store_path: Path, sample_sets: list[list[float]], **options) -> str:
    with ResultStore(store_path) as store:
        gid = store.add_group("tiny on cpu", len(sample_sets))
        for samples in sample_sets:
            store.add("run", plugin="cpu", model="tiny", hardware="cpu",
                      options={"threads": 1, **options}, environment={"host": "h"},
                      summary={"time_s": statistics.median(samples)}, samples=samples,
                      group_id=gid)
    return f"g{gid}"


def test_compare_of_two_stored_groups_from_the_command_line(bench, store_path):
    base = add_group(store_path, runs(8, 0.010, 5, 0.02))
    same = add_group(store_path, runs(9, 0.010, 5, 0.02))
    slow = add_group(store_path, runs(10, 0.012, 5, 0.02), batch=2)
    assert compare_json(bench, base, same)["verdict"] == NO_CHANGE
    slower = compare_json(bench, base, slow)
    assert slower["verdict"] == "slower" and "option batch: None vs 2" in slower["differences"]
    table = bench("compare", base, slow)
    assert table.returncode == 0, table.stderr
    assert "ratio of geometric means B/A: 1.2" in table.stdout and "95% CI" in table.stdout
    assert "verdict: slower" in table.stdout and "group g1, 5 runs" in table.stdout
    single = bench("compare", "1", "6")
    assert "verdict: indicative only" in single.stdout
    assert "result 1 is one run of group g1" in single.stdout


# --------------------------------------------------------------------------- errors
def test_mixed_kinds_and_bad_ids_are_one_line_errors(bench, store_path, accel_pair):
    timed = add_group(store_path, runs(11, 0.01, 2))
    line = one_line_error(bench("compare", "1", timed))
    assert "1 is simulated" in line and f"{timed} is timed" in line
    assert "two simulated or two timed" in line
    with ResultStore(store_path) as store:
        store.add("sweep", optimizer="cocoa", problem="logreg", ranks=2)  # 5
        store.add("run", plugin="x", model="m", hardware="x", summary={"time_s": 1.0})  # 6
        short = store.add("run", plugin="cpu", model="m", hardware="cpu", samples=[0.1, 0.2])
    assert "optimizer sweep" in one_line_error(bench("compare", "5", "1"))
    assert "neither timing samples nor simulated cycles" in one_line_error(
        bench("compare", "6", "1"))
    assert "only 2 samples" in one_line_error(bench("compare", str(short), "3"))
    assert "no result with id 99" in one_line_error(bench("compare", "1", "99"))
    assert "no group g9" in one_line_error(bench("compare", "g9", "1"))
    assert "neither a result id" in one_line_error(bench("compare", "last", "1"))
    assert "--alpha must be between 0 and 1" in one_line_error(
        bench("compare", "1", "2", "--alpha", "1.5"))
    assert "--top" in one_line_error(bench("compare", "1", "2", "--top", "0"))


# --------------------------------------------------------------------------- store
def test_an_old_store_gains_groups_without_losing_anything(tmp_path):
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)  # the results table as stores made before groups had it
    db.executescript("""
        CREATE TABLE results (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL,
            status TEXT NOT NULL, created_utc TEXT NOT NULL, finished_utc TEXT, plugin TEXT,
            model TEXT, hardware TEXT, optimizer TEXT, problem TEXT, ranks INTEGER,
            options TEXT NOT NULL DEFAULT '{}', environment TEXT NOT NULL DEFAULT '{}',
            summary TEXT NOT NULL DEFAULT '{}', layers TEXT NOT NULL DEFAULT '[]',
            samples TEXT NOT NULL DEFAULT '[]', error TEXT);
        INSERT INTO results (kind, status, created_utc, model, hardware, summary, samples)
            VALUES ('run', 'complete', 't0', 'm', 'cpu', '{"time_s": 0.5}', '[0.5, 0.6]');
    """)
    db.commit()
    db.close()
    with ResultStore(path) as store:
        old = store.get(1)
        assert old.summary == {"time_s": 0.5} and old.samples == [0.5, 0.6]
        assert old.group_id is None
        gid = store.add_group("m on cpu", 2)
        new = store.add("run", model="m", hardware="cpu", samples=[0.4], group_id=gid)
        assert [r.id for r in store.group(f"g{gid}")] == [new]
    with ResultStore(path) as store:  # opening again changes nothing
        assert store.count() == 2 and store.get(1).samples == [0.5, 0.6]


def test_runs_that_other_programs_competed_with_are_noted():
    from harness.store import StoredResult

    def result(i: int, others: float) -> StoredResult:
        return StoredResult(id=i, kind="run", status="complete", created_utc="t", model="m",
                            hardware="cpu", samples=[0.01, 0.011, 0.012],
                            summary={"others_cpu_cores": others, "threads": 1},
                            environment={"cpu_count": 2})

    quiet = Side("g1", [result(1, 0.1), result(2, 0.2)])
    busy = Side("g2", [result(3, 1.5), result(4, 0.3)])  # 1.5 > 2 - 1 + 0.25
    assert compare_timed(quiet, quiet, 0.05, 0.1)["notes"] == []
    result_busy = compare_timed(quiet, busy, 0.05, 0.1)
    assert result_busy["b"]["contended_runs"] == 1 and result_busy["a"]["contended_runs"] == 0
    assert result_busy["notes"] and result_busy["notes"][0].startswith("1 of 2 runs of B")


# --------------------------------------------------------------------------- --rerun
CPU_DEFAULTS = {"threads": 1, "dtype": "float32", "channels_last": False, "compile": False,
                "min_time": 0.15, "min_samples": 5, "warmup": 0.1, "seed": 0,
                "steady_heap": True}


def add_cpu_run(store_path: Path, size: int = 227, model: str = "squeezenet1_1",
                **changes) -> int:
    """A stored cpu run with the options bench run records (batch, input size, all options)."""
    options = {"batch": 1, "input_size": [3, size, size], **CPU_DEFAULTS,
               "model_plugin": "squeezenet", **changes}
    with ResultStore(store_path) as store:
        return store.add("run", plugin="cpu", model=model, hardware="cpu", options=options,
                         environment={"host": "h"}, summary={"time_s": 0.01},
                         samples=[0.010, 0.011, 0.0105])


class FakeChild:
    """Stands in for the child ``bench run``: stores a run whose median is set by the test.

    ``median(call_index, side)`` gives each run's median, so a drift over time and a
    shift between the cells are whatever the test constructs. The side is told by the
    group: each re-run opens A's group, then B's (odd and even ids in a fresh store).
    """

    def __init__(self, median) -> None:
        self.median, self.calls = median, []

    def __call__(self, cmd, what: str) -> dict:
        args = list(cmd)
        value = lambda flag: args[args.index(flag) + 1] if flag in args else None  # noqa: E731
        side = "A" if int(value("--group-id")) % 2 else "B"
        m = self.median(len(self.calls), side)
        self.calls.append((side, args))
        with ResultStore(value("--store")) as store:
            rid = store.add("run", plugin="cpu", model=value("--model"), hardware="cpu",
                            options={"input_size": [3, 0, 0]}, environment={"host": "h"},
                            summary={"time_s": m}, samples=[m * 0.99, m, m * 1.01],
                            group_id=int(value("--group-id")))
        return {"id": rid, "summary": {"median_ms": m * 1e3}, "warnings": []}


def drifting(shift: float, drift_per_run: float, noise: float = 0.0, seed: int = 0):
    """Run medians: 10 ms for A, ``shift`` times that for B, times a steady drift."""
    rng = random.Random(seed)
    return lambda t, side: (0.010 * (shift if side == "B" else 1.0) * math.exp(
        drift_per_run * t) * rng.lognormvariate(0, noise) if noise else 0.010 * (
        shift if side == "B" else 1.0) * math.exp(drift_per_run * t))


def rerun(store_path: Path, a: str, b: str, child: FakeChild, runs: int = 5, **kw) -> dict:
    from harness.commands.compare import compare

    with ResultStore(store_path) as store:
        return compare(store, a, b, kw.get("alpha", 0.05), kw.get("min_effect", 0.10), 10,
                       rerun=runs, runner=child)


def test_rerun_runs_both_cells_in_abba_order_and_pairs_adjacent_runs(tmp_path):
    path = tmp_path / "s.sqlite"
    a, b = add_cpu_run(path), add_cpu_run(path, 249)
    child = FakeChild(drifting(1.2, 0.0))
    result = rerun(path, str(a), str(b), child, runs=5)
    assert "".join(side for side, _ in child.calls) == "ABBAABBAAB"
    first = child.calls[0][1]  # the cell rebuilt from the stored result
    assert first[first.index("--model") + 1] == "squeezenet1_1" and "--input-size" not in first
    for opt in ("threads=1", "min_time=0.15", "warmup=0.1", "min_samples=5"):
        assert opt in first
    assert child.calls[1][1][child.calls[1][1].index("--input-size") + 1] == "249"
    assert result["rerun"]["groups"] == {"A": "g1", "B": "g2"}
    assert result["rerun"]["of"] == {"A": str(a), "B": str(b)}
    with ResultStore(path) as store:
        ga, gb = store.group("g1"), store.group("g2")
    assert all(("--input-size" in args) == (side == "B") for side, args in child.calls)
    # Pair i is the i-th run of each new group: adjacent in time (positions 2i, 2i+1).
    assert [r.id for r in ga] == [3, 6, 7, 10, 11]
    assert [r.id for r in gb] == [4, 5, 8, 9, 12]
    assert result["a"]["results"] == [3, 6, 7, 10, 11] and result["pairs"] == 5
    assert result["pair_ratios"] == pytest.approx([1.2] * 5)
    assert result["verdict"] == "slower" and result["paired"]


def test_a_shift_under_strong_drift_is_caught_by_the_pairs_and_missed_by_welch(tmp_path):
    """The machine speeds up or slows down 10% per run (far more than the 20% shift over a
    group): the unpaired test sees groups that overlap; each pair sees the shift."""
    path = tmp_path / "s.sqlite"
    a, b = add_cpu_run(path), add_cpu_run(path, 249)
    for drift in (0.10, -0.10):
        result = rerun(path, str(a), str(b), FakeChild(drifting(1.2, drift, 0.01, seed=3)))
        assert result["verdict"] == "slower" and result["significant"]
        assert result["ci_low"] > 1.0 and result["ratio_b_over_a"] == pytest.approx(1.2,
                                                                                   rel=0.1)
        assert result["unpaired"]["verdict"] == NO_CHANGE
        assert result["unpaired"]["p_value"] > 0.05
        ma = [m / 1e3 for m in result["a"]["run_medians_ms"]]  # the same data, Welch direct
        mb = [m / 1e3 for m in result["b"]["run_medians_ms"]]
        assert welch_log(ma, mb, 0.95)["p_value"] == pytest.approx(
            result["unpaired"]["p_value"])


def test_identical_cells_under_drift_are_no_significant_change(tmp_path):
    path = tmp_path / "s.sqlite"
    a, a2 = add_cpu_run(path), add_cpu_run(path)
    called = 0
    for seed in range(10):
        child = FakeChild(drifting(1.0, 0.10, 0.02, seed=seed))
        result = rerun(path, str(a), str(a2), child)
        assert "".join(side for side, _ in child.calls) == "ABBAABBAAB"
        assert result["ci_low"] <= result["ratio_b_over_a"] <= result["ci_high"]
        called += result["significant"]
    assert called <= 2
    quiet = rerun(path, str(a), str(a2), FakeChild(drifting(1.0, 0.10)))
    assert quiet["verdict"] == NO_CHANGE and quiet["p_value"] > 0.5


def test_paired_log_matches_scipy_and_needs_equal_pairs():
    from scipy.stats import ttest_1samp

    from harness.timed_compare import paired_log

    ma, mb = [0.010, 0.011, 0.0105, 0.0102], [0.012, 0.0125, 0.0128, 0.0121]
    res = paired_log(ma, mb, 0.95)
    diffs = [math.log(b / a) for a, b in zip(ma, mb)]
    ref = ttest_1samp(diffs, 0.0)
    assert res["p_value"] == pytest.approx(ref.pvalue) and res["df"] == 3
    assert res["ratio"] == pytest.approx(math.exp(statistics.fmean(diffs)))
    back = paired_log(mb, ma, 0.95)
    assert back["ci_low"] == pytest.approx(1 / res["ci_high"])
    with pytest.raises(ValueError):
        paired_log(ma, mb[:3], 0.95)


def test_abba_order():
    from harness.repeat import abba_order

    assert abba_order(1) == ["A", "B"]
    assert abba_order(4) == list("ABBAABBA")
    assert all(abba_order(k).count("A") == k for k in range(1, 9))


def test_cell_of_rebuilds_the_command_a_stored_run_used(tmp_path):
    from harness.plugins.manager import get_plugin_manager
    from harness.repeat import cell_of

    path = tmp_path / "s.sqlite"
    defaults = get_plugin_manager().backend("cpu").parse_options([])
    rid = add_cpu_run(path, 249, **defaults, batch=4)
    with ResultStore(path) as store:
        cell = cell_of(store.get(rid))
    assert (cell.model, cell.hardware, cell.batch, cell.input_size) == (
        "squeezenet1_1", "cpu", 4, 249)
    assert get_plugin_manager().backend("cpu").parse_options(cell.hw_opts) == defaults


def test_rerun_refusals_are_one_line_errors(bench, store_path, accel_pair):
    timed = add_cpu_run(store_path)  # 3
    line = one_line_error(bench("compare", "1", "2", "--rerun", "3"))
    assert "simulated" in line and "deterministic" in line and "without --rerun" in line
    gone = add_cpu_run(store_path, model="gone-net")  # 4
    line = one_line_error(bench("compare", str(timed), str(gone), "--rerun", "3"))
    assert "cannot re-run result 4 (gone-net on cpu)" in line and "gone-net" in line
    old = add_cpu_run(store_path, no_such_option=1)  # 5
    line = one_line_error(bench("compare", str(timed), str(old), "--rerun", "3"))
    assert "no longer has option(s) no_such_option" in line
    with ResultStore(store_path) as store:  # stored before bench recorded batch and size
        bare = store.add("run", plugin="cpu", model="squeezenet1_1", hardware="cpu",
                         samples=[0.01, 0.011, 0.012])
    line = one_line_error(bench("compare", str(timed), str(bare), "--rerun", "3"))
    assert "does not record its batch and input size" in line
    for bad in ("1", "0", "101", "x"):
        assert "--rerun" in one_line_error(bench("compare", str(timed), str(timed),
                                                 "--rerun", bad))
    with ResultStore(store_path) as store:
        assert store.count() == 6  # nothing was run, no group left behind
        with pytest.raises(Exception, match="the store has no groups"):
            store.group("g1")
