"""Is one set of timed runs faster, slower or the same as another?

The unit of evidence is a *run* (one process), not a sample: samples inside
one run share its allocator state, CPU frequency and thread placement, so they
are not independent, and two identical runs made seconds apart routinely
differ by more than their samples' spread (0.909x with p = 8e-05 from a
within-run test on this project's shared VM). So each run is reduced to the
median of its samples and the runs of A are tested against the runs of B:
Welch's t-test on the logarithms of the run medians (timings are
multiplicative: a log scale makes 1.2x slower and 1.2x faster symmetric),
which reports the ratio of geometric means with a confidence interval. With
one run on either side the run-to-run variance cannot be estimated, and the
comparison is only indicative whatever the samples say.

Groups made one after the other also differ by the machine's drift (its speed
wanders over the half minute a group takes: median run-to-run CV 8.6% on the
shared VM), which no test on unpaired groups can tell from a change. ``bench
compare A B --rerun K`` therefore measures both cells again, interleaved
A B B A A B ..., and :func:`compare_paired` tests the log ratio of each adjacent
A/B pair: drift common to a pair cancels, and the ABBA order cancels a linear
trend across pairs on average.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any, Sequence

from harness.errors import BenchUsageError
from harness.store import StoredResult

MIN_SAMPLES = 3  # per run: a median of fewer says little
MIN_RUNS = 2  # per side, for a test of run-to-run variance

SIGNIFICANT = ("slower", "faster")
NO_CHANGE = "no significant change"
INDICATIVE = "indicative only"


@dataclass
class Side:
    """One side of a comparison: a single result, or a group of repeated runs."""

    label: str  # what the user typed: "12" or "g3"
    results: list[StoredResult]


def run_median(result: StoredResult) -> float:
    """Seconds: the median of one run's samples."""
    if len(result.samples) < MIN_SAMPLES:
        raise BenchUsageError(
            f"result {result.id} has only {len(result.samples)} samples; compare needs at "
            f"least {MIN_SAMPLES} per run (raise --hw-opt min_samples)")
    return statistics.median(result.samples)


def group_summary(medians: Sequence[float]) -> dict[str, Any]:
    """The runs' medians summarised: geometric mean and, with 2+ runs, the run-to-run spread."""
    logs = [math.log(m) for m in medians]
    out: dict[str, Any] = {
        "runs": len(medians),
        "geomean_ms": math.exp(statistics.fmean(logs)) * 1e3,
        "min_ms": min(medians) * 1e3,
        "max_ms": max(medians) * 1e3,
    }
    if len(medians) >= 2:  # sd of log medians ~ coefficient of variation
        out["run_to_run_cv_pct"] = 100 * statistics.stdev(logs)
    return out


def welch_log(medians_a: Sequence[float], medians_b: Sequence[float],
              confidence: float) -> dict[str, float]:
    """Welch's t-test on log run medians: ratio of geometric means B/A, its CI, p."""
    from scipy.stats import ttest_ind

    la, lb = [math.log(m) for m in medians_a], [math.log(m) for m in medians_b]
    diff = statistics.fmean(lb) - statistics.fmean(la)
    if max(la) == min(la) and max(lb) == min(lb):  # no spread at all: the test is undefined
        p_value = 1.0 if diff == 0 else 0.0
        return {"ratio": math.exp(diff), "ci_low": math.exp(diff), "ci_high": math.exp(diff),
                "p_value": p_value, "df": float(len(la) + len(lb) - 2)}
    res = ttest_ind(lb, la, equal_var=False)
    ci = res.confidence_interval(confidence_level=confidence)
    return {"ratio": math.exp(diff), "ci_low": math.exp(float(ci.low)),
            "ci_high": math.exp(float(ci.high)), "p_value": float(res.pvalue),
            "df": float(res.df)}


