"""Optimizers behind ``hvpseries train``, constructed by their command-line names."""

from __future__ import annotations

import sys

import pytest

torch = pytest.importorskip("torch", reason="training needs torch")

from hvpseries._app._dependencies import MissingDependencyError  # noqa: E402
from hvpseries._app._optimizers import make_optimizer  # noqa: E402


def test_make_optimizer_first_order_defaults() -> None:
    parameter = [torch.zeros(2, requires_grad=True)]
    adam = make_optimizer("adam", parameter)
    sgd = make_optimizer("sgd", parameter, lr=0.2, options={"momentum": 0.0})
    assert isinstance(adam, torch.optim.Adam) and adam.defaults["lr"] == 1e-3
    assert isinstance(sgd, torch.optim.SGD)
    assert (sgd.defaults["lr"], sgd.defaults["momentum"]) == (0.2, 0.0)
    assert make_optimizer("sgd", parameter).defaults["momentum"] == 0.9


@pytest.mark.parametrize(
    ("name", "keywords", "match"),
    [
        ("lbfgs", {}, "unknown optimizer 'lbfgs'"),
        ("adam", {"lr": -1.0}, "positive number"),
        ("adam", {"damping": 1.0}, "SFN optimizers only"),
        ("sgd", {"options": {"nesterov_typo": True}}, "has no option 'nesterov_typo'"),
        ("series-sfn", {"damping": -1.0}, "damping"),
        ("series-sfn", {"options": {"num_terms": 0}}, "cannot construct series-sfn"),
    ],
)
def test_make_optimizer_refuses_bad_settings(name, keywords, match) -> None:
    with pytest.raises(ValueError, match=match):
        make_optimizer(name, [torch.zeros(2, requires_grad=True)], **keywords)


def test_sfn_optimizers_are_built_with_their_options() -> None:
    pytest.importorskip("hvpseries.optim")
    parameter = [torch.zeros(2, requires_grad=True)]
    series = make_optimizer("series-sfn", parameter, damping=0.5, options={"num_terms": 10})
    assert type(series).__name__ == "SeriesSFN" and series.defaults["damping"] == 0.5
    fixed = make_optimizer("series-sfn", parameter, lr=0.1)  # a fixed rate, not adaptive
    assert (fixed.defaults["lr"], fixed.defaults["adaptive"]) == (0.1, False)
    krylov = make_optimizer("krylov-sfn", parameter, options={"maxiter": 5})
    assert type(krylov).__name__ == "KrylovSFN"
    assert type(make_optimizer("exact-sfn", parameter)).__name__ == "ExactSFN"


def test_missing_optim_module_is_reported(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "hvpseries.optim", None)
    with pytest.raises(MissingDependencyError, match=r"hvpseries\.optim"):
        make_optimizer("series-sfn", [torch.zeros(1, requires_grad=True)])
