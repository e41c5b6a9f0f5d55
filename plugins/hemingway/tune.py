"""``bench tune``: measure, fit, decide what to measure next, until the choice is confident.

A session is one question (source, problem, algorithms, epsilon, options); its
id is derived from them, so running the same command again finds the runs it
already made in the store (by their ``run_tag``) and continues. Every run
stores its round's plan, so a resumed session (after Ctrl-C, or with a
higher ``--max-rounds`` or ``--budget``) makes only the runs of that plan it
is missing and re-plans nothing it already planned: a plan depends on the
loop's options (the last round plans differently), not only on the runs
before it. The decisions themselves are :mod:`plugins.hemingway.closed_loop`.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Sequence

import click

from harness import params
from harness.cli import format_option, store_option
from harness.errors import BenchUsageError

TAG_PREFIX = "tune"
RANK_ENV = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK")
TOP_ROWS = 8
FUTURE_RUNS = 100000  # default payoff horizon: a run must pay for itself within this many uses


def _rank() -> int | None:
    """This process's MPI rank when started by mpiexec (read from the environment only)."""
    for var in RANK_ENV:
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return None


def session_id(source: str, problem: str, algorithms: Sequence[str], eps: float,
               source_options: dict[str, Any], problem_options: Sequence[str],
               algorithm_options: Sequence[str], iterations: int | None) -> str:
    """Twelve hex digits naming the question, so the same command finds the same session."""
    question = json.dumps([source.lower(), problem.lower(), sorted(a.lower() for a in algorithms),
                           repr(float(eps)), sorted((k, repr(v)) for k, v in source_options.items()),
                           list(problem_options), list(algorithm_options), iterations])
    return hashlib.sha256(question.encode()).hexdigest()[:12]


@dataclass
class FinishedRun:
    """One stored run of the session, as the loop needs it."""

    result_id: int
    algorithm: str
    m: int
    round: int
    status: str
    machine_seconds: float
    plan: tuple[tuple[str, int], ...] | None = None  # its round's plan (None: stored without)


def _as_plan(pairs: Sequence[Sequence[Any]]) -> tuple[tuple[str, int], ...] | None:
    """(algorithm, m) pairs as FinishedRun.plan keeps them (None for no plan)."""
    return tuple((str(a), int(m)) for a, m in pairs) or None


@dataclass
class Session:
    """The session's runs in the store and the request that makes more."""

    id: str
    store: Any
    source: Any  # MeasurementSourceSpec
    problem: str
    eps: float
    options: dict[str, Any]
    problem_options: tuple[str, ...]
    algorithm_options: tuple[str, ...]
    iterations: int | None
    verbose: bool = False  # let the source print its own per-run detail
    runs: list[FinishedRun] = field(default_factory=list)

    @property
    def prefix(self) -> str:
        return f"{TAG_PREFIX}:{self.id}:"

    def load(self) -> None:
        """Every run this session stored, finished or not, oldest first."""
        self.runs = []
        for res in self.store.list(kind="sweep"):
            tag = str(res.options.get("run_tag") or "")
            if not tag.startswith(self.prefix):
                continue
            round_ = int(tag.split(":")[2])
            seconds = res.summary.get("machine_seconds")
            if seconds is None:  # interrupted before the loop annotated it
                seconds = (res.summary.get("wall_time_s") or res.summary.get(
                    "total_iter_time_s") or 0.0) * (res.ranks or 1)
            self.runs.append(FinishedRun(res.id, res.optimizer, int(res.ranks), round_,
                                         res.status, float(seconds),
                                         _as_plan(res.summary.get("tune_plan") or ())))

    @property
    def spent(self) -> float:
        return sum(r.machine_seconds for r in self.runs)

    def complete(self, before_round: int | None = None) -> list[FinishedRun]:
        return [r for r in self.runs if r.status == "complete"
                and (before_round is None or r.round < before_round)]

    def plan_of(self, round_: int) -> list[tuple[str, int]] | None:
        """The plan a run of ``round_`` stored, or None when no run of it did."""
        for run in self.runs:
            if run.round == round_ and run.plan is not None:
                return list(run.plan)
        return None

    def measure(self, algorithm: str, m: int, round_: int, nth: int = 0,
                plan: Sequence[tuple[str, int]] = ()) -> FinishedRun:
        """Make one run; its tag names the round and the run (the same run of a resumed
        session has the same tag, so a simulated source draws the same data). ``plan``:
        the round's runs, stored with this one so that a resumed session keeps it."""
        from harness import MeasureRequest

        tag = f"{self.prefix}{round_}:{algorithm.lower()}:{m}:{nth}"
        request = MeasureRequest(
            problem=self.problem, algorithm=algorithm, ranks=m, target=self.eps,
            iterations=self.iterations, options=self.options, store=self.store, run_tag=tag,
            problem_options=self.problem_options, algorithm_options=self.algorithm_options,
            verbose=self.verbose)
        measured = self.source.measure(request)
        stored = self.store.get(measured.result_id)
        round_plan = _as_plan(plan)
        summary = {**stored.summary, "machine_seconds": measured.machine_seconds,
                   "tune_session": self.id, "tune_round": round_,
                   "tune_plan": [list(p) for p in round_plan] if round_plan else None}
        self.store.finish(stored.id, stored.status, summary=summary, error=stored.error)
        run = FinishedRun(stored.id, stored.optimizer, m, round_, measured.status,
                          measured.machine_seconds, round_plan)
        self.runs.append(run)
        return run

    def measurements(self, before_round: int | None = None) -> Any:
        from plugins.hemingway.measurements import from_results

        ids = {r.result_id for r in self.complete(before_round)}
        results = [res for res in self.store.list(kind="sweep") if res.id in ids]
        return from_results(self.store, results, f"tune session {self.id}")


