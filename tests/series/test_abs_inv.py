import math

import numpy as np
import pytest

import hvpseries as hs
from hvpseries import ConvergenceError, Status
from hvpseries.series import abs_inv, coefficients
from tests.problems import PROBLEMS, SpectralProblem


def _logspaced(n, kappa, negative_fraction, seed=7):
    magnitudes = np.logspace(0, np.log10(kappa), n) / kappa
    signs = np.ones(n)
    signs[np.random.default_rng(seed).permutation(n)[: round(negative_fraction * n)]] = -1
    return magnitudes * signs


# Small condition numbers keep the kappa^2 term counts (and the test time) small.
MILD = {
    "indefinite": SpectralProblem("indefinite", _logspaced(24, 3.0, 0.5), seed=11),
    "spd": SpectralProblem("spd", _logspaced(24, 3.0, 0.0), seed=12),
    "clustered": PROBLEMS["clustered"],
}


def _relative_errors(backend, x, reference):
    x = backend.to_numpy(x)
    return np.atleast_1d(np.linalg.norm(x - reference, axis=0) / np.linalg.norm(reference, axis=0))


@pytest.mark.parametrize("name", sorted(MILD))
@pytest.mark.parametrize("columns", [None, 3])
@pytest.mark.parametrize("variant", ["damped", "quasi-damped"])
def test_converges_to_eigh_reference(backend, name, columns, variant):
    problem = MILD[name]
    damping = 0.3
    b = problem.rhs(columns)
    if variant == "damped":
        reference = problem.apply_function(lambda t: 1 / (np.abs(t) + damping), b)
    else:
        reference = problem.apply_function(lambda t: (t**2 + damping) ** -0.5, b)
    rtol = 1e-8 if backend.dtype_name == "float64" else 1e-4
    result = abs_inv(
        backend.asarray(problem.matrix),
        backend.asarray(b),
        damping=damping,
        variant=variant,
        rtol=rtol,
    )
    assert result.status is Status.SUCCESS
    assert result.x.shape == b.shape
    assert result.x.dtype == backend.dtype
    errors = _relative_errors(backend, result.x, reference)
    assert np.all(errors <= 5 * rtol)
    estimates = np.atleast_1d(result.error_estimate) / np.linalg.norm(reference, axis=0)
    assert np.all(estimates <= rtol * 1.01)
    if columns is not None:
        assert result.error_estimate.shape == (columns,)


@pytest.mark.parametrize("columns", [None, 2])
def test_undamped_on_indefinite_float64_and_float32(backend, columns):
    problem = MILD["indefinite"]
    b = problem.rhs(columns)
    reference = problem.apply_function(lambda t: 1 / np.abs(t), b)
    result = abs_inv(backend.asarray(problem.matrix), backend.asarray(b), rtol=10 * backend.rtol)
    assert result.converged
    assert np.all(_relative_errors(backend, result.x, reference) <= 50 * backend.rtol)


def test_zero_eigenvalues_with_damping_tail_acceleration(backend):
    # A zero eigenvalue gives a component with x = 1 whose partial sums converge like
    # N^{-1/2}; the tail accelerator sums it exactly.
    problem = PROBLEMS["with_zero"]
    damping = 0.5
    b = problem.rhs()
    reference = problem.apply_function(lambda t: 1 / (np.abs(t) + damping), b)
    A, bb = backend.asarray(problem.matrix), backend.asarray(b)
    plain = abs_inv(A, bb, damping=damping, num_terms=400, acceleration=None)
    tail = abs_inv(A, bb, damping=damping, num_terms=400, acceleration="tail")
    assert plain.status is Status.COMPLETED
    plain_error = _relative_errors(backend, plain.x, reference)[0]
    tail_error = _relative_errors(backend, tail.x, reference)[0]
    assert plain_error > 1e-2
    assert tail_error < (1e-5 if backend.dtype_name == "float64" else 1e-3)


