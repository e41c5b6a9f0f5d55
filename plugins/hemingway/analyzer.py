"""Hemingway: rank (algorithm, cluster size) by predicted time-to-accuracy.

The entry-point module: it only declares the analyzer and the ``bench rank``
command; numpy, scipy and matplotlib are imported when the command runs.
"""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Sequence

import click

from harness import AnalyzerSpec, BenchUsageError, hookimpl, params
from harness.cli import format_option, open_store, store_option
from harness.output import render, to_json, write

if TYPE_CHECKING:  # pragma: no cover - typing only
    from plugins.hemingway.measurements import Measurements
    from plugins.hemingway.ranking import Objective
    from plugins.hemingway.system_model import Term

POSITIVE = params.POSITIVE


@hookimpl
def bench_analyzers() -> list[AnalyzerSpec]:
    return [AnalyzerSpec(
        name="hemingway",
        description="fits f(m) and a convergence model per algorithm to sweeps; predicts and "
                    "ranks (algorithm, m) by time or cost to reach a suboptimality",
        command="rank",
        reads="iterations",
    )]


@hookimpl
def bench_register_commands(cli: click.Group) -> None:
    from plugins.hemingway.tune import tune_command

    cli.add_command(rank_command)
    cli.add_command(tune_command)


def _interval(lo: float, hi: float) -> str:
    if lo != lo or hi != hi:  # NaN: no draws
        return ""
    return f"{lo:.3g} - {hi:.3g}"


def _warn(messages: list[str]) -> None:
    for message in messages:
        print(f"warning: {message}", file=sys.stderr)


@click.command("rank")
@click.option("--epsilon", type=POSITIVE, metavar="EPS",
              help="Target suboptimality (objective - f*).")
@click.option("--problem", metavar="NAME",
              help="Problem to rank when the measurements hold several.")
@click.option("--input", "input_path", type=params.INPUT_FILE,
              help="Measurements from a CSV or JSON file instead of the store "
                   "(format: docs/hemingway.md).")
@store_option
@click.option("--n", "n_filter", type=POSITIVE, metavar="N",
              help="Problem size n to rank when the runs hold several.")
@click.option("--max-ranks", type=params.RANKS,
              help="Rank m = 1..M. Default: twice the largest measured m.")
@click.option("--objective", type=click.Choice(["time", "cost"], case_sensitive=False),
              default="time", show_default=True, help="Minimise time, or cost (time x m).")
@click.option("--deadline", type=POSITIVE, metavar="SECONDS",
              help="Seconds: slower predictions are infeasible.")
@click.option("--budget", type=POSITIVE, metavar="X",
              help="Cost limit (machine-seconds, or money with --price-per-machine-hour); "
                   "with --suggest: machine-seconds to spend on new runs.")
@click.option("--price-per-machine-hour", type=POSITIVE, metavar="P", help="Report cost as money.")
@click.option("--cores", type=params.RANKS,
              help="The ranks shared this many cores of one machine: computation divides "
                   "across min(m, cores), not m.")
@click.option("--term", "terms", multiple=True, metavar="EXPR",
              help="Extra system-model term: an expression in m and n (e.g. 'm**2') or a "
                   "name registered by a plugin. Repeatable.")
@click.option("--draws", "--bootstrap", "draws", type=params.BOOTSTRAP, default=400,
              show_default=True, metavar="B",
              help="Draws of the uncertainty model for the intervals and P(best) (0: none).")
@click.option("--seed", type=params.SEED, default=0, show_default=True, help="Seed of the draws.")
@format_option("table", "json")
@click.option("--plot", "plot_path", type=params.OUTPUT_FILE,
              help="Draw fitted curves and predicted time-to-eps to this image file.")
@click.option("--validate", type=click.Choice(["loo", "extrapolate"], case_sensitive=False),
              is_flag=False, flag_value="loo", default=None, metavar="[loo|extrapolate]",
              help="Check the predictions: 'loo' (the default when no value is given) leaves "
                   "one cluster size out at a time; 'extrapolate' fits on the smaller sizes, "
                   "predicts the largest and checks the 90% intervals there.")
