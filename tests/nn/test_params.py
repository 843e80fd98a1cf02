"""flatten_params and unflatten_params."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from hvpseries.nn import flatten_params, unflatten_params  # noqa: E402

shapes = st.lists(
    st.lists(st.integers(0, 3), min_size=0, max_size=3).map(tuple), min_size=1, max_size=4
)


@given(shapes)
def test_round_trip(shape_list):
    tensors = [torch.randn(shape, dtype=torch.float64) for shape in shape_list]
    flat = flatten_params(tensors)
    assert flat.ndim == 1 and flat.shape[0] == sum(t.numel() for t in tensors)
    parts = unflatten_params(flat, tensors)
    assert all(torch.equal(a, b) for a, b in zip(parts, tensors, strict=True))
    named = {f"p{i}": t for i, t in enumerate(tensors)}
    parts = unflatten_params(flatten_params(named), {k: t.shape for k, t in named.items()})
    assert list(parts) == list(named)
    assert all(torch.equal(parts[k], named[k]) for k in named)


def test_views_and_detach():
    w = torch.ones(2, 2, requires_grad=True)
    flat = flatten_params([w])
    assert not flat.requires_grad
    parts = unflatten_params(flat, [w])
    parts[0][0, 0] = 5.0
    assert flat[0] == 5.0


def test_errors():
    with pytest.raises(ValueError, match="length 4"):
        unflatten_params(torch.zeros(5), [(2, 2)])
    with pytest.raises(ValueError, match="length 4"):
        unflatten_params(torch.zeros(2, 2), [(2, 2)])
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        unflatten_params([0.0] * 4, [(2, 2)])
    with pytest.raises(ValueError, match="one dtype and device"):
        flatten_params([torch.zeros(2), torch.zeros(2, dtype=torch.float64)])
    with pytest.raises(ValueError, match="no tensors"):
        flatten_params([])
    with pytest.raises(TypeError, match="expects tensors"):
        flatten_params([1.0])