def test_convergence_rate_matches_prediction():
    # Error after N terms ~ |x_slow|^N / sqrt(N): compare the decay between N=40 and N=80 with
    # the predicted factor |x|^40 sqrt(40/80).
    eigenvalues = np.array([-1.0, -0.6, 0.3, 0.8, 1.0, -0.9])
    problem = SpectralProblem("rate", eigenvalues, seed=5)
    b = problem.rhs()
    reference = problem.apply_function(lambda t: 1 / np.abs(t), b)
    V = 1.0
    x_slow = 1 - 0.3**2 / V
    errors = {}
    for terms in (40, 80):
        result = abs_inv(problem.matrix, b, num_terms=terms, scale=V, acceleration=None)
        assert result.status is Status.COMPLETED
        errors[terms] = np.linalg.norm(result.x - reference)
    measured = errors[80] / errors[40]
    predicted = x_slow**40 * math.sqrt(40 / 80)
    assert measured == pytest.approx(predicted, rel=0.1)
    # and the plain estimate tracks the true error
    result = abs_inv(problem.matrix, b, num_terms=80, scale=V, acceleration=None)
    assert result.error_estimate == pytest.approx(errors[80], rel=0.2)


def test_acceleration_beats_plain_for_the_same_terms():
    problem = MILD["indefinite"]
    b = problem.rhs()
    reference = problem.apply_function(lambda t: 1 / (np.abs(t) + 0.1), b)
    errors = {}
    for acceleration in (None, "wynn", "levin", "aitken", "tail"):
        result = abs_inv(problem.matrix, b, damping=0.1, num_terms=80, acceleration=acceleration)
        errors[acceleration] = np.linalg.norm(result.x - reference)
        assert result.info["acceleration"] == acceleration
    for acceleration in ("wynn", "levin", "aitken", "tail"):
        assert errors[acceleration] < errors[None] / 10


def test_fixed_budget_counts_matvecs_and_terms():
    problem = MILD["indefinite"]
    A = hs.CountingOperator(hs.aslinearoperator(problem.matrix))
    b = problem.rhs(3)
    result = abs_inv(A, b, num_terms=10, scale=2.0, acceleration=None)
    assert result.status is Status.COMPLETED
    assert result.n_iter == 10
    # two more: the symmetry probe of an untagged matrix-free operator
    assert result.n_matvec == A.n_matvec == 2 * 9 * 3 + 2
    assert A.n_calls == 2 * 9 + 2  # one matmat per product (and the probe's two matvecs)


def test_auto_scale_counts_lanczos_matvecs():
    problem = MILD["indefinite"]
    A = hs.CountingOperator(hs.aslinearoperator(problem.matrix))
    result = abs_inv(A, problem.rhs(2), num_terms=5)
    assert result.n_matvec == A.n_matvec
    assert result.info["scale_source"] == "auto"
    top = np.max(np.abs(problem.eigenvalues)) ** 2
    # convergence needs V >= lambda_max(A^2) / 2; the Ritz value makes V tight
    assert top / 2 < result.info["scale"] <= 1.01 * top


def test_both_num_terms_and_rtol_stop_at_the_first():
    problem = MILD["indefinite"]
    b = problem.rhs()
    early = abs_inv(problem.matrix, b, num_terms=500, rtol=1e-3)
    assert early.status is Status.SUCCESS and early.n_iter < 500
    budget = abs_inv(problem.matrix, b, num_terms=8, rtol=1e-12)
    assert budget.status is Status.MAX_ITERATIONS and budget.n_iter == 8
    with pytest.raises(ConvergenceError) as caught:
        abs_inv(problem.matrix, b, num_terms=8, rtol=1e-12, throw=True)
    assert caught.value.result.n_iter == 8


def test_default_is_rtol_1e6():
    problem = MILD["spd"]
    b = problem.rhs()
    result = abs_inv(problem.matrix, b)
    reference = problem.apply_function(lambda t: 1 / np.abs(t), b)
    assert result.status is Status.SUCCESS
    assert np.linalg.norm(result.x - reference) <= 5e-6 * np.linalg.norm(reference)


def test_maxiter_caps_tolerance_runs():
    problem = MILD["indefinite"]
    result = abs_inv(problem.matrix, problem.rhs(), rtol=1e-14, maxiter=7)
    assert result.status is Status.MAX_ITERATIONS
    assert result.n_iter == 7
    assert result.info["advice"]


def test_info_records_scale_kind_acceleration_and_plain_estimate():
    problem = MILD["indefinite"]
    result = abs_inv(problem.matrix, problem.rhs(), damping=0.2, num_terms=30, scale=1.5)
    info = result.info
    assert info["scale"] == 1.5
    assert info["scale_source"] == "user"
    assert info["coefficients"] == "damped"
    assert info["delta"] == pytest.approx(0.2 / math.sqrt(1.5))
    assert info["acceleration"] == "wynn"
    assert info["plain_error_estimate"] > 0
    assert info["returned"] in ("accelerated", "plain")


