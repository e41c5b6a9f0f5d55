"""L2-regularized linear problems: logistic regression, hinge-loss SVM, least squares.

``P(w) = (1/n) sum_i loss(x_i . w, y_i) + lam/2 ||w||^2`` with rows split in
contiguous blocks across ranks. Each problem offers minibatch gradients (for
SGD-type methods) and SDCA coordinate steps on its dual (for CoCoA and ADMM),
plus a reference optimum f* from a high-precision single-process solver,
cached on disk keyed on a content hash of the data and the problem parameters.

Synthetic data is generated in fixed row blocks, each from its own seed, so a
rank generates only its rows and the data set is identical for any number of
ranks.
"""
from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import scipy.sparse as sp
from scipy.linalg.blas import daxpy, ddot
from scipy.special import expit, xlogy

from harness.errors import BenchUsageError
from plugins.optimizers.libsvm import cache_dir

SOLVER_VERSION = "fstar-v1"  # bump when the reference solvers change
SYNTHETIC_VERSION = "synthetic-v1"
ELEMENTS_PER_BLOCK = 1 << 20  # rows per generated block = this // d (at least 64)


# --------------------------------------------------------------------------- losses
@dataclass(frozen=True)
class Loss:
    """One loss with what primal and dual methods need, vectorized over examples."""

    name: str
    smoothness: float  # Lipschitz constant of loss'' (1 for the nonsmooth hinge: a heuristic)
    binary_labels: bool
    value: Callable[[np.ndarray, np.ndarray], np.ndarray]
    derivative: Callable[[np.ndarray, np.ndarray], np.ndarray]  # d loss / d margin
    conjugate: Callable[[np.ndarray, np.ndarray], np.ndarray]  # loss*(-alpha), elementwise


def _logistic_conj(alpha: np.ndarray, y: np.ndarray) -> np.ndarray:
    b = np.clip(alpha * y, 0.0, 1.0)
    return xlogy(b, b) + xlogy(1 - b, 1 - b)


LOSSES = {
    "logistic": Loss(
        "logistic", 0.25, True,
        value=lambda z, y: np.logaddexp(0.0, -y * z),
        derivative=lambda z, y: -y * expit(-y * z),
        conjugate=_logistic_conj,
    ),
    "hinge": Loss(
        "hinge", 1.0, True,
        value=lambda z, y: np.maximum(0.0, 1.0 - y * z),
        derivative=lambda z, y: np.where(y * z < 1.0, -y, 0.0),
        conjugate=lambda a, y: -np.clip(a * y, 0.0, 1.0),
    ),
    "squared": Loss(
        "squared", 1.0, False,
        value=lambda z, y: 0.5 * (z - y) ** 2,
        derivative=lambda z, y: z - y,
        conjugate=lambda a, y: 0.5 * a * a - a * y,
    ),
}


# --------------------------------------------------------------------------- SDCA steps
def _logistic_delta(alpha: float, z: float, y: float, q: float) -> float:
    """Exact 1-D dual maximization for the logistic loss, by Newton in logit space.

    With b = alpha*y in (0, 1) the optimum solves logit(b') + y z + q (b' - b) = 0;
    in t = logit(b') the function is increasing with slope in [1, 1 + q/4].
    """
    b = alpha * y
    c = y * z - q * b
    # G(t) = t + c + q sigmoid(t) is increasing, convex for t < 0 and concave for t > 0.
    # The root's sign is the sign of -G(0). On the root's side of 0, Newton iterates
    # clamped at 0 converge monotonically (after at most one overshoot). Starting
    # from the current dual value logit(b) makes late SDCA steps take one iteration.
    negative_root = c + 0.5 * q > 0.0
    t = 0.0
    if 1e-12 < b < 1.0 - 1e-12:
        t_b = math.log(b / (1.0 - b))
        if (t_b <= 0.0) == negative_root:
            t = t_b
    for _ in range(60):
        s = 1.0 / (1.0 + math.exp(-t)) if t > -700.0 else 0.0
        step = (t + c + q * s) / (1.0 + q * s * (1.0 - s))
        t -= step
        if negative_root:
            t = min(t, 0.0)
        else:
            t = max(t, 0.0)
        if abs(step) <= 1e-7 * (1.0 + abs(t)):  # quadratic: the error left is ~1e-14
            break
    t = min(max(t, -36.0), 36.0)
    return y / (1.0 + math.exp(-t)) - alpha


