"""Optimizer plugins without MPI: LIBSVM parsing, losses and SDCA steps, f* and its cache,
option routing, summaries, and the user errors of ``bench sweep``.

Nothing here imports mpi4py (the pytest process also launches mpiexec in
test_optimizers.py); problems get a one-rank stand-in communicator.
"""
from __future__ import annotations

import gzip
import math

import numpy as np
import pytest
import scipy.optimize

from harness.cli import main
from harness.errors import BenchUsageError
from plugins.optimizers import libsvm, linear
from plugins.optimizers.jobs import split_algorithm_pairs, summarize


class OneRank:
    """The parts of mpi_runtime.Comm a problem uses, for a single process."""

    rank, size = 0, 1

    def allreduce(self, send, recv, op="sum"):
        recv[...] = send
        return recv

    def bcast(self, buf, root=0):
        return buf

    def sum_scalars(self, *values):
        return list(values)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))


# --------------------------------------------------------------------------- LIBSVM
GOOD = """# a comment line
+1 1:0.5 3:-2 # trailing comment
-1 qid:4 2:1.5
+1
-1 1:1 2:2 3:3
"""


def test_libsvm_parses_rows_labels_and_comments(tmp_path):
    path = tmp_path / "good.txt"
    path.write_text(GOOD)
    parsed = libsvm.parse(path)
    assert parsed["d"] == 3
    assert parsed["labels"].tolist() == [1, -1, 1, -1]
    assert parsed["indptr"].tolist() == [0, 2, 3, 3, 6]
    assert parsed["indices"].tolist() == [0, 2, 1, 0, 1, 2]
    assert parsed["data"].tolist() == [0.5, -2, 1.5, 1, 2, 3]


def test_libsvm_zero_based_and_compressed(tmp_path):
    path = tmp_path / "zero.txt.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("1 0:1 4:2\n0 1:3\n")
    parsed = libsvm.parse(path)
    assert parsed["zero_based"] and parsed["d"] == 5
    assert parsed["indices"].tolist() == [0, 4, 1]


@pytest.mark.parametrize("text, line, what", [
    ("1 1:2\nabc 1:2\n", 2, "label 'abc' is not a number"),
    ("1 1:2\n1 1:2\n-1 3:x\n", 3, "'3:x' is not index:value"),
    ("1 2:1 1:1\n", 1, "feature indices must increase"),
    ("1 1:1\n1 5\n", 2, "'5' is not index:value"),
])
def test_libsvm_bad_line_is_named(tmp_path, text, line, what):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(BenchUsageError) as info:
        libsvm.parse(path)
    message = info.value.format_message()
    assert f"line {line}:" in message and what in message and "\n" not in message


