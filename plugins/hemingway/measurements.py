"""The measurements Hemingway fits: one convergence curve per run, from the store or a file.

Both sources go through the same checks, so a bad value is reported the same
way (one line naming the row and what is valid) wherever it comes from.
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from harness.errors import BenchUsageError, closest, unknown_choice
from harness.paths import input_file

REQUIRED_COLUMNS = ("algorithm", "ranks", "iteration", "iter_time_s", "suboptimality")
# Read when present; every other column is ignored.
OPTIONAL_COLUMNS = ("n", "problem", "run", "objective")
# A suboptimality this far below zero (relative to the objective) is rounding in f*.
NEGATIVE_SUBOPT_TOLERANCE = 1e-9


@dataclass
class Run:
    """One run of one algorithm at one cluster size: its curve, in iteration order."""

    algorithm: str
    ranks: int
    run_id: str
    n: float | None
    iteration: np.ndarray  # int, increasing; 0 is the starting point when recorded
    iter_time: np.ndarray  # seconds per iteration; NaN where not recorded
    subopt: np.ndarray  # objective - f*; NaN where the objective was not evaluated

    @property
    def mean_iter_time(self) -> float:
        """What the system model fits: the mean, because time-to-accuracy is a sum."""
        times = self.iter_time[(self.iteration >= 1) & np.isfinite(self.iter_time)]
        return float(times.mean()) if times.size else math.nan

    @property
    def iterations_run(self) -> int:
        return int(self.iteration.max())

    @property
    def lowest_subopt(self) -> float:
        finite = self.subopt[np.isfinite(self.subopt)]
        return float(finite.min()) if finite.size else math.inf

    def iterations_to(self, eps: float) -> int | None:
        """The first recorded iteration with suboptimality <= eps (None if never)."""
        hit = np.flatnonzero(self.subopt <= eps)  # NaN compares False
        return int(self.iteration[hit[0]]) if hit.size else None

    def time_to(self, eps: float) -> float | None:
        """Measured seconds to reach eps: the iteration times summed up to that iteration.

        Iterations without a recorded time count at the run's mean time.
        """
        reached = self.iterations_to(eps)
        if reached is None:
            return None
        times = self.iter_time[(self.iteration >= 1) & (self.iteration <= reached)]
        recorded = times[np.isfinite(times)]
        return float(recorded.sum() + (reached - recorded.size) * self.mean_iter_time)


@dataclass
class Measurements:
    """The runs of one problem instance, with where they came from."""

    source: str
    problem: str | None
    runs: list[Run]
    # CPU count of the host that recorded the runs, when all were recorded on one host
    host_cpus: int | None = None
    # Problem options every stored run shared (to repeat them in a suggested sweep)
    problem_options: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> float | None:
        return self.runs[0].n if self.runs else None

    @property
    def algorithms(self) -> list[str]:
        return sorted({r.algorithm for r in self.runs}, key=str.lower)

    def runs_of(self, algorithm: str) -> list[Run]:
        return [r for r in self.runs if r.algorithm == algorithm]

    def sizes(self, algorithm: str | None = None) -> list[int]:
        runs = self.runs if algorithm is None else self.runs_of(algorithm)
        return sorted({r.ranks for r in runs})


# --------------------------------------------------------------------------- loading
def from_store(store: Any, problem: str | None, n: float | None = None) -> Measurements:
    """The complete sweeps in a :class:`harness.store.ResultStore` (one problem)."""
    rows = store.iteration_rows(problem=problem)
    if not rows:
        stored = sorted({r.problem for r in store.list(kind="sweep") if r.problem})
        if problem and problem not in stored:
            raise unknown_choice("problem in the store", problem, stored)
        what = f"of problem '{problem}' " if problem else ""
        raise BenchUsageError(
            f"no complete optimizer sweeps {what}in {store.path}; run `bench sweep` first "
            "or give measurements with --input FILE"
        )
    problem = _one_problem(rows, problem, "the store")

    def where(k: int) -> str:
        return f"result {rows[k]['result_id']} iteration {rows[k].get('iteration')}"

    measured = _build(rows, where, f"store {store.path}", problem, n, run_key="result_id")
    ids = {int(r.run_id) for r in measured.runs}
    stored = [res for res in store.list(kind="sweep") if res.id in ids]
    hosts = {(res.environment.get("host"), res.environment.get("cpu_count")) for res in stored}
    if len(hosts) == 1:
        measured.host_cpus = next(iter(hosts))[1]
    options = [res.options.get("problem") or {} for res in stored]
    measured.problem_options = {k: v for k, v in options[0].items()
                                if all(o.get(k) == v for o in options)} if options else {}
    return measured


def from_results(store: Any, results: Sequence[Any], source: str) -> Measurements:
    """The given stored sweep results (``bench tune``'s runs of one session), checked like
    any other measurements."""
    rows = []
    for res in results:
        n = res.summary.get("n", res.options.get("n"))
        for row in store.iterations(res.id):
            row.update(result_id=res.id, algorithm=res.optimizer, problem=res.problem,
                       ranks=res.ranks, n=n)
            rows.append(row)
    if not rows:
        raise BenchUsageError(f"{source} holds no iteration rows")
    return _build(rows, lambda k: f"result {rows[k]['result_id']} iteration "
                                  f"{rows[k].get('iteration')}",
                  source, rows[0]["problem"], None, run_key="result_id")


def from_file(path: str, problem: str | None, n: float | None = None) -> Measurements:
    """Rows from a CSV file (header line) or a JSON list of objects; see docs/hemingway.md."""
    rows, where = read_rows(path)
    if not rows:
        raise BenchUsageError(f"{path} holds no measurement rows")
    present = set().union(*(r.keys() for r in rows))
    for column in REQUIRED_COLUMNS:
        if column not in present:
            hint = closest(column, present - set(REQUIRED_COLUMNS))
            did_you_mean = f" (did you mean '{hint}'?)" if hint else ""
            raise BenchUsageError(
                f"{path} has no column '{column}'{did_you_mean}; required columns: "
                + ", ".join(REQUIRED_COLUMNS) + "; optional: " + ", ".join(OPTIONAL_COLUMNS)
            )
    if problem is not None and "problem" not in present:
        raise BenchUsageError(
            f"{path} has no 'problem' column, so --problem cannot pick one; drop --problem"
        )
    problem = _one_problem(rows, problem, path)
    return _build(rows, where, str(path), problem, n, run_key="run")


def read_rows(path: str) -> tuple[list[dict[str, Any]], Callable[[int], str]]:
    """Raw rows and a function naming row k for error messages."""
    file = input_file(path, "--input")
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise BenchUsageError(f"cannot read --input file '{path}': {reason}") from None
    if file.suffix.lower() == ".json" or text.lstrip()[:1] in ("[", "{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BenchUsageError(f"{path} is not valid JSON: {exc}") from None
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise BenchUsageError(
                f"{path}: JSON input must be a list of objects, one per iteration "
                "(see docs/hemingway.md)"
            )
        return data, lambda k: f"{path} item {k + 1}"
    reader = csv.DictReader(text.splitlines())
    if not reader.fieldnames:
        raise BenchUsageError(f"{path} is empty; expected a CSV header line with "
                              + ", ".join(REQUIRED_COLUMNS))
    rows = []
    for row in reader:
        if None in row:
            raise BenchUsageError(f"{path} line {reader.line_num}: more values than header columns")
        rows.append({k.strip(): v for k, v in row.items() if k is not None})
    return rows, lambda k: f"{path} line {k + 2}"


def _one_problem(rows: list[dict[str, Any]], problem: str | None, source: str) -> str | None:
    """Keep the rows of one problem; several without --problem is an error."""
    present = sorted({str(r["problem"]) for r in rows if r.get("problem") not in (None, "")})
    if problem is None:
        if len(present) > 1:
            raise BenchUsageError(
                f"{source} holds measurements of {len(present)} problems ({', '.join(present)}); "
                "pick one with --problem NAME"
            )
        return present[0] if present else None
    if problem not in present:
        raise unknown_choice(f"problem in {source}", problem, present)
    rows[:] = [r for r in rows if str(r.get("problem")) == problem]
    return problem


# --------------------------------------------------------------------------- checking
def _number(value: Any, column: str, where: str, *, allow_missing: bool) -> float:
    """A finite number, or NaN for a missing value where that is allowed."""
    if value is None or (isinstance(value, str) and value.strip() == ""):
        if allow_missing:
            return math.nan
        raise BenchUsageError(f"{where}: '{column}' is empty; it is required on every row")
    if isinstance(value, bool):
        raise BenchUsageError(f"{where}: '{column}' must be a number, not {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise BenchUsageError(f"{where}: '{column}' must be a number, not {value!r}") from None
    if not math.isfinite(number):
        raise BenchUsageError(f"{where}: '{column}' is {value!r}; values must be finite numbers")
    return number


def _integer(value: Any, column: str, where: str, minimum: int) -> int:
    number = _number(value, column, where, allow_missing=False)
    if number != int(number) or number < minimum:
        raise BenchUsageError(
            f"{where}: '{column}' must be an integer >= {minimum}, not {value!r}"
        )
    return int(number)


def _checked_row(row: dict[str, Any], where: str) -> dict[str, Any]:
    algorithm = row.get("algorithm")
    if algorithm is None or str(algorithm).strip() == "":
        raise BenchUsageError(f"{where}: 'algorithm' is empty; it is required on every row")
    time_s = _number(row.get("iter_time_s"), "iter_time_s", where, allow_missing=True)
    if time_s < 0:
        raise BenchUsageError(f"{where}: 'iter_time_s' is negative ({time_s:g}); times are >= 0")
    subopt = _number(row.get("suboptimality"), "suboptimality", where, allow_missing=True)
    if subopt < 0:
        objective = _number(row.get("objective"), "objective", where, allow_missing=True)
        scale = max(1.0, abs(objective)) if math.isfinite(objective) else 1.0
        if subopt < -NEGATIVE_SUBOPT_TOLERANCE * scale:
            raise BenchUsageError(
                f"{where}: 'suboptimality' is negative ({subopt:g}): the objective is below the "
                "reference optimum f*, so f* is wrong; suboptimality must be >= 0"
            )
        subopt = 0.0  # below f* only by rounding: the optimum is reached
    n = _number(row.get("n"), "n", where, allow_missing=True)
    if n <= 0:
        raise BenchUsageError(f"{where}: 'n' (training examples) must be positive, not {n:g}")
    return {
        "algorithm": str(algorithm).strip(),
        "ranks": _integer(row.get("ranks"), "ranks", where, 1),
        "iteration": _integer(row.get("iteration"), "iteration", where, 0),
        "iter_time_s": time_s,
        "suboptimality": subopt,
        "n": None if math.isnan(n) else n,
        "run": row.get("run"),
    }


def _build(
    rows: Sequence[dict[str, Any]],
    where: Callable[[int], str],
    source: str,
    problem: str | None,
    n_filter: float | None,
    run_key: str,
) -> Measurements:
    """Check every row, group rows into runs and keep one problem size n."""
    grouped: dict[tuple, list[dict[str, Any]]] = {}
    for k, raw in enumerate(rows):
        row = _checked_row(raw, where(k))
        run = raw.get(run_key)
        row["run"] = "" if run is None else str(run)
        key = (row["algorithm"], row["ranks"], row["run"], row["n"])
        grouped.setdefault(key, []).append(row)

    sizes_n = sorted({key[3] for key in grouped if key[3] is not None})
    if sizes_n and any(key[3] is None for key in grouped):
        raise BenchUsageError(
            f"{source}: 'n' is given for some runs and missing for others; give it for all or none"
        )
    if n_filter is not None:
        if n_filter not in sizes_n:
            listed = ", ".join(f"{v:g}" for v in sizes_n) or "none recorded"
            raise BenchUsageError(f"no runs with n={n_filter:g} in {source}; sizes n: {listed}")
        grouped = {k: v for k, v in grouped.items() if k[3] == n_filter}
    elif len(sizes_n) > 1:
        listed = ", ".join(f"{v:g}" for v in sizes_n)
        raise BenchUsageError(
            f"{source} holds runs at several problem sizes n ({listed}); their convergence "
            "differs, so rank one at a time with --n N"
        )

    runs = []
    for (algorithm, ranks, run, n), members in grouped.items():
        members.sort(key=lambda r: r["iteration"])
        iteration = np.array([r["iteration"] for r in members], dtype=np.int64)
        repeated = iteration[1:][np.diff(iteration) == 0]
        if repeated.size:
            raise BenchUsageError(
                f"{source}: {algorithm} at ranks={ranks} has iteration {int(repeated[0])} twice; "
                f"tell repeated runs apart with a '{run_key}' column"
            )
        measured = Run(
            algorithm=algorithm, ranks=ranks, run_id=run or f"{algorithm}@{ranks}", n=n,
            iteration=iteration,
            iter_time=np.array([r["iter_time_s"] for r in members], dtype=float),
            subopt=np.array([r["suboptimality"] for r in members], dtype=float),
        )
        if not measured.mean_iter_time > 0:
            raise BenchUsageError(
                f"{source}: {algorithm} at ranks={ranks} has no positive iteration time "
                "(iter_time_s) after iteration 0"
            )
        if not np.isfinite(measured.subopt).any():
            raise BenchUsageError(
                f"{source}: {algorithm} at ranks={ranks} has no suboptimality values"
            )
        runs.append(measured)
    runs.sort(key=lambda r: (r.algorithm.lower(), r.ranks, r.run_id))
    return Measurements(source=source, problem=problem, runs=runs)
