"""`bench tune`: the closed loop end to end on the synthetic source, resume after Ctrl-C, a
third-party measurement source, one real mpiexec session, and one-line exit-2 errors."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from harness.store import ResultStore
from plugins.hemingway.synthetic import case

from conftest import make_distribution

MPIEXEC = Path(sys.executable).parent / "mpiexec"
FAR = "overhead-far"  # best m near 50, measured first at 1, 2, 4, 8

# A third-party source: the synthetic one, but Ctrl-C arrives after TUNE_FLAKY_AFTER runs.
FLAKY = '''
import os
from harness import MeasurementSourceSpec, hookimpl
from plugins.hemingway import synthetic_source

COUNT = os.environ["TUNE_FLAKY_COUNT"]


def measure(request):
    made = int(open(COUNT).read()) if os.path.exists(COUNT) else 0
    after = os.environ.get("TUNE_FLAKY_AFTER")
    if after is not None and made >= int(after):
        raise KeyboardInterrupt
    with open(COUNT, "w") as fh:
        fh.write(str(made + 1))
    with open(COUNT + ".tags", "a") as fh:
        fh.write(request.run_tag + "\\n")
    return synthetic_source.measure(request)


@hookimpl
def bench_measurement_sources():
    return [MeasurementSourceSpec(name="flaky", description="synthetic, interrupted",
                                  measure=measure, check=synthetic_source.check,
                                  options=synthetic_source.OPTIONS)]
'''


def tune_args(*extra: str, problem: str = FAR, algorithms: str = "gd,admm") -> list[str]:
    return ["tune", "--problem", problem, "--algorithms", algorithms, "--epsilon", "1e-4",
            "--budget", "100000", *extra]


def session_runs(store_path: Path) -> list:
    with ResultStore(store_path) as store:
        return [r for r in store.list(kind="sweep")
                if str(r.options.get("run_tag", "")).startswith("tune:")]


def test_the_loop_finds_an_optimum_far_beyond_the_first_sizes(bench, store_path):
    truth = case(FAR)
    best_algorithm, best_m, best_time = truth.optimum()
    assert best_m >= 3 * 8  # far beyond round 1's largest size
    out = bench(*tune_args("--source", "synthetic", "--max-rounds", "3", "--format", "json"))
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["rounds"] <= 3
    chosen = next(a for a in truth.algorithms if a.name == result["choice"]["algorithm"])
    regret = truth.true_time(chosen, result["choice"]["m"]) / best_time - 1
    assert regret <= 0.05, result
    runs = session_runs(store_path)
    assert len(runs) == result["runs"] and all(r.status == "complete" for r in runs)
    assert max(r.ranks for r in runs) > 8  # it went and measured beyond round 1
    spent = sum(r.summary["machine_seconds"] for r in runs)
    assert spent == pytest.approx(result["machine_seconds"])
    # progress: one line per round on stderr, with the budget and the current best
    rounds = [line for line in out.stderr.splitlines() if line.startswith("round ")]
    assert len(rounds) == result["rounds"] and "/100000 machine-s; best " in rounds[0]


def test_ctrl_c_keeps_the_finished_runs_and_the_same_command_resumes(bench, store_path,
                                                                      tmp_path):
    site = tmp_path / "site"
    make_distribution(site, "bench-flaky", "1.0", {"flaky": "bench_flaky"},
                      {"bench_flaky.py": FLAKY})
    count = tmp_path / "count"
    env = {"PYTHONPATH": str(site), "TUNE_FLAKY_COUNT": str(count), "TUNE_FLAKY_AFTER": "5"}
    args = tune_args("--source", "flaky", "--max-rounds", "2", "--format", "json")
    stopped = bench(*args, env=env)
    assert stopped.returncode == 130, stopped.stderr
    (line,) = [x for x in stopped.stderr.splitlines() if x.startswith("interrupted")]
    assert "5 finished runs" in line and "run the same command again to resume" in line
    before = session_runs(store_path)
    assert len(before) == 5 and all(r.status == "complete" for r in before)

    env.pop("TUNE_FLAKY_AFTER")
    resumed = bench(*args, env=env)
    assert resumed.returncode == 0, resumed.stderr
    after = session_runs(store_path)
    assert [r.id for r in after[:5]] == [r.id for r in before]  # kept, not redone
    tags = (tmp_path / "count.tags").read_text().split()
    assert len(tags) == len(set(tags)) == len(after)  # no run was made twice
    assert json.loads(resumed.stdout)["runs"] == len(after)
    # once finished, the same command makes no further run and gives the same answer
    again = bench(*args, env=env)
    assert again.returncode == 0 and json.loads(again.stdout)["choice"] == json.loads(
        resumed.stdout)["choice"]
    assert len(session_runs(store_path)) == len(after)


@pytest.mark.skipif(not MPIEXEC.exists(), reason="no mpiexec next to this Python")
def test_the_mpi_source_runs_real_jobs(bench, store_path):
    out = bench("tune", "--problem", "logreg", "--problem-opt", "n=400", "--problem-opt", "d=10",
                "--algorithms", "cocoa+", "--epsilon", "1e-3", "--budget", "1000",
                "--max-ranks", "4", "--max-rounds", "1", "--iterations", "60",
                "--format", "json", timeout=600)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    runs = session_runs(store_path)
    assert sorted(r.ranks for r in runs) == [1, 2, 3, 4]  # round 1: one job per size
    assert all(r.status == "complete" and r.plugin == "algorithms" for r in runs)
    assert result["choice"]["algorithm"] == "cocoa+" and 1 <= result["choice"]["m"] <= 4
    assert result["machine_seconds"] > 0


@pytest.mark.parametrize("args,message", [
    (tune_args("--source", "nope"), "unknown measurement source 'nope'"),
    (tune_args("--source", "synthetic", problem="no-case"), "unknown synthetic case 'no-case'"),
    (tune_args("--source", "synthetic", algorithms="gd,sgd"), "'sgd'"),
    (tune_args("--source", "synthetic", algorithms="gd,gd"), "lists the same name twice"),
    (tune_args("--source", "synthetic", "--max-ranks", "3"), "needs 4 cluster sizes"),
    (tune_args("--source", "synthetic", "--max-ranks", "500"), "more than source 'synthetic'"),
    (tune_args("--source", "synthetic", "--source-opt", "noise=5"), "not a relative noise"),
    (tune_args("--source", "synthetic", "--source-opt", "colour=red"), "colour"),
    (tune_args(problem="logreg", algorithms="cocoa+"), "give --max-ranks"),
    (tune_args(problem="logreg", algorithms="cocoa+,nope", ), "unknown optimizer 'nope'"),
    (["tune", "--problem", FAR, "--algorithms", "gd", "--epsilon", "1e-4", "--budget", "5",
      "--source", "synthetic"], "does not cover the initial runs"),
])
def test_user_errors_are_one_line_exit_2(bench, args, message):
    out = bench(*args)
    assert out.returncode == 2, (out.stdout, out.stderr)
    errors = [line for line in out.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and message in errors[0], out.stderr
    assert "Traceback" not in out.stderr