def test_libsvm_empty_file_and_missing_file(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n\n")
    with pytest.raises(BenchUsageError, match="no examples"):
        libsvm.parse(empty)
    with pytest.raises(BenchUsageError, match="does not exist"):
        libsvm.load(tmp_path / "missing.txt")


def test_libsvm_problem_maps_labels_and_rejects_multiclass(tmp_path):
    path = tmp_path / "data.txt"
    path.write_text("2 1:1\n4 2:1\n2 1:2 2:1\n")
    X, y = linear.load_file_rows(str(path), linear.LOSSES["logistic"])
    assert X.shape == (3, 2) and y.tolist() == [-1.0, 1.0, -1.0]
    X, y = linear.load_file_rows(str(path), linear.LOSSES["squared"])
    assert y.tolist() == [2.0, 4.0, 2.0]  # regression keeps the targets
    path.write_text("1 1:1\n2 1:1\n3 1:1\n")
    with pytest.raises(BenchUsageError, match="3 distinct labels"):
        linear.load_file_rows(str(path), linear.LOSSES["hinge"])


def test_bad_libsvm_file_through_bench_sweep_is_one_line_exit_2(tmp_path, capsys):
    path = tmp_path / "bad.svm"
    path.write_text("+1 1:0.5\n-1 2:oops\n")
    code = main(["sweep", "--optimizer", "cocoa+", "--problem", "logreg", "--ranks", "1",
                 "--problem-opt", f"file={path}", "--store", str(tmp_path / "s.sqlite")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0 and "line 2:" in err and "'2:oops'" in err


# --------------------------------------------------------------------------- user errors
@pytest.mark.parametrize("args, words", [
    (["--optimizer", "cocoaa", "--problem", "logreg"], ["unknown optimizer 'cocoaa'", "cocoa"]),
    (["--optimizer", "cocoa", "--problem", "logregg"], ["unknown problem 'logregg'", "logreg"]),
    (["--optimizer", "cocoa", "--problem", "logreg", "--opt", "sigma=2"],
     ["unknown hyperparameter", "'sigma'"]),
    (["--optimizer", "cocoa", "--problem", "logreg", "--problem-opt", "rows=5"],
     ["unknown option for problem 'logreg'", "'rows'"]),
    (["--optimizer", "admm", "--problem", "logreg", "--opt", "rho=-1"],
     ["bad value '-1'", "rho"]),
    (["--optimizer", "cocoa", "--problem", "cnn"], ["does not support problem 'cnn'"]),
    (["--optimizer", "cocoa", "--problem", "logreg", "--ranks", "1,x"], ["--ranks"]),
    (["--optimizer", "cocoa", "--problem", "logreg", "--opt", "sgd:lr=1"],
     ["unknown optimizer in --opt 'sgd'"]),
    (["--optimizer", "cocoa", "--problem", "logreg", "--problem-opt", "lam=0"],
     ["needs lam > 0"]),
])
def test_usage_errors_exit_2_with_one_line(tmp_path, capsys, args, words):
    code = main(["sweep", *args, "--store", str(tmp_path / "s.sqlite")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("Error:") and "\n" not in err
    for word in words:
        assert word in err


def test_opt_pairs_route_to_the_optimizers_that_take_them():
    from harness.plugins.manager import get_plugin_manager

    pm = get_plugin_manager()
    specs = [pm.optimizer("cocoa+"), pm.optimizer("minibatch-sgd"), pm.optimizer("admm")]
    routed = split_algorithm_pairs(specs, ["local_passes=2", "lr=0.5", "cocoa+:seed=3",
                                           "seed=1"])
    assert routed["cocoa+"] == ["local_passes=2", "seed=3", "seed=1"]
    assert routed["minibatch-sgd"] == ["lr=0.5", "seed=1"]
    assert routed["admm"] == ["local_passes=2", "seed=1"]


# --------------------------------------------------------------------------- losses and SDCA
def _dual_coordinate_objective(loss_name, alpha, z, y, q, delta):
    """-loss*(-(alpha + delta)) - delta z - q delta^2 / 2, vectorized over delta."""
    loss = linear.LOSSES[loss_name]
    delta = np.asarray(delta, dtype=float)
    return -loss.conjugate(alpha + delta, np.full(delta.shape, y)) - delta * z - 0.5 * q * delta**2


@pytest.mark.parametrize("loss_name", ["logistic", "hinge", "squared"])
def test_sdca_step_maximizes_the_one_dimensional_dual(loss_name):
    rng = np.random.default_rng(7)
    step = linear.DELTAS[loss_name]
    for _ in range(300):
        y = float(rng.choice([-1.0, 1.0])) if loss_name != "squared" else float(rng.normal())
        b = float(rng.uniform(0.0, 1.0)) if rng.random() < 0.7 else 0.0
        alpha = b * y if loss_name != "squared" else float(rng.normal())
        z, q = float(rng.normal(0, 4)), float(10 ** rng.uniform(-3, 3))
        delta = step(alpha, z, y, q)
        best = float(_dual_coordinate_objective(loss_name, alpha, z, y, q, delta))
        if loss_name == "squared":
            lo, hi = -50.0, 50.0
        else:  # the dual variable stays in y*[0, 1]
            lo, hi = sorted((-alpha, y - alpha))
        grid = np.linspace(lo, hi, 4001)
        values = _dual_coordinate_objective(loss_name, alpha, z, y, q, grid)
        assert best >= values.max() - 1e-9 * (1 + abs(best))
        if loss_name != "squared":
            assert 0.0 <= (alpha + delta) * y <= 1.0


def test_gradient_matches_finite_differences_and_objective():
    opts = {"file": "", "n": 300, "d": 6, "density": 1.0, "cond": 5.0, "noise": 0.5,
            "seed": 3, "lam": 0.01}
    for loss_name in ("logistic", "squared"):
        loss = linear.LOSSES[loss_name]
        X, y = linear.synthetic_rows(opts, loss, 0, opts["n"])
        problem = linear.LinearProblem("t", loss, X, y, n=300, offset=0, lam=0.01,
                                       comm=OneRank(), f_star=None, info={})
        x = np.random.default_rng(1).normal(size=6)
        full = problem.gradient(x, problem.minibatch(np.random.default_rng(0), 0)) + 0.01 * x
        eps = 1e-6
        numeric = [(problem.objective(x + eps * e) - problem.objective(x - eps * e)) / (2 * eps)
                   for e in np.eye(6)]
        np.testing.assert_allclose(full, numeric, rtol=1e-5, atol=1e-8)


def test_synthetic_rows_do_not_depend_on_the_split():
    opts = {"file": "", "n": 5000, "d": 300, "density": 0.3, "cond": 10.0, "noise": 0.5,
            "seed": 1, "lam": 0.01}
    loss = linear.LOSSES["logistic"]
    X, y = linear.synthetic_rows(opts, loss, 0, 5000)
    parts = [linear.synthetic_rows(opts, loss, *linear.shard(5000, r, 3)) for r in range(3)]
    assert np.array_equal(y, np.concatenate([p[1] for p in parts]))
    assert (X != linear.sp.vstack([p[0] for p in parts])).nnz == 0
    assert abs(X.nnz / (5000 * 300) - 0.3) < 0.02


# --------------------------------------------------------------------------- f*
def _data(loss_name, n=400, d=8, lam=0.01):
    opts = {"file": "", "n": n, "d": d, "density": 1.0, "cond": 10.0, "noise": 0.5,
            "seed": 5, "lam": lam}
    loss = linear.LOSSES[loss_name]
    return loss, *linear.synthetic_rows(opts, loss, 0, n)


@pytest.mark.parametrize("loss_name", ["logistic", "squared"])
def test_reference_optimum_matches_a_generic_solver(loss_name):
    loss, X, y = _data(loss_name)
    f_star = linear.reference_optimum(loss, X, y, 0.01)["f_star"]
    fun = lambda w: linear.primal(loss, X, y, 0.01, w)  # noqa: E731
    generic = scipy.optimize.minimize(fun, np.zeros(X.shape[1]), method="BFGS",
                                      options={"gtol": 1e-10})
    assert f_star <= generic.fun + 1e-13
    assert f_star >= generic.fun - 1e-9


def test_hinge_reference_is_bracketed_by_primal_and_dual():
    """f* of the SVM lies between a dual value and a primal value we compute here."""
    loss, X, y = _data("hinge", n=200, d=5)
    ref = linear.reference_optimum(loss, X, y, 0.01)
    assert ref["method"] == "SDCA" and ref["duality_gap"] <= 1e-10
    # The primal as a smooth QP: min lam/2 |w|^2 + mean(xi), xi >= 0, xi >= 1 - y x.w
    n, d = X.shape
    fun = lambda v: 0.005 * v[:d] @ v[:d] + v[d:].mean()  # noqa: E731
    cons = [{"type": "ineq", "fun": lambda v: v[d:] - 1 + y * (X @ v[:d]),
             "jac": lambda v: np.hstack([y[:, None] * X, np.eye(n)])},
            {"type": "ineq", "fun": lambda v: v[d:], "jac": lambda v: np.eye(n, n + d, d)}]
    qp = scipy.optimize.minimize(fun, np.concatenate([np.zeros(d), np.ones(n)]),
                                 jac=lambda v: np.concatenate([0.01 * v[:d], np.ones(n) / n]),
                                 constraints=cons, method="SLSQP",
                                 options={"ftol": 1e-14, "maxiter": 500})
    assert qp.success
    assert ref["f_star"] == pytest.approx(qp.fun, abs=1e-8)


def test_reference_optimum_is_cached_on_data_and_parameters(monkeypatch):
    loss, X, y = _data("logistic", n=300)
    first = linear.reference_optimum(loss, X, y, 0.01)

    def must_not_run(*args):
        raise AssertionError("solver ran although the answer is cached")

    monkeypatch.setitem(linear.SOLVERS, "logistic", must_not_run)
    assert linear.reference_optimum(loss, X, y, 0.01)["f_star"] == first["f_star"]
    with pytest.raises(AssertionError, match="cached"):  # other lam: a new key
        linear.reference_optimum(loss, X, y, 0.02)
    y2 = y.copy()
    y2[0] = -y2[0]
    with pytest.raises(AssertionError, match="cached"):  # other data: a new key
        linear.reference_optimum(loss, X, y2, 0.01)


# --------------------------------------------------------------------------- summaries
def test_summary_counts_iterations_to_target_and_medians():
    rows = [{"iteration": i, "iter_time_s": t, "objective": 1.0 + s, "suboptimality": s,
             "comm_time_s": 0.1, "compute_time_s": t - 0.1, "bytes_sent": 80}
            for i, t, s in [(1, 0.5, 1e-1), (2, 0.3, 1e-3), (3, 0.4, 1e-5), (4, 0.2, 1e-6)]]
    summary = summarize(rows, {"n": 10}, target=1e-4)
    assert summary["n"] == 10 and summary["iterations"] == 4
    assert summary["iterations_to_target"] == 3
    assert summary["time_to_target_s"] == pytest.approx(1.2)
    assert summary["time_per_iter_s"] == pytest.approx(0.35)
    assert summary["final_suboptimality"] == 1e-6 and summary["reached_target"] is True
    assert summarize(rows, {}, target=1e-9)["reached_target"] is False


# --------------------------------------------------------------------------- cnn
def test_cnn_parameters_and_gradients_share_the_flat_buffers():
    pytest.importorskip("torch")
    from plugins.optimizers import cnn

    opts = {"model": "1.0-SqNxt-23", "input_size": 32, "classes": 4, "n": 16,
            "eval_samples": 8, "seed": 0, "lam": 0.0, "lr": 0.05}
    problem = cnn.CNNProblem(opts, OneRank())
    x = problem.initial_point()
    assert x.dtype == np.float32 and x.size == problem.d
    before = problem.objective(x)
    grad = problem.gradient(x, problem.minibatch(np.random.default_rng(0), 8))
    assert np.abs(grad).sum() > 0
    for p in problem.model.parameters():  # still views of the flat buffers
        assert np.shares_memory(p.detach().numpy(), x)
        assert np.shares_memory(p.grad.numpy(), grad)
    x -= 0.05 * grad  # updating the vector updates the network
    assert problem.objective(x) != before
    assert math.isfinite(before)