def paired_log(medians_a: Sequence[float], medians_b: Sequence[float],
               confidence: float) -> dict[str, Any]:
    """One-sample t-test on log(B_i / A_i) of paired runs: ratio exp(mean), its CI, p.

    A t-test rather than Wilcoxon's signed-rank test: with 5 pairs the smallest
    two-sided p the signed-rank test can give is 2/32 = 0.0625, so at alpha 0.05
    it could never call a change, however large. Log ratios of timings are close
    to normal (a product of many small factors), which is what the t-test needs.
    """
    from scipy.stats import ttest_1samp

    if len(medians_a) != len(medians_b) or len(medians_a) < MIN_RUNS:
        raise ValueError("paired_log needs two equally long lists of at least 2 runs")
    diffs = [math.log(b) - math.log(a) for a, b in zip(medians_a, medians_b)]
    mean = statistics.fmean(diffs)
    pair_ratios = [math.exp(d) for d in diffs]
    if max(diffs) == min(diffs):  # no spread at all: the test is undefined
        return {"ratio": math.exp(mean), "ci_low": math.exp(mean), "ci_high": math.exp(mean),
                "p_value": 1.0 if mean == 0 else 0.0, "df": float(len(diffs) - 1),
                "pair_ratios": pair_ratios}
    res = ttest_1samp(diffs, 0.0)
    ci = res.confidence_interval(confidence_level=confidence)
    return {"ratio": math.exp(mean), "ci_low": math.exp(float(ci.low)),
            "ci_high": math.exp(float(ci.high)), "p_value": float(res.pvalue),
            "df": float(res.df), "pair_ratios": pair_ratios}


def verdict(ratio: float, p_value: float, alpha: float, min_effect: float) -> tuple[str, str]:
    """``(verdict, reason)`` of a test between groups of runs."""
    if p_value >= alpha:
        return NO_CHANGE, f"p = {p_value:.3g} >= alpha {alpha}"
    if abs(math.log(ratio)) < math.log1p(min_effect):  # symmetric: 1.02x slower or faster
        return (NO_CHANGE, f"significant (p = {p_value:.3g}) but the runs differ by only "
                           f"{100 * abs(ratio - 1):.1f}% (< --min-effect {100 * min_effect:g}%)")
    if ratio > 1:
        return "slower", f"B takes {ratio:.3g}x the time of A (p = {p_value:.3g})"
    return "faster", (f"B takes {ratio:.3g}x the time of A, {1 / ratio:.3g}x faster "
                      f"(p = {p_value:.3g})")


def contended(result: StoredResult) -> bool:
    """Whether other programs took cores this run needed (the backend's own warning rule)."""
    others = result.summary.get("others_cpu_cores")
    cores = result.environment.get("cpu_count")
    threads = result.summary.get("threads")
    if not all(isinstance(v, (int, float)) for v in (others, cores, threads)):
        return False
    return others > (cores - threads) + CONTENDED_SLACK


CONTENDED_SLACK = 0.25  # cores: as plugins/hardware/cpu.py warns


def _side(side: Side) -> dict[str, Any]:
    medians = [run_median(r) for r in side.results]
    first = side.results[0]
    return {"id": side.label, "results": [r.id for r in side.results],
            "subject": first.subject, "created_utc": first.created_utc,
            "run_medians_ms": [m * 1e3 for m in medians],
            "samples": sum(len(r.samples) for r in side.results),
            "contended_runs": sum(contended(r) for r in side.results),
            **group_summary(medians)}


def load_notes(sa: dict[str, Any], sb: dict[str, Any]) -> list[str]:
    """A note when other programs competed with some runs: the load, not the code, may differ."""
    busy = [f"{s['contended_runs']} of {s['runs']} runs of {name}"
            for name, s in (("A", sa), ("B", sb)) if s["contended_runs"]]
    if not busy:
        return []
    return [f"{' and '.join(busy)} had other programs competing for the CPU "
            "(others_cpu_cores): on a busy machine the load varies between runs, so the "
            "verdict reflects it as much as the code; compare runs made on an idle machine"]