def _missing(planned: Sequence[tuple[str, int]],
             done: Sequence[FinishedRun]) -> list[tuple[str, int, int]]:
    """The planned (algorithm, m, nth repeat in the round) not yet made (a multiset difference)."""
    left = [(r.algorithm.lower(), r.m) for r in done]
    out, seen = [], []
    for algorithm, m in planned:
        key = (algorithm.lower(), m)
        nth = seen.count(key)
        seen.append(key)
        if key in left:
            left.remove(key)
        else:
            out.append((algorithm, m, nth))
    return out


def initial_sizes(text: str | None, max_ranks: int, needed: int) -> list[int]:
    """``--initial-ranks``, or powers of two (then the sizes between) up to ``needed`` sizes."""
    from plugins.optimizers.sweep import parse_ranks

    if text:
        sizes = sorted(set(parse_ranks(text)))
        over = [m for m in sizes if m > max_ranks]
        if over:
            raise BenchUsageError(f"--initial-ranks {text} goes past --max-ranks {max_ranks}")
    else:
        powers = [2 ** k for k in range(12) if 2 ** k <= max_ranks][:needed]
        others = [m for m in range(1, max_ranks + 1) if m not in powers]
        sizes = sorted(powers + others[: max(0, needed - len(powers))])
    if len(sizes) < needed:
        raise BenchUsageError(
            f"the {needed}-term system model needs {needed} cluster sizes to fit, but "
            f"{'--initial-ranks gives' if text else f'--max-ranks {max_ranks} allows'} "
            f"{len(sizes)} ({','.join(map(str, sizes))}); give more sizes or raise --max-ranks")
    return sizes


@dataclass
class Outcome:
    """Where the loop ended and why."""

    posterior: Any
    rounds: int
    spent: float
    budget: float
    reason: str  # "confident", "budget", "rounds", "worth" (no run is worth its cost)
    session: str
    runs: int


