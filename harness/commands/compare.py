"""``bench compare A B``: how B differs from A, for simulated and for timed results.

A and B are result ids (``12``) or group ids (``g3``, the runs of one
``bench run --repeat K``). Simulated results (``accel``) are deterministic:
per-metric and per-layer ratios, exact (:mod:`harness.sim_compare`). Timed
results (``cpu``) are tested run against run, so run-to-run variance counts
(:mod:`harness.timed_compare`). Two results of different kinds are a usage error.
With ``--rerun K`` both timed cells are measured again now, interleaved
(:func:`harness.repeat.run_interleaved`), and tested pair by pair.
"""
from __future__ import annotations

import math
import sys
from typing import Any, Callable

import click

from harness import params
from harness.cli import format_option, open_store, store_option
from harness.errors import BenchUsageError
from harness.output import readable, to_json, write
from harness.sim_compare import ratio
from harness.store import ResultStore, StoredResult
from harness.timed_compare import Side

# Fields whose difference between A and B is worth a note (the comparison may be unfair).
ENVIRONMENT_KEYS = ("host", "cpu_model", "cpu_count", "torch", "python", "git_commit")
IGNORED_OPTIONS = ("min_time", "min_samples", "warmup")
DEFAULT_TOP = 10


def differences(a: StoredResult, b: StoredResult) -> list[str]:
    """What differs between the two runs besides the code under test."""
    notes = []
    for label, va, vb in (("model", a.model, b.model), ("hardware", a.hardware, b.hardware)):
        if va != vb:
            notes.append(f"{label}: {va} vs {vb}")
    for key in sorted(set(a.options) | set(b.options)):
        if key not in IGNORED_OPTIONS and a.options.get(key) != b.options.get(key):
            notes.append(f"option {key}: {a.options.get(key)} vs {b.options.get(key)}")
    for key in ENVIRONMENT_KEYS:
        if a.environment.get(key) != b.environment.get(key):
            notes.append(f"{key}: {a.environment.get(key)} vs {b.environment.get(key)}")
    return notes


def load_side(store: ResultStore, text: str) -> Side:
    """``12`` is result 12, ``g3`` group 3."""
    text = text.strip()
    if text[:1] in ("g", "G") and text[1:].isdigit():
        return Side(f"g{int(text[1:])}", store.group(text))
    if not text.isdigit():
        raise BenchUsageError(f"'{text}' is neither a result id (a number, e.g. 12) nor a "
                              "group id (g and a number, e.g. g3); see bench results list")
    return Side(text, [store.get(text)])


def kind_of(result: StoredResult) -> str:
    """``timed`` (stored samples), ``simulated`` (stored cycles), else a usage error."""
    if result.kind == "sweep":
        raise BenchUsageError(f"result {result.id} is an optimizer sweep ({result.subject}); "
                              "compare takes results of bench run")
    if result.samples:
        return "timed"
    if "cycles" in result.summary:
        return "simulated"
    raise BenchUsageError(f"result {result.id} ({result.subject}, {result.status}) has neither "
                          "timing samples nor simulated cycles; compare takes bench run results "
                          "of a timed backend (cpu) or a simulator (accel)")


def side_kind(side: Side) -> str:
    if not side.results:
        raise BenchUsageError(f"group {side.label} holds no results")
    kinds = {kind_of(r) for r in side.results}
    if len(kinds) > 1:
        raise BenchUsageError(f"group {side.label} mixes timed and simulated results")
    return kinds.pop()


def side_cell(side: Side) -> Any:
    """The one cell a side's runs measured (a group of several cells cannot be re-run)."""
    from harness.repeat import cell_of

    cells = {cell_of(r) for r in side.results}
    if len(cells) > 1:
        raise BenchUsageError(f"cannot re-run {side.label}: its runs measured "
                              f"{len(cells)} different cells")
    return cells.pop()


def rerun_compare(store: ResultStore, a: Side, b: Side, runs: int, alpha: float,
                  min_effect: float, report: Callable[[str], None],
                  runner: Any = None) -> dict[str, Any]:
    """Measure A's and B's cells again, interleaved, and test them pair by pair."""
    from harness.repeat import run_interleaved
    from harness.timed_compare import compare_paired

    cells = {"A": side_cell(a), "B": side_cell(b)}
    done = run_interleaved(cells, runs, store, report, runner)
    new = {name: Side(done[name]["group"], [store.get(i) for i in done[name]["results"]])
           for name in ("A", "B")}
    out = compare_paired(new["A"], new["B"], alpha, min_effect)
    out["rerun"] = {"runs": runs, "order": "A B B A ...",
                    "of": {"A": a.label, "B": b.label},
                    "groups": {name: done[name]["group"] for name in ("A", "B")},
                    "cells": {name: cells[name].describe() for name in ("A", "B")}}
    here = {r.environment.get("host") for r in a.results + b.results}
    now = new["A"].results[0].environment.get("host")
    if here - {now}:
        out["notes"].append(f"the stored runs were made on {', '.join(map(str, here))}; "
                            f"the re-runs on {now}")
    out["differences"] = differences(new["A"].results[0], new["B"].results[0])
    return out


