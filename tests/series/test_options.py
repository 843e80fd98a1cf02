"""SeriesOptions as a value, check_variant, and the run_* functions on a posed problem."""

import dataclasses

import numpy as np
import pytest

from hvpseries import Status
from hvpseries._solve._problem import finish
from hvpseries.series import SeriesOptions, abs_inv, inv_sqrt, neumann, sqrt
from hvpseries.series._abs_inv import paper_options, run_abs_inv
from hvpseries.series._engine import pose_series
from hvpseries.series._inv_sqrt import run_inv_sqrt, run_sqrt
from hvpseries.series._neumann import run_neumann
from hvpseries.series._options import check_variant
from tests.problems import SpectralProblem

SPD = SpectralProblem("spd", np.logspace(0, 1, 20) / 10, seed=31)
INDEFINITE = SpectralProblem("indefinite", np.linspace(-1.0, 1.0, 20) + 0.05, seed=32)


def test_options_are_frozen_values():
    options = SeriesOptions(num_terms=30, acceleration="levin", order=2)
    assert options == SeriesOptions(num_terms=30, acceleration="levin", order=2)
    assert hash(options) == hash(SeriesOptions(num_terms=30, acceleration="levin", order=2))
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.num_terms = 5  # type: ignore[misc]
    assert dataclasses.replace(options, scale=3.0).scale == 3.0


@pytest.mark.parametrize(
    ("keywords", "error", "match"),
    [
        ({"num_terms": 0}, ValueError, "num_terms must be an integer >= 1"),
        ({"num_terms": 1.5}, TypeError, "num_terms must be an integer"),
        ({"maxiter": 0}, ValueError, "maxiter must be an integer >= 1"),
        ({"num_terms": 4, "order": 2}, ValueError, "num_terms must be >= 5"),
        ({"maxiter": 2}, ValueError, "maxiter must be >= 3"),
        ({"scale": "big"}, ValueError, "scale must be 'auto', 'lower_bound'"),
        ({"scale": True}, TypeError, "scale must be"),
        ({"scale": float("inf")}, ValueError, "finite and > 0"),
        ({"acceleration": "bogus"}, ValueError, "acceleration must be"),
        ({"acceleration": "aitken", "order": 2}, ValueError, "order 1 only"),
        ({"order": 0}, ValueError, "order must be an integer >= 1"),
    ],
)
def test_options_validate_once_when_made(keywords, error, match):
    with pytest.raises(error, match=match):
        SeriesOptions(**keywords)
    with pytest.raises(error, match=match):  # and the solvers' keywords go through them
        neumann(SPD.matrix, SPD.rhs(), **keywords)


def test_replace_validates_again():
    with pytest.raises(ValueError, match="finite and > 0"):
        dataclasses.replace(SeriesOptions(), scale=-1.0)


def test_options_and_keywords_give_the_same_result():
    b = SPD.rhs(2)
    keywords = {"num_terms": 25, "scale": 2.0, "acceleration": "tail"}
    by_keywords = sqrt(SPD.matrix, b, damping=0.1, **keywords)
    by_options = sqrt(SPD.matrix, b, damping=0.1, options=SeriesOptions(**keywords))
    assert np.array_equal(by_keywords.x, by_options.x)
    assert by_keywords.n_matvec == by_options.n_matvec
    assert repr(by_keywords.info) == repr(by_options.info)


def test_options_with_a_conflicting_keyword_is_a_type_error():
    with pytest.raises(TypeError, match="num_terms were both given"):
        inv_sqrt(SPD.matrix, SPD.rhs(), num_terms=5, options=SeriesOptions())
    with pytest.raises(TypeError, match="options must be a SeriesOptions"):
        inv_sqrt(SPD.matrix, SPD.rhs(), options={"num_terms": 5})
    # keywords left at their defaults are fine
    result = inv_sqrt(SPD.matrix, SPD.rhs(), order=1, options=SeriesOptions(num_terms=9))
    assert result.n_iter == 9