def compare_timed(a: Side, b: Side, alpha: float, min_effect: float) -> dict[str, Any]:
    """The comparison of two timed sides as a dict (what ``--format json`` prints)."""
    sa, sb = _side(a), _side(b)
    out: dict[str, Any] = {"kind": "timed", "a": sa, "b": sb, "alpha": alpha,
                           "min_effect": min_effect, "notes": load_notes(sa, sb)}
    ma = [m / 1e3 for m in sa["run_medians_ms"]]
    mb = [m / 1e3 for m in sb["run_medians_ms"]]
    if len(ma) >= MIN_RUNS and len(mb) >= MIN_RUNS:
        test = welch_log(ma, mb, 1 - alpha)
        word, reason = verdict(test["ratio"], test["p_value"], alpha, min_effect)
        out.update({
            "test": "Welch t-test on log run medians (runs as the unit), two-sided",
            "ratio_b_over_a": test["ratio"], "ci_low": test["ci_low"],
            "ci_high": test["ci_high"], "confidence": 1 - alpha, "p_value": test["p_value"],
            "df": test["df"], "verdict": word, "significant": word in SIGNIFICANT,
            "reason": reason,
        })
        return out
    # One run on a side: the within-run test is shown for what it is, never as a verdict.
    from scipy.stats import mannwhitneyu

    samples_a = [s for r in a.results for s in r.samples]
    samples_b = [s for r in b.results for s in r.samples]
    ratio = (sb["geomean_ms"] / sa["geomean_ms"])
    p_within = float(mannwhitneyu(samples_a, samples_b, alternative="two-sided").pvalue)
    single = [name for name, s in (("A", sa), ("B", sb)) if s["runs"] < MIN_RUNS]
    single_text = "A and B are single runs" if len(single) == 2 else f"{single[0]} is a single run"
    looks = ("slower" if ratio > 1 else "faster") if abs(math.log(ratio)) >= math.log1p(
        min_effect) else "about the same"
    out.update({
        "test": "none between runs (one run per side); within-run Mann-Whitney U shown",
        "ratio_b_over_a": ratio, "ci_low": None, "ci_high": None, "confidence": None,
        "p_value": None, "p_within_run": p_within, "verdict": INDICATIVE,
        "significant": False,
        "reason": (f"B looks {looks} ({ratio:.3g}x) but {single_text}: run-to-run "
                   "variance cannot be estimated, and samples within one run are not "
                   "independent evidence (within-run p = " f"{p_within:.2g}); measure both "
                   f"again, interleaved: bench compare {a.label} {b.label} --rerun 10"),
    })
    return out


PAIRED_TEST = ("paired t-test on log(B/A) of adjacent runs (interleaved A B B A ...), "
               "two-sided")


def compare_paired(a: Side, b: Side, alpha: float, min_effect: float) -> dict[str, Any]:
    """Two sides measured interleaved, run i of A beside run i of B: the paired test.

    The unpaired Welch test on the same runs is kept under ``unpaired`` (JSON): it
    shows what drift costs a test that ignores the pairing.
    """
    if len(a.results) != len(b.results) or len(a.results) < MIN_RUNS:
        raise BenchUsageError(f"a paired comparison needs as many runs of A as of B, at least "
                              f"{MIN_RUNS}; got {len(a.results)} and {len(b.results)}")
    sa, sb = _side(a), _side(b)
    ma = [m / 1e3 for m in sa["run_medians_ms"]]
    mb = [m / 1e3 for m in sb["run_medians_ms"]]
    test = paired_log(ma, mb, 1 - alpha)
    word, reason = verdict(test["ratio"], test["p_value"], alpha, min_effect)
    welch = welch_log(ma, mb, 1 - alpha)
    welch_word, _ = verdict(welch["ratio"], welch["p_value"], alpha, min_effect)
    return {"kind": "timed", "paired": True, "a": sa, "b": sb, "alpha": alpha,
            "min_effect": min_effect, "notes": load_notes(sa, sb), "test": PAIRED_TEST,
            "pairs": len(ma), "pair_ratios": test["pair_ratios"],
            "ratio_b_over_a": test["ratio"], "ci_low": test["ci_low"],
            "ci_high": test["ci_high"], "confidence": 1 - alpha, "p_value": test["p_value"],
            "df": test["df"], "verdict": word, "significant": word in SIGNIFICANT,
            "reason": reason,
            "unpaired": {"test": "Welch t-test on the same runs, pairing ignored",
                         "ratio_b_over_a": welch["ratio"], "p_value": welch["p_value"],
                         "verdict": welch_word}}
