"""Printing rows as a table, JSON or CSV: one function every command uses."""
from __future__ import annotations

import csv
import io
import json
import math
import sys
from typing import Any, Sequence

FORMATS = ("table", "json", "csv")


def _cell(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return "x".join(str(v) for v in value) if all(isinstance(v, int) for v in value) else (
            ", ".join(str(v) for v in value)
        )
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return ""
    return value


def jsonable(value: Any) -> Any:
    """JSON cannot hold NaN/inf portably (they become null), nor numpy/torch scalars."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return jsonable(value.item())
    return value


def readable(value: Any) -> Any:
    """A number as people read it: integers with separators, floats to 4 digits."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() and abs(value) < 1e15 else f"{value:.4g}"
    return _cell(value)


def metric_rows(values: dict[str, Any], key: str = "metric") -> list[dict[str, Any]]:
    """A dict as two-column rows for a table, values made readable."""
    return [{key: k, "value": readable(v)} for k, v in values.items()]


def to_json(obj: Any) -> str:
    return json.dumps(jsonable(obj), indent=2, default=str)


def render(
    rows: Sequence[dict[str, Any]],
    fmt: str = "table",
    columns: Sequence[str] | None = None,
    floatfmt: str = ".4g",
    colalign: Sequence[str] | None = None,
) -> str:
    """The rows as text in ``fmt``; ``columns`` picks and orders the keys."""
    rows = list(rows)
    if columns is None:
        columns = []
        for row in rows:
            columns.extend(k for k in row if k not in columns)
    if fmt == "json":
        return to_json([{c: row.get(c) for c in columns} for row in rows])
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(
                json.dumps(row.get(c)) if isinstance(row.get(c), (dict, list)) else
                ("" if row.get(c) is None else row.get(c)) for c in columns
            )
        return buf.getvalue().rstrip("\n")
    from tabulate import tabulate

    body = [[_cell(row.get(c)) for c in columns] for row in rows]
    return tabulate(body, headers=list(columns), floatfmt=floatfmt, intfmt=",",
                    colalign=colalign)


def write(text: str, out: str | None = None) -> None:
    """Print ``text``, or write it to the file ``out`` (and say so on stderr)."""
    if out:
        from harness.errors import BenchUsageError

        try:
            with open(out, "w", encoding="utf-8") as fh:
                fh.write(text + "\n")
        except OSError as exc:
            raise BenchUsageError(f"cannot write output file '{out}': {exc.strerror}") from None
        print(f"wrote {out}", file=sys.stderr)
    else:
        print(text)


def emit(
    rows: Sequence[dict[str, Any]],
    fmt: str = "table",
    columns: Sequence[str] | None = None,
    out: str | None = None,
    floatfmt: str = ".4g",
) -> None:
    """Print rows as a tabulate table, a JSON list or CSV, to stdout or the file ``out``."""
    write(render(rows, fmt, columns, floatfmt), out)
