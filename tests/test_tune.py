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
    # progress on stderr: per round, the runs it makes, then the budget and the current best
    lines = [line for line in out.stderr.splitlines() if line.startswith("round ")]
    started = [line for line in lines if ": running " in line]
    rounds = [line for line in lines if ": running " not in line]
    assert len(started) == len(rounds) == result["rounds"]
    assert started[0].startswith("round 1: running 8 of 8 runs: gd m=1, admm m=1")
    assert "/100000 machine-s; best " in rounds[0]


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
    # bench tune reports the runs itself; sweep's per-job lines only with --verbose
    assert "[1/1]" not in out.stderr, out.stderr
    assert "round 1: running 4 of 4 runs: cocoa+ m=1" in out.stderr


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
    (tune_args("--source", "synthetic", "--opt", "gamma=1"), "takes no --problem-opt or --opt"),
    (tune_args("--max-ranks", "4", "--problem-opt", "nn=3", problem="logreg",
               algorithms="cocoa+"), "unknown option for problem"),
    (tune_args("--max-ranks", "4", "--opt", "rho=3", problem="logreg", algorithms="cocoa+"),
     "unknown hyperparameter for cocoa+"),
    (["tune", "--problem", FAR, "--algorithms", "gd", "--epsilon", "1e-4", "--budget", "5",
      "--source", "synthetic"], "does not cover the initial runs"),
    (["tune", "--problem", FAR, "--algorithms", "gd", "--epsilon", "11", "--budget", "1000",
      "--source", "synthetic"], "lower --epsilon"),
])
def test_user_errors_are_one_line_exit_2(bench, args, message):
    out = bench(*args)
    assert out.returncode == 2, (out.stdout, out.stderr)
    errors = [line for line in out.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and message in errors[0], out.stderr
    assert "Traceback" not in out.stderr
    if not any(w in message for w in ("does not cover", "lower --epsilon")):  # from runs
        assert "round 1" not in out.stderr  # found before any run is made


# --------------------------------------------------------------------------- decision rules
def posterior_of(times, measured: dict[str, list[int]], max_ranks: int):
    """A Posterior over hand-made draws: columns algorithm-major, m = 1..max_ranks."""
    import numpy as np

    from plugins.hemingway.closed_loop import Posterior
    from plugins.hemingway.uncertainty import choice_probabilities

    times = np.asarray(times, dtype=float)
    p_best, p_within = choice_probabilities(times, within=0.05)
    return Posterior(list(measured), np.arange(1, max_ranks + 1, dtype=float), times, p_best,
                     p_within, 0.05, {a: 0.05 for a in measured}, measured)


def test_the_choice_is_the_lowest_expected_regret_not_the_likeliest_winner():
    # a: within 5% of the best in 3 draws of 4, but 3x slower in the fourth;
    # b: always 6% slower than a's good draws. P(within) favours a, expected regret b.
    times = [[1.00, 1.06], [1.00, 1.06], [1.00, 1.06], [3.00, 1.06]]
    post = posterior_of(times, {"a": [1], "b": [1]}, 1)
    assert post.p_within[0] > post.p_within[1]
    assert post.candidate(post.choice) == ("b", 1)
    assert post.expected_regret[1] < post.expected_regret[0]
    assert post.rows(2)[0]["algorithm"] == "b"


@pytest.mark.parametrize("measured,m,expected", [
    ([1, 2, 4, 8], 8, 16),  # a minimum at the largest run: run one doubling beyond it
    ([1, 2, 4, 8], 12, 24),  # near the runs (12/8 <= 1.5) but none above it
    ([1, 2, 4, 8], 40, 40),  # far from every run: run it
    ([1, 2, 4, 8, 64], 40, 40),  # bracketed but 64/40 > 1.5: still run it
    ([1, 2, 4, 8, 48], 40, None),  # near a run, runs on both sides: checked
    ([1, 2, 4, 8], 1, None),  # no size below 1 to bracket with
    ([8, 16, 32], 8, 4),  # nothing below it: one halving below
    ([1, 2, 4, 8, 100], 128, None),  # max_ranks needs no run beyond it, only one near it
    ([1, 2, 4, 8, 100], 120, 128),  # near 100 but nothing above: one doubling, capped
])
def test_a_candidate_is_checked_by_a_run_near_it_and_runs_on_both_sides(measured, m, expected):
    import numpy as np

    post = posterior_of(np.ones((2, 128)), {"a": measured}, 128)
    assert post.check_size(post.column("a", m)) == expected


def test_the_last_round_runs_the_choice_and_its_closest_rival_even_when_checked():
    import numpy as np

    from plugins.hemingway.closed_loop import plan

    rng = np.random.default_rng(0)
    m = np.arange(1, 17, dtype=float)
    a = 1.0 / m + 0.05 * m  # best near m = 4
    b = 1.2 / m + 0.05 * m  # the rival, ~10% slower at its best
    times = np.concatenate([a, b])[None, :] * rng.lognormal(0, 0.01, (200, 1))
    measured = {"a": [2, 4, 8, 16], "b": [2, 4, 8, 16]}
    post = posterior_of(times, measured, 16)
    assert not post.decision_unchecked  # both bests have runs at and around them
    choice, rival = post.contenders()
    assert post.candidate(choice) == ("a", 4) and post.candidate(rival)[0] == "b"
    last = plan(post, {}, 1e6, 3, rng, rounds_left=1, future_runs=1e5).runs
    assert [(r.algorithm, r.m) for r in last[:2]] == [post.candidate(choice),
                                                      post.candidate(rival)]
    earlier = plan(post, {}, 1e6, 3, rng, rounds_left=2, future_runs=1e5).runs
    assert post.candidate(choice) not in [(r.algorithm, r.m) for r in earlier]


def confident_posterior():
    """a's best (m = 4) beats b's by ~10% in every draw; both checked by runs around them."""
    import numpy as np

    rng = np.random.default_rng(0)
    m = np.arange(1, 17, dtype=float)
    times = np.concatenate([1.0 / m + 0.05 * m, 1.2 / m + 0.05 * m])
    times = times[None, :] * rng.lognormal(0, 0.01, (200, 1))
    return posterior_of(times, {"a": [2, 4, 8, 16], "b": [2, 4, 8, 16]}, 16)


def test_a_run_worth_nothing_is_not_queued_and_an_empty_round_says_why():
    import numpy as np

    from plugins.hemingway.closed_loop import plan

    post = confident_posterior()
    assert post.confidence == 1.0 and not post.decision_unchecked
    # no outcome of any run can change the ranking: every run is worth nothing
    nothing = plan(post, {}, 1e6, 8, np.random.default_rng(0), rounds_left=2, future_runs=1e9)
    assert nothing.runs == [] and nothing.empty_because == "worth"
    # an unchecked choice needs its check (exempt from the floor); without the budget for
    # it the round is empty because of the budget
    unchecked = posterior_of(post.times, {"a": [1, 2], "b": [1, 2]}, 16)
    assert unchecked.decision_unchecked
    checks = plan(unchecked, {}, 1e6, 8, np.random.default_rng(0), rounds_left=2,
                  future_runs=1e9)
    assert [(r.algorithm, r.m) for r in checks.runs][:1] == [("a", 4)]
    broke = plan(unchecked, {}, 1e-9, 8, np.random.default_rng(0), rounds_left=2,
                 future_runs=1e9)
    assert broke.runs == [] and broke.empty_because == "budget"


def test_the_value_floor_is_the_saving_over_the_future_runs_against_the_cost():
    from plugins.hemingway.closed_loop import worth_its_cost

    # 1 ms of T saved per later run of a 10 s, 40 machine-s choice: 4 machine-ms per use
    assert worth_its_cost(1e-3, 40.0, 10.0, 40.0, future_runs=1e4)  # 40 machine-s saved
    assert not worth_its_cost(1e-3, 41.0, 10.0, 40.0, future_runs=1e4)
    assert not worth_its_cost(1e-3, 40.0, 10.0, 40.0, future_runs=1e3)


def test_a_run_that_alone_cannot_change_the_choice_but_a_few_can_is_worth_something():
    import numpy as np

    from plugins.hemingway.closed_loop import knowledge_gradient

    # a is sure at 1.0; b is 1.3 but 0.8 (the better one) in a tenth of the draws. At 50%
    # run-to-run noise one run of b cannot make b the choice, eight can (KG(*)).
    draws = 400
    rng = np.random.default_rng(0)
    b = np.where(rng.random((draws, 1)) < 0.1, 0.8, 1.3)
    post = posterior_of(np.concatenate([np.ones((draws, 1)), b], axis=1),
                        {"a": [1], "b": [1]}, 1)
    post.noise = {"a": 0.5, "b": 0.5}
    weights = np.full((2, draws), 1.0 / draws)
    value = knowledge_gradient(post, np.array([1]), weights, np.random.default_rng(1))[0]
    assert value > 1e-3  # one run alone: exactly 0 (its outcomes never move b's mean below 1)


def test_a_believed_run_reweights_only_its_own_algorithms_draws():
    import numpy as np

    from plugins.hemingway.closed_loop import believe

    rng = np.random.default_rng(0)
    times = rng.lognormal(0, 0.2, (300, 2))  # a and b independent, one size each
    post = posterior_of(times, {"a": [1], "b": [1]}, 1)
    post.noise = {"a": 0.05, "b": 0.05}
    weights = np.full((2, 300), 1.0 / 300)
    after = believe(post, post.column("a", 1), weights)
    assert np.array_equal(after[1], weights[1])  # b's draws as they were
    assert not np.allclose(after[0], weights[0]) and np.isclose(after[0].sum(), 1.0)


def test_the_loop_stops_when_no_run_is_worth_its_cost(bench, store_path):
    # a confidence the checks alone cannot reach, so only the value floor can stop the loop
    out = bench(*tune_args("--source", "synthetic", "--max-rounds", "20", "--future-runs",
                           "1e-3", "--confidence", "0.9999", "--format", "json"))
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["stopped"] == "worth" and result["rounds"] < 20, result
    # round 1, then only the runs that check the choice and its rival (exempt from the floor)
    runs = session_runs(store_path)
    assert len(runs) == result["runs"] and len(runs) - 8 <= 2 * (result["rounds"] - 1)


def test_more_rounds_go_on_with_the_session_and_replan_no_finished_round(bench, store_path):
    # a last round is planned differently (it re-runs the choice and its rival), so a
    # session resumed with a higher --max-rounds must keep the rounds it already made
    def tune(rounds: str):
        # seed 46: three rounds leave the choice unsure (P(within 5%) 0.80), so the
        # loop stops on --max-rounds, and a fourth-round plan would redo round 3 differently
        return bench(*tune_args("--source", "synthetic", "--source-opt", "seed=46",
                                "--format", "json", "--max-rounds", rounds,
                                problem="minibatch-far", algorithms="gd,minibatch-sgd"))

    first = tune("3")
    assert first.returncode == 0, first.stderr
    result = json.loads(first.stdout)
    assert result["stopped"] == "rounds", result
    assert "--max-rounds 4 goes on with this session" in result["next"]
    before = {r.id: r.summary["tune_round"] for r in session_runs(store_path)}
    assert len(before) == result["runs"] and max(before.values()) == 3

    more = tune("4")
    assert more.returncode == 0, more.stderr
    after = {r.id: r.summary["tune_round"] for r in session_runs(store_path)}
    assert {i: k for i, k in after.items() if k <= 3} == before  # nothing redone or added
    assert max(after.values()) == 4 == json.loads(more.stdout)["rounds"]
    assert not any(line.startswith(tuple(f"round {k}: running" for k in (1, 2, 3)))
                   for line in more.stderr.splitlines())
    # fewer rounds than the session made: every stored round still counts, none is dropped
    fewer = tune("2")
    assert fewer.returncode == 0 and len(session_runs(store_path)) == len(after)
    assert json.loads(fewer.stdout)["runs"] == len(after)


def test_a_resumed_round_stops_where_a_lowered_budget_is_spent(bench, store_path, tmp_path):
    site = tmp_path / "site"
    make_distribution(site, "bench-flaky", "1.0", {"flaky": "bench_flaky"},
                      {"bench_flaky.py": FLAKY})
    env = {"PYTHONPATH": str(site), "TUNE_FLAKY_COUNT": str(tmp_path / "count"),
           "TUNE_FLAKY_AFTER": "9"}  # round 1's 8 runs, then one of round 2's two
    stopped = bench(*tune_args("--source", "flaky", "--max-rounds", "3"), env=env)
    assert stopped.returncode == 130, stopped.stderr
    made = session_runs(store_path)
    spent = sum(r.summary["machine_seconds"] for r in made)
    assert len(made) == 9 and max(r.summary["tune_round"] for r in made) == 2

    env.pop("TUNE_FLAKY_AFTER")
    resumed = bench(*tune_args("--source", "flaky", "--max-rounds", "3", "--format", "json",
                               "--budget", f"{0.9 * spent:.6g}"), env=env)  # the last --budget
    assert resumed.returncode == 0, resumed.stderr
    assert "round 2: --budget" in resumed.stderr and "is spent" in resumed.stderr
    assert len(session_runs(store_path)) == 9  # the rest of round 2's plan was not made
    result = json.loads(resumed.stdout)
    assert result["stopped"] == "budget" and "a larger --budget" in result["next"]