def compare(store: ResultStore, a_text: str, b_text: str, alpha: float, min_effect: float,
            top: int, rerun: int | None = None, report: Callable[[str], None] = lambda _: None,
            runner: Any = None) -> dict[str, Any]:
    """The comparison as a dict (what ``--format json`` prints).

    ``rerun``: measure both cells again that many times each (see
    :func:`rerun_compare`); ``runner`` replaces the child process (tests).
    """
    from harness.sim_compare import compare_simulated
    from harness.timed_compare import compare_timed

    a, b = load_side(store, a_text), load_side(store, b_text)
    ka, kb = side_kind(a), side_kind(b)
    if ka != kb:
        raise BenchUsageError(
            f"{a.label} is {ka} ({a.results[0].subject}) and {b.label} is {kb} "
            f"({b.results[0].subject}): compare takes two simulated or two timed results")
    if rerun is not None:
        if ka == "simulated":
            raise BenchUsageError(
                f"--rerun: {a.label} and {b.label} are simulated ({a.results[0].hardware}): a "
                "simulator is deterministic, so a re-run gives the stored figures; compare "
                "them without --rerun")
        return rerun_compare(store, a, b, rerun, alpha, min_effect, report, runner)
    notes = []
    for side in (a, b):
        first = side.results[0]
        if len(side.results) == 1 and first.group_id is not None:
            notes.append(f"result {first.id} is one run of group g{first.group_id}; compare "
                         f"g{first.group_id} to use all its runs")
    if ka == "simulated":
        for side in (a, b):
            if len(side.results) > 1:
                notes.append(f"group {side.label}: a simulator is deterministic; using its "
                             f"first result, {side.results[0].id}")
        out = compare_simulated(a.results[0], b.results[0], top)
        out["notes"] = notes + out["notes"]
    else:
        out = compare_timed(a, b, alpha, min_effect)
        out["notes"] = notes + out["notes"]
    out["differences"] = differences(a.results[0], b.results[0])
    return out


# --------------------------------------------------------------------------- text output
def _cell(value: Any, digits: int = 4) -> str:
    """Integers in full (exact), floats to ``digits`` significant digits."""
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.{digits}g}"
    return str(readable(value))


def _table(rows: list[dict[str, Any]], left: int = 1) -> str:
    """A text table of already formatted cells (no re-parsing: integers stay exact)."""
    from tabulate import tabulate

    headers = list(rows[0]) if rows else []
    return tabulate([list(r.values()) for r in rows], headers=headers, disable_numparse=True,
                    colalign=("left",) * left + ("right",) * (len(headers) - left))


def simulated_text(result: dict[str, Any]) -> str:
    a, b = result["a"], result["b"]
    lines = [f"A: result {a['id']} ({a['subject']}, {a['created_utc']})",
             f"B: result {b['id']} ({b['subject']}, {b['created_utc']})",
             "simulated: deterministic, so every difference is real and ratios are exact", ""]
    rows = [{"metric": r["metric"], "A": _cell(r["A"], 6), "B": _cell(r["B"], 6),
             "B/A": _cell(r["B/A"], 6),
             "change": "-" if r["change_pct"] is None else f"{r['change_pct']:+.2f}%"}
            for r in result["metrics"]]
    lines.append(_table(rows))
    layers = result["layers"]
    lines.append("")
    if not layers["compared"]:
        lines.append(layers["reason"])
    else:
        lines.append(f"layers: {layers['matched']} matched by name, {layers['changed']} changed"
                     + (f"; the {len(layers['top'])} that changed most (share of A's cycles "
                        "or energy):" if layers["top"] else ""))
        if layers["top"]:
            rows = [{"layer": r["layer"], "kind": r["kind"], "cycles A": _cell(r["cycles_a"]),
                     "cycles B": _cell(r["cycles_b"]), "cycles B/A": _cell(r["cycles_b/a"]),
                     "energy B/A": _cell(r["energy_b/a"]),
                     "util A": _cell(r["utilization_a"], 3),
                     "util B": _cell(r["utilization_b"], 3),
                     "DRAM B/A": _cell(ratio(r["dram_accesses_a"], r["dram_accesses_b"])),
                     "share %": _cell(r["share_of_a_pct"], 3)} for r in layers["top"]]
            lines.append(_table(rows, left=2))
        for side in ("a", "b"):
            names = layers[f"only_in_{side}"]
            if names:
                shown = ", ".join(names[:20]) + (" ..." if len(names) > 20 else "")
                lines.append(f"only in {side.upper()} ({len(names)}): {shown}")
    return "\n".join(lines)