def test_zero_rhs_returns_zeros(backend):
    problem = MILD["indefinite"]
    A = backend.asarray(problem.matrix)
    for shape in ((24,), (24, 2)):
        b = backend.asarray(np.zeros(shape))
        result = abs_inv(A, b)
        assert result.status is Status.SUCCESS
        assert result.n_matvec == 0
        np.testing.assert_array_equal(backend.to_numpy(result.x), np.zeros(shape))


def test_zero_column_in_block():
    problem = MILD["indefinite"]
    b = problem.rhs(2)
    b[:, 1] = 0
    result = abs_inv(problem.matrix, b, rtol=1e-8)
    assert result.converged
    np.testing.assert_array_equal(result.x[:, 1], 0)
    assert result.error_estimate[1] == 0


def test_nonfinite_input_and_overflow(backend):
    problem = MILD["indefinite"]
    A = backend.asarray(problem.matrix)
    b = problem.rhs()
    b[3] = np.nan
    result = abs_inv(A, backend.asarray(b))
    assert result.status is Status.NONFINITE
    assert result.n_matvec == 0
    huge = backend.asarray(
        problem.matrix * 1e200 if backend.dtype_name == "float64" else problem.matrix * 1e30
    )
    overflow = abs_inv(huge, backend.asarray(problem.rhs()), scale=1.0, num_terms=10)
    assert overflow.status in (Status.NONFINITE, Status.DIVERGED)
    assert not overflow.converged


def test_small_scale_is_reported_as_divergence():
    problem = MILD["indefinite"]
    result = abs_inv(problem.matrix, problem.rhs(), scale=0.2, num_terms=50)
    assert result.status is Status.DIVERGED
    assert "scale" in result.info["advice"]
    assert result.n_iter < 50


def test_lower_bound_scale_can_diverge_and_is_caught():
    # b nearly orthogonal to the top eigenvector: ||A^2 b|| / ||b|| is far below lambda_max^2.
    eigenvalues = np.array([10.0, -1.0, 0.5, 1.0, -0.7, 0.8])
    q = np.linalg.qr(np.random.default_rng(0).standard_normal((6, 6)))[0]
    A = (q * eigenvalues) @ q.T
    A = (A + A.T) / 2
    b = q[:, 1:] @ np.ones(5) + 1e-8 * q[:, 0]
    result = abs_inv(A, b, scale="lower_bound", num_terms=60, acceleration=None)
    assert result.info["scale"] < 2.0
    assert result.status is Status.DIVERGED
    safe = abs_inv(A, b, num_terms=60)
    assert safe.status is Status.COMPLETED


def test_callback_sees_every_term():
    problem = MILD["indefinite"]
    seen = []
    abs_inv(problem.matrix, problem.rhs(), num_terms=6, callback=lambda x: seen.append(x.copy()))
    assert len(seen) == 5


def test_b_is_not_modified():
    problem = MILD["indefinite"]
    b = problem.rhs(2)
    original = b.copy()
    abs_inv(problem.matrix, b, num_terms=10)
    np.testing.assert_array_equal(b, original)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"damping": -1.0}, ValueError),
        ({"damping": float("inf")}, ValueError),
        ({"damping": "1"}, TypeError),
        ({"variant": "undamped"}, ValueError),
        ({"num_terms": 0}, ValueError),
        ({"num_terms": 2}, ValueError),  # wynn order 1 needs 3
        ({"num_terms": 4, "order": 2}, ValueError),
        ({"maxiter": 2, "rtol": 1e-3}, ValueError),
        ({"order": 0}, ValueError),
        ({"rtol": -1.0}, ValueError),
        ({"atol": float("nan")}, ValueError),
        ({"rtol": "small"}, TypeError),
        ({"scale": -2.0}, ValueError),
        ({"scale": "upper"}, ValueError),
        ({"acceleration": "richardson"}, ValueError),
        ({"acceleration": "aitken", "order": 2}, ValueError),
        ({"callback": 3}, TypeError),
        ({"paper": True, "rtol": 1e-3}, ValueError),
        ({"paper": True, "variant": "quasi-damped"}, ValueError),
        ({"paper": True, "acceleration": None}, ValueError),
    ],
)
def test_bad_input(kwargs, error):
    problem = MILD["indefinite"]
    with pytest.raises(error):
        abs_inv(problem.matrix, problem.rhs(), **kwargs)