@click.option("--hold-out", type=params.Count(1000), metavar="K",
              help="With --validate extrapolate: how many of the largest sizes to predict "
                   "(default 2 when the rest still determine the system model, else 1).")
@click.option("--suggest", is_flag=True,
              help="Propose which cluster sizes to measure next (A-optimal, within --budget).")
def rank_command(epsilon: float | None, problem: str | None, input_path: str | None,
                 store_path: str | None, n_filter: float | None, max_ranks: int | None,
                 objective: str, deadline: float | None, budget: float | None,
                 price_per_machine_hour: float | None, cores: int | None,
                 terms: tuple[str, ...], draws: int,
                 seed: int, fmt: str, plot_path: str | None, validate: str | None,
                 hold_out: int | None, suggest: bool) -> None:
    """Predict time-to-accuracy per (algorithm, cluster size) and rank them (Hemingway).

    \b
    bench rank --epsilon 1e-4                     rank by predicted time
    bench rank --epsilon 1e-4 --objective cost    rank by machine-seconds
    bench rank --epsilon 1e-4 --validate          leave-one-cluster-size-out error
    bench rank --epsilon 1e-4 --validate extrapolate   predict the largest sizes
    bench rank --suggest --budget 600             which sizes to measure next
    """
    from plugins.hemingway import measurements as loading
    from plugins.hemingway.system_model import resolve_terms

    if validate and suggest:
        raise BenchUsageError("--validate and --suggest are separate questions; give one")
    if hold_out is not None and (validate or "").lower() != "extrapolate":
        raise BenchUsageError("--hold-out goes with --validate extrapolate")
    if epsilon is None and not suggest:
        raise BenchUsageError("--epsilon EPS is required: the suboptimality to reach")
    if plot_path and suggest:
        raise BenchUsageError("--plot draws a ranking or a validation, not --suggest")
    if plot_path:
        from plugins.hemingway.plot import check_plot_path

        check_plot_path(plot_path)
    model_terms = resolve_terms(terms, cores)
    if input_path:
        data = loading.from_file(input_path, problem, n_filter)
    else:
        with open_store(store_path) as store:
            data = loading.from_store(store, problem, n_filter)
    if max_ranks is None:
        max_ranks = 2 * max(data.sizes())
    if cores is None and data.host_cpus and max(data.sizes()) > data.host_cpus:
        _warn([f"runs used up to {max(data.sizes())} ranks on a {data.host_cpus}-core host; if "
               f"they shared it, add --cores {data.host_cpus} (computation stops dividing there)"])

    if suggest:
        _suggest(data, model_terms, max_ranks, budget, fmt)
    elif validate and validate.lower() == "extrapolate":
        _validate_extrapolation(data, epsilon, model_terms, hold_out, draws, seed, fmt, plot_path)
    elif validate:
        _validate(data, epsilon, model_terms, fmt, plot_path)
    else:
        from plugins.hemingway.ranking import Objective

        goal = Objective(objective.lower(), deadline, budget, price_per_machine_hour)
        _rank(data, epsilon, model_terms, max_ranks, goal, draws, seed, fmt, plot_path)


def _describe(data: "Measurements") -> str:
    n = f"n={data.n:g}" if data.n else "n unknown"
    return f"{data.problem or 'problem'} ({n}) from {data.source}"


