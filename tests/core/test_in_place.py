"""The in-place vector updates: the caller's array changes, values as out of place."""

from __future__ import annotations

import numpy as np
import pytest

from hvpseries._core._in_place import add_scaled_, add_scaled_columns_, divide_into


def _pair(backend, shape):
    rng = np.random.default_rng(0)
    y, x = rng.standard_normal(shape), rng.standard_normal(shape)
    # copies: torch.as_tensor shares NumPy's memory, and the updates below are in place
    return y, x, backend.asarray(y.copy()), backend.asarray(x.copy())


@pytest.mark.parametrize("shape", [(7,), (6, 3)])
def test_add_scaled_updates_the_array_itself(backend, shape) -> None:
    y, x, y_b, x_b = _pair(backend, shape)
    result = add_scaled_(y_b, x_b, -0.75)
    assert result is y_b
    np.testing.assert_allclose(backend.to_numpy(y_b), y - 0.75 * x, rtol=backend.rtol)


@pytest.mark.parametrize("shape", [(7,), (6, 3)])
def test_divide_into_writes_the_destination(backend, shape) -> None:
    _, _, out_b, x_b = _pair(backend, shape)
    assert divide_into(out_b, x_b, 3.0) is out_b
    np.testing.assert_array_equal(backend.to_numpy(out_b), backend.to_numpy(x_b / 3.0))
    assert divide_into(x_b, x_b, 3.0) is x_b  # in place
    np.testing.assert_array_equal(backend.to_numpy(x_b), backend.to_numpy(out_b))


@pytest.mark.parametrize("width", [1, 3])
def test_add_scaled_columns_scales_each_column(backend, width) -> None:
    y, x, y_b, x_b = _pair(backend, (9, width))
    alpha = np.linspace(-1.0, 2.0, width)
    result = add_scaled_columns_(y_b, x_b, backend.asarray(alpha))
    assert result is y_b
    np.testing.assert_allclose(backend.to_numpy(y_b), y + alpha * x, rtol=backend.rtol)


def test_numpy_views_that_blas_would_copy_are_still_updated() -> None:
    # f2py copies a strided or read-only-incompatible y: the update must not be lost
    base = np.arange(12.0)
    y = base[::2]
    add_scaled_(y, np.ones(6), 2.0)
    np.testing.assert_array_equal(base[::2], np.arange(0.0, 12.0, 2.0) + 2.0)
    fortran = np.asfortranarray(np.ones((4, 3)))
    add_scaled_(fortran, np.ones((4, 3)), 1.0)
    np.testing.assert_array_equal(fortran, 2.0)
    mixed = np.ones(5)
    add_scaled_(mixed, np.ones(5, dtype=np.float32), 1.0)
    np.testing.assert_array_equal(mixed, 2.0)


def test_autograd_inputs_get_a_new_tensor() -> None:
    torch = pytest.importorskip("torch")
    x = torch.ones(4, dtype=torch.float64, requires_grad=True)
    y = torch.zeros(4, dtype=torch.float64)
    result = add_scaled_(y, x, 2.0)
    assert result is not y and bool(torch.all(y == 0))
    result.sum().backward()
    assert bool(torch.all(x.grad == 2.0))
    quotient = divide_into(torch.empty(4, dtype=torch.float64), x, 2.0)
    assert quotient.requires_grad
    columns = add_scaled_columns_(
        torch.zeros(4, 1, dtype=torch.float64), x[:, None], torch.ones(1, dtype=torch.float64)
    )
    assert columns.requires_grad
