"""The results store: one SQLite file, safe for several ``bench`` processes at once.

Three tables: ``results`` holds one row per run (a model on a backend, or one
optimizer sweep at one cluster size) with its options, environment, summary,
per-layer rows and raw samples; ``iterations`` holds the per-iteration
measurements of optimizer sweeps; ``groups`` ties repeated runs of one cell
together (``bench run --repeat K``: each run its own result, all with the same
``group_id``). A store made before groups existed gains the column when opened;
nothing in it changes. Every write commits at once (WAL mode, a
busy timeout, ``BEGIN IMMEDIATE``), so a crash, a failed MPI rank or Ctrl-C
loses nothing already written, and a partial sweep stays visible as partial.
"""
from __future__ import annotations

import json
import os
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from harness.environment import utc_now
from harness.errors import BenchUsageError
from harness.paths import output_file
from harness.output import jsonable

STORE_ENV = "BENCH_STORE"
STATUSES = ("running", "complete", "failed", "timeout", "interrupted")

# Per-iteration columns of optimizer sweeps (anything else goes into ``extra``).
ITERATION_COLUMNS = (
    "iteration",
    "iter_time_s",
    "compute_time_s",
    "comm_time_s",
    "eval_time_s",
    "bytes_sent",
    "objective",
    "suboptimality",
    "duality_gap",
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    created_utc TEXT NOT NULL,
    finished_utc TEXT,
    plugin TEXT,
    model TEXT,
    hardware TEXT,
    optimizer TEXT,
    problem TEXT,
    ranks INTEGER,
    options TEXT NOT NULL DEFAULT '{}',
    environment TEXT NOT NULL DEFAULT '{}',
    summary TEXT NOT NULL DEFAULT '{}',
    layers TEXT NOT NULL DEFAULT '[]',
    samples TEXT NOT NULL DEFAULT '[]',
    error TEXT
);
CREATE TABLE IF NOT EXISTS iterations (
    result_id INTEGER NOT NULL REFERENCES results(id) ON DELETE CASCADE,
    iteration INTEGER NOT NULL,
    iter_time_s REAL,
    compute_time_s REAL,
    comm_time_s REAL,
    eval_time_s REAL,
    bytes_sent INTEGER,
    objective REAL,
    suboptimality REAL,
    duality_gap REAL,
    extra TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (result_id, iteration)
);
CREATE INDEX IF NOT EXISTS results_kind ON results(kind, problem);
CREATE TABLE IF NOT EXISTS groups (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_utc TEXT NOT NULL,
    label TEXT NOT NULL,
    planned_runs INTEGER NOT NULL
);
"""
# Columns added after the first release: (name, declaration), added to older stores on open.
_ADDED_COLUMNS = (("group_id", "INTEGER REFERENCES groups(id)"),)
_ADDED_INDEXES = "CREATE INDEX IF NOT EXISTS results_group ON results(group_id)"

_JSON_FIELDS = ("options", "environment", "summary", "layers", "samples")


def default_store_path() -> Path:
    """``$BENCH_STORE``, else ``$XDG_DATA_HOME/bench/results.sqlite`` (``~/.local/share``)."""
    if os.environ.get(STORE_ENV):
        return Path(os.environ[STORE_ENV]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return Path(base) / "bench" / "results.sqlite"


def _dumps(value: Any) -> str:
    try:  # plain JSON data (the usual case) needs no sanitizing walk
        return json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):  # NaN/inf, numpy scalars, ...
        return json.dumps(jsonable(value), sort_keys=False, default=str)


@dataclass
class StoredResult:
    """One row of ``results``, with its JSON fields decoded."""

    id: int
    kind: str
    status: str
    created_utc: str
    finished_utc: str | None = None
    plugin: str | None = None
    model: str | None = None
    hardware: str | None = None
    optimizer: str | None = None
    problem: str | None = None
    ranks: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    layers: list[dict[str, Any]] = field(default_factory=list)
    samples: list[float] = field(default_factory=list)
    error: str | None = None
    group_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @property
    def subject(self) -> str:
        """What was measured, in one phrase."""
        if self.kind == "sweep":
            return f"{self.optimizer} on {self.problem}, {self.ranks} ranks"
        return f"{self.model} on {self.hardware}"


class ResultStore:
    """Reads and writes results; open one per process (connections are not shared)."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        chosen = bool(path) or bool(os.environ.get(STORE_ENV))
        # Only the default location's folders are made (and that is said): a folder the
        # user named and that is missing is a typo, not a request.
        self.path = output_file(path or os.environ.get(STORE_ENV) or default_store_path(),
                                "--store" if path else f"${STORE_ENV}" if chosen
                                else "results store", create_parents=not chosen)
        try:
            self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            self._db.execute("PRAGMA busy_timeout = 60000")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA foreign_keys = ON")
            with self._write():
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._migrate()
        except sqlite3.DatabaseError as exc:
            raise BenchUsageError(
                f"cannot open results store '{self.path}': {exc} "
                f"(give another with --store PATH or ${STORE_ENV})"
            ) from None
        except OSError as exc:
            raise BenchUsageError(f"cannot create results store '{self.path}': {exc}") from None
        self._db.row_factory = sqlite3.Row

    def _migrate(self) -> None:
        """Add the columns newer versions store (inside the schema transaction, so two
        processes opening an old store at once cannot both add them)."""
        have = {row[1] for row in self._db.execute("PRAGMA table_info(results)")}
        for name, declaration in _ADDED_COLUMNS:
            if name not in have:
                self._db.execute(f"ALTER TABLE results ADD COLUMN {name} {declaration}")
        self._db.execute(_ADDED_INDEXES)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        else:
            self._db.execute("COMMIT")

    # ------------------------------------------------------------------ writing
    def add(
        self,
        kind: str,
        *,
        status: str = "complete",
        plugin: str | None = None,
        model: str | None = None,
        hardware: str | None = None,
        optimizer: str | None = None,
        problem: str | None = None,
        ranks: int | None = None,
        options: dict[str, Any] | None = None,
        environment: dict[str, Any] | None = None,
        summary: dict[str, Any] | None = None,
        layers: Sequence[dict[str, Any]] = (),
        samples: Sequence[float] = (),
        error: str | None = None,
        group_id: int | None = None,
    ) -> int:
        """Write one result (``status='running'`` for one still under way); returns its id."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}")
        now = utc_now()
        with self._write() as db:
            cur = db.execute(
                "INSERT INTO results (kind, status, created_utc, finished_utc, plugin, model, "
                "hardware, optimizer, problem, ranks, options, environment, summary, layers, "
                "samples, error, group_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    kind, status, now, None if status == "running" else now, plugin, model,
                    hardware, optimizer, problem, ranks, _dumps(options or {}),
                    _dumps(environment or {}), _dumps(summary or {}), _dumps(list(layers)),
                    _dumps(list(samples)), error, group_id,
                ),
            )
            return int(cur.lastrowid)

    def add_group(self, label: str, planned_runs: int) -> int:
        """Open a group for repeated runs of one cell; returns its id (results join it by
        passing ``group_id`` to :meth:`add`)."""
        with self._write() as db:
            cur = db.execute("INSERT INTO groups (created_utc, label, planned_runs) "
                             "VALUES (?,?,?)", (utc_now(), label, planned_runs))
            return int(cur.lastrowid)

    def drop_group_if_empty(self, group_id: int) -> None:
        """Remove a group no run joined (its first run failed)."""
        with self._write() as db:
            db.execute("DELETE FROM groups WHERE id=? AND NOT EXISTS "
                       "(SELECT 1 FROM results WHERE group_id=?)", (group_id, group_id))

    def add_iterations(self, result_id: int, rows: Sequence[dict[str, Any]]) -> None:
        """Append per-iteration rows to a sweep result (committed at once)."""
        if not rows:
            return
        values = []
        for row in rows:
            extra = {k: v for k, v in row.items() if k not in ITERATION_COLUMNS}
            values.append(
                (result_id,)
                + tuple(jsonable(row.get(c)) for c in ITERATION_COLUMNS)
                + (_dumps(extra),)
            )
        marks = ",".join("?" * (len(ITERATION_COLUMNS) + 2))
        with self._write() as db:
            db.executemany(
                f"INSERT OR REPLACE INTO iterations (result_id, {', '.join(ITERATION_COLUMNS)}, "
                f"extra) VALUES ({marks})",
                values,
            )

    def finish(
        self,
        result_id: int,
        status: str,
        *,
        summary: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        """Close a running result with its final status (and summary or error)."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}")
        with self._write() as db:
            if summary is not None:
                db.execute(
                    "UPDATE results SET status=?, finished_utc=?, summary=?, error=? WHERE id=?",
                    (status, utc_now(), _dumps(summary), error, result_id),
                )
            else:
                db.execute(
                    "UPDATE results SET status=?, finished_utc=?, error=? WHERE id=?",
                    (status, utc_now(), error, result_id),
                )

    # ------------------------------------------------------------------ reading
    def _decode(self, row: sqlite3.Row) -> StoredResult:
        data = dict(row)
        for key in _JSON_FIELDS:
            data[key] = json.loads(data[key]) if data[key] else ({} if key not in (
                "layers", "samples") else [])
        return StoredResult(**data)

    def get(self, result_id: int | str) -> StoredResult:
        try:
            rid = int(result_id)
        except (TypeError, ValueError):
            raise BenchUsageError(f"result id must be a number, not '{result_id}'") from None
        # SQLite ids are 64-bit: a larger number is no stored result (and no overflow)
        row = (self._db.execute("SELECT * FROM results WHERE id=?", (rid,)).fetchone()
               if -2**63 <= rid < 2**63 else None)
        if row is None:
            last = self._db.execute("SELECT MAX(id) FROM results").fetchone()[0]
            valid = f"ids run from 1 to {last}" if last else "the store is empty"
            raise BenchUsageError(f"no result with id {rid} in {self.path} ({valid})")
        return self._decode(row)

    def check_group(self, group_id: int) -> None:
        """Raise a usage error unless ``group_id`` names a stored group."""
        if self._db.execute("SELECT 1 FROM groups WHERE id=?", (group_id,)).fetchone() is None:
            last = self._db.execute("SELECT MAX(id) FROM groups").fetchone()[0]
            valid = f"group ids run from g1 to g{last}" if last else "the store has no groups"
            raise BenchUsageError(f"no group g{group_id} in {self.path} ({valid}; "
                                  "bench run --repeat K makes one)")

    def group(self, group_id: int | str) -> list[StoredResult]:
        """The results of one group, oldest first (``g12`` or ``12``)."""
        text = str(group_id).strip()
        digits = text[1:] if text[:1] in ("g", "G") else text
        if not digits.isdigit():
            raise BenchUsageError(f"group id must be g followed by a number, not '{group_id}'")
        gid = int(digits)
        self.check_group(gid)
        return self.list(group_id=gid)

    def group_info(self, group_id: int) -> dict[str, Any]:
        """The group's own row: ``id, created_utc, label, planned_runs``."""
        self.check_group(group_id)
        return dict(self._db.execute("SELECT * FROM groups WHERE id=?", (group_id,)).fetchone())

    def list(
        self,
        kind: str | None = None,
        limit: int | None = None,
        **where: Any,
    ) -> list[StoredResult]:
        """Results, newest last; ``where`` filters on plain columns (``problem='logreg'``)."""
        clauses, params = [], []
        if kind:
            clauses.append("kind = ?")
            params.append(kind)
        for key, value in where.items():
            if key not in StoredResult.__dataclass_fields__ or key in _JSON_FIELDS:
                raise ValueError(f"cannot filter on {key}")
            if isinstance(value, (list, tuple, set)):
                clauses.append(f"{key} IN ({','.join('?' * len(value))})")
                params.extend(value)
            else:
                clauses.append(f"{key} = ?")
                params.append(value)
        sql = "SELECT * FROM results"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        if limit:  # the newest ``limit`` rows, still listed oldest first
            sql = f"SELECT * FROM ({sql} ORDER BY id DESC LIMIT {int(limit)})"
        sql += " ORDER BY id"
        return [self._decode(r) for r in self._db.execute(sql, params)]

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0])

    def iterations(self, result_id: int) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT * FROM iterations WHERE result_id=? ORDER BY iteration", (result_id,)
        )
        out = []
        for r in rows:
            row = dict(r)
            row.update(json.loads(row.pop("extra") or "{}"))
            out.append(row)
        return out

    def iteration_rows(
        self, problem: str | None = None, statuses: Sequence[str] = ("complete",)
    ) -> list[dict[str, Any]]:
        """Flat per-iteration measurements of sweeps, joined with their run's metadata.

        Each row has ``result_id, algorithm, problem, ranks, n`` (``n`` from the
        run's summary or options) and the :data:`ITERATION_COLUMNS`. This is what
        the Hemingway analyzer reads.
        """
        out: list[dict[str, Any]] = []
        where = {"status": list(statuses)} if statuses else {}
        if problem:
            where["problem"] = problem
        for res in self.list(kind="sweep", **where):
            n = res.summary.get("n", res.options.get("n"))
            for row in self.iterations(res.id):
                row.update(
                    result_id=res.id, algorithm=res.optimizer, problem=res.problem,
                    ranks=res.ranks, n=n,
                )
                out.append(row)
        return out