def test_num_terms_one_without_acceleration_is_allowed():
    problem = MILD["indefinite"]
    result = abs_inv(problem.matrix, problem.rhs(), num_terms=1, acceleration=None, scale=4.0)
    np.testing.assert_allclose(result.x, problem.rhs() / 2.0)
    assert result.n_matvec == 0


def test_positional_tolerance_is_a_type_error():
    problem = MILD["indefinite"]
    with pytest.raises(TypeError):
        abs_inv(problem.matrix, problem.rhs(), 0.0)


def test_tagged_nonsymmetric_operator_is_refused():
    A = hs.aslinearoperator(np.triu(np.ones((4, 4))), symmetric=False)
    with pytest.raises(ValueError, match="symmetric"):
        abs_inv(A, np.ones(4))


def test_shape_mismatch():
    with pytest.raises(ValueError):
        abs_inv(np.eye(3), np.ones(4))


# ----------------------------------------------------------------------------- paper preset
def _paper_by_hand(A, b, d, V_prev, N):
    """The paper's rule written out independently with the forward coefficient recurrence."""
    A2b = A @ (A @ b)
    V = max(V_prev, np.linalg.norm(A2b) / np.linalg.norm(b))
    delta = d / np.sqrt(V)
    c = [1 / (1 + delta)]
    for n in range(1, N):
        binomial_half = math.gamma(1.5) / (math.gamma(n + 1) * math.gamma(1.5 - n))
        c.append((c[-1] + (-1) ** n * binomial_half) / (1 - delta**2))
    v = b.copy()
    sums = [c[0] * v]
    for n in range(1, N):
        v = v - (A @ (A @ v)) / V
        sums.append(sums[-1] + c[n] * v)
    s0, s1, s2 = sums[-3:]
    d0, d1 = s1 - s0, s2 - s1
    inv = d1 / (d1 @ d1) - d0 / (d0 @ d0)
    return (s1 + inv / (inv @ inv)) / np.sqrt(V), V


@pytest.mark.parametrize("V_prev", [100.0, 5.0])
def test_paper_preset_matches_hand_computation(V_prev):
    eigenvalues = np.array([-3.0, -1.0, 0.4, 0.9, 2.0, 2.5])
    q = np.linalg.qr(np.random.default_rng(3).standard_normal((6, 6)))[0]
    A = (q * eigenvalues) @ q.T
    A = (A + A.T) / 2
    b = np.random.default_rng(4).standard_normal(6)
    expected, V = _paper_by_hand(A, b, 0.1, V_prev, 20)
    kwargs = {} if V_prev == 100.0 else {"scale": V_prev}
    result = abs_inv(A, b, damping=0.1, paper=True, **kwargs)
    assert result.info["scale"] == pytest.approx(V, rel=1e-14)
    assert result.info["scale_source"] == "paper"
    assert result.info["returned"] == "accelerated"
    assert result.n_iter == 20
    assert result.n_matvec == 2 * 19
    assert result.status is Status.COMPLETED
    np.testing.assert_allclose(result.x, expected, rtol=1e-10)


def test_paper_preset_reports_divergence_of_the_lower_bound():
    eigenvalues = np.array([10.0, -1.0, 0.5, 1.0, -0.7, 0.8])
    q = np.linalg.qr(np.random.default_rng(0).standard_normal((6, 6)))[0]
    A = (q * eigenvalues) @ q.T
    A = (A + A.T) / 2
    b = q[:, 1:] @ np.ones(5) + 1e-6 * q[:, 0]
    result = abs_inv(A, b, damping=0.1, paper=True, scale="lower_bound", num_terms=200)
    assert result.status is Status.DIVERGED


def test_paper_running_max_is_kept():
    A = np.diag([1.0, -2.0, 3.0])
    b = np.ones(3)
    first = abs_inv(A, b, damping=1.0, paper=True, scale=1.0)
    assert first.info["scale"] == pytest.approx(np.linalg.norm(A @ A @ b) / np.sqrt(3))
    second = abs_inv(
        A, np.array([1.0, 0.0, 0.0]), damping=1.0, paper=True, scale=first.info["scale"]
    )
    assert second.info["scale"] == first.info["scale"]


