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
    cli.add_command(rank_command)


def _interval(lo: float, hi: float) -> str:
    if lo != lo or hi != hi:  # NaN: no bootstrap
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
@click.option("--bootstrap", type=params.BOOTSTRAP, default=200, show_default=True,
              help="Bootstrap resamples for the intervals (0: none).")
@click.option("--seed", type=params.SEED, default=0, show_default=True, help="Bootstrap seed.")
@format_option("table", "json")
@click.option("--plot", "plot_path", type=params.OUTPUT_FILE,
              help="Draw fitted curves and predicted time-to-eps to this image file.")
@click.option("--validate", is_flag=True,
              help="Leave one cluster size out at a time and report the prediction error.")
@click.option("--suggest", is_flag=True,
              help="Propose which cluster sizes to measure next (A-optimal, within --budget).")
def rank_command(epsilon: float | None, problem: str | None, input_path: str | None,
                 store_path: str | None, n_filter: float | None, max_ranks: int | None,
                 objective: str, deadline: float | None, budget: float | None,
                 price_per_machine_hour: float | None, cores: int | None,
                 terms: tuple[str, ...], bootstrap: int,
                 seed: int, fmt: str, plot_path: str | None, validate: bool,
                 suggest: bool) -> None:
    """Predict time-to-accuracy per (algorithm, cluster size) and rank them (Hemingway).

    \b
    bench rank --epsilon 1e-4                     rank by predicted time
    bench rank --epsilon 1e-4 --objective cost    rank by machine-seconds
    bench rank --epsilon 1e-4 --validate          leave-one-cluster-size-out error
    bench rank --suggest --budget 600             which sizes to measure next
    """
    from plugins.hemingway import measurements as loading
    from plugins.hemingway.system_model import resolve_terms

    if validate and suggest:
        raise BenchUsageError("--validate and --suggest are separate questions; give one")
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
    elif validate:
        _validate(data, epsilon, model_terms, fmt, plot_path)
    else:
        from plugins.hemingway.ranking import Objective

        goal = Objective(objective.lower(), deadline, budget, price_per_machine_hour)
        _rank(data, epsilon, model_terms, max_ranks, goal, bootstrap, seed, fmt, plot_path)


def _describe(data: "Measurements") -> str:
    n = f"n={data.n:g}" if data.n else "n unknown"
    return f"{data.problem or 'problem'} ({n}) from {data.source}"


def _rank(data: "Measurements", eps: float, terms: Sequence["Term"], max_ranks: int,
          goal: "Objective", replicates: int, seed: int, fmt: str, plot_path: str | None) -> None:
    from plugins.hemingway.ranking import fit_all, rank

    fits, warnings = fit_all(data, eps, terms)
    _warn(warnings)
    rows = rank(fits, eps, max_ranks, goal, terms, replicates, seed)
    if plot_path:
        from plugins.hemingway.plot import plot

        plot(fits, rows, eps, f"Hemingway: {_describe(data)}, eps={eps:g}", plot_path)
    if fmt == "json":
        write(to_json({
            "problem": data.problem, "n": data.n, "source": data.source, "epsilon": eps,
            "objective": goal.kind, "cost_unit": goal.cost_unit,
            "deadline_s": goal.deadline_s, "budget": goal.budget,
            "bootstrap": replicates, "interval": "5th-95th percentile",
            "models": [f.as_dict() for f in fits], "ranking": rows, "warnings": warnings,
        }))
        return
    cost_label = "cost" if goal.price_per_machine_hour else "machine_s"
    table = [{
        "rank": r["rank"] if r["rank"] is not None else "-",
        "algorithm": r["algorithm"], "m": r["m"], "data": r["data"],
        "iterations": int(r["iterations"]),
        "s/iter": r["s_per_iter"], "time_s": r["time_s"],
        "time 90%": _interval(r["time_lo_s"], r["time_hi_s"]),
        cost_label: r["cost"], f"{cost_label} 90%": _interval(r["cost_lo"], r["cost_hi"]),
        "measured time_s": r["measured_time_s"], "limit": r["limit"],
    } for r in rows]
    header = (f"Hemingway ranking for {_describe(data)}: time to suboptimality {eps:g}, "
              f"best {goal.kind} first")
    if replicates:
        header += f"; 90% intervals from {replicates} bootstrap resamples of the measured runs"
    models = [{"algorithm": f.algorithm, "measured m": ",".join(map(str, f.sizes)),
               "f(m) seconds/iteration": f.system.describe(),
               "convergence": f.convergence.describe()} for f in fits]
    best = next((r for r in rows if r["feasible"]), None)
    verdict = (f"best: {best['algorithm']} on m={best['m']}: {best['time_s']:.3g} s, "
               f"{best['cost']:.3g} {goal.cost_unit}" if best else
               "no (algorithm, m) meets the deadline and budget")
    write("\n\n".join([header, render(table, "table"), verdict, render(models, "table")]))


def _validate(data: "Measurements", eps: float, terms: Sequence["Term"], fmt: str,
              plot_path: str | None) -> None:
    from plugins.hemingway.validation import validate

    rows, summary, warnings = validate(data, eps, terms)
    _warn(warnings)
    if plot_path:
        from plugins.hemingway.plot import plot
        from plugins.hemingway.ranking import Objective, fit_all, rank

        fits, _ = fit_all(data, eps, terms)
        ranked = rank(fits, eps, max(data.sizes()), Objective(), terms, replicates=0)
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


def _suggest(data: "Measurements", terms: Sequence["Term"], max_ranks: int, budget: float | None,
             fmt: str) -> None:
    from plugins.hemingway.design import suggest

    design = suggest(data, terms, max_ranks, budget)
    sizes = ",".join(str(r["m"]) for r in design.rows)
    problem_opts = "".join(f" --problem-opt {k}={v}" for k, v in data.problem_options.items()
                           if v not in (None, ""))
    command = (f"bench sweep --optimizer {','.join(design.algorithms)} "
               f"--problem {data.problem or 'PROBLEM'}{problem_opts} --ranks {sizes}"
               ) if sizes else ""
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