def run_loop(session: Session, algorithms: Sequence[str], terms: Sequence[Any], max_ranks: int,
             budget: float, confidence: float, tolerance: float, max_rounds: int,
             initial: Sequence[int], runs_per_round: int, seed: int = 0,
             report: Any = None, future_runs: float = FUTURE_RUNS) -> Outcome:
    """Round 1 runs ``initial`` sizes of every algorithm; each later round fits, stops or
    plans the next runs (:func:`plugins.hemingway.closed_loop.plan`) and makes them."""
    import numpy as np

    from plugins.hemingway.closed_loop import DEFAULT_OVERHEAD, plan, posterior
    from plugins.hemingway.fitting import fit_all

    report = report or (lambda text: None)
    session.load()
    canonical = {a.lower(): a for a in algorithms}

    def make(round_: int, planned: Sequence[tuple[str, int]], estimate: Any,
             stored: bool = False) -> None:
        """The runs of ``planned`` not yet made; a ``stored`` plan (made by an earlier
        command, whose budget may have been larger) stops where the budget is spent."""
        done = [r for r in session.runs if r.round == round_ and r.status == "complete"]
        missing = _missing(planned, done)
        if missing:
            report(f"round {round_}: running {len(missing)} of {len(planned)} runs: "
                   + ", ".join(f"{a} m={m}" for a, m, _ in missing))
        for algorithm, m, nth in missing:
            guess = estimate(algorithm, m)
            if guess is not None and session.spent + guess > budget and round_ == 1:
                raise BenchUsageError(
                    f"--budget {budget:g} machine-seconds does not cover the initial runs: "
                    f"{session.spent:.3g} spent, the next ({algorithm} m={m}) costs about "
                    f"{guess:.3g}; raise --budget or give fewer --initial-ranks (finished runs "
                    "are kept; the same command resumes)")
            if stored and session.spent >= budget:
                report(f"round {round_}: --budget {budget:g} is spent; the rest of the "
                       "round's plan is not made")
                return
            run = session.measure(canonical.get(algorithm.lower(), algorithm), m, round_, nth,
                                  planned)
            report(f"  round {round_}: {run.algorithm} m={m} {run.status}, "
                   f"{run.machine_seconds:.3g} machine-s (result {run.result_id})")

    def initial_cost(algorithm: str, m: int) -> float | None:
        """Ideal scaling: the machine-seconds of this algorithm's last run so far."""
        mine = [r for r in session.complete() if r.algorithm.lower() == algorithm.lower()]
        return mine[-1].machine_seconds if mine else None

    make(1, session.plan_of(1) or [(a, m) for m in initial for a in algorithms], initial_cost)
    round_ = 1
    previous = None  # the choice before this round's runs
    while True:
        data = session.measurements(before_round=round_ + 1)
        fits, warnings = fit_all(data, session.eps, terms)
        for warning in warnings:
            report(f"warning: {warning}")
        post = posterior(fits, session.eps, terms, max_ranks,
                         np.random.default_rng([seed, round_]), tolerance)
        choice = post.candidate(post.choice)
        so_far = [r for r in session.runs if r.round <= round_]  # as of this round, on resume too
        report(f"round {round_}: {sum(r.status == 'complete' for r in so_far)} runs, "
               f"{sum(r.machine_seconds for r in so_far):.4g}/{budget:g} "
               f"machine-s; best {choice[0]} m={choice[1]}, P(best) "
               f"{post.p_best[post.choice]:.2f}, P(within {tolerance:.0%}) "
               f"{post.confidence:.2f}")
        confident = (post.confidence >= confidence and not post.decision_unchecked
                     and post.confirms(previous))
        previous = choice
        earlier = session.plan_of(round_ + 1)
        if earlier is not None:  # planned (and paid for, in part) before: finish it, plan nothing
            round_ += 1
            make(round_, earlier, lambda a, m: None, stored=True)
            continue
        reason = ("confident" if confident else
                  "rounds" if round_ >= max_rounds else None)
        planned = []
        if reason is None:
            overhead = _overhead(session, post, data)
            next_round = plan(post, overhead, budget - session.spent, runs_per_round,
                              np.random.default_rng([seed, round_, 1]), max_rounds - round_,
                              future_runs)
            planned = next_round.runs
            if not planned:
                reason = next_round.empty_because
        if reason is not None:
            return Outcome(post, round_, session.spent, budget, reason, session.id,
                           len(session.complete()))
        round_ += 1
        costs = {(p.algorithm.lower(), p.m): p.cost for p in planned}
        make(round_, [(p.algorithm, p.m) for p in planned],
             lambda a, m: costs.get((a.lower(), m), DEFAULT_OVERHEAD))