def test_coefficients_used_are_the_stable_ones():
    # Near delta = 1 the paper's forward recurrence is useless; the solver still converges.
    A = np.diag([0.5, -1.0, 1.0])
    b = np.ones(3)
    V = 1.0
    result = abs_inv(A, b, damping=0.999, scale=V, num_terms=300, acceleration=None)
    np.testing.assert_allclose(result.x, b / (np.abs(np.diag(A)) + 0.999), rtol=1e-10)
    assert coefficients("damped", 3, delta=0.999)[0] == pytest.approx(1 / 1.999)


def test_sablonniere_modifier_helps_logarithmic_convergence() -> None:
    """A zero eigenvalue with damping makes the series converge like N^-1/2 (logarithmically):
    Sablonniere's modified epsilon algorithm, made for that case, beats plain Wynn."""
    import numpy as np

    import hvpseries as hs
    from tests.problems import PROBLEMS

    problem = PROBLEMS["with_zero"]
    b = problem.rhs()
    reference = problem.apply_function(lambda t: 1 / (np.abs(t) + 0.1), b)
    scale = float(np.max(problem.eigenvalues**2))

    def error(acceleration, order):
        result = hs.series.abs_inv(
            problem.matrix,
            b,
            damping=0.1,
            num_terms=200,
            scale=scale,
            acceleration=acceleration,
            order=order,
        )
        return np.linalg.norm(result.x - reference) / np.linalg.norm(reference)

    for order in (1, 2):
        assert error("wynn-sablonniere", order) < 0.7 * error("wynn", order)
    assert error("wynn", 1) < error(None, 1)


@pytest.mark.parametrize(
    ("acceleration", "modifier"), [("wynn", None), ("wynn-sablonniere", "sablonniere")]
)
@pytest.mark.parametrize("columns", [None, 3])
def test_order_one_wynn_equals_the_epsilon_table_of_the_partial_sums(
    backend, acceleration, modifier, columns
):
    """The solver's short form of order-1 Wynn (from the last two terms) is the epsilon table."""
    from hvpseries.acceleration import wynn_epsilon

    rng = np.random.default_rng(7)
    Q, _ = np.linalg.qr(rng.standard_normal((30, 30)))
    eigenvalues = np.concatenate([[0.3, -1.8], rng.uniform(1.5, 2.0, 28) * rng.choice([-1, 1], 28)])
    A = hs.aslinearoperator(backend.asarray((Q * eigenvalues) @ Q.T))
    # mostly one slow (0.3) and one fast (-1.8) component: the accelerated value is returned
    weights = 1e-3 * rng.standard_normal((30, 3))
    weights[:2] = [[1.0, 2.0, 0.5], [1.0, -1.0, 3.0]]
    b = Q @ weights[:, 0] if columns is None else Q @ weights[:, :columns]
    options = {"damping": 0.1, "scale": 5.0}
    terms = 20
    # reference: the table on the float64 partial sums (its differences of sums lose about
    # |S| / |d1 - d2| ~ 500 ulps; the short form works on the terms and loses far less)
    A64 = hs.aslinearoperator((Q * eigenvalues) @ Q.T)
    sums = [
        abs_inv(A64, b, num_terms=k, acceleration=None, **options).x
        for k in (terms - 2, terms - 1, terms)
    ]
    expected = wynn_epsilon(sums, 1, modifier=modifier)
    result = abs_inv(A, backend.asarray(b), num_terms=terms, acceleration=acceleration, **options)
    returned = result.info["returned"]
    assert returned == ("accelerated" if columns is None else ["accelerated"] * columns)
    scale = np.max(np.abs(expected))
    tolerance = max(1e3 * np.finfo(np.float64).eps, 50 * backend.eps) * scale
    np.testing.assert_allclose(backend.to_numpy(result.x), expected, rtol=0, atol=tolerance)
    # and the acceleration did something: the plain partial sum is farther away
    assert np.max(np.abs(sums[-1] - expected)) > 1e3 * tolerance


@pytest.mark.parametrize("acceleration", ["wynn", "wynn-sablonniere"])
@pytest.mark.parametrize("columns", [None, 2])
def test_order_one_wynn_after_an_exact_term_returns_the_partial_sum(backend, acceleration, columns):
    """A = 2 I with V = 4: every term after the first is zero, the inverses are undefined."""
    A = hs.aslinearoperator(backend.asarray(2.0 * np.eye(4)))
    b = np.arange(1.0, 5.0) if columns is None else np.stack([np.arange(1.0, 5.0), -np.ones(4)], 1)
    result = abs_inv(A, backend.asarray(b), scale=4.0, num_terms=6, acceleration=acceleration)
    np.testing.assert_allclose(backend.to_numpy(result.x), b / 2, rtol=backend.rtol)
    assert np.all(np.asarray(result.error_estimate) == 0)


