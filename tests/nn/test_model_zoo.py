"""Exact HVPs and GGN products on the model zoo, by default, against float64 references.

The references are dense reverse-over-reverse Hessians (``torch.autograd.functional``) of the
loss as a function of the flat trainable parameters, computed under PyTorch's math attention
backend (the fused kernels have no second derivatives). The operators are built with no
context manager on the user's side.
"""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")

from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: E402

from hvpseries.nn import GGNOperator, HessianOperator  # noqa: E402
from hvpseries.optim import KrylovSFN, SeriesSFN  # noqa: E402
from tests.nn.models import dense_ggn, dense_gradient, dense_hessian, random_vectors  # noqa: E402
from tests.nn.zoo import ATTENTION, ZOO, make_zoo_case  # noqa: E402

RTOL = 1e-9


def _trainable(case) -> list[str]:
    return [name for name, p in case.model.named_parameters() if p.requires_grad]


def _relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return float(torch.linalg.norm(actual - expected) / torch.linalg.norm(expected))


def _reference(function, case) -> torch.Tensor:
    with sdpa_kernel([SDPBackend.MATH]):
        return function(case, _trainable(case))


@pytest.mark.parametrize("name", ZOO)
def test_hessian_products_are_exact_by_default(name: str) -> None:
    case = make_zoo_case(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a mode or backend fallback is reported, not an error
        operator = HessianOperator(case.model, case.loss_fn, case.data)
        V = random_vectors(operator.shape[0], 4, seed=7)
        products = operator @ V
    hessian = _reference(dense_hessian, case)
    assert _relative_error(products, hessian @ V) <= RTOL
    assert _relative_error(operator @ V[:, 0], hessian @ V[:, 0]) <= RTOL


@pytest.mark.parametrize("name", ZOO)
def test_loss_and_gradient_are_those_of_the_model(name: str) -> None:
    case = make_zoo_case(name)
    inputs, targets = case.data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        operator = HessianOperator(case.model, case.loss_fn, case.data)
        operator @ random_vectors(operator.shape[0], seed=1)  # a product first, then the loss
        loss, gradient = operator.loss_and_gradient()
    with torch.no_grad():  # the model as it runs normally (fast paths included)
        expected = case.loss_fn(case.model(inputs), targets)
    assert abs(float(loss) - float(expected)) <= 1e-12 * max(abs(float(expected)), 1.0)
    assert _relative_error(gradient, dense_gradient(case, _trainable(case))) <= 1e-12


@pytest.mark.parametrize("name", [n for n in ZOO if not n.endswith("-train")])
def test_ggn_products_are_exact_by_default(name: str) -> None:
    case = make_zoo_case(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        operator = GGNOperator(case.model, case.loss_fn, case.data)
        V = random_vectors(operator.shape[0], 3, seed=8)
        products = operator @ V
    ggn = _reference(dense_ggn, case)
    assert _relative_error(products, ggn @ V) <= RTOL


@pytest.mark.parametrize("name", ATTENTION)
def test_attention_backend_is_visible_and_reported_once(name: str) -> None:
    case = make_zoo_case(name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        operator = HessianOperator(case.model, case.loss_fn, case.data)
        for seed in range(3):
            operator @ random_vectors(operator.shape[0], seed=seed)
    assert operator.attention_backend == "math"
    assert "attention_backend='math'" in repr(operator)
    notes = [w for w in caught if "attention" in str(w.message)]
    assert len(notes) == 1, [str(w.message) for w in caught]


def test_models_without_attention_keep_the_default_backend() -> None:
    case = make_zoo_case("lstm")
    operator = HessianOperator(case.model, case.loss_fn, case.data)
    operator @ random_vectors(operator.shape[0], seed=0)
    assert operator.attention_backend == "default"


@pytest.mark.parametrize("name", ["transformer-train", "resnet-bn-train", "causal-decoder"])
@pytest.mark.parametrize("optimizer_class", [SeriesSFN, KrylovSFN])
def test_sfn_steps_from_model(name: str, optimizer_class) -> None:
    case = make_zoo_case(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optimizer = optimizer_class.from_model(case.model, case.loss_fn, damping=1.0)
        losses = [float(optimizer.step(data=case.data)) for _ in range(3)]
    assert all(torch.isfinite(torch.tensor(losses)))
    inputs, targets = case.data
    with torch.no_grad():
        final = float(case.loss_fn(case.model(inputs), targets))
    assert final <= losses[0]  # rejected steps are undone, so the loss never rises