def _rank(data: "Measurements", eps: float, terms: Sequence["Term"], max_ranks: int,
          goal: "Objective", draws: int, seed: int, fmt: str, plot_path: str | None) -> None:
    from plugins.hemingway.fitting import fit_all
    from plugins.hemingway.ranking import confidence, rank

    fits, warnings = fit_all(data, eps, terms)
    _warn(warnings)
    rows = rank(fits, eps, max_ranks, goal, terms, draws, seed)
    decision = confidence(rows)
    next_runs = _next_runs(data, terms, max_ranks, decision) if decision and not (
        decision["separable"]) else None
    if plot_path:
        from plugins.hemingway.plot import plot

        plot(fits, rows, eps, f"Hemingway: {_describe(data)}, eps={eps:g}", plot_path)
    if fmt == "json":
        write(to_json({
            "problem": data.problem, "n": data.n, "source": data.source, "epsilon": eps,
            "objective": goal.kind, "cost_unit": goal.cost_unit,
            "deadline_s": goal.deadline_s, "budget": goal.budget,
            "draws": draws, "interval": "5th-95th percentile",
            "models": [f.as_dict() for f in fits], "ranking": rows, "decision": decision,
            "measure_next": next_runs, "warnings": warnings,
        }))
        return
    cost_label = "cost" if goal.price_per_machine_hour else "machine_s"
    table = [{
        "rank": r["rank"] if r["rank"] is not None else "-",
        "algorithm": r["algorithm"], "m": r["m"], "data": r["data"],
        "iterations": int(r["iterations"]),
        "iter 90%": _interval(r["iterations_lo"], r["iterations_hi"]),
        "s/iter": r["s_per_iter"], "s/iter 90%": _interval(r["s_per_iter_lo"], r["s_per_iter_hi"]),
        "time_s": r["time_s"], "time 90%": _interval(r["time_lo_s"], r["time_hi_s"]),
        "P(best)": _probability(r["p_best"]), "P(<=5%)": _probability(r["p_within_5pct"]),
        cost_label: r["cost"], f"{cost_label} 90%": _interval(r["cost_lo"], r["cost_hi"]),
        "measured time_s": r["measured_time_s"], "limit": r["limit"],
    } for r in rows]
    header = (f"Hemingway ranking for {_describe(data)}: time to suboptimality {eps:g}, "
              f"best {goal.kind} first")
    if draws:
        header += f"; 90% intervals from {draws} draws of the uncertainty model"
    models = [{"algorithm": f.algorithm, "measured m": ",".join(map(str, f.sizes)),
               "f(m) seconds/iteration": f.system.describe(),
               "convergence": f.convergence.describe()} for f in fits]
    best = next((r for r in rows if r["feasible"]), None)
    verdict = (f"best: {best['algorithm']} on m={best['m']} ({best['data']}): "
               f"{best['time_s']:.3g} s, {best['cost']:.3g} {goal.cost_unit}" if best else
               "no (algorithm, m) meets the deadline and budget")
    if decision:
        verdict += "\n" + _confidence_line(decision, max(data.sizes()), next_runs)
    write("\n\n".join([header, render(table, "table"), verdict, render(models, "table")]))


def _probability(p: float) -> str:
    return "" if p != p else f"{p:.2f}"


def _confidence_line(decision: dict, largest: int, next_runs: dict | None) -> str:
    """One line: how sure the choice is and, when not sure, what to measure next."""
    beyond = (f", {decision['m'] / largest:.1f}x the largest measured m={largest}"
              if decision["m"] > largest else "")
    sure = (f"P(best) {decision['p_best']:.2f}, P(within 5% of the best) "
            f"{decision['p_within_5pct']:.2f}{beyond}")
    if decision["separable"]:
        return f"confident: {sure}"
    contenders: dict[str, list[int]] = {}
    for c in decision["contenders"]:
        contenders.setdefault(c["algorithm"], []).append(c["m"])
    named = "; ".join(f"{a} m={_ranges(ms)}" for a, ms in contenders.items())
    line = (f"not separable: {sure} (< {decision['threshold']:.2f}); in contention: {named}")
    if next_runs and next_runs["sizes"]:
        line += f"; measure next m={','.join(map(str, next_runs['sizes']))}: {next_runs['command']}"
    return line


def _ranges(sizes: list[int]) -> str:
    """1,2,3,5 -> 1-3,5."""
    sizes, parts, start = sorted(sizes), [], None
    for k, m in enumerate(sizes):
        start = m if start is None else start
        if k + 1 == len(sizes) or sizes[k + 1] != m + 1:
            parts.append(str(m) if start == m else f"{start}-{m}")
            start = None
    return ",".join(parts)