def _hinge_delta(alpha: float, z: float, y: float, q: float) -> float:
    b = alpha * y
    if q <= 0.0:
        return 0.0
    return y * min(1.0, max(0.0, (1.0 - y * z) / q + b)) - alpha


def _squared_delta(alpha: float, z: float, y: float, q: float) -> float:
    return (y - z - alpha) / (1.0 + q)


DELTAS = {"logistic": _logistic_delta, "hinge": _hinge_delta, "squared": _squared_delta}


def sdca_dense(delta: Callable, X: np.ndarray, y: list[float], sqnorm: list[float],
               alpha: np.ndarray, v: np.ndarray, order: list[int], scale: float) -> None:
    """SDCA over rows ``order`` of a dense C-contiguous float64 matrix, in place.

    BLAS ddot/daxpy on row views keep the per-step cost near 1.5 microseconds.
    """
    a = alpha.tolist()
    for i in order:
        row = X[i]
        d = delta(a[i], ddot(row, v), y[i], scale * sqnorm[i])
        if d != 0.0:
            a[i] += d
            daxpy(row, v, a=scale * d)
    alpha[:] = a


def sdca_sparse(delta: Callable, X: sp.csr_matrix, y: list[float], sqnorm: list[float],
                alpha: np.ndarray, v: np.ndarray, order: list[int], scale: float) -> None:
    """SDCA over rows ``order`` of a CSR matrix, in place."""
    a = alpha.tolist()
    indptr, indices, data = X.indptr, X.indices, X.data
    for i in order:
        lo, hi = indptr[i], indptr[i + 1]
        cols = indices[lo:hi]
        vals = data[lo:hi]
        d = delta(a[i], float(vals @ v[cols]), y[i], scale * sqnorm[i])
        if d != 0.0:
            a[i] += d
            v[cols] += (scale * d) * vals
    alpha[:] = a


# --------------------------------------------------------------------------- data
def synthetic_scales(d: int, cond: float) -> np.ndarray:
    """Column scales giving a feature covariance with eigenvalues from 1 down to 1/cond."""
    if d == 1:
        return np.ones(1)
    return cond ** (-0.5 * np.arange(d) / (d - 1))


