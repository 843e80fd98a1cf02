"""The solve spine: one validation per call and at most two reductions of b before a matvec."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import hvpseries as hs
from hvpseries import krylov, series

N = 60


class CountingSpace(hs.VectorSpace):
    """A vector space that records its reductions, and which happened before the first matvec."""

    def __init__(self) -> None:
        super().__init__(np)
        self.calls: list[str] = []
        self.before_first_matvec: list[str] | None = None

    def inner(self, x: Any, y: Any) -> Any:
        self.calls.append("inner")
        return super().inner(x, y)

    def norm(self, x: Any) -> Any:
        self.calls.append("norm")
        return super().norm(x)

    def gram(self, X: Any, Y: Any) -> Any:
        self.calls.append("gram")
        return super().gram(X, Y)

    def all_finite(self, x: Any) -> bool:
        self.calls.append("all_finite")
        return super().all_finite(x)


class Watched(hs.LinearOperator):
    """A symmetric matrix-free operator on a counting space that notes its first product."""

    def __init__(self, matrix: np.ndarray, space: CountingSpace, *, psd: bool) -> None:
        super().__init__(
            matrix.shape, matrix.dtype, xp=np, device="cpu", symmetric=True, psd=psd,
            vector_space=space,
        )  # fmt: skip
        self.matrix = matrix
        self.space = space

    def _matmat(self, X: Any) -> Any:
        if self.space.before_first_matvec is None:
            self.space.before_first_matvec = list(self.space.calls)
        return self.matrix @ X


def _matrix(psd: bool) -> np.ndarray:
    rng = np.random.default_rng(3)
    q, _ = np.linalg.qr(rng.standard_normal((N, N)))
    values = np.linspace(0.5, 3.0, N) if psd else np.linspace(-1.0, 2.0, N) + 0.013
    return (q * values) @ q.T


CALLS: dict[str, tuple[bool, Callable[[Any, Any], Any]]] = {
    "abs_inv": (False, lambda A, b: hs.abs_inv(A, b, damping=0.1, rtol=1e-8)),
    "funm": (False, lambda A, b: hs.funm(A, b, lambda t: np.exp(-t), rtol=1e-8)),
    "sign": (False, lambda A, b: hs.sign(A, b, rtol=1e-6)),
    "inv_sqrt": (True, lambda A, b: hs.inv_sqrt(A, b, rtol=1e-8)),
    "solve (cg)": (True, lambda A, b: hs.solve(A, b, rtol=1e-8)),
    "solve (minres)": (False, lambda A, b: hs.solve(A, b, rtol=1e-8)),
    "series.abs_inv": (False, lambda A, b: series.abs_inv(A, b, damping=0.5, num_terms=30)),
    "series.inv_sqrt": (True, lambda A, b: series.inv_sqrt(A, b, num_terms=30)),
    "krylov.cg": (True, lambda A, b: krylov.cg(A, b, rtol=1e-8)),
    "krylov.minres": (False, lambda A, b: krylov.minres(A, b, rtol=1e-8)),
    "krylov.funm_lanczos": (
        False,
        lambda A, b: krylov.funm_lanczos(A, b, lambda t: 1 / (np.abs(t) + 0.1), rtol=1e-8),
    ),
}


@pytest.fixture
def validations(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count calls of the system check ``prepare_system``, wherever it was imported."""
    from hvpseries._solve import _validation

    original = _validation.prepare_system
    count: list[int] = []

    def counted(*args: Any, **kwargs: Any) -> Any:
        count.append(1)
        return original(*args, **kwargs)

    for name, module in list(sys.modules.items()):
        if name.startswith("hvpseries") and getattr(module, "prepare_system", None) is original:
            monkeypatch.setattr(module, "prepare_system", counted)
    return count


@pytest.mark.parametrize("name", sorted(CALLS))
def test_one_validation_and_at_most_two_reductions_of_b(name: str, validations: list[int]):
    psd, call = CALLS[name]
    space = CountingSpace()
    A = Watched(_matrix(psd), space, psd=psd)
    b = np.random.default_rng(4).standard_normal(N)
    result = call(A, b)
    assert result.usable, result.status
    assert len(validations) == 1, f"{name} validated b {len(validations)} times"
    assert space.before_first_matvec is not None
    assert len(space.before_first_matvec) <= 2, (name, space.before_first_matvec)


