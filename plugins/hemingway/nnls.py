"""Non-negative least squares for many small problems at once, from their normal equations.

Cross-validation and the bootstrap refit the same few-column models thousands
of times on different subsets of runs. Each run's share of A'A and A'b is
computed once; a subset is a (weighted) sum of those. Calling an NNLS solver
per refit costs more in Python overhead than in arithmetic, so the refits are
solved together:

The NNLS solution is the unconstrained least-squares solution on its support
(the non-zero coefficients), and it is the best of those that are feasible. With
few columns (k <= MAX_ENUMERATED constrained ones) we solve every support of
every problem in one batched ``numpy.linalg.solve`` and keep, per problem, the
feasible one with the lowest residual (ties: the smallest support). This is
exact, not a heuristic; the tests check it against ``scipy.optimize.nnls``,
which is also used for larger k.
"""
from __future__ import annotations

import itertools
from functools import lru_cache

import numpy as np

MAX_ENUMERATED = 9  # 512 supports
RIDGE = 1e-12  # on the unit diagonal: keeps singular supports solvable, biases nothing visible
CHUNK_ELEMENTS = 4_000_000  # floats per batched solve


@lru_cache(maxsize=None)
def _supports(constrained: int) -> np.ndarray:
    """Every subset of the constrained columns as a boolean mask, smallest first."""
    combos = [combo for size in range(constrained + 1)
              for combo in itertools.combinations(range(constrained), size)]
    masks = np.zeros((len(combos), constrained), dtype=bool)
    for row, combo in enumerate(combos):
        masks[row, list(combo)] = True
    return masks


def nnls_gram(gram: np.ndarray, rhs: np.ndarray, free: int = 0) -> np.ndarray:
    """argmin ||A x - b|| with x[free:] >= 0, given A'A (..., k, k) and A'b (..., k).

    Leading dimensions are independent problems; x[..., :free] is unconstrained.
    """
    gram = np.asarray(gram, dtype=float)
    rhs = np.asarray(rhs, dtype=float)
    batch_shape, k = rhs.shape[:-1], rhs.shape[-1]
    gram = gram.reshape(-1, k, k)
    rhs = rhs.reshape(-1, k)
    # Unit diagonal: tolerances and the ridge mean the same for every column.
    scale = np.sqrt(np.einsum("bii->bi", gram))
    scale[scale == 0] = 1.0
    g = gram / (scale[:, :, None] * scale[:, None, :])
    r = rhs / scale
    if k - free > MAX_ENUMERATED:
        x = np.stack([_active_set(gb, rb, free) for gb, rb in zip(g, r)])
    else:
        step = max(1, CHUNK_ELEMENTS // (len(_supports(k - free)) * k * k))
        x = np.concatenate([_enumerate(g[s:s + step], r[s:s + step], free)
                            for s in range(0, len(r), step)])
    return (x / scale).reshape(*batch_shape, k)


def _enumerate(g: np.ndarray, r: np.ndarray, free: int) -> np.ndarray:
    k = r.shape[1]
    masks = np.hstack([np.ones((len(_supports(k - free)), free), dtype=bool),
                       _supports(k - free)])  # (S, k)
    inside = masks[:, :, None] & masks[:, None, :]
    systems = np.where(inside[None], g[:, None], 0.0)  # (B, S, k, k)
    systems += np.eye(k) * np.where(masks, RIDGE, 1.0)[None, :, None, :]
    right = np.where(masks[None], r[:, None, :], 0.0)
    x = np.linalg.solve(systems, right[..., None])[..., 0]  # (B, S, k)
    feasible = np.all(x[..., free:] >= 0, axis=-1)
    objective = np.where(feasible, -0.5 * np.einsum("bsk,bsk->bs", x, right), np.inf)
    best = np.argmin(objective, axis=1)  # supports are ordered smallest first
    return np.maximum(x[np.arange(len(r)), best], np.r_[np.full(free, -np.inf), np.zeros(k - free)])


def _active_set(g: np.ndarray, r: np.ndarray, free: int) -> np.ndarray:
    """Many columns: scipy's NNLS on a square root of the Gram matrix (free columns
    projected out first)."""
    from scipy.linalg import cholesky, solve_triangular
    from scipy.optimize import nnls

    k = r.size
    g = g + RIDGE * np.eye(k)
    if free:  # eliminate the free columns (Schur complement), solve the rest, back-substitute
        gf, gc = g[:free, :free], g[:free, free:]
        solve_f = np.linalg.solve(gf, np.hstack([gc, r[:free, None]]))
        reduced_g = g[free:, free:] - gc.T @ solve_f[:, :-1]
        reduced_r = r[free:] - gc.T @ solve_f[:, -1]
    else:
        reduced_g, reduced_r = g, r
    upper = cholesky(reduced_g, lower=False)
    constrained, _ = nnls(upper, solve_triangular(upper, reduced_r, trans="T"))
    if not free:
        return constrained
    return np.r_[np.linalg.solve(gf, r[:free] - gc @ constrained), constrained]