def _overhead(session: Session, post: Any, data: Any) -> dict[str, float]:
    """Per algorithm: measured machine-seconds over predicted T x m (median over its runs)."""
    import numpy as np

    median = np.median(post.times, axis=0)
    ratios: dict[str, list[float]] = {}
    for run in session.complete():
        if run.algorithm not in post.algorithms or run.m > post.m[-1]:
            continue
        predicted = median[post.column(run.algorithm, run.m)] * run.m
        if predicted > 0 and run.machine_seconds > 0:
            ratios.setdefault(run.algorithm, []).append(run.machine_seconds / predicted)
    return {a: float(np.median(v)) for a, v in ratios.items()}


# --------------------------------------------------------------------------- the command
def _pairs(text: str | None, what: str) -> list[str]:
    names = [n.strip() for n in (text or "").split(",") if n.strip()]
    if not names:
        raise BenchUsageError(f"{what} needs at least one name")
    if len({n.lower() for n in names}) != len(names):
        raise BenchUsageError(f"{what} lists the same name twice")
    return names


@click.command("tune")
@click.option("--problem", required=True, metavar="NAME",
              help="Problem, in the source's names (mpi: `bench list problems`; synthetic: a "
                   "case such as tree-far).")
@click.option("--algorithms", required=True, metavar="A,B,...",
              help="Algorithms to choose between, comma-separated.")
@click.option("--epsilon", required=True, type=params.POSITIVE,
              metavar="EPS", help="Target suboptimality: time-to-EPS is what is minimised.")
@click.option("--source", default="mpi", show_default=True, metavar="NAME",
              help="Where runs come from (`bench list sources`).")
@click.option("--source-opt", "source_pairs", multiple=True, metavar="KEY=VALUE",
              help="Option of the source; repeat for several.")
@click.option("--problem-opt", "problem_pairs", multiple=True, metavar="KEY=VALUE",
              help="Problem option (mpi source); repeat for several.")
@click.option("--opt", "opt_pairs", multiple=True, metavar="[ALGORITHM:]KEY=VALUE",
              help="Algorithm hyperparameter (mpi source); repeat for several.")
@click.option("--budget", required=True, type=params.POSITIVE,
              metavar="MACHINE_SECONDS", help="Machine-seconds (seconds x ranks) to spend on runs.")
@click.option("--confidence", type=params.Number(0, 1, open_minimum=True, open_maximum=True),
              default=0.9, show_default=True,
              help="Stop once the choice is within --tolerance of the best with this probability.")
@click.option("--tolerance", type=params.Number(0, 1, open_maximum=True), default=0.05,
              show_default=True,
              help="How close to the best counts as best (0.05: within 5%; 0: exactly P(best)).")
@click.option("--max-ranks", type=params.RANKS, metavar="M",
              help="Largest cluster size to consider (default: the source's limit; the mpi "
                   "source has none, so give it).")
@click.option("--initial-ranks", metavar="K,K,...",
              help="Sizes of round 1 (default: 1,2,4,8 capped by --max-ranks, filled up to "
                   "as many sizes as the system model has terms).")
@click.option("--max-rounds", type=params.Count(1000), default=4, show_default=True,
              help="Rounds of measurement at most, round 1 included; raise it and run the "
                   "same command again to go on with a finished session.")
@click.option("--runs-per-round", type=params.Count(10_000), metavar="N",
              help="Runs per round after the first (default: as many as round 1, i.e. the "
                   "initial sizes x the algorithms).")
@click.option("--future-runs", type=params.POSITIVE, default=FUTURE_RUNS, show_default=True,
              metavar="N",
              help="Payoff horizon: a run is made only if its expected saving over N later "
                   "runs of the chosen configuration covers its cost (smaller: stop sooner).")
@click.option("--iterations", type=params.ITERATIONS, metavar="N",
              help="Most iterations per run (default: the source's own cap).")
