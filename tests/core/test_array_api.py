"""The backend layer: namespaces, dtype checks and host transfers on every backend."""

from __future__ import annotations

import numpy as np
import pytest

from hvpseries._core import _array_api as backend_layer
from tests.backends import Backend


def test_namespace_and_names(backend: Backend) -> None:
    x = backend.asarray(np.arange(3.0))
    xp = backend_layer.array_namespace(x)
    assert xp is backend.xp
    assert backend_layer.backend_name(xp) == backend.library
    assert backend_layer.same_device(backend_layer.device(x), backend.device)
    assert backend_layer.epsilon(xp, backend.dtype) == pytest.approx(backend.eps)


def test_host_values(backend: Backend) -> None:
    x = backend.asarray(np.array([1.5, -2.0, 3.0]))
    np.testing.assert_array_equal(backend_layer.host_values(x), [1.5, -2.0, 3.0])
    zero_d = backend.xp.sum(x)
    np.testing.assert_array_equal(backend_layer.host_values(zero_d), [2.5])


def test_host_values_of_a_tensor_that_requires_grad() -> None:
    torch = pytest.importorskip("torch")
    x = torch.ones(2, dtype=torch.float64, requires_grad=True) * 2
    np.testing.assert_array_equal(backend_layer.host_values(x), [2.0, 2.0])
    # a 0-d tensor takes the float() path: detached, so torch does not warn (an error here)
    np.testing.assert_array_equal(backend_layer.host_values(x.sum()), [4.0])


def test_dtype_checks(backend: Backend) -> None:
    xp = backend.xp
    backend_layer.check_floating_dtype(xp, backend.dtype, "x")
    with pytest.raises(TypeError, match="floating point"):
        backend_layer.check_floating_dtype(xp, xp.int64, "x")
    assert backend_layer.real_dtype(xp, xp.complex128) == xp.float64
    assert backend_layer.is_complex_dtype(xp, xp.complex64)


def test_array_namespace_errors() -> None:
    with pytest.raises(TypeError, match="at least one array"):
        backend_layer.array_namespace()
    with pytest.raises(TypeError, match="got list"):
        backend_layer.array_namespace(np.ones(2), [1.0])


def test_namespace_like_defaults_to_numpy() -> None:
    xp, where, dtype = backend_layer.namespace_like(None)
    assert backend_layer.is_numpy(xp) and where == "cpu" and dtype == xp.float64
