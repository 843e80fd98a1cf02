"""Operators next to torch: complex promotion, one precision, other libraries' dtypes and arrays."""

from __future__ import annotations

import numpy as np
import pytest

import hvpseries as hs

torch = pytest.importorskip("torch")


def test_complex_scaling_and_shift_of_a_real_torch_operator() -> None:
    a = torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    A = hs.aslinearoperator(a)
    x = torch.ones(3, dtype=torch.complex128)
    expected = 1j * (a.to(torch.complex128) @ x)
    torch.testing.assert_close((1j * A) @ x, expected)
    real = torch.ones(3, dtype=torch.float64)
    torch.testing.assert_close(A.shift(1j) @ real, a.to(torch.complex128) @ x + 1j * x)


def test_mixed_precision_composites_are_refused() -> None:
    A32 = hs.aslinearoperator(torch.eye(2))
    A64 = hs.aslinearoperator(torch.eye(2, dtype=torch.float64))
    with pytest.raises(TypeError, match="one precision"):
        A32 + A64
    with pytest.raises(TypeError, match="one precision"):
        A32 @ A64


def test_dtype_of_another_library_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="not a dtype of numpy"):
        hs.FunctionOperator(lambda v: v, (2, 2), dtype=torch.float64)


def test_array_of_another_library_on_the_left() -> None:
    A = hs.aslinearoperator(torch.eye(2, dtype=torch.float64))
    with pytest.raises(TypeError, match="Mismatched array namespaces"):
        np.ones((3, 2)) @ A
