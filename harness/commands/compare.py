"""``bench compare RUN_A RUN_B``: is B faster, slower, or the same as A?

Two medians always differ a little; whether the difference is real depends on
the spread. Like asv and pytest-benchmark, this reads the raw samples stored
with each timed run and applies a Mann-Whitney U test (no normality assumed:
timing samples are skewed by interruptions). A difference is reported only when
it is significant at ``--alpha`` *and* the medians differ by at least
``--min-effect``, so a statistically real but negligible change is not called
a regression. The default effect, 10%, is asv's: the test takes the samples of
one run as independent, but a machine drifts between runs (two identical runs
made seconds apart on a shared 2-vCPU VM differed by 8.5% with p = 0.007), so
smaller differences are only worth reporting on a quiet, dedicated machine.
"""
from __future__ import annotations

import math
import statistics
from typing import Any

import click

from harness.cli import format_option, open_store, store_option
from harness.errors import BenchUsageError
from harness.output import render, to_json, write
from harness.store import StoredResult

MIN_SAMPLES = 3
# Fields whose difference between A and B is worth a note (the comparison may be unfair).
ENVIRONMENT_KEYS = ("host", "cpu_model", "cpu_count", "torch", "python", "git_commit")
IGNORED_OPTIONS = ("min_time", "min_samples", "warmup")


def sample_stats(samples: list[float]) -> dict[str, float]:
    q1, _, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    return {"median_ms": statistics.median(samples) * 1e3, "iqr_ms": (q3 - q1) * 1e3,
            "min_ms": min(samples) * 1e3, "mean_ms": statistics.fmean(samples) * 1e3,
            "samples": len(samples)}


def smallest_p(n: int, m: int) -> float:
    """The smallest two-sided p-value an exact Mann-Whitney test can give for n and m samples."""
    return min(1.0, 2 / math.comb(n + m, n))


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


def verdict(ratio: float, p_value: float, alpha: float, min_effect: float,
            n_a: int, n_b: int) -> tuple[str, str]:
    """``(verdict, reason)``; verdict is faster, slower or no significant difference."""
    if p_value >= alpha:
        if smallest_p(n_a, n_b) >= alpha:
            return ("no significant difference",
                    f"too few samples ({n_a} and {n_b}) for a test at alpha {alpha}")
        return "no significant difference", f"p = {p_value:.3g} >= alpha {alpha}"
    if abs(math.log(ratio)) < math.log1p(min_effect):  # symmetric: 1.02x slower or faster
        return ("no significant difference",
                f"significant (p = {p_value:.3g}) but the medians differ by only "
                f"{100 * abs(ratio - 1):.1f}% (< --min-effect {100 * min_effect:g}%)")
    if ratio > 1:
        return "slower", f"B takes {ratio:.3g}x the time of A (p = {p_value:.3g})"
    return "faster", f"B takes {ratio:.3g}x the time of A, {1 / ratio:.3g}x faster (p = {p_value:.3g})"


def compare(a: StoredResult, b: StoredResult, alpha: float, min_effect: float) -> dict[str, Any]:
    """The comparison as a dict (what ``--format json`` prints)."""
    from scipy.stats import mannwhitneyu

    for res in (a, b):
        if not res.samples:
            raise BenchUsageError(
                f"result {res.id} ({res.subject}, {res.status}) has no stored samples; "
                "compare needs two timed runs (bench run --hw cpu or cuda)")
        if len(res.samples) < MIN_SAMPLES:
            raise BenchUsageError(
                f"result {res.id} has only {len(res.samples)} samples; compare needs at least "
                f"{MIN_SAMPLES} per run (raise --hw-opt min_samples)")
    sa, sb = sample_stats(a.samples), sample_stats(b.samples)
    ratio = sb["median_ms"] / sa["median_ms"]
    p_value = float(mannwhitneyu(a.samples, b.samples, alternative="two-sided").pvalue)
    word, reason = verdict(ratio, p_value, alpha, min_effect, len(a.samples), len(b.samples))
    return {
        "a": {"id": a.id, "subject": a.subject, "created_utc": a.created_utc, **sa},
        "b": {"id": b.id, "subject": b.subject, "created_utc": b.created_utc, **sb},
        "ratio_b_over_a": ratio,
        "p_value": p_value,
        "test": "Mann-Whitney U, two-sided",
        "alpha": alpha,
        "min_effect": min_effect,
        "verdict": word,
        "reason": reason,
        "differences": differences(a, b),
    }


def _fraction(name: str, low_open: bool) -> Any:
    def check(_ctx: click.Context, _param: click.Parameter, value: float) -> float:
        if not math.isfinite(value) or value >= 1 or value < 0 or (low_open and value == 0):
            bound = "between 0 and 1 (exclusive)" if low_open else "at least 0 and below 1"
            raise BenchUsageError(f"{name} must be {bound}, not {value}")
        return value

    return check


@click.command("compare")
@click.argument("run_a")
@click.argument("run_b")
@click.option("--alpha", type=float, default=0.05, show_default=True,
              callback=_fraction("--alpha", True), help="Significance level of the test.")
@click.option("--min-effect", type=float, default=0.10, show_default=True,
              callback=_fraction("--min-effect", False),
              help="Smallest relative change of the median reported as faster or slower.")
@format_option("table", "json")
@store_option
def command(run_a: str, run_b: str, alpha: float, min_effect: float, fmt: str,
            store_path: str | None) -> None:
    """Compare two stored timed runs: ratio of medians and Mann-Whitney U significance.

    RUN_A is the reference, RUN_B the candidate (ids from `bench results list`).
    """
    with open_store(store_path) as store:
        a, b = store.get(run_a), store.get(run_b)
    result = compare(a, b, alpha, min_effect)
    if fmt == "json":
        write(to_json(result))
        return
    keys = ("id", "subject", "created_utc", "median_ms", "iqr_ms", "min_ms", "mean_ms", "samples")
    def cell(value: Any) -> Any:
        return f"{value:.4g}" if isinstance(value, float) else value

    table = render([{"": k, "A": cell(result["a"][k]), "B": cell(result["b"][k])} for k in keys],
                   "table")
    lines = [
        table,
        "",
        f"ratio of medians B/A: {result['ratio_b_over_a']:.4g}",
        f"Mann-Whitney U p-value: {result['p_value']:.3g} (alpha {alpha})",
        f"verdict: {result['verdict']}: {result['reason']}",
    ]
    if result["differences"]:
        lines.append("note, the runs differ in: " + "; ".join(result["differences"]))
    write("\n".join(lines))