@click.option("--term", "extra_terms", multiple=True, metavar="EXPR",
              help="Extra system-model term, as in `bench rank --term`. Repeatable.")
@click.option("--session", "session_name", metavar="NAME",
              help="Name the session (default: derived from the question, so the same "
                   "command resumes it).")
@click.option("--seed", type=params.SEED, default=0, show_default=True, help="Seed of the posterior draws.")
@click.option("--verbose", is_flag=True,
              help="Show every run as it finishes and the source's own detail (for mpi: the "
                   "mpiexec commands and sweep's per-job lines).")
@format_option("table", "json")
@store_option
def tune_command(problem: str, algorithms: str, epsilon: float, source: str,
                 source_pairs: tuple[str, ...], problem_pairs: tuple[str, ...],
                 opt_pairs: tuple[str, ...], budget: float, confidence: float, tolerance: float,
                 max_ranks: int | None, initial_ranks: str | None, max_rounds: int,
                 runs_per_round: int | None, future_runs: float, iterations: int | None,
                 extra_terms: tuple[str, ...], session_name: str | None, seed: int,
                 verbose: bool, fmt: str, store_path: str | None) -> None:
    """Find the best (algorithm, cluster size) by measuring only what the decision needs.

    \b
    Round 1 runs a few small sizes of every algorithm; then each round fits the
    models, computes how likely each (algorithm, m) is the best, and runs the
    sizes whose result would most improve the choice per machine-second, until
    the choice is confident, the budget is spent or --max-rounds is reached.
    Every run is stored as it finishes; Ctrl-C keeps them and the same command
    resumes.
    \b
      bench tune --source synthetic --problem tree-far --algorithms gd,cocoa+ \\
                 --epsilon 1e-4 --budget 2000
      bench tune --problem logreg --algorithms cocoa+,minibatch-sgd --epsilon 1e-3 \\
                 --budget 600 --max-ranks 4
    """
    from harness.cli import open_store
    from harness.plugins.manager import get_plugin_manager
    from plugins.hemingway.fitting import sizes_needed
    from plugins.hemingway.system_model import resolve_terms

    rank = _rank()
    if rank is not None:
        if rank == 0:
            raise BenchUsageError("bench tune starts its own runs; run it outside mpirun/mpiexec")
        sys.exit(2)
    names = _pairs(algorithms, "--algorithms")
    spec = get_plugin_manager().measurement_source(source)
    options = spec.parse_options(list(source_pairs))
    limit = spec.check(problem, names, options)
    if spec.check_job_options is not None:
        spec.check_job_options(problem, names, list(problem_pairs), list(opt_pairs))
    elif problem_pairs or opt_pairs:
        valid = ", ".join(o.name for o in spec.options) or "none"
        raise BenchUsageError(f"source '{spec.name}' takes no --problem-opt or --opt; its "
                              f"options (--source-opt) are: {valid}")
    if max_ranks is None:
        if limit is None:
            raise BenchUsageError(f"source '{spec.name}' has no cluster-size limit of its own; "
                                  "give --max-ranks M (the largest size to consider)")
        max_ranks = limit
    elif limit is not None and max_ranks > limit:
        raise BenchUsageError(f"--max-ranks {max_ranks} is more than source '{spec.name}' can "
                              f"run here ({limit})")
    terms = resolve_terms(extra_terms)
    initial = initial_sizes(initial_ranks, max_ranks, sizes_needed(terms))
    sid = session_name or session_id(spec.name, problem, names, epsilon, options, problem_pairs,
                                     opt_pairs, iterations)
    if ":" in sid:
        raise BenchUsageError(f"--session '{sid}' may not contain ':'")
    tty = sys.stderr.isatty()

    def report(text: str) -> None:
        if tty or verbose or not text.startswith("  "):
            print(text, file=sys.stderr, flush=True)

    store = open_store(store_path)
    session = Session(sid, store, spec, problem, epsilon, options, tuple(problem_pairs),
                      tuple(opt_pairs), iterations, verbose)
    try:
        outcome = run_loop(session, names, terms, max_ranks, budget, confidence, tolerance,
                           max_rounds, initial, runs_per_round or len(initial) * len(names), seed,
                           report, future_runs)
    except KeyboardInterrupt:
        session.load()
        finished = len(session.complete())
        print(f"interrupted: {finished} finished runs of tune session {sid} are stored in "
              f"{store.path}; run the same command again to resume", file=sys.stderr)
        sys.exit(130)
    _emit(outcome, problem, epsilon, spec.name, fmt, store.path,
          next_step(outcome, confidence, max_rounds))


