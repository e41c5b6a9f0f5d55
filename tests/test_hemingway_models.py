"""Hemingway's models on synthetic measurements drawn from known ground truth."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import nnls

from plugins.hemingway import measurements as loading
from plugins.hemingway.convergence import FAMILIES, ConvergenceModel
from plugins.hemingway.design import a_criterion, suggest
from plugins.hemingway.nnls import nnls_gram
from plugins.hemingway.fitting import fit_all
from plugins.hemingway.ranking import Objective, rank
from plugins.hemingway.synthetic import EXAMPLE_ALGORITHMS, TrueAlgorithm, generate
from plugins.hemingway.system_model import BASE_TERMS, design_matrix, fit_system, resolve_terms
from plugins.hemingway.validation import validate

N = 20000
EPS = 1e-4
MEASURED = (1, 2, 3, 4, 6, 8)
TRUTH = {a.name: a for a in EXAMPLE_ALGORITHMS}


def measurements_of(rows):
    return loading._build(rows, lambda k: f"row {k}", "test", "synthetic", None, "run")


@pytest.fixture(scope="module")
def sweep():
    return measurements_of(generate(EXAMPLE_ALGORITHMS, MEASURED, N, EPS, seed=1))


@pytest.fixture(scope="module")
def fits(sweep):
    fitted, warnings = fit_all(sweep, EPS, BASE_TERMS)
    assert warnings == []
    return {f.algorithm: f for f in fitted}


# --------------------------------------------------------------------------- NNLS
def test_batched_nnls_matches_scipy_including_free_columns():
    rng = np.random.default_rng(0)
    for _ in range(300):
        k = int(rng.integers(1, 8))
        rows = int(rng.integers(k, 40))
        a = rng.normal(size=(rows, k)) * rng.lognormal(0, 1.5, size=k)
        b = rng.normal(size=rows) * 3
        expected, _ = nnls(a, b)
        got = nnls_gram(a.T @ a, a.T @ b)
        assert np.all(got >= 0)
        tolerance = 1e-7 * np.linalg.norm(b)
        assert np.linalg.norm(a @ got - b) <= np.linalg.norm(a @ expected - b) + tolerance
        # first column free: scipy sees it as two columns, +a0 and -a0
        split, _ = nnls(np.hstack([a, -a[:, :1]]), b)
        free = nnls_gram(a.T @ a, a.T @ b, free=1)
        assert np.linalg.norm(a @ free - b) <= (
            np.linalg.norm(np.hstack([a, -a[:, :1]]) @ split - b) + tolerance)


def test_batched_nnls_solves_a_stack_like_one_at_a_time(monkeypatch):
    from plugins.hemingway import nnls as module

    rng = np.random.default_rng(1)
    a = rng.normal(size=(6, 30, 4))
    b = rng.normal(size=(6, 30))
    grams, rhs = np.einsum("bri,brj->bij", a, a), np.einsum("bri,br->bi", a, b)
    stacked = nnls_gram(grams, rhs, free=1)
    monkeypatch.setattr(module, "CHUNK_ELEMENTS", 1)  # one problem per batched solve
    for k in range(6):
        np.testing.assert_allclose(stacked[k], nnls_gram(grams[k], rhs[k], free=1), atol=1e-12)
    np.testing.assert_allclose(nnls_gram(grams, rhs, free=1), stacked, atol=1e-12)


def test_nnls_with_many_columns_falls_back_to_scipy_and_is_optimal():
    rng = np.random.default_rng(2)
    for _ in range(20):
        a = rng.normal(size=(60, 13))
        b = rng.normal(size=60)
        got = nnls_gram(a.T @ a, a.T @ b, free=1)  # 12 constrained columns: active set
        assert np.all(got[1:] >= 0)
        # optimality: no feasible change lowers the residual (KKT for NNLS)
        gradient = a.T @ (b - a @ got)
        assert abs(gradient[0]) < 1e-8
        assert np.all(gradient[1:] <= 1e-8)
        assert np.allclose(gradient[1:][got[1:] > 1e-12], 0, atol=1e-8)


# --------------------------------------------------------------------------- system model
def test_system_coefficients_recovered_from_a_wide_design():
    truth = np.array([2e-3, 4e-7, 1e-3, 2e-4])
    sizes = np.array([1, 2, 4, 8, 16, 32, 64, 128], dtype=float)
    exact = design_matrix(BASE_TERMS, sizes, N) @ truth
    rng = np.random.default_rng(2)
    # 100 iterations per run with 2% noise each: the run means the fit sees
    measured = np.array([np.mean(f * rng.lognormal(0, 0.02, 100)) for f in exact])
    model = fit_system(sizes, measured, N)
    np.testing.assert_allclose(model.coef, truth, rtol=0.15)
    np.testing.assert_allclose(model.predict(sizes), exact, rtol=0.01)


def test_system_coefficients_are_non_negative_and_zero_when_a_term_is_absent():
    sizes = np.arange(1, 33, dtype=float)
    seconds = 1e-3 + 5e-8 * N / sizes  # no log(m) and no m term at all
    model = fit_system(sizes, seconds, N)
    assert np.all(model.coef >= 0)
    assert model.coef[2] < 1e-9 and model.coef[3] < 1e-9
    np.testing.assert_allclose(model.coef[:2], [1e-3, 5e-8], rtol=1e-6)


def test_extra_terms_from_expressions_and_registered_plugins():
    from plugins.hemingway.system_model import register_term

    register_term("square", lambda m, n: m**2, "test term")
    terms = resolve_terms(["square", "n*max(0, 1/2 - 1/m)"])
    assert [t.name for t in terms][-2:] == ["square", "n*max(0, 1/2 - 1/m)"]
    sizes = np.arange(1, 17, dtype=float)
    truth = np.array([1e-3, 1e-7, 0, 0, 2e-5, 5e-8])
    seconds = design_matrix(terms, sizes, N) @ truth
    model = fit_system(sizes, seconds, N, terms)
    np.testing.assert_allclose(model.predict(sizes), seconds, rtol=1e-6)
    assert model.coefficients()["square"] == pytest.approx(2e-5, rel=1e-3)


@pytest.mark.parametrize("text",
                         ["m**", "__import__('os')", "m.real", "q*m", "1 - m", "log(m - 1)"])
def test_bad_term_expressions_are_usage_errors(text):
    from harness.errors import BenchUsageError

    with pytest.raises(BenchUsageError, match="--term"):
        resolve_terms([text])


def test_shared_cores_term_models_ranks_that_take_turns_on_the_cores():
    """8 ranks on 2 cores: computation stops dividing at m = 2."""
    sizes = np.array([1, 2, 3, 4, 6, 8], dtype=float)
    seconds = 2e-3 + 4e-7 * N / np.minimum(sizes, 2) + 1e-3 * np.log(sizes)
    shared = fit_system(sizes, seconds, N, resolve_terms([], cores=2))
    probe = np.array([1.0, 5.0, 16.0])
    np.testing.assert_allclose(shared.predict(probe),
                               2e-3 + 4e-7 * N / np.minimum(probe, 2) + 1e-3 * np.log(probe),
                               rtol=1e-6)
    plain = fit_system(sizes, seconds, N)
    assert np.max(np.abs(plain.predict(sizes) / seconds - 1)) > 0.05  # n/m cannot bend like this


# --------------------------------------------------------------------------- convergence model
def test_crossings_are_interpolated_between_recorded_iterations():
    from plugins.hemingway.convergence import crossings

    iteration = np.arange(0, 6)
    subopt = 10.0 ** -iteration.astype(float)
    run = loading.Run("a", 1, "r", None, iteration, np.full(6, 0.1), subopt)
    levels = np.array([10 ** -2.5, 10 ** -1.0, 10 ** -4.0, 1.0, 10 ** -7.0])
    got = crossings(run, levels)
    np.testing.assert_allclose(got[:3], [2.5, 1.0, 4.0])
    assert np.isnan(got[3]) and np.isnan(got[4])  # at the first point (no bracket); never


def test_predicted_curves_are_monotone_in_i_for_every_family():
    rng = np.random.default_rng(3)
    i = np.arange(0, 400, dtype=float)
    for family in FAMILIES:
        offsets = rng.normal(0, 3, size=len(family.offsets))
        rates = rng.exponential(2.0, size=len(family.rates))
        model = ConvergenceModel(family, 1.0, np.r_[offsets, rates])
        for m in (1, 3, 16, 128):
            curve = model.subopt_after(i, np.full(i.shape, float(m)))
            assert np.all(np.diff(curve) <= 1e-15), family.name
            # the curve and I(s, m) are inverses: at the predicted iterations s is reached
            levels = np.array([1e-1, 1e-3, 1e-6])
            needed = model.iterations_to(levels, np.full(3, float(m)))
            reached = model.subopt_after(np.ceil(needed), np.full(3, float(m)))
            assert np.all(reached <= levels * (1 + 1e-9))


def test_convergence_family_follows_how_iterations_grow_with_m(fits):
    assert fits["gd"].convergence.family.m_shapes == ("1",)  # same iterations at every m
    assert fits["cocoa"].convergence.family.m_shapes == ("m",)  # averaging: ~m times more rounds
    assert "m" in fits["cocoa+"].convergence.family.m_shapes
    assert "m" not in fits["local-sgd"].convergence.family.m_shapes  # more machines help


@pytest.mark.parametrize("name", sorted(TRUTH))
def test_iterations_to_eps_extrapolate_to_unmeasured_sizes(fits, name):
    """Measured at m <= 8: iterations at m = 12 and 16 within 10% of the truth."""
    for m in (12, 16):
        predicted = fits[name].iterations(EPS, np.array([m]))[0]
        assert predicted == pytest.approx(TRUTH[name].iterations_to(EPS, m), rel=0.10)


@pytest.mark.parametrize("name", sorted(TRUTH))
def test_time_to_eps_extrapolates_within_15_percent(fits, name):
    for m in (10, 12, 16):
        predicted = fits[name].time_to(EPS, np.array([m]))[0]
        assert predicted == pytest.approx(TRUTH[name].time_to(EPS, m, N), rel=0.15)


def test_sublinear_convergence_is_modelled():
    """s = s0 / (1 + c(m) i): I grows like 1/s, which the exp(x)-1 shape captures."""
    rng = np.random.default_rng(4)
    rows = []
    for m in MEASURED:
        c = 0.05 * m / (1 + 0.1 * m)
        for i in range(0, 3000):
            rows.append({"algorithm": "sgd", "ranks": m, "n": N, "iteration": i,
                         "iter_time_s": 0.01 / m + 0.001, "suboptimality":
                         1.0 / (1 + c * i) * rng.lognormal(0, 0.01)})
    data = measurements_of(rows)
    (fit,), _ = fit_all(data, 1e-2, BASE_TERMS)
    assert "exp(x)-1" in fit.convergence.family.level_shapes
    for m in (12, 16):
        truth = (1 / 1e-2 - 1) / (0.05 * m / (1 + 0.1 * m))
        assert fit.iterations(1e-2, np.array([m]))[0] == pytest.approx(truth, rel=0.10)


# --------------------------------------------------------------------------- ranking
def true_best(objective: str, max_ranks: int) -> tuple[str, int]:
    def score(a: TrueAlgorithm, m: int) -> float:
        t = a.time_to(EPS, m, N)
        return t if objective == "time" else t * m

    return min(((a.name, m) for a in EXAMPLE_ALGORITHMS for m in range(1, max_ranks + 1)),
               key=lambda pair: score(TRUTH[pair[0]], pair[1]))


@pytest.mark.parametrize("objective", ["time", "cost"])
def test_ranking_picks_the_true_best(fits, objective):
    rows = rank(list(fits.values()), EPS, 16, Objective(objective), BASE_TERMS, draws=0)
    assert (rows[0]["algorithm"], rows[0]["m"]) == true_best(objective, 16)
    assert rows[0]["rank"] == 1
    key = "time_s" if objective == "time" else "cost"
    values = [r[key] for r in rows]
    assert values == sorted(values)
    assert len(rows) == len(fits) * 16


def test_ranking_marks_measured_and_extrapolated_and_applies_limits(fits):
    rows = rank(list(fits.values()), EPS, 12, Objective("time", deadline_s=1.0, budget=2.0),
                BASE_TERMS, draws=0)
    marks = {(r["algorithm"], r["m"]): r["data"] for r in rows}
    assert marks[("gd", 4)] == "measured" and marks[("gd", 5)] == "interpolated"
    assert marks[("gd", 12)] == "extrapolated"
    for row in rows:
        over_deadline = row["time_s"] > 1.0
        over_budget = row["cost"] > 2.0
        assert row["feasible"] == (not over_deadline and not over_budget)
        assert ("over deadline" in row["limit"]) == over_deadline
    feasible = [r["feasible"] for r in rows]
    assert feasible == sorted(feasible, reverse=True)  # feasible ones first
    assert rows[0]["measured_time_s"] is None or rows[0]["data"] == "measured"


def test_money_cost_uses_the_price_per_machine_hour(fits):
    machine = rank([fits["gd"]], EPS, 4, Objective("cost"), BASE_TERMS, draws=0)
    money = rank([fits["gd"]], EPS, 4, Objective("cost", price_per_machine_hour=3.6),
                 BASE_TERMS, draws=0)
    for a, b in zip(machine, money):
        assert b["cost"] == pytest.approx(a["cost"] * 3.6 / 3600)
        assert a["cost"] == pytest.approx(a["time_s"] * a["m"])


def test_bootstrap_intervals_bracket_the_prediction_and_widen_when_extrapolating(fits):
    rows = rank([fits["cocoa"]], EPS, 32, Objective(), BASE_TERMS, draws=100, seed=5)
    by_m = {r["m"]: r for r in rows}
    for r in rows:
        assert r["time_lo_s"] <= r["time_s"] * 1.0001 and r["time_s"] <= r["time_hi_s"] * 1.0001
    width = {m: (by_m[m]["time_hi_s"] - by_m[m]["time_lo_s"]) / by_m[m]["time_s"] for m in by_m}
    assert width[32] > width[4]
    truth = TRUTH["cocoa"].time_to(EPS, 4, N)
    assert by_m[4]["time_lo_s"] <= truth * 1.05 and truth <= by_m[4]["time_hi_s"] * 1.05


def test_validation_predicts_every_held_out_size(sweep):
    rows, summary, warnings = validate(sweep, EPS, BASE_TERMS)
    assert warnings == []
    assert len(rows) == len(EXAMPLE_ALGORITHMS) * len(MEASURED)
    assert summary["compared"] == len(rows)
    assert summary["median_abs_pct_error"] < 5.0
    errors = [abs(r["error_pct"]) for r in rows]
    assert summary["median_abs_pct_error"] == pytest.approx(float(np.median(errors)))
    for row in rows:
        measured = row["measured_time_s"]
        error = 100 * (row["predicted_time_s"] - measured) / measured
        assert row["error_pct"] == pytest.approx(error)


def test_validation_notices_a_bad_model():
    """A cluster-size effect no family can express shows up as a large error."""
    wild = TrueAlgorithm("wild", (1e-3, 5e-7, 1e-3, 1e-4),
                         lambda m: 0.02 if m in (3, 6) else 0.2)  # unpredictable across m
    data = measurements_of(generate([wild], MEASURED, N, EPS, seed=0))
    rows, _, _ = validate(data, EPS, BASE_TERMS)
    errors = {r["m"]: abs(r["error_pct"]) for r in rows}
    assert errors[3] > 50 and errors[6] > 50


# --------------------------------------------------------------------------- design
def test_suggestion_first_makes_the_model_identifiable_within_budget():
    data = measurements_of(generate(EXAMPLE_ALGORITHMS[:2], (1, 2), N, EPS, seed=0))
    design = suggest(data, BASE_TERMS, 16, budget=None)
    sizes = [r["m"] for r in design.rows]
    assert len(set(sizes) - {1, 2}) >= 2  # two new sizes: 4 terms need 4 sizes
    assert all(r["new_size"] for r in design.rows[:2])
    assert design.criterion_after < design.criterion_before
    costs = [r["run_cost_machine_s"] for r in design.rows]
    budget = sum(costs[:2]) * 1.01
    limited = suggest(data, BASE_TERMS, 16, budget=budget)
    assert limited.rows and limited.rows[-1]["total_machine_s"] <= budget


def test_greedy_design_is_close_to_the_exhaustive_best():
    """On a small case, the greedy choice is within 10% of the best affordable set."""
    import itertools

    data = measurements_of(generate(EXAMPLE_ALGORITHMS[:1], (1, 2, 3, 4), N, EPS, seed=0))
    budget = 60.0
    design = suggest(data, BASE_TERMS, 16, budget=budget)
    from plugins.hemingway.design import estimated_run_cost

    candidates = np.arange(1, 17, dtype=float)
    cost = estimated_run_cost(data, "gd", BASE_TERMS, candidates)
    scale = np.abs(design_matrix(BASE_TERMS, candidates, N)).max(axis=0)
    x = design_matrix(BASE_TERMS, candidates, N) / scale
    base = sum(np.outer(x[m - 1], x[m - 1]) for m in (1, 2, 3, 4))
    best = math.inf
    for size in range(1, 5):
        for combo in itertools.combinations_with_replacement(range(16), size):
            if cost[list(combo)].sum() <= budget:
                info = base + sum(np.outer(x[k], x[k]) for k in combo)
                best = min(best, a_criterion([info]))
    assert design.criterion_after <= best * 1.10
    assert design.rows[-1]["total_machine_s"] <= budget
