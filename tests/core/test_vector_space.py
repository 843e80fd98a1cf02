"""The vector-space hook: every solver reduces n-vectors only through ``A.vector_space``.

A "mirrored" space simulates shards in one process: a vector of the whole problem ``u`` is
stored ``COPIES`` times, ``x = [u; ...; u]``, the operator acts blockwise, and the space divides
the Euclidean inner product by ``COPIES``. A solver that uses the hook for every inner product
and norm then takes exactly the decisions of the plain run (same n_matvec, same status, every
copy of ``x`` equal to the reference); one that bypasses it sees norms off by ``3`` and
Lanczos coefficients off by ``9``.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

import hvpseries as hs
from hvpseries import krylov, series

N = 40
COPIES = 9


class MirroredSpace(hs.VectorSpace):
    """The Euclidean inner product of ``[u; ...; u]`` over ``COPIES``: that of ``u``."""

    def __init__(self, xp):
        super().__init__(xp)
        self.calls = Counter()

    def inner(self, x, y):
        self.calls["inner"] += 1
        return super().inner(x, y) / COPIES

    def norm(self, x):
        self.calls["norm"] += 1
        return super().norm(x) / np.sqrt(COPIES)

    def gram(self, X, Y):
        self.calls["gram"] += 1
        return super().gram(X, Y) / COPIES

    def global_length(self, length):
        return length // COPIES

    def shard(self, x):
        return np.concatenate([x] * COPIES)

    def __eq__(self, other):
        return other is self

    def __hash__(self):
        return id(self)


class MirroredOperator(hs.LinearOperator):
    def __init__(self, matrix, space):
        super().__init__(
            (COPIES * matrix.shape[0],) * 2,
            matrix.dtype,
            xp=np,
            device="cpu",
            symmetric=True,
            vector_space=space,
        )
        self.matrix = matrix

    def _matmat(self, X):
        copies = np.split(X, COPIES, axis=0)
        return np.concatenate([self.matrix @ copy for copy in copies])


def _matrix(spectrum, seed=1):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((N, N)))
    return (q * spectrum) @ q.T


INDEFINITE = _matrix(np.concatenate([np.linspace(-3.0, -1.0, N // 2), np.linspace(1, 4, N // 2)]))
SPD = _matrix(np.linspace(0.5, 4.0, N))
B = np.random.default_rng(2).standard_normal(N)


def _inverse_abs(t):
    return 1.0 / np.abs(t)


SOLVERS = {
    "cg": (SPD, lambda A, b: krylov.cg(A, b, rtol=1e-10)),
    "cg_block": (SPD, lambda A, b: krylov.cg(A, np.stack([b, 2 * b], axis=1), rtol=1e-10)),
    "minres": (INDEFINITE, lambda A, b: krylov.minres(A, b, rtol=1e-10)),
    "cg_multishift": (SPD, lambda A, b: krylov.cg_multishift(A, b, [0.0, 1.0], rtol=1e-10)),
    "funm_full": (
        INDEFINITE,
        lambda A, b: krylov.funm_lanczos(A, b, _inverse_abs, rtol=1e-10, reorthogonalize="full"),
    ),
    "funm_partial": (
        INDEFINITE,
        lambda A, b: krylov.funm_lanczos(A, b, _inverse_abs, rtol=1e-10, reorthogonalize="partial"),
    ),
    "funm_none": (
        INDEFINITE,
        lambda A, b: krylov.funm_lanczos(A, b, _inverse_abs, rtol=1e-8, reorthogonalize="none"),
    ),
    "chebyshev": (
        SPD,
        lambda A, b: krylov.funm_chebyshev(A, b, np.sqrt, interval=(0.4, 4.1), rtol=1e-10),
    ),
    "rational": (INDEFINITE, lambda A, b: krylov.abs_inv_rational(A, b, damping=0.1, rtol=1e-8)),
    "series_fixed": (INDEFINITE, lambda A, b: series.abs_inv(A, b, num_terms=80)),
    "series_rtol": (INDEFINITE, lambda A, b: series.abs_inv(A, b, rtol=1e-8)),
    "series_tail": (INDEFINITE, lambda A, b: series.abs_inv(A, b, rtol=1e-8, acceleration="tail")),
    "series_inv_sqrt": (SPD, lambda A, b: series.inv_sqrt(A, b, rtol=1e-8)),
    "series_neumann": (SPD, lambda A, b: series.neumann(A, b, rtol=1e-8)),
    "abs_inv_lanczos": (INDEFINITE, lambda A, b: hs.abs_inv(A, b, method="lanczos", rtol=1e-10)),
    "abs_inv_chebyshev": (
        INDEFINITE,
        lambda A, b: hs.abs_inv(A, b, method="chebyshev", damping=0.5, rtol=1e-8),
    ),
}


@pytest.mark.parametrize("name", list(SOLVERS))
def test_every_solver_reduces_through_the_hook(name):
    matrix, solve = SOLVERS[name]
    space = MirroredSpace(hs.aslinearoperator(matrix).xp)
    mirrored = solve(MirroredOperator(matrix, space), np.concatenate([B] * COPIES))
    reference = solve(hs.aslinearoperator(matrix, symmetric=True), B)
    assert space.calls["inner"] + space.calls["norm"] > 0
    assert mirrored.n_matvec == reference.n_matvec
    assert mirrored.status is reference.status
    x = np.asarray(mirrored.x)
    rows = next(axis for axis, size in enumerate(x.shape) if size == COPIES * N)
    scale = np.linalg.norm(reference.x)
    for copy in np.split(x, COPIES, axis=rows):
        assert np.linalg.norm(copy - reference.x) <= 1e-10 * scale


def test_reorthogonalisation_uses_gram():
    space = MirroredSpace(hs.aslinearoperator(INDEFINITE).xp)
    operator = MirroredOperator(INDEFINITE, space)
    decomposition = krylov.lanczos(
        operator, np.concatenate([B] * COPIES), 30, reorthogonalize="full"
    )
    reference = krylov.lanczos(INDEFINITE, B, 30, reorthogonalize="full")
    assert space.calls["gram"] >= 29
    np.testing.assert_allclose(decomposition.alpha, reference.alpha, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(decomposition.beta, reference.beta, rtol=1e-10, atol=1e-12)


def test_spectral_tools_use_the_hook_and_the_global_start_vector():
    space = MirroredSpace(hs.aslinearoperator(INDEFINITE).xp)
    operator = MirroredOperator(INDEFINITE, space)
    bounds = hs.spectral_bounds(operator)
    reference = hs.spectral_bounds(INDEFINITE)
    assert bounds.n_matvec == reference.n_matvec
    assert bounds.lower == pytest.approx(reference.lower, rel=1e-12)
    assert bounds.upper == pytest.approx(reference.upper, rel=1e-12)
    power = hs.power_iteration(operator, rtol=1e-8, maxiter=200)
    power_reference = hs.power_iteration(INDEFINITE, rtol=1e-8, maxiter=200)
    assert power.n_matvec == power_reference.n_matvec
    assert power.eigenvalue == pytest.approx(power_reference.eigenvalue, rel=1e-12)
    assert operator.global_shape == (N, N) and operator.shape == (COPIES * N, COPIES * N)


def test_the_default_space_is_local_euclidean():
    A = hs.aslinearoperator(SPD)
    space = A.vector_space
    X = np.stack([B, 2 * B, -B], axis=1)
    np.testing.assert_allclose(space.inner(X, X), [B @ B, 4 * B @ B, B @ B], rtol=1e-14)
    assert float(space.inner(B, 3 * B)) == pytest.approx(3 * B @ B, rel=1e-14)
    np.testing.assert_allclose(space.norm(X), np.linalg.norm(X, axis=0), rtol=1e-14)
    np.testing.assert_allclose(space.gram(X, B), X.T @ B, rtol=1e-14)
    np.testing.assert_allclose(space.gram(X, X), X.T @ X, rtol=1e-14)
    z = np.array([1 + 2j, 3 - 1j])
    assert complex(space.inner(z, 1j * z)) == pytest.approx(1j * np.vdot(z, z).real)
    assert A.global_shape == A.shape
    assert space == hs.aslinearoperator(INDEFINITE).vector_space
    assert space.shard(B) is B and space.global_length(7) == 7


def test_inner_products_of_mixed_dtypes_promote(backend):
    """Vectors (and one-column blocks) of two dtypes give the promoted product, as matmul does."""
    xp, space = backend.xp, hs.VectorSpace(backend.xp)
    x = backend.asarray(np.array([1.0, 2.0, 3.0]))
    other = xp.float32 if x.dtype == xp.float64 else xp.float64
    y = xp.astype(backend.asarray(np.array([0.5, -1.0, 2.0])), other)
    expected = xp.result_type(x.dtype, other)
    for a, b in ((x, y), (xp.reshape(x, (3, 1)), xp.reshape(y, (3, 1)))):
        product = space.inner(a, b)
        assert product.dtype == expected
        np.testing.assert_allclose(np.asarray(backend.to_numpy(product)).reshape(-1), [4.5])


def test_composites_keep_the_space_and_mixing_is_refused():
    space = MirroredSpace(hs.aslinearoperator(SPD).xp)
    A = MirroredOperator(SPD, space)
    composites = [
        A.shift(1.0),
        2.0 * A,
        -A,
        A / 3.0,
        A @ A,
        A**2,
        A + A,
        A - A,
        A.T,
        A.H,
        hs.CountingOperator(A),
        A.with_structure(psd=True),
        hs.CountingOperator(A.shift(-0.5)) @ A,
    ]
    for composite in composites:
        assert composite.vector_space is space, composite
        assert composite.global_shape == (N, N)
    local = hs.aslinearoperator(np.eye(COPIES * N))
    for combine in (lambda: A + local, lambda: local - A, lambda: A @ local):
        with pytest.raises(ValueError, match="different vector spaces"):
            combine()
    counted = hs.CountingOperator(A.shift(1.0))
    before = sum(space.calls.values())
    result = krylov.cg(counted, np.concatenate([B] * COPIES), rtol=1e-10)
    assert result.converged and sum(space.calls.values()) > before


def test_vector_space_must_be_a_vector_space():
    class Plain(hs.LinearOperator):
        def _matvec(self, x):
            return x

    with pytest.raises(TypeError, match=r"vector_space must be a hvpseries\.VectorSpace, got dict"):
        Plain((2, 2), np.float64, xp=np, device="cpu", vector_space={})


class ElsewhereNonFinite(hs.VectorSpace):
    """A space in which another process holds a non-finite entry of every vector."""

    def all_finite(self, x):
        return False


class _SpaceOperator(hs.LinearOperator):
    def __init__(self, matrix, space):
        super().__init__(
            matrix.shape,
            matrix.dtype,
            xp=space.xp,
            device="cpu",
            symmetric=True,
            vector_space=space,
        )
        self.matrix = matrix

    def _matvec(self, x):
        return self.matrix @ x


@pytest.mark.parametrize("acceleration", ["wynn", "wynn-sablonniere"])
def test_the_accelerators_fallback_is_decided_in_the_space(acceleration):
    # A locally finite accelerated value is discarded when the space says that a part held
    # elsewhere is not finite, so every process returns the same kind of value.
    from hvpseries.acceleration._sequence import finish

    matrix = np.diag(np.linspace(0.5, 1.5, 20))
    xp = hs.aslinearoperator(matrix).xp
    result, fallback = np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0])
    assert finish(xp, result, fallback, np.asarray(False), False) is result
    elsewhere = finish(xp, result, fallback, np.asarray(False), False, ElsewhereNonFinite(xp))
    np.testing.assert_array_equal(elsewhere, fallback)
    b = np.ones(20)
    options = {"num_terms": 30, "scale": 4.0}
    plain = series.abs_inv(matrix, b, acceleration=None, **options)
    local = series.abs_inv(matrix, b, acceleration=acceleration, **options)
    assert not np.allclose(local.x, plain.x, rtol=1e-12, atol=0)  # acceleration changed it
    operator = _SpaceOperator(matrix, ElsewhereNonFinite(xp))
    fallen_back = series.abs_inv(operator, b, acceleration=acceleration, **options)
    np.testing.assert_array_equal(fallen_back.x, plain.x)


def test_all_finite_on_every_backend(backend):
    """The one-reduction test agrees with the entry-wise test, also where the sum overflows."""
    space = hs.VectorSpace(backend.xp)
    largest = float(np.finfo(backend.dtype_name).max)
    huge = largest / 2
    cases = {
        "finite": ([1.0, -2.0, 3.0], True),
        "empty": ([], True),
        "sum overflows": ([huge, huge, huge], True),
        "sum overflows, then cancels": ([largest, largest, -largest, -largest], True),
        "nan": ([1.0, np.nan, 3.0], False),
        "inf": ([np.inf, 1.0], False),
        "-inf": ([1.0, -np.inf], False),
        "inf and -inf": ([np.inf, -np.inf], False),
        "inf after an overflow": ([huge, huge, np.inf], False),
    }
    for name, (values, expected) in cases.items():
        x = backend.asarray(np.array(values, dtype=np.float64))
        assert space.all_finite(x) is expected, name
        block = backend.asarray(np.stack([np.array(values, dtype=np.float64)] * 2, axis=1))
        assert space.all_finite(block) is expected, name


@pytest.mark.parametrize(
    ("library", "dtype", "big"),
    [("numpy", "float16", 6e4), ("torch", "float16", 6e4), ("torch", "bfloat16", 3e38)],
)
def test_all_finite_in_half_precision(library, dtype, big):
    """Half-precision sums overflow after a few large entries: the entry-wise test decides."""
    import array_api_compat

    module = pytest.importorskip(library)
    dtype = getattr(module, dtype)
    finite = module.asarray([big, big, big], dtype=dtype)
    space = hs.VectorSpace(array_api_compat.array_namespace(finite))
    assert space.all_finite(finite)
    assert not space.all_finite(module.asarray([big, math.inf, 1.0], dtype=dtype))
    assert not space.all_finite(module.asarray([big, math.nan, big], dtype=dtype))


def test_all_finite_complex():
    """An Inf or NaN in either part of a complex entry is caught, an overflowing sum is not."""
    space = hs.VectorSpace(hs.aslinearoperator(np.eye(2, dtype=complex)).xp)
    assert not space.all_finite(np.array([1.0 + 1j, complex(1.0, math.inf)]))
    assert not space.all_finite(np.array([complex(math.nan, 0.0), 1.0]))
    assert space.all_finite(np.array([1e308 + 1e308j] * 3))