def _sweep_command(data: "Measurements", algorithms: Sequence[str], sizes: Sequence[int]) -> str:
    problem_opts = "".join(f" --problem-opt {k}={v}" for k, v in data.problem_options.items()
                           if v not in (None, ""))
    return (f"bench sweep --optimizer {','.join(algorithms)} "
            f"--problem {data.problem or 'PROBLEM'}{problem_opts} "
            f"--ranks {','.join(map(str, sizes))}") if sizes else ""


def _next_runs(data: "Measurements", terms: Sequence["Term"], max_ranks: int,
               decision: dict) -> dict:
    """The sizes whose runs most reduce the variance of the contenders' predictions."""
    from plugins.hemingway.design import suggest
    from plugins.hemingway.ranking import contention_weights

    focus = contention_weights(decision, max_ranks)
    design = suggest(data, terms, max_ranks, None, focus)
    sizes = sorted({r["m"] for r in design.rows})
    algorithms = [a for a in design.algorithms if a in focus]
    return {"sizes": sizes, "algorithms": algorithms,
            "command": _sweep_command(data, algorithms, sizes), "design": design.rows}


def _validate(data: "Measurements", eps: float, terms: Sequence["Term"], fmt: str,
              plot_path: str | None) -> None:
    from plugins.hemingway.validation import validate

    rows, summary, warnings = validate(data, eps, terms)
    _warn(warnings)
    if plot_path:
        from plugins.hemingway.plot import plot
        from plugins.hemingway.fitting import fit_all
        from plugins.hemingway.ranking import Objective, rank

        fits, _ = fit_all(data, eps, terms)
        ranked = rank(fits, eps, max(data.sizes()), Objective(), terms, draws=0)
        plot(fits, ranked, eps, f"Hemingway fit to all sizes: {_describe(data)}, eps={eps:g}",
             plot_path)
    if fmt == "json":
        write(to_json({"problem": data.problem, "n": data.n, "source": data.source,
                       "epsilon": eps, "rows": rows, **summary, "warnings": warnings}))
        return
    mdape = summary["median_abs_pct_error"]
    per = ", ".join(f"{a} {v:.1f}%" for a, v in summary["per_algorithm"].items() if v is not None)
    text = [
        f"Leave-one-cluster-size-out validation for {_describe(data)}, eps={eps:g}: each m "
        "predicted from the other sizes",
        render(rows, "table", floatfmt=".4g"),
        (f"median absolute percentage error of time-to-eps: {mdape:.1f}% over "
         f"{summary['compared']} predictions ({per})" if mdape is not None else
         "no held-out run reached eps: nothing to compare"),
    ]
    write("\n\n".join(text))


def _validate_extrapolation(data: "Measurements", eps: float, terms: Sequence["Term"],
                            hold_out: int | None, draws: int, seed: int, fmt: str,
                            plot_path: str | None) -> None:
    from plugins.hemingway.validation import validate_extrapolation

    if not draws:
        raise BenchUsageError("--validate extrapolate checks the intervals: --draws must be > 0")
    rows, summary, warnings = validate_extrapolation(data, eps, terms, hold_out, draws, seed)
    _warn(warnings)
    if plot_path:
        _plot_extrapolation(data, eps, terms, rows, draws, seed, plot_path)
    if fmt == "json":
        write(to_json({"problem": data.problem, "n": data.n, "source": data.source,
                       "epsilon": eps, "rows": rows, **summary, "warnings": warnings}))
        return

    def cell(row: dict, what: str) -> str:
        if row[f"measured_{what}"] is None:
            return ""
        mark = "in" if row[f"{what}_covered"] else "OUT"
        return f"{row[f'{what}_error_pct']:+.1f}% {mark}"

    table = [{
        "algorithm": r["algorithm"], "m": r["m"], "fitted on m": r["fitted_on"],
        "beyond": f"{r['beyond']:.2g}x",
        "measured time_s": r["measured_time_s"], "predicted time_s": r["predicted_time_s"],
        "time 90%": _interval(r["time_s_lo"], r["time_s_hi"]),
        "s/iter error": cell(r, "s_per_iter"), "iterations error": cell(r, "iterations"),
        "time error": cell(r, "time_s"),
    } for r in rows]

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}%"

    def share(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.0f}%"

    per = [{"algorithm": a, "compared": s["compared"],
            "s/iter |error|": pct(s["s_per_iter_median_abs_pct_error"]),
            "iterations |error|": pct(s["iterations_median_abs_pct_error"]),
            "time |error|": pct(s["time_s_median_abs_pct_error"]),
            "s/iter coverage": share(s["s_per_iter_coverage"]),
            "iterations coverage": share(s["iterations_coverage"]),
            "time coverage": share(s["time_s_coverage"])}
           for a, s in [*summary["per_algorithm"].items(), ("all", summary["overall"])]]
    text = [
        f"Extrapolation validation for {_describe(data)}, eps={eps:g}: each algorithm fitted "
        "on its smaller sizes, its largest predicted; error of the prediction and whether "
        f"the 90% interval ({draws} draws, with a new run's noise) holds the measured value",
        render(table, "table", floatfmt=".4g"),
        "median absolute error and interval coverage at the held-out sizes:",
        render(per, "table"),
    ]
    write("\n\n".join(text))


