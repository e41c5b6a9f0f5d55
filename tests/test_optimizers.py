"""Distributed optimizers under a real mpiexec (the one next to this Python), 1, 2 and 4 ranks.

Every run goes through ``bench sweep`` in a subprocess, as a user would run it:
``mpiexec -n K python -m harness sweep ...`` for one cluster size, or the
launcher ``python -m harness sweep --ranks ...``. Results are read back from
the store the ranks wrote. Subprocess timeouts only guard against hangs.
"""
from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.optimize

from harness.store import ResultStore
from plugins.optimizers import linear

MPIEXEC = Path(sys.executable).parent / "mpiexec"
BENCH = [sys.executable, "-P", "-m", "harness"]
HANG_GUARD = 120  # seconds; a test that needs this long has hung

pytestmark = pytest.mark.skipif(not MPIEXEC.exists(), reason="no mpiexec next to this Python")

# A small, well-conditioned logistic regression.
PROBLEM = {"file": "", "n": 1200, "d": 8, "density": 1.0, "cond": 2.0, "noise": 0.5,
           "seed": 0, "lam": 0.01}
PROBLEM_ARGS = [arg for key in ("n", "d", "cond", "lam")
                for arg in ("--problem-opt", f"{key}={PROBLEM[key]}")]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    env = dict(os.environ)
    env["BENCH_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    for var in ("BENCH_FAULT_RANK", "BENCH_FAULT_ITERATION", "BENCH_STORE"):
        env.pop(var, None)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def bench(args, env, extra_env=None):
    return subprocess.run(BENCH + args, env={**env, **(extra_env or {})}, capture_output=True,
                          text=True, timeout=HANG_GUARD)


def mpirun(ranks, args, env, extra_env=None):
    return subprocess.run([str(MPIEXEC), "-n", str(ranks), *BENCH, *args],
                          env={**env, **(extra_env or {})}, capture_output=True, text=True,
                          timeout=HANG_GUARD)


def sweeps(store_path):
    with ResultStore(store_path) as store:
        return [(r, store.iterations(r.id)) for r in store.list(kind="sweep")]


def test_minibatch_sgd_iterates_do_not_depend_on_the_number_of_ranks(tmp_path, env):
    store = tmp_path / "s.sqlite"
    common = ["sweep", "--optimizer", "minibatch-sgd", "--problem", "logreg", *PROBLEM_ARGS,
              "--opt", "batch=64", "--iterations", "15", "--store", str(store)]
    for k in (1, 4):
        out = mpirun(k, common + ["--save-iterate", str(tmp_path / f"x{k}.npy")], env)
        assert out.returncode == 0, out.stderr
    x1, x4 = np.load(tmp_path / "x1.npy"), np.load(tmp_path / "x4.npy")
    assert np.linalg.norm(x1) > 0.1  # the runs moved
    np.testing.assert_allclose(x4, x1, rtol=1e-10, atol=1e-12)
    (r1, it1), (r4, it4) = sweeps(store)
    assert (r1.ranks, r4.ranks) == (1, 4) and r1.status == r4.status == "complete"
    assert [r["iteration"] for r in it4] == list(range(1, 16))
    np.testing.assert_allclose([r["objective"] for r in it4], [r["objective"] for r in it1],
                               rtol=1e-10)
    # four ranks communicate: one Allreduce of d float64 per rank and iteration
    assert all(r["bytes_sent"] == 4 * PROBLEM["d"] * 8 for r in it4)
    assert all(r["iter_time_s"] >= r["comm_time_s"] >= 0 for r in it4)
    with ResultStore(store) as db:  # what the Hemingway analyzer reads
        rows = db.iteration_rows(problem="logreg")
    assert len(rows) == 30
    assert {(r["algorithm"], r["ranks"], r["n"]) for r in rows} == {
        ("minibatch-sgd", 1, 1200), ("minibatch-sgd", 4, 1200)}


def _plain_sdca(X, y, lam, passes, seed):
    """Textbook SDCA for logistic regression (Shalev-Shwartz & Zhang), one process.

    Each coordinate step maximizes the dual exactly with Brent's method, which is
    independent of the Newton solver inside the plugin. The coordinates follow
    the order CoCoA+'s rank 0 uses: fresh permutations from default_rng([seed, 3, 0]).
    """
    n, d = X.shape
    w, alpha = np.zeros(d), np.zeros(n)
    rng = np.random.default_rng([seed, 3, 0])
    iterates = []
    for _ in range(passes):
        for i in rng.permutation(n):
            q = X[i] @ X[i] / (lam * n)
            z, b = X[i] @ w, alpha[i] * y[i]

            def slope(bp):  # derivative of the 1-D dual in b' = y (alpha_i + delta)
                return -math.log(bp / (1 - bp)) - y[i] * z - q * (bp - b)

            bp = scipy.optimize.brentq(slope, 1e-15, 1 - 1e-15, xtol=1e-15, rtol=1e-15)
            delta = y[i] * bp - alpha[i]
            alpha[i] += delta
            w += delta / (lam * n) * X[i]
        iterates.append(w.copy())
    return iterates


def test_cocoa_plus_on_one_rank_is_sdca(tmp_path, env):
    store = tmp_path / "s.sqlite"
    out = mpirun(1, ["sweep", "--optimizer", "cocoa+", "--problem", "logreg", *PROBLEM_ARGS,
                     "--iterations", "3", "--store", str(store),
                     "--save-iterate", str(tmp_path / "w.npy")], env)
    assert out.returncode == 0, out.stderr
    loss = linear.LOSSES["logistic"]
    X, y = linear.synthetic_rows(PROBLEM, loss, 0, PROBLEM["n"])
    expected = _plain_sdca(X, y, PROBLEM["lam"], passes=3, seed=0)
    np.testing.assert_allclose(np.load(tmp_path / "w.npy"), expected[-1], rtol=1e-8, atol=1e-10)
    ((result, rows),) = sweeps(store)
    objectives = [linear.primal(loss, X, y, PROBLEM["lam"], w) for w in expected]
    np.testing.assert_allclose([r["objective"] for r in rows], objectives, rtol=1e-10)
    assert all(r["duality_gap"] >= -1e-12 for r in rows)
    assert rows[-1]["duality_gap"] < rows[0]["duality_gap"]


def test_every_algorithm_reaches_relative_suboptimality_1e4(tmp_path, env, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE", env["BENCH_CACHE"])
    f_star = linear.prepare("logreg", "logistic", dict(PROBLEM))["f_star"]
    store = tmp_path / "s.sqlite"
    names = ["minibatch-sgd", "local-sgd", "cocoa", "cocoa+", "admm"]
    out = bench(["sweep", "--optimizer", ",".join(names), "--problem", "logreg",
                 *PROBLEM_ARGS, "--ranks", "4", "--iterations", "300",
                 "--target-subopt", repr(1e-4 * f_star),
                 # deterministic gradients: stochastic ones stall at their noise floor
                 "--opt", "minibatch-sgd:batch=0", "--opt", "local-sgd:batch=0",
                 "--opt", "local-sgd:local_steps=2", "--store", str(store)], env)
    assert out.returncode == 0, out.stderr
    results = sweeps(store)
    assert [r.optimizer for r, _ in results] == names
    for result, rows in results:
        assert result.status == "complete" and result.ranks == 4
        assert result.summary["reached_target"], (result.optimizer, result.summary)
        assert result.summary["f_star"] == pytest.approx(f_star, rel=1e-12)
        assert rows[-1]["rel_suboptimality"] <= 1e-4
        assert rows[0]["rel_suboptimality"] > 1e-4  # it had to get there
    assert "iterations_to_target" in out.stdout and "cocoa+" in out.stdout


def test_a_failing_rank_ends_the_job_and_the_sweep_goes_on(tmp_path, env):
    store = tmp_path / "s.sqlite"
    fault = {"BENCH_FAULT_RANK": "1", "BENCH_FAULT_ITERATION": "2"}
    out = bench(["sweep", "--optimizer", "cocoa+,minibatch-sgd", "--problem", "logreg",
                 *PROBLEM_ARGS, "--ranks", "1,2", "--iterations", "6", "--store", str(store)],
                env, fault)
    assert out.returncode == 1
    results = sweeps(store)
    assert [(r.optimizer, r.ranks, r.status) for r, _ in results] == [
        ("cocoa+", 1, "complete"), ("cocoa+", 2, "failed"),
        ("minibatch-sgd", 1, "complete"), ("minibatch-sgd", 2, "failed")]
    for result, rows in results:
        if result.status == "failed":
            assert "rank 1" in result.error and "injected fault" in result.error
            assert [r["iteration"] for r in rows] == [1]  # what was done before is kept
            assert result.summary["n"] == PROBLEM["n"]
        else:
            assert len(rows) == 6
    assert "failed" in out.stdout and "injected fault" in out.stderr

    # Run directly under mpiexec: the job ends (no hang) with a non-zero code.
    out = mpirun(2, ["sweep", "--optimizer", "admm", "--problem", "logreg", *PROBLEM_ARGS,
                     "--iterations", "50", "--store", str(store)], env, fault)
    assert out.returncode != 0
    result, rows = sweeps(store)[-1]
    assert result.status == "failed" and "injected fault" in result.error
    assert len(rows) == 1


def test_a_job_past_its_timeout_is_killed_and_stored_as_timeout(tmp_path, env):
    store = tmp_path / "s.sqlite"
    out = bench(["sweep", "--optimizer", "cocoa", "--problem", "logreg", *PROBLEM_ARGS,
                 "--ranks", "2", "--iterations", "10000000", "--timeout", "4",
                 "--store", str(store)], env)
    assert out.returncode == 1
    ((result, rows),) = sweeps(store)
    assert result.status == "timeout" and "timed out" in result.error
    assert rows and result.summary["iterations"] == len(rows)


def test_ctrl_c_kills_the_job_and_keeps_what_was_stored(tmp_path, env):
    store = tmp_path / "s.sqlite"
    launcher = subprocess.Popen(
        BENCH + ["sweep", "--optimizer", "cocoa", "--problem", "logreg", *PROBLEM_ARGS,
                 "--ranks", "2", "--iterations", "10000000", "--store", str(store)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # a shell running the suite in the background ignores SIGINT, and children
        # inherit that: give the launcher the default disposition a terminal gives it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + HANG_GUARD
        while time.monotonic() < deadline:
            time.sleep(0.5)
            if store.exists() and any(rows for _, rows in sweeps(store)):
                break
        launcher.send_signal(signal.SIGINT)
        _, err = launcher.communicate(timeout=HANG_GUARD)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode == 130
    ((result, rows),) = sweeps(store)
    assert result.status == "interrupted" and rows
    assert "results stored so far are kept" in err


def test_cnn_data_parallel_training_runs_on_two_ranks(tmp_path, env):
    store = tmp_path / "s.sqlite"
    out = mpirun(2, ["sweep", "--optimizer", "minibatch-sgd", "--problem", "cnn",
                     "--problem-opt", "n=32", "--problem-opt", "eval_samples=16",
                     "--problem-opt", "classes=4", "--opt", "batch=8", "--iterations", "2",
                     "--store", str(store)], env)
    assert out.returncode == 0, out.stderr
    ((result, rows),) = sweeps(store)
    assert result.status == "complete" and result.problem == "cnn"
    assert result.summary["d"] > 100_000 and result.summary["f_star"] is None
    assert len(rows) == 2 and all(math.isfinite(r["objective"]) for r in rows)
    assert all(r["suboptimality"] is None for r in rows)
    # one Allreduce of every parameter as float32, from each of the 2 ranks
    assert rows[0]["bytes_sent"] == 2 * 4 * result.summary["d"]
