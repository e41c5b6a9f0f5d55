"""The system model: seconds per iteration on m machines, as Ernest models it.

f(m) = t0 + t1*(n/m) + t2*log(m) + t3*m with every t >= 0: a fixed cost, work
that divides across machines, tree-shaped aggregation, and per-machine
overhead. Non-negative coefficients keep each term a cost, so the model cannot
buy a better fit with a negative communication time. More terms come from
``--term EXPR`` (an expression in m and n) or from a plugin calling
:func:`register_term`.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from harness.errors import BenchUsageError
from plugins.hemingway.nnls import nnls_gram

TermFunction = Callable[[np.ndarray, float], np.ndarray]


@dataclass(frozen=True)
class Term:
    """One feature of the system model: a non-negative cost shape in m (and n)."""

    name: str
    function: TermFunction
    meaning: str = ""

    def __call__(self, m: np.ndarray, n: float) -> np.ndarray:
        return np.broadcast_to(np.asarray(self.function(m, n), dtype=float), m.shape)


BASE_TERMS = (
    Term("1", lambda m, n: np.ones_like(m), "fixed cost per iteration"),
    Term("n/m", lambda m, n: n / m, "computation divided across machines"),
    Term("log(m)", lambda m, n: np.log(m), "tree-shaped aggregation (allreduce, broadcast)"),
    Term("m", lambda m, n: m, "per-machine overhead"),
)

_REGISTERED: dict[str, Term] = {}

# What an expression term may use: m, n, numbers, arithmetic and these functions.
_FUNCTIONS = {
    "log": np.log, "log2": np.log2, "sqrt": np.sqrt, "exp": np.exp, "abs": np.abs,
    "min": np.minimum, "max": np.maximum, "ceil": np.ceil, "floor": np.floor,
}
_NODES = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Call, ast.Name, ast.Load, ast.Constant,
          ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.USub, ast.UAdd)


def register_term(name: str, function: TermFunction, meaning: str = "") -> None:
    """For plugins: offer a system-model term, used with ``bench rank --term NAME``.

    ``function(m, n)`` takes an array of cluster sizes and the problem size and
    returns non-negative costs (its coefficient is fitted, >= 0).
    """
    _REGISTERED[name] = Term(name, function, meaning)


def expression_term(text: str) -> Term:
    """A term from an expression such as ``m**2`` or ``n*max(0, 1/2 - 1/m)``."""
    allowed = f"use m, n, numbers, + - * / ** and {', '.join(_FUNCTIONS)}"
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        raise BenchUsageError(f"--term '{text}' is not an expression; {allowed}") from None
    for node in ast.walk(tree):
        if not isinstance(node, _NODES):
            raise BenchUsageError(f"--term '{text}' uses {type(node).__name__}; {allowed}")
        if isinstance(node, ast.Name) and node.id not in ("m", "n", *_FUNCTIONS):
            raise BenchUsageError(f"--term '{text}' uses unknown name '{node.id}'; {allowed}")
        if isinstance(node, ast.Call) and (
            not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS or node.keywords
        ):
            raise BenchUsageError(f"--term '{text}' calls something unknown; {allowed}")
        if isinstance(node, ast.Constant) and not isinstance(node.value, (int, float)):
            raise BenchUsageError(f"--term '{text}' has a non-numeric constant; {allowed}")
    code = compile(tree, "<term>", "eval")

    def function(m: np.ndarray, n: float) -> np.ndarray:
        return eval(code, {"__builtins__": {}}, {**_FUNCTIONS, "m": m, "n": n})  # noqa: S307

    return Term(text.strip(), function, "user term")


def shared_cores_term(cores: int) -> Term:
    """Computation when the ranks share ``cores`` cores of one machine.

    Ranks beyond the cores take turns on them, so the work per iteration stops
    shrinking at m = cores: n/min(m, cores) replaces n/m. This is what a sweep
    on one machine (8 ranks on 2 cores) measures; it does not describe a
    cluster whose machines bring their own cores.
    """
    return Term(f"n/min(m,{cores})", lambda m, n: n / np.minimum(m, cores),
                f"computation divided across at most {cores} cores")


def resolve_terms(extra: Sequence[str], cores: int | None = None) -> tuple[Term, ...]:
    """The base terms (n/m as n/min(m, cores) with ``cores``) plus each ``--term``
    (a registered name or an expression)."""
    terms = list(BASE_TERMS)
    if cores:
        terms[1] = shared_cores_term(cores)
    for text in extra:
        term = _REGISTERED.get(text.strip()) or expression_term(text)
        if any(t.name == term.name for t in terms):
            raise BenchUsageError(f"--term '{text}' is already in the model")
        probe = np.arange(1.0, 1025.0)
        with np.errstate(all="ignore"):
            try:
                values = term(probe, 1e6)
            except Exception as exc:  # a plugin's function or an odd expression
                raise BenchUsageError(f"--term '{text}' cannot be evaluated: {exc}") from None
        if not np.all(np.isfinite(values)) or np.any(values < 0):
            raise BenchUsageError(
                f"--term '{text}' must be finite and >= 0 for m = 1..1024 (it is a cost)"
            )
        terms.append(term)
    return tuple(terms)


def design_matrix(terms: Sequence[Term], m: np.ndarray, n: float) -> np.ndarray:
    m = np.asarray(m, dtype=float)
    return np.column_stack([term(m, n) for term in terms])


@dataclass
class SystemModel:
    """Fitted f(m) for one algorithm."""

    terms: tuple[Term, ...]
    coef: np.ndarray
    n: float

    def predict(self, m: np.ndarray | Sequence[int]) -> np.ndarray:
        return design_matrix(self.terms, np.asarray(m, dtype=float), self.n) @ self.coef

    def coefficients(self) -> dict[str, float]:
        return {t.name: float(c) for t, c in zip(self.terms, self.coef)}

    def describe(self) -> str:
        parts = [f"{c:.3g}" + ("" if t.name == "1" else f"*{t.name}")
                 for t, c in zip(self.terms, self.coef) if c > 0]
        return " + ".join(parts) or "0"


def fit_system(
    m: np.ndarray, seconds: np.ndarray, n: float | None, terms: Sequence[Term] = BASE_TERMS
) -> SystemModel:
    """Non-negative least squares on relative error, one row per run.

    Rows are divided by the measured time, so a 10 ms iteration at m=8 counts as
    much as a 1 s iteration at m=1 (times span orders of magnitude, and the
    ranking is judged by percentage error).
    """
    n_value = float(n) if n else 1.0
    coef = fit_coefficients(design_matrix(terms, m, n_value), seconds)
    return SystemModel(tuple(terms), coef, n_value)


def run_normal_equations(design: np.ndarray, seconds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each run's share of the normal equations of the relative-error fit (summed to fit)."""
    weighted = design / np.asarray(seconds, dtype=float)[:, None]
    return np.einsum("ri,rj->rij", weighted, weighted), weighted


def fit_coefficients(design: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    """The NNLS step of :func:`fit_system` on a ready design matrix."""
    grams, rhs = run_normal_equations(design, seconds)
    return nnls_gram(grams.sum(axis=0), rhs.sum(axis=0))