def timed_text(result: dict[str, Any]) -> str:
    a, b = result["a"], result["b"]
    lines = []
    rerun = result.get("rerun")
    if rerun:
        lines.append(f"re-measured as {rerun['groups']['A']} and {rerun['groups']['B']}: "
                     f"{rerun['runs']} runs of each, interleaved A B B A ...; the test uses "
                     "only these new runs")
    for name, side in (("A", a), ("B", b)):
        what = (f"group {side['id']}, {side['runs']} runs" if side["id"].startswith("g")
                else f"result {side['id']}, 1 run")
        if rerun:
            what += f", re-run of {rerun['of'][name]}"
        lines.append(f"{name}: {what} ({side['subject']}, {side['created_utc']})")
    keys = [("runs", "runs"), ("samples", "samples"), ("run medians (ms)", "run_medians_ms"),
            ("geometric mean (ms)", "geomean_ms"), ("run-to-run CV (%)", "run_to_run_cv_pct")]
    rows = []
    for label, key in keys:
        def show(side: dict[str, Any]) -> Any:
            value = side.get(key)
            if isinstance(value, list):
                return ", ".join(f"{v:.4g}" for v in value)
            return _cell(value)
        rows.append({"": label, "A": show(a), "B": show(b)})
    lines += ["", _table(rows), ""]
    if result.get("paired"):
        lines.append("B/A of each adjacent pair: "
                     + ", ".join(f"{r:.3f}" for r in result["pair_ratios"]))
    if result["p_value"] is not None:
        conf = 100 * result["confidence"]
        what = ("geometric mean of the pairs' B/A" if result.get("paired")
                else "ratio of geometric means B/A")
        lines.append(f"{what}: {result['ratio_b_over_a']:.4g} "
                     f"({conf:g}% CI {result['ci_low']:.4g} to {result['ci_high']:.4g})")
        lines.append(f"{result['test']}: p = {result['p_value']:.3g} (alpha {result['alpha']})")
    else:
        lines.append(f"ratio B/A: {result['ratio_b_over_a']:.4g}")
    lines.append(f"verdict: {result['verdict']}: {result['reason']}")
    return "\n".join(lines)


def _fraction(name: str, low_open: bool) -> Any:
    def check(_ctx: click.Context, _param: click.Parameter, value: float) -> float:
        if not math.isfinite(value) or value >= 1 or value < 0 or (low_open and value == 0):
            bound = "between 0 and 1 (exclusive)" if low_open else "at least 0 and below 1"
            raise BenchUsageError(f"{name} must be {bound}, not {value}")
        return value

    return check


@click.command("compare")
@click.argument("a")
@click.argument("b")
@click.option("--alpha", type=float, default=0.05, show_default=True,
              callback=_fraction("--alpha", True),
              help="Significance level of the test between timed runs.")
@click.option("--min-effect", type=float, default=0.10, show_default=True,
              callback=_fraction("--min-effect", False),
              help="Smallest relative change of timed runs reported as faster or slower.")
@click.option("--top", type=click.IntRange(1, 10_000), default=DEFAULT_TOP, show_default=True,
              help="Simulated results: how many of the most changed layers to list.")
@click.option("--rerun", type=params.Count(100, minimum=2), default=None,
              help="Timed results: measure both cells again now, K runs each in fresh "
                   "processes, interleaved A B B A ..., stored as two new groups, and test "
                   "the pairs (the machine's drift cancels).")
@format_option("table", "json")
@store_option
def command(a: str, b: str, alpha: float, min_effect: float, top: int, rerun: int | None,
            fmt: str, store_path: str | None) -> None:
    """Compare two stored results: A is the reference, B the candidate.

    \b
    A and B are result ids (12) or group ids (g3: the runs of one
    `bench run --repeat K`), from `bench results list`.
    Simulated (accel): every metric and the most changed layers, exact ratios.
    Timed (cpu): Welch's t-test on the log medians of the runs of each side;
    with one run per side the result is only indicative (use --rerun K).
    With --rerun K: both cells are run again, interleaved, and a paired t-test
    on log(B/A) of adjacent runs decides (far more sensitive on a drifting machine).
    """
    def report(line: str) -> None:  # progress on stderr; the comparison is the output
        if sys.stderr.isatty():
            print(line, file=sys.stderr)

    with open_store(store_path) as store:
        result = compare(store, a, b, alpha, min_effect, top, rerun, report)
    if fmt == "json":
        write(to_json(result))
        return
    text = simulated_text(result) if result["kind"] == "simulated" else timed_text(result)
    extra = [f"note: {n}" for n in result["notes"]]
    if result["differences"]:
        extra.append("note, the runs differ in: " + "; ".join(result["differences"]))
    write("\n".join([text, *extra]))