@pytest.mark.parametrize("dtype", [np.complex128, np.complex64])
def test_order_one_wynn_on_a_complex_hermitian_operator(dtype):
    """The closed form's conjugates: against the epsilon table of complex128 partial sums."""
    from hvpseries.acceleration import wynn_epsilon

    rng = np.random.default_rng(11)
    Q, _ = np.linalg.qr(rng.standard_normal((20, 20)) + 1j * rng.standard_normal((20, 20)))
    eigenvalues = np.concatenate([[0.3, -1.8], rng.uniform(1.5, 2.0, 18)])
    matrix = (Q * eigenvalues) @ Q.conj().T
    weights = 1e-3 * (rng.standard_normal(20) + 1j * rng.standard_normal(20))
    weights[:2] = [1.0 + 0.5j, -1.0 + 2.0j]
    b = Q @ weights
    options = {"damping": 0.1, "scale": 5.0}
    reference = hs.aslinearoperator(matrix)
    sums = [
        abs_inv(reference, b, num_terms=k, acceleration=None, **options).x for k in (18, 19, 20)
    ]
    expected = wynn_epsilon(sums, 1)
    A = hs.aslinearoperator(matrix.astype(dtype))
    result = abs_inv(A, b.astype(dtype), num_terms=20, acceleration="wynn", **options)
    assert result.info["returned"] == "accelerated"
    eps = np.finfo(dtype).eps
    tolerance = max(1e3 * np.finfo(np.float64).eps, 50 * eps) * np.max(np.abs(expected))
    np.testing.assert_allclose(result.x, expected, rtol=0, atol=tolerance)
    assert np.max(np.abs(sums[-1] - expected)) > 1e3 * tolerance


def test_order_one_wynn_block_with_some_undefined_columns():
    """Column 0 is exact after one term (undefined inverses), column 1 is accelerated."""
    from hvpseries.acceleration import wynn_epsilon

    A = hs.aslinearoperator(np.diag([2.0, 1.0, 1.0, 1.5]))
    b = np.stack([np.array([1.0, 0.0, 0.0, 0.0]), np.ones(4)], axis=1)
    options = {"scale": 4.0, "num_terms": 12}
    result = abs_inv(A, b, acceleration="wynn", **options)
    sums = [abs_inv(A, b[:, 1], num_terms=k, scale=4.0, acceleration=None).x for k in (10, 11, 12)]
    assert np.all(np.isfinite(result.x))
    np.testing.assert_allclose(result.x[:, 0], b[:, 0] / 2, rtol=1e-14)
    if result.info["returned"][1] == "accelerated":
        np.testing.assert_allclose(result.x[:, 1], wynn_epsilon(sums, 1), rtol=1e-12)
    else:
        np.testing.assert_allclose(result.x[:, 1], sums[-1], rtol=1e-14)


@pytest.mark.parametrize("columns", [None, 2])
def test_order_one_wynn_with_an_overflowing_correction_returns_the_latest_sum(columns):
    """Squared term norms beyond float64's range: no warning, ``S_n`` (as the table's fallback).

    The solvers cannot reach this (the norms of such terms overflow first, giving NONFINITE),
    so the accelerator is called directly, on a window whose terms have norms ~1e160.
    """
    from hvpseries.series._accelerator import LatestTerms, SumAccelerator
    from hvpseries.series._coefficients import CoefficientStream

    stream = CoefficientStream("inv_sqrt")
    accelerate = SumAccelerator(
        hs.VectorSpace(hs.aslinearoperator(np.eye(3)).xp), "wynn", 1, stream
    )
    v_previous = np.array([1e160, 0.0, 0.0])
    v = v_previous * (1 - 1e-5)
    if columns is not None:
        v_previous, v = np.stack([v_previous] * columns, 1), np.stack([v] * columns, 1)
    sums = [np.zeros_like(v), stream[1] * v_previous, stream[1] * v_previous + stream[2] * v]
    norms = np.full(columns or 1, 1e160 * (1 - 1e-5))
    with np.errstate(all="raise"):
        latest = LatestTerms(2, v, v_previous, norms, np.full(columns or 1, 1e160))
        estimate = accelerate(sums, latest)
    np.testing.assert_array_equal(estimate, sums[-1])
    assert estimate is not sums[-1]