def synthetic_block_rows(d: int) -> int:
    return max(64, ELEMENTS_PER_BLOCK // max(d, 1))


def synthetic_rows(opts: dict[str, Any], loss: Loss, start: int, stop: int):
    """Rows ``[start, stop)`` of the synthetic data set described by ``opts``.

    Every block of rows comes from its own seed, so the rows are the same however
    the data set is split across ranks.
    """
    n, d, seed = opts["n"], opts["d"], opts["seed"]
    density, noise = opts["density"], opts["noise"]
    scales = synthetic_scales(d, opts["cond"])
    truth_rng = np.random.default_rng([seed, 0x7FFF_FFFF])
    w_true = truth_rng.standard_normal(d) / math.sqrt(max(float(np.sum(scales**2) * density),
                                                          1e-12))
    rows_per_block = synthetic_block_rows(d)
    blocks_X, blocks_y = [], []
    for block in range(start // rows_per_block, (max(stop, start + 1) - 1) // rows_per_block + 1):
        lo = block * rows_per_block
        hi = min(lo + rows_per_block, n)
        rng = np.random.default_rng([seed, block])
        count = hi - lo
        if density >= 1.0:
            Xb = rng.standard_normal((count, d)) * scales
        else:
            # Columns drawn with replacement, duplicates dropped: Poisson(-d ln(1 - p))
            # draws per row leave each column nonzero with probability p.
            draws = rng.poisson(-d * math.log1p(-density), size=count)
            rows = np.repeat(np.arange(count), draws)
            cols = rng.integers(0, d, size=rows.size)
            keys = np.unique(rows.astype(np.int64) * d + cols)
            rows, cols = keys // d, keys % d
            vals = rng.standard_normal(keys.size) * scales[cols]
            Xb = sp.csr_matrix((vals, (rows, cols)), shape=(count, d))
        z = Xb @ w_true
        eps = rng.standard_normal(count) * noise
        if loss.binary_labels:
            yb = np.where(z + eps >= 0.0, 1.0, -1.0)
        else:
            yb = z + eps
        a, b = max(start, lo) - lo, min(stop, hi) - lo
        blocks_X.append(Xb[a:b])
        blocks_y.append(yb[a:b])
    if density >= 1.0:
        X = np.ascontiguousarray(np.concatenate(blocks_X)) if blocks_X else np.zeros((0, d))
    else:
        X = sp.vstack(blocks_X, format="csr") if blocks_X else sp.csr_matrix((0, d))
    y = np.concatenate(blocks_y) if blocks_y else np.zeros(0)
    return X, y


def load_file_rows(path: str, loss: Loss):
    """The whole LIBSVM file as (CSR, labels), labels mapped to -1/+1 for classifiers."""
    from plugins.optimizers import libsvm

    parsed = libsvm.load(path)
    X = sp.csr_matrix((parsed["data"], parsed["indices"], parsed["indptr"]),
                      shape=(len(parsed["labels"]), parsed["d"]))
    y = parsed["labels"].copy()
    if loss.binary_labels:
        classes = np.unique(y)
        if classes.size != 2:
            shown = ", ".join(f"{c:g}" for c in classes[:5]) + (" ..." if classes.size > 5 else "")
            raise BenchUsageError(
                f"LIBSVM file '{path}' has {classes.size} distinct labels ({shown}); "
                f"{'logistic regression' if loss.name == 'logistic' else 'the SVM'} needs "
                "exactly two (use problem lsq for regression targets)")
        y = np.where(y == classes[1], 1.0, -1.0)
    return X, y


def content_hash(X: Any, y: np.ndarray) -> str:
    """SHA-256 over the data's arrays (dense or CSR) and labels."""
    digest = hashlib.sha256()
    if sp.issparse(X):
        X = X.tocsr()
        digest.update(f"csr{X.shape}".encode())
        for arr in (X.indptr, X.indices, X.data):
            digest.update(np.ascontiguousarray(arr).tobytes())
    else:
        digest.update(f"dense{X.shape}{X.dtype}".encode())
        digest.update(np.ascontiguousarray(X).tobytes())
    digest.update(np.ascontiguousarray(y, dtype=np.float64).tobytes())
    return digest.hexdigest()


def full_data(opts: dict[str, Any], loss: Loss):
    """The whole data set in one process (for the reference solver)."""
    if opts["file"]:
        return load_file_rows(opts["file"], loss)
    return synthetic_rows(opts, loss, 0, opts["n"])


# --------------------------------------------------------------------------- f*
def primal(loss: Loss, X: Any, y: np.ndarray, lam: float, w: np.ndarray) -> float:
    return float(np.mean(loss.value(X @ w, y)) + 0.5 * lam * (w @ w))


def _solve_squared(X: Any, y: np.ndarray, lam: float, n: int) -> tuple[np.ndarray, dict]:
    d = X.shape[1]
    if d <= 4000:
        G = X.T @ X
        G = G.toarray() if sp.issparse(G) else G
        A = G / n + lam * np.eye(d)
        b = X.T @ y / n
        import scipy.linalg

        if lam > 0:
            w = scipy.linalg.solve(A, b, assume_a="pos")
        else:
            w = scipy.linalg.lstsq(A, b)[0]
        return w, {"method": "normal equations (direct)"}
    from scipy.sparse.linalg import LinearOperator, cg

    op = LinearOperator((d, d), matvec=lambda v: X.T @ (X @ v) / n + lam * v, dtype=np.float64)
    w, info = cg(op, X.T @ y / n, rtol=1e-14, maxiter=20 * d)
    return w, {"method": "conjugate gradients", "cg_info": int(info)}


def _solve_logistic(X: Any, y: np.ndarray, lam: float, n: int) -> tuple[np.ndarray, dict]:
    """Newton's method with a backtracking line search; quadratic convergence to ~1e-15."""
    d = X.shape[1]
    loss = LOSSES["logistic"]
    w = np.zeros(d)
    f = primal(loss, X, y, lam, w)
    dense_hessian = d <= 4000
    from scipy.sparse.linalg import LinearOperator, cg

    grad_norm = float("inf")
    for it in range(200):
        z = X @ w
        s = expit(-y * z)
        grad = X.T @ (-y * s) / n + lam * w
        grad_norm = float(np.linalg.norm(grad))
        if grad_norm < 1e-13:
            break
        weights = s * (1 - s) / n
        if dense_hessian:
            XD = X.multiply(weights[:, None]) if sp.issparse(X) else X * weights[:, None]
            H = X.T @ XD
            H = H.toarray() if sp.issparse(H) else np.asarray(H)
            H[np.diag_indices(d)] += lam
            import scipy.linalg

            direction = -scipy.linalg.solve(H, grad, assume_a="pos")
        else:
            op = LinearOperator((d, d), dtype=np.float64,
                                matvec=lambda v: X.T @ (weights * (X @ v)) + lam * v)
            direction, _ = cg(op, -grad, rtol=1e-12, maxiter=10 * d)
        step, slope = 1.0, float(grad @ direction)
        while step > 1e-12:
            candidate = w + step * direction
            fc = primal(loss, X, y, lam, candidate)
            if fc <= f + 1e-4 * step * slope:
                break
            step *= 0.5
        if fc >= f and step <= 1e-12:
            break
        w, f = candidate, fc
    return w, {"method": "Newton", "newton_iterations": it, "gradient_norm": grad_norm}


def _solve_hinge(X: Any, y: np.ndarray, lam: float, n: int) -> tuple[np.ndarray, dict]:
    """SDCA to a relative duality gap of 1e-11: f* is certified between D and P."""
    loss = LOSSES["hinge"]
    Xc = X.tocsr() if sp.issparse(X) else np.ascontiguousarray(X, dtype=np.float64)
    sqnorm = (np.asarray(Xc.multiply(Xc).sum(axis=1)).ravel() if sp.issparse(Xc)
              else np.einsum("ij,ij->i", Xc, Xc)).tolist()
    alpha = np.zeros(n)
    w = np.zeros(X.shape[1])
    labels = y.tolist()
    kernel = sdca_sparse if sp.issparse(Xc) else sdca_dense
    rng = np.random.default_rng(0)
    scale = 1.0 / (lam * n)
    best, gap, epoch = float("inf"), float("inf"), 0
    for epoch in range(1, 5001):
        kernel(_hinge_delta, Xc, labels, sqnorm, alpha, w, rng.permutation(n).tolist(), scale)
        p = primal(loss, Xc, y, lam, w)
        dual = float(-np.mean(loss.conjugate(alpha, y)) - 0.5 * lam * (w @ w))
        best = min(best, p)
        gap = best - dual
        if gap <= 1e-11 * max(1.0, abs(best)):
            break
    return w, {"method": "SDCA", "epochs": epoch, "duality_gap": gap, "f_value": best}


SOLVERS = {"squared": _solve_squared, "logistic": _solve_logistic, "hinge": _solve_hinge}


def _reference(key: str, loss_name: str, lam: float, X: Any, y: np.ndarray) -> dict[str, Any]:
    """Solve once; joblib caches the answer under ``key`` (X and y are not hashed again)."""
    start = time.perf_counter()
    w, info = SOLVERS[loss_name](X, y, lam, X.shape[0])
    value = primal(LOSSES[loss_name], X, y, lam, w)
    f_star = min(value, info.pop("f_value", value))
    return {"f_star": f_star, "solve_seconds": time.perf_counter() - start, **info}


def reference_optimum(loss: Loss, X: Any, y: np.ndarray, lam: float) -> dict[str, Any]:
    """f* of ``P`` on (X, y), from the on-disk cache when this data was solved before."""
    from joblib import Memory

    key = f"{SOLVER_VERSION}:{loss.name}:{lam!r}:{content_hash(X, y)}"
    memory = Memory(cache_dir("fstar"), verbose=0)
    solve = memory.cache(_reference, ignore=["X", "y"])
    result = dict(solve(key, loss.name, lam, X, y))
    result["data_hash"] = key.rsplit(":", 1)[1]
    return result


# --------------------------------------------------------------------------- the problem
@dataclass
class Batch:
    rows: np.ndarray | None  # local row indices; None = every local row
    scale: float  # gradient = scale * sum over rows


def _row_sqnorms(X: Any) -> np.ndarray:
    if sp.issparse(X):
        return np.asarray(X.multiply(X).sum(axis=1)).ravel()
    return np.einsum("ij,ij->i", X, X)


class LinearProblem:
    """The rank-local part of one linear problem (follows protocol.DualProblem)."""

    def __init__(self, name: str, loss: Loss, X: Any, y: np.ndarray, *, n: int, offset: int,
                 lam: float, comm: Any, f_star: float | None, info: dict[str, Any]) -> None:
        self.name = name
        self.loss = loss
        self.X = X.tocsr() if sp.issparse(X) else np.ascontiguousarray(X, dtype=np.float64)
        self.y = np.asarray(y, dtype=np.float64)
        self.n, self.d = n, self.X.shape[1]
        self.n_local, self.offset = self.X.shape[0], offset
        self.lam = lam
        self.comm = comm
        self.f_star = f_star
        self.info = info
        self._labels = self.y.tolist()
        sq = _row_sqnorms(self.X)
        self._sqnorm = sq.tolist()
        self._kernel = sdca_sparse if sp.issparse(self.X) else sdca_dense
        self._delta = DELTAS[loss.name]
        largest = np.array([sq.max() if sq.size else 0.0])
        self.max_row_sqnorm = float(comm.allreduce(largest, np.empty(1), op="max")[0])
        self.max_eigenvalue = self._covariance_max_eigenvalue()
        self.batch_hint = min(1000, n)

    # -- setup helpers
    def _covariance_max_eigenvalue(self, iterations: int = 60) -> float:
        """Largest eigenvalue of X^T X / n by power iteration (collective, setup only)."""
        v = np.random.default_rng(12345).standard_normal(self.d)
        v /= np.linalg.norm(v)
        out = np.empty_like(v)
        value = 0.0
        for _ in range(iterations):
            local = self.X.T @ (self.X @ v) if self.n_local else np.zeros(self.d)
            self.comm.allreduce(np.asarray(local, dtype=np.float64), out)
            out /= self.n
            value = float(np.linalg.norm(out))
            if value == 0.0:
                return 0.0
            v = out / value
        return value

    @property
    def curvature(self) -> float:
        """Smoothness constant of the loss average (without lam): an ADMM rho scale."""
        return self.loss.smoothness * self.max_eigenvalue

    # -- Problem protocol
    def initial_point(self) -> np.ndarray:
        return np.zeros(self.d)

    def minibatch(self, rng: np.random.Generator, size: int) -> Batch:
        if size <= 0:
            return Batch(None, 1.0 / self.n)
        drawn = rng.integers(0, self.n, size=size)
        mine = drawn[(drawn >= self.offset) & (drawn < self.offset + self.n_local)] - self.offset
        return Batch(mine, 1.0 / size)

    def local_minibatch(self, rng: np.random.Generator, size: int) -> Batch:
        if size <= 0:
            return Batch(None, 1.0 / max(self.n_local, 1))
        return Batch(rng.integers(0, self.n_local, size=size), 1.0 / size)

    def gradient(self, x: np.ndarray, batch: Batch) -> np.ndarray:
        if batch.rows is None:
            X, y = self.X, self.y
        else:
            if batch.rows.size == 0:
                return np.zeros(self.d)
            X, y = self.X[batch.rows], self.y[batch.rows]
        g = X.T @ (self.loss.derivative(X @ x, y) * batch.scale)
        return np.asarray(g, dtype=np.float64).ravel()

    def step_size(self, batch: int) -> float:
        """1/L_b with the minibatch smoothness L_b = c (n-b)/(b(n-1)) L_max + n(b-1)/(b(n-1)) L."""
        c = self.loss.smoothness
        full = c * self.max_eigenvalue + self.lam
        single = c * self.max_row_sqnorm + self.lam
        n = self.n
        if batch <= 0 or batch >= n or n == 1:
            return 1.0 / full
        smooth = (n * (batch - 1) * full + (n - batch) * single) / (batch * (n - 1))
        return 1.0 / smooth

    def objective(self, x: np.ndarray) -> float:
        local = float(np.sum(self.loss.value(self.X @ x, self.y))) if self.n_local else 0.0
        (total,) = self.comm.sum_scalars(local)
        return total / self.n + 0.5 * self.lam * float(x @ x)

    # -- DualProblem protocol
    def sdca(self, alpha: np.ndarray, v: np.ndarray, order: Any, scale: float) -> None:
        order = order.tolist() if hasattr(order, "tolist") else list(order)
        self._kernel(self._delta, self.X, self._labels, self._sqnorm, alpha, v, order, scale)

    def conjugate_sum(self, alpha: np.ndarray) -> float:
        return float(np.sum(self.loss.conjugate(alpha, self.y)))

    def transpose_times(self, alpha: np.ndarray) -> np.ndarray:
        return np.asarray(self.X.T @ alpha, dtype=np.float64).ravel()


def shard(n: int, rank: int, size: int) -> tuple[int, int]:
    """Rows ``[start, stop)`` of rank ``rank`` out of ``size`` (contiguous, balanced)."""
    return n * rank // size, n * (rank + 1) // size


def check_options(name: str, loss: Loss, opts: dict[str, Any]) -> None:
    if loss.binary_labels and opts["lam"] <= 0:
        raise BenchUsageError(f"problem '{name}' needs lam > 0 (got {opts['lam']})")


def describe(name: str, opts: dict[str, Any]) -> str:
    if opts["file"]:
        return f"{name} on {opts['file']}"
    return (f"{name} on synthetic data (n={opts['n']}, d={opts['d']}, density={opts['density']}, "
            f"cond={opts['cond']}, seed={opts['seed']})")


def prepare(name: str, loss_name: str, opts: dict[str, Any]) -> dict[str, Any]:
    """Launcher side, one process: validate inputs and compute (or look up) f*."""
    loss = LOSSES[loss_name]
    check_options(name, loss, opts)
    X, y = full_data(opts, loss)
    if X.shape[0] == 0:
        raise BenchUsageError(f"problem '{name}' has no examples")
    ref = reference_optimum(loss, X, y, opts["lam"])
    return {"n": X.shape[0], "d": X.shape[1], "f_star": ref["f_star"]}


def build(name: str, loss_name: str, opts: dict[str, Any], comm: Any) -> LinearProblem:
    """Rank side: this rank's rows, and f* computed (or read from the cache) on rank 0."""
    from plugins.optimizers.runner import on_root

    loss = LOSSES[loss_name]
    check_options(name, loss, opts)

    full: list[Any] = []  # rank 0 keeps the whole data set it hashed and solved

    def root_setup() -> dict[str, Any]:
        X, y = full_data(opts, loss)
        if X.shape[0] < comm.size:
            raise BenchUsageError(f"problem '{name}' has {X.shape[0]} examples, fewer than "
                                  f"the {comm.size} ranks")
        full.extend((X, y))
        ref = reference_optimum(loss, X, y, opts["lam"])
        return {"n": int(X.shape[0]), "d": int(X.shape[1]), **ref}

    info = on_root(comm, root_setup)
    n = info["n"]
    start, stop = shard(n, comm.rank, comm.size)
    if full:  # copies, so the whole data set is freed
        X, y = full[0][start:stop].copy(), full[1][start:stop].copy()
        full.clear()
    elif opts["file"]:
        X, y = load_file_rows(opts["file"], loss)  # parsed once, then from the cache
        X, y = X[start:stop], y[start:stop]
    else:
        X, y = synthetic_rows(opts, loss, start, stop)
    info["description"] = describe(name, opts)
    return LinearProblem(name, loss, X, y, n=n, offset=start, lam=opts["lam"], comm=comm,
                         f_star=info["f_star"], info=info)
