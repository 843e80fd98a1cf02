"""Models behind ``hvpseries train``: ``--model`` strings and the perceptrons."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="training needs torch")

from hvpseries._app._models import ModelSpec, build_model, parse_model_spec  # noqa: E402


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("mlp:50", ModelSpec((50,), "tanh")),
        ("mlp:50,20", ModelSpec((50, 20), "tanh")),
        ("mlp:8:relu", ModelSpec((8,), "relu")),
        ("linear", ModelSpec((), "tanh")),
    ],
)
def test_parse_model_spec(spec, expected) -> None:
    assert parse_model_spec(spec) == expected


@pytest.mark.parametrize(
    "spec", ["mlp", "mlp:", "cnn:5", "mlp:0", "mlp:5,-1", "mlp:a", "mlp:5:swish", "mlp:5,,3"]
)
def test_bad_model_specs(spec) -> None:
    with pytest.raises(ValueError, match=r"model|widths|activation"):
        parse_model_spec(spec)


def test_build_model_is_seeded_and_leaves_the_global_state() -> None:
    state = torch.random.get_rng_state()
    first = build_model("mlp:6,5", 4, 3, seed=7)
    second = build_model("mlp:6,5", 4, 3, seed=7)
    other = build_model("mlp:6,5", 4, 3, seed=8)
    assert torch.equal(state, torch.random.get_rng_state())
    assert sum(p.numel() for p in first.parameters()) == 4 * 6 + 6 + 6 * 5 + 5 + 5 * 3 + 3
    for a, b in zip(first.parameters(), second.parameters(), strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(next(first.parameters()), next(other.parameters()))
    small = build_model("mlp:6,5", 4, 3, seed=7, init_scale=1e-3)
    torch.testing.assert_close(next(small.parameters()), 1e-3 * next(first.parameters()))
    assert [type(m).__name__ for m in first] == ["Linear", "Tanh", "Linear", "Tanh", "Linear"]
    assert len(build_model("linear", 4, 3)) == 1
    with pytest.raises(ValueError, match="init_scale"):
        build_model("mlp:3", 2, 1, init_scale=0.0)
