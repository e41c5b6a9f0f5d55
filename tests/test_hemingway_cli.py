"""`bench rank`: outputs, store and file inputs, and a one-line exit-2 error for every bad input."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.store import ResultStore
from plugins.hemingway.analyzer import rank_command
from plugins.hemingway.synthetic import EXAMPLE_ALGORITHMS, generate

REPO = Path(__file__).resolve().parents[1]
N = 20000
EPS = 1e-4
SIZES = (1, 2, 3, 4, 6, 8)


def write_csv(rows, path: Path, columns=None) -> Path:
    columns = columns or list(rows[0])
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def rows():
    return generate(EXAMPLE_ALGORITHMS, SIZES, N, EPS, seed=3)


@pytest.fixture(scope="module")
def sweep_csv(rows, tmp_path_factory) -> Path:
    return write_csv(rows, tmp_path_factory.mktemp("hemingway") / "sweep.csv")


def invoke(*args: str):
    return CliRunner().invoke(rank_command, list(args), catch_exceptions=False)


def ranking_json(*args: str) -> dict:
    result = invoke(*args, "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# --------------------------------------------------------------------------- outputs
def test_table_ranks_every_pair_and_names_the_best(sweep_csv):
    result = invoke("--input", str(sweep_csv), "--epsilon", str(EPS), "--max-ranks", "12",
                    "--bootstrap", "50")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "best: cocoa+ on m=2" in out  # the ground truth's best (see test_hemingway_models)
    for algorithm in EXAMPLE_ALGORITHMS:
        assert algorithm.name in out
    for word in ("measured", "interpolated", "extrapolated", "time 90%", "machine_s"):
        assert word in out


def test_json_has_the_same_ranking_with_models_and_intervals(sweep_csv):
    payload = ranking_json("--input", str(sweep_csv), "--epsilon", str(EPS), "--max-ranks", "12",
                           "--bootstrap", "50", "--objective", "cost")
    ranking = payload["ranking"]
    assert len(ranking) == len(EXAMPLE_ALGORITHMS) * 12
    assert [r["rank"] for r in ranking] == list(range(1, len(ranking) + 1))
    costs = [r["cost"] for r in ranking]
    assert costs == sorted(costs)
    assert payload["cost_unit"] == "machine-seconds" and payload["objective"] == "cost"
    first = ranking[0]
    assert first["time_lo_s"] <= first["time_s"] <= first["time_hi_s"]
    models = {m["algorithm"]: m for m in payload["models"]}
    assert set(models) == {a.name for a in EXAMPLE_ALGORITHMS}
    assert set(models["gd"]["system_model"]["coefficients"]) == {"1", "n/m", "log(m)", "m"}
    assert models["gd"]["measured_ranks"] == list(SIZES)


def test_deadline_and_budget_mark_infeasible_rows(sweep_csv):
    ranking = ranking_json("--input", str(sweep_csv), "--epsilon", str(EPS), "--bootstrap", "0",
                           "--deadline", "1.0", "--budget", "2",
                           "--price-per-machine-hour", "3600")["ranking"]
    for row in ranking:
        assert row["feasible"] == (row["time_s"] <= 1.0 and row["cost"] <= 2)
        assert row["cost"] == pytest.approx(row["time_s"] * row["m"])  # $3600/h = $1/s
        if not row["feasible"]:
            assert row["rank"] is None and row["limit"]


def test_csv_json_and_store_inputs_give_the_same_ranking(rows, sweep_csv, tmp_path):
    as_json = tmp_path / "sweep.json"
    as_json.write_text(json.dumps(rows))
    store_path = tmp_path / "store.sqlite"
    with ResultStore(store_path) as store:
        for algorithm in EXAMPLE_ALGORITHMS:
            for m in SIZES:
                mine = [r for r in rows if r["algorithm"] == algorithm.name and r["ranks"] == m]
                rid = store.add("sweep", optimizer=algorithm.name, problem="synthetic", ranks=m,
                                summary={"n": N})
                store.add_iterations(rid, [{k: r[k] for k in ("iteration", "iter_time_s",
                                                              "suboptimality")} for r in mine])
        # another problem and a failed run in the store are not mixed in
        other = store.add("sweep", optimizer="gd", problem="other", ranks=1, summary={"n": 5})
        store.add_iterations(other, [{"iteration": 1, "iter_time_s": 1.0, "suboptimality": 1.0}])
        store.add("sweep", status="failed", optimizer="gd", problem="synthetic", ranks=16,
                  summary={"n": N})
    common = ("--epsilon", str(EPS), "--bootstrap", "20", "--max-ranks", "10")
    from_csv = ranking_json("--input", str(sweep_csv), *common)["ranking"]
    from_json = ranking_json("--input", str(as_json), *common)["ranking"]
    from_store = ranking_json("--store", str(store_path), "--problem", "synthetic", *common)
    assert from_csv == from_json == from_store["ranking"]
    assert from_store["n"] == N


def test_an_oversubscribed_host_suggests_cores(rows, tmp_path):
    store_path = tmp_path / "store.sqlite"
    with ResultStore(store_path) as store:
        for algorithm in EXAMPLE_ALGORITHMS[:2]:
            for m in SIZES:
                rid = store.add("sweep", optimizer=algorithm.name, problem="synthetic", ranks=m,
                                summary={"n": N}, environment={"host": "box", "cpu_count": 2},
                                options={"problem": {"n": N, "lam": 0.001, "file": ""}})
                store.add_iterations(rid, [r for r in rows if r["algorithm"] == algorithm.name
                                           and r["ranks"] == m])
    plain = invoke("--store", str(store_path), "--epsilon", str(EPS), "--bootstrap", "0")
    assert "warning: runs used up to 8 ranks on a 2-core host" in plain.stderr
    assert "add --cores 2" in plain.stderr
    shared = invoke("--store", str(store_path), "--epsilon", str(EPS), "--bootstrap", "0",
                    "--cores", "2")
    assert shared.exit_code == 0 and "warning" not in shared.stderr
    assert "n/min(m,2)" in shared.stdout
    # a suggested sweep repeats the stored problem options
    suggestion = invoke("--store", str(store_path), "--suggest", "--cores", "2")
    assert f"--problem synthetic --problem-opt n={N} --problem-opt lam=0.001 --ranks" in (
        suggestion.stdout)


def test_extra_columns_are_ignored(rows, tmp_path):
    extended = [{**r, "comm_time_s": 0.5, "note": "x"} for r in rows]
    plain = write_csv(rows, tmp_path / "plain.csv")
    extra = write_csv(extended, tmp_path / "extra.csv")
    common = ("--epsilon", str(EPS), "--bootstrap", "0")
    assert ranking_json("--input", str(plain), *common)["ranking"] == ranking_json(
        "--input", str(extra), *common)["ranking"]


def test_validate_prints_errors_per_size_and_the_median(sweep_csv):
    result = invoke("--input", str(sweep_csv), "--epsilon", str(EPS), "--validate")
    assert result.exit_code == 0, result.output
    assert "median absolute percentage error of time-to-eps" in result.stdout
    payload = ranking_json("--input", str(sweep_csv), "--epsilon", str(EPS), "--validate")
    assert len(payload["rows"]) == len(EXAMPLE_ALGORITHMS) * len(SIZES)
    assert payload["median_abs_pct_error"] < 5
    assert set(payload["per_algorithm"]) == {a.name for a in EXAMPLE_ALGORITHMS}


def test_suggest_proposes_new_sizes_and_the_sweep_command(rows, tmp_path):
    few = write_csv([r for r in rows if r["ranks"] in (1, 2)], tmp_path / "few.csv")
    result = invoke("--input", str(few), "--suggest", "--max-ranks", "16")
    assert result.exit_code == 0, result.output
    assert "bench sweep --optimizer" in result.stdout and "--ranks" in result.stdout
    payload = ranking_json("--input", str(few), "--suggest", "--max-ranks", "16",
                           "--budget", "150")
    sizes = [s["m"] for s in payload["suggestions"]]
    assert len(set(sizes) - {1, 2}) >= 2 and payload["sizes_still_missing"] == 0
    assert payload["suggestions"][-1]["total_machine_s"] <= 150
    short = ranking_json("--input", str(few), "--suggest", "--max-ranks", "16", "--budget", "60")
    assert short["sizes_still_missing"] == 1
    assert payload["a_criterion_after"] < payload["a_criterion_now"]


def test_plot_writes_an_image(sweep_csv, tmp_path):
    image = tmp_path / "rank.png"
    result = invoke("--input", str(sweep_csv), "--epsilon", str(EPS), "--bootstrap", "20",
                    "--plot", str(image))
    assert result.exit_code == 0, result.output
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- bad input
def bad_input_cases(rows, tmp: Path):
    """(arguments, expected fragment(s) of the one-line message)."""
    good = write_csv(rows, tmp / "good.csv")
    renamed = [{("iter_time" if k == "iter_time_s" else k): v for k, v in r.items()} for r in rows]
    cases = [
        (["--input", str(write_csv(renamed, tmp / "renamed.csv")), "--epsilon", "1e-4"],
         "no column 'iter_time_s' (did you mean 'iter_time'?)"),
        (["--input", str(tmp / "missing.csv"), "--epsilon", "1e-4"],
         "missing.csv' does not exist"),
        (["--input", str(good), "--epsilon", "1e-12"], "never reached suboptimality 1e-12"),
        (["--input", str(write_csv([r for r in rows if r["ranks"] in (1, 2)], tmp / "two.csv")),
          "--epsilon", "1e-4"], "run 2 more at new sizes"),
        (["--input", str(write_csv([r for r in rows if r["ranks"] < 6], tmp / "four.csv")),
          "--epsilon", "1e-4", "--validate"], "needed to leave one out"),
        (["--input", str(good), "--epsilon", "1e-4", "--problem", "logreg"],
         "unknown problem in"),
        (["--input", str(good)], "--epsilon EPS is required"),
        (["--input", str(good), "--epsilon", "0"], "--epsilon"),
        (["--input", str(good), "--epsilon", "1e-4", "--objective", "speed"], "--objective"),
        (["--input", str(good), "--epsilon", "1e-4", "--validate", "--suggest"], "give one"),
        (["--input", str(good), "--epsilon", "1e-4", "--term", "q*m"], "unknown name 'q'"),
        (["--input", str(good), "--epsilon", "1e-4", "--plot", str(tmp / "x.nope")],
         "unknown image type 'nope'"),
        (["--input", str(good), "--suggest", "--budget", "1e-9"], "buys no run"),
        (["--input", str(good), "--epsilon", "1e-4", "--n", "7"], "no runs with n=7"),
        (["--store", str(tmp / "empty.sqlite"), "--epsilon", "1e-4"],
         "no complete optimizer sweeps"),
    ]
    bad_json = tmp / "bad.json"
    bad_json.write_text("[{\"algorithm\": \"gd\",")
    cases.append((["--input", str(bad_json), "--epsilon", "1e-4"], "is not valid JSON"))
    two_problems = [dict(r, problem="a") for r in rows] + [dict(r, problem="b") for r in rows]
    cases.append((["--input", str(write_csv(two_problems, tmp / "two_problems.csv")),
                   "--epsilon", "1e-4"], "2 problems (a, b); pick one with --problem"))
    two_sizes = rows + [dict(r, n=2 * N) for r in rows]
    cases.append((["--input", str(write_csv(two_sizes, tmp / "two_n.csv")), "--epsilon", "1e-4"],
                  "rank one at a time with --n N"))
    repeated = rows + [rows[5]]
    cases.append((["--input", str(write_csv(repeated, tmp / "repeated.csv")), "--epsilon", "1e-4"],
                  "twice; tell repeated runs apart with a 'run' column"))
    for column, value, fragment in [
        ("iter_time_s", "nan", "values must be finite"),
        ("iter_time_s", "-0.5", "'iter_time_s' is negative"),
        ("suboptimality", "inf", "values must be finite"),
        ("suboptimality", "-0.2", "f* is wrong"),
        ("ranks", "0", "'ranks' must be an integer >= 1"),
        ("ranks", "2.5", "'ranks' must be an integer >= 1"),
        ("iteration", "x", "'iteration' must be a number"),
        ("n", "-3", "must be positive"),
        ("algorithm", "", "'algorithm' is empty"),
    ]:
        broken = [dict(r) for r in rows]
        broken[10][column] = value
        path = write_csv(broken, tmp / f"bad_{column}_{len(cases)}.csv")
        cases.append((["--input", str(path), "--epsilon", "1e-4"],
                      (f"line 12: '{column}'", fragment)))
    return cases


def test_every_bad_input_is_a_one_line_exit_2_error(rows, tmp_path):
    for args, fragments in bad_input_cases(rows, tmp_path):
        result = CliRunner().invoke(rank_command, args)
        assert result.exit_code == 2, (args, result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit), args
        message = result.stderr.strip()
        assert message.startswith("Error:") or message.startswith("Usage:"), (args, message)
        last = message.splitlines()[-1]
        for fragment in [fragments] if isinstance(fragments, str) else fragments:
            assert fragment in message, (args, message)
        if message.startswith("Error:"):
            assert len(message.splitlines()) == 1, (args, message)
        else:  # click's own usage errors: usage line, hint, then one error line
            assert last.startswith("Error:"), (args, message)


def test_a_partly_unusable_sweep_ranks_the_rest_with_a_warning(rows, tmp_path):
    # gd measured at two sizes only: left out with a warning, the others ranked
    partial = [r for r in rows if r["algorithm"] != "gd" or r["ranks"] in (1, 2)]
    result = invoke("--input", str(write_csv(partial, tmp_path / "partial.csv")),
                    "--epsilon", str(EPS), "--bootstrap", "0", "--format", "json")
    assert result.exit_code == 0
    assert "warning: gd was measured at 2 cluster sizes" in result.stderr
    assert {r["algorithm"] for r in json.loads(result.stdout)["ranking"]} == {
        a.name for a in EXAMPLE_ALGORITHMS if a.name != "gd"}


# --------------------------------------------------------------------------- the real command
def test_bench_rank_through_the_installed_cli(bench, sweep_csv):
    listed = bench("list", "analyzers")
    assert listed.returncode == 0 and "hemingway" in listed.stdout and "bench rank" in listed.stdout
    ok = bench("rank", "--input", str(sweep_csv), "--epsilon", "1e-4", "--bootstrap", "0")
    assert ok.returncode == 0, ok.stderr
    assert "best: cocoa+ on m=2" in ok.stdout
    bad = bench("rank", "--input", str(sweep_csv), "--epsilon", "1e-15")
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "never reached" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_the_entry_point_module_imports_no_heavy_packages():
    code = ("import sys, plugins.hemingway.analyzer; "
            "print(sorted(m for m in ('numpy', 'scipy', 'matplotlib', 'torch', 'mpi4py') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=str(REPO), check=True)
    assert out.stdout.strip() == "[]"
