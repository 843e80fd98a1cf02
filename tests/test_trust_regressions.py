"""Regressions for outcomes that used to be silent or raw (the trust audit's part 4)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

import hvpseries as hs


def _readme_problem() -> tuple[hs.LinearOperator, np.ndarray, np.ndarray]:
    """The README's example: (|L - I/2| + 0.1 I)^-1 b, with the exact answer."""
    n = 1000
    laplacian = sp.diags([-1.0, 2.0, -1.0], [-1, 0, 1], shape=(n, n)).tocsr()
    operator = hs.aslinearoperator(laplacian, symmetric=True).shift(-0.5)
    b = np.ones(n)
    values, vectors = np.linalg.eigh(laplacian.toarray() - 0.5 * np.eye(n))
    exact = vectors @ ((vectors.T @ b) / (np.abs(values) + 0.1))
    return operator, b, exact


def test_fixed_budget_is_completed_not_converged() -> None:
    operator, b, exact = _readme_problem()
    result = hs.series.abs_inv(operator, b, damping=0.1, num_terms=20, paper=True)
    error = np.linalg.norm(result.x - exact) / np.linalg.norm(exact)
    assert error > 0.1  # 20 terms are far from enough here: nothing may call this converged
    assert result.status is hs.Status.COMPLETED
    assert not result.converged
    assert result.usable
    thrown = hs.series.abs_inv(operator, b, damping=0.1, num_terms=20, paper=True, throw=True)
    assert thrown.status is hs.Status.COMPLETED  # a budget that was asked for does not raise