def _plot_extrapolation(data: "Measurements", eps: float, terms: Sequence["Term"],
                        rows: list[dict], draws: int, seed: int, plot_path: str) -> None:
    """The ranking plot of the fits to the smaller sizes, over m up to the largest measured."""
    import numpy as np

    from plugins.hemingway.fitting import fit_algorithm
    from plugins.hemingway.plot import plot
    from plugins.hemingway.ranking import Objective, rank

    fits = []
    for algorithm in sorted({r["algorithm"] for r in rows}, key=str.lower):
        held = min(r["m"] for r in rows if r["algorithm"] == algorithm)
        fits.append(fit_algorithm([r for r in data.runs_of(algorithm) if r.ranks < held],
                                  eps, terms))
    ranked = rank(fits, eps, max(data.sizes()), Objective(), terms, draws, seed)
    for row in ranked:  # show the held-out measurements as dots too
        times = [r.time_to(eps) for r in data.runs_of(row["algorithm"]) if r.ranks == row["m"]]
        times = [t for t in times if t is not None]
        row["measured_time_s"] = float(np.mean(times)) if times else None
    plot(fits, ranked, eps, f"Hemingway fitted on the smaller sizes: {_describe(data)}, "
         f"eps={eps:g}", plot_path)


def _suggest(data: "Measurements", terms: Sequence["Term"], max_ranks: int, budget: float | None,
             fmt: str) -> None:
    from plugins.hemingway.design import suggest

    design = suggest(data, terms, max_ranks, budget)
    command = _sweep_command(data, design.algorithms, [r["m"] for r in design.rows])
    if fmt == "json":
        write(to_json({"problem": data.problem, "source": data.source, "budget": budget,
                       "max_ranks": max_ranks, "measured_ranks": data.sizes(),
                       "a_criterion_now": design.criterion_before,
                       "a_criterion_after": design.criterion_after,
                       "suggestions": design.rows, "command": command,
                       "sizes_still_missing": design.sizes_still_missing}))
        return
    spend = f"within {budget:g} machine-seconds" if budget else "(no --budget: the best few)"
    text = [f"Next cluster sizes to measure for {_describe(data)} {spend}, candidates "
            f"m=1..{max_ranks}, measured so far m={','.join(map(str, data.sizes()))}; "
            "A-optimal for the system-model coefficients"]
    if design.rows:
        text.append(render(design.rows, "table"))
        text.append(f"A-criterion {design.criterion_before:.4g} -> {design.criterion_after:.4g}"
                    f"; run: {command}")
        if design.sizes_still_missing:
            text.append(f"note: after these runs the {len(terms)}-term system model still needs "
                        f"{design.sizes_still_missing} more cluster size(s); raise --budget")
    else:
        text.append("no run within the budget lowers the A-criterion noticeably")
    write("\n\n".join(text))