@pytest.mark.parametrize("variant", ["damped", "quasi-damped"])
def test_check_variant_accepts_the_two_variants(variant):
    assert check_variant(variant) == variant


@pytest.mark.parametrize("variant", ["undamped", None, 3])
def test_check_variant_refuses_others(variant):
    with pytest.raises(ValueError, match="variant must be 'damped' or 'quasi-damped'"):
        check_variant(variant)
    with pytest.raises(ValueError, match="variant must be"):
        abs_inv(INDEFINITE.matrix, INDEFINITE.rhs(), variant=variant)


def test_paper_options_default_to_twenty_terms():
    assert paper_options(SeriesOptions(), variant="damped", rtol=None, atol=0.0).num_terms == 20
    kept = paper_options(SeriesOptions(num_terms=7), variant="damped", rtol=None, atol=0.0)
    assert kept.num_terms == 7
    with pytest.raises(ValueError, match="conflicts with acceleration='levin'"):
        paper_options(SeriesOptions(acceleration="levin"), variant="damped", rtol=None, atol=0)


RUNS = {
    "abs_inv": (abs_inv, run_abs_inv, INDEFINITE),
    "inv_sqrt": (inv_sqrt, run_inv_sqrt, SPD),
    "sqrt": (sqrt, run_sqrt, SPD),
    "neumann": (neumann, run_neumann, SPD),
}


@pytest.mark.parametrize("name", sorted(RUNS))
@pytest.mark.parametrize("columns", [None, 3])
def test_run_functions_on_a_posed_problem_match_the_public_ones(name, columns):
    public, run, problem_of = RUNS[name]
    b = problem_of.rhs(columns)
    options = SeriesOptions(maxiter=400, acceleration="wynn")
    expected = public(problem_of.matrix, b, damping=0.2, rtol=1e-7, options=options)
    problem = pose_series(
        problem_of.matrix, b, method=f"series.{name}", rtol=1e-7, atol=0.0, callback=None
    )
    result = finish(problem, run(problem, options, damping=0.2))
    assert np.array_equal(result.x, expected.x)
    assert result.status is expected.status
    assert (result.n_matvec, result.n_iter) == (expected.n_matvec, expected.n_iter)
    assert repr(result.info) == repr(expected.info)


def test_run_does_not_throw_finish_does():
    from hvpseries import ConvergenceError

    problem = pose_series(
        SPD.matrix, SPD.rhs(), method="series.neumann", rtol=1e-12, atol=0.0, callback=None
    )
    raw = run_neumann(problem, SeriesOptions(maxiter=5, acceleration=None))
    assert raw.status is Status.MAX_ITERATIONS
    with pytest.raises(ConvergenceError):
        finish(problem, raw, throw=True)


def test_info_schema_of_abs_inv():
    result = abs_inv(INDEFINITE.matrix, INDEFINITE.rhs(2), damping=0.3, rtol=1e-6)
    assert set(result.info) == {
        "variant",
        "damping",
        "scale_source",
        "paper",
        "scale",
        "coefficients",
        "delta",
        "acceleration",
        "order",
        "ratio",
        "plain_error_estimate",
        "returned",
        "advice",
    }
    assert isinstance(result.info["returned"], list)
    assert result.info["plain_error_estimate"].shape == (2,)


def test_info_schema_of_the_linear_series():
    result = inv_sqrt(SPD.matrix, SPD.rhs(), rtol=1e-6)
    assert set(result.info) == {
        "damping",
        "scale_source",
        "scale",
        "coefficients",
        "acceleration",
        "order",
        "ratio",
        "plain_error_estimate",
        "returned",
        "advice",
    }
    indefinite = neumann(INDEFINITE.matrix, INDEFINITE.rhs(), rtol=1e-6)
    assert indefinite.status is Status.INDEFINITE
    assert "smallest_ritz_value" in indefinite.info