def _interval(lo: float, hi: float) -> str:
    return f"{lo:.3g} - {hi:.3g}"


def next_step(outcome: Outcome, confidence: float, max_rounds: int) -> str | None:
    """What to run to go on, when the loop stopped before it was sure (None when it was)."""
    if outcome.reason == "confident":
        return None
    post = outcome.posterior
    sure = (f"P(within {post.tolerance:.0%}) {post.confidence:.2f} is below --confidence "
            f"{confidence:g}" if post.confidence < confidence else
            "the choice is not yet checked and confirmed by a round of runs")
    more = {"rounds": f"--max-rounds {max(max_rounds, outcome.rounds) + 1}",
            "budget": "a larger --budget",
            "worth": "a larger --future-runs (runs are then worth more)"}[outcome.reason]
    return (f"not sure yet: {sure}; the same command with {more} goes on with this session "
            f"(its {outcome.runs} runs are kept, none is made again)")


def _emit(outcome: Outcome, problem: str, eps: float, source: str, fmt: str, path: Any,
          advice: str | None = None) -> None:
    from harness.output import render, to_json, write

    post = outcome.posterior
    algorithm, m = post.candidate(post.choice)
    top = post.rows(TOP_ROWS)
    regret = top[0]["expected_regret"] if top else 0.0
    why = {"confident": f"P(within {post.tolerance:.0%} of the best) reached the target and "
                        "the choice and its rivals are checked by runs and the "
                        "last round's runs confirmed it",
           "budget": "the budget buys no further useful run",
           "worth": "no run is worth its cost (none would save, over --future-runs uses of "
                    "the choice, the machine-seconds it costs)",
           "rounds": "--max-rounds reached"}[outcome.reason]
    if fmt == "json":
        write(to_json({"session": outcome.session, "source": source, "problem": problem,
                       "epsilon": eps, "choice": {"algorithm": algorithm, "m": m},
                       "p_best": float(post.p_best[post.choice]),
                       "p_within": post.confidence, "tolerance": post.tolerance,
                       "expected_regret": regret,
                       "rounds": outcome.rounds, "runs": outcome.runs,
                       "machine_seconds": outcome.spent, "budget": outcome.budget,
                       "stopped": outcome.reason, "next": advice, "candidates": top,
                       "store": str(path)}))
        return
    table = [{"algorithm": r["algorithm"], "m": r["m"], "data": r["data"],
              "time_s": r["time_s"], "time 90%": _interval(r["time_lo_s"], r["time_hi_s"]),
              "P(best)": r["p_best"], f"P(within {post.tolerance:.0%})": r["p_within"],
              "E[regret]": f"{100 * r['expected_regret']:.1f}%"}
             for r in top]
    summary = [{"choice": f"{algorithm} on m={m}", "P(best)": float(post.p_best[post.choice]),
                f"P(within {post.tolerance:.0%})": post.confidence,
                "E[regret]": f"{100 * regret:.1f}%", "rounds": outcome.rounds,
                "runs": outcome.runs,
                "machine-s spent": f"{outcome.spent:.4g} of {outcome.budget:g}"}]
    write("\n\n".join([
        f"bench tune: {problem} from source '{source}', time to suboptimality {eps:g} "
        f"(session {outcome.session})",
        render(summary, "table"),
        f"stopped: {why}. Top candidates by expected regret (median time, 90% interval; "
        "E[regret]: expected excess time over the best, as a share of the best's):",
        render(table, "table"),
        *([advice] if advice else []),
    ]))