def test_a_non_finite_b_is_finished_by_the_spine() -> None:
    space = CountingSpace()
    A = Watched(_matrix(False), space, psd=False)
    b = np.ones(N)
    b[3] = np.nan
    result = hs.abs_inv(A, b, damping=0.1)
    assert result.status is hs.Status.NONFINITE
    assert result.n_matvec == 0 and space.before_first_matvec is None


# The info schema of docs/architecture.rst: a method may return only these keys.
_EVERY_SOLVER = {"rhs_scale", "advice"}
_SERIES = {
    "scale",
    "scale_source",
    "damping",
    "acceleration",
    "order",
    "coefficients",
    "returned",
    "plain_error_estimate",
    "ratio",
}
_LANCZOS = {"method", "memory", "reorthogonalize", "n_checkpoints", "n_reorthogonalizations"}
INFO_SCHEMA = {
    "krylov.cg": {"n_residual_checks", "column_status"},
    "krylov.minres": {"n_residual_checks", "column_status"},
    "krylov.cg_multishift": {"shift_status"},
    "krylov.funm_chebyshev": {"degree", "interval", "num_coefficients", "reason"},
    "krylov.abs_inv_rational": {"interval", "num_nodes", "ritz_min", "variant", "reason"},
    "krylov.funm_lanczos": _LANCZOS,
    "series.abs_inv": _SERIES | {"variant", "delta", "paper"},
    "series.inv_sqrt": _SERIES,
    "series.sqrt": _SERIES,
    "series.neumann": _SERIES,
}
_FRONT_END = {"method", "damping", "variant"}
_EVERY_METHOD = set().union(*INFO_SCHEMA.values())


def _schema_calls() -> dict[str, Callable[[Any, Any, Any], Any]]:
    return {
        "krylov.cg": lambda A, P, b: krylov.cg(P, b),
        "krylov.minres": lambda A, P, b: krylov.minres(A, b),
        "krylov.cg_multishift": lambda A, P, b: krylov.cg_multishift(P, b, shifts=[0.0, 1.0]),
        "krylov.funm_chebyshev": lambda A, P, b: krylov.funm_chebyshev(
            P, b, np.sqrt, interval=(0.4, 3.1)
        ),
        "krylov.abs_inv_rational": lambda A, P, b: krylov.abs_inv_rational(A, b, damping=0.1),
        "krylov.funm_lanczos": lambda A, P, b: krylov.funm_lanczos(A, b, np.abs),
        "series.abs_inv": lambda A, P, b: series.abs_inv(A, b, damping=0.5, num_terms=30),
        "series.inv_sqrt": lambda A, P, b: series.inv_sqrt(P, b, num_terms=30),
        "series.sqrt": lambda A, P, b: series.sqrt(P, b, num_terms=30),
        "series.neumann": lambda A, P, b: series.neumann(P, b, num_terms=30),
    }


@pytest.mark.parametrize("block", [False, True])
@pytest.mark.parametrize("name", sorted(INFO_SCHEMA))
def test_methods_return_only_documented_info_keys(name: str, block: bool) -> None:
    A = hs.aslinearoperator(_matrix(False), symmetric=True)
    P = hs.aslinearoperator(_matrix(True), symmetric=True, psd=True)
    rng = np.random.default_rng(5)
    b = rng.standard_normal((N, 2)) if block else rng.standard_normal(N)
    tiny = b * 2.0**-700  # rescaled by the spine: rhs_scale appears
    for rhs in (b, tiny):
        info = _schema_calls()[name](A, P, rhs).info
        assert set(info) <= INFO_SCHEMA[name] | _EVERY_SOLVER, set(info) - INFO_SCHEMA[name]


@pytest.mark.parametrize("method", ["auto", "lanczos", "chebyshev", "rational", "series", "dense"])
def test_front_end_info_is_its_methods_plus_method_damping_variant(method: str) -> None:
    A = hs.aslinearoperator(_matrix(False), symmetric=True)
    b = np.random.default_rng(6).standard_normal(N)
    info = hs.abs_inv(A, b, damping=0.5, method=method, rtol=1e-6).info
    assert info["method"] == ("dense" if method == "auto" else method)
    assert set(info) <= _EVERY_METHOD | _FRONT_END | _EVERY_SOLVER
