"""SFN optimizers: requires_grad at every step, whole-or-nothing steps, state_dict round trips."""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")

from hvpseries.optim import ExactSFN, KrylovSFN, LazySFN, SeriesSFN  # noqa: E402

OPTIMIZERS = [ExactSFN, KrylovSFN, LazySFN, SeriesSFN]
LOSS = torch.nn.functional.mse_loss
# Fixed learning rate and momentum, so that the previous update enters every step; no step is
# undone.
WITH_MOMENTUM = {
    "damping": 0.5,
    "adaptive": False,
    "lr": 0.5,
    "momentum": 0.5,
    "reject_increase": False,
}


def _mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    layers = [torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)]
    return torch.nn.Sequential(*layers).double()


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    inputs = torch.randn(10, 3, generator=generator, dtype=torch.float64)
    return inputs, torch.randn(10, 1, generator=generator, dtype=torch.float64)


def _closure(model: torch.nn.Module):
    inputs, targets = _batch()
    return lambda: LOSS(model(inputs), targets)


def _copies(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def _same_parameters(model: torch.nn.Module, other: torch.nn.Module) -> bool:
    return all(
        torch.equal(p, q) for p, q in zip(model.parameters(), other.parameters(), strict=True)
    )


def _same_state(optimizer, other) -> bool:
    first, second = optimizer.state_dict()["state"], other.state_dict()["state"]
    if first.keys() != second.keys():
        return False
    for key, entries in first.items():
        if entries.keys() != second[key].keys():
            return False
        for name, value in entries.items():
            same = (
                torch.equal(value, second[key][name])
                if isinstance(value, torch.Tensor)
                else value == second[key][name]
            )
            if not same:
                return False
    return True


# ------------------------------------------------------------------ requires_grad


@pytest.mark.parametrize("optimizer_class", OPTIMIZERS)
def test_a_parameter_frozen_after_construction_is_left_untouched(optimizer_class) -> None:
    model = _mlp()
    optimizer = optimizer_class(model.parameters(), damping=0.5)
    optimizer.step(_closure(model))
    model[0].weight.requires_grad_(False)
    before = _copies(model)
    optimizer.step(_closure(model))
    assert torch.equal(model[0].weight, before[0])
    assert all(
        not torch.equal(p, b) for p, b in zip([*model.parameters()][1:], before[1:], strict=True)
    )
    assert optimizer.counters["step"] == 2


@pytest.mark.parametrize("optimizer_class", OPTIMIZERS)
def test_a_parameter_unfrozen_after_construction_is_trained(optimizer_class) -> None:
    model = _mlp()
    bias = model[2].bias
    bias.requires_grad_(False)
    optimizer = optimizer_class(model.parameters(), damping=0.5)
    before = bias.detach().clone()
    optimizer.step(_closure(model))
    assert torch.equal(bias, before)
    bias.requires_grad_(True)
    optimizer.step(_closure(model))
    assert not torch.equal(bias, before)


def _coupled_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return ((a**2).sum() - 1) ** 2 + (a * b).sum() + (b**4).sum()


def test_the_momentum_restarts_when_the_trainable_parameters_change() -> None:
    a = torch.tensor([0.3, -0.7], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([0.5, 0.2], dtype=torch.float64, requires_grad=True)
    optimizer = ExactSFN([a, b], damping_factor=1.0, **WITH_MOMENTUM)
    for _ in range(2):
        optimizer.step(lambda: _coupled_loss(a, b))
    b.requires_grad_(False)
    twin = a.detach().clone().requires_grad_()
    fresh = ExactSFN([twin], damping_factor=1.0, **WITH_MOMENTUM)
    optimizer.step(lambda: _coupled_loss(a, b))
    fresh.step(lambda: _coupled_loss(twin, b))
    assert torch.equal(a.detach(), twin.detach())  # the step of an optimizer without momentum
    assert optimizer.state[a]["previous_update"].shape == (2,)
    b.requires_grad_(True)
    optimizer.step(lambda: _coupled_loss(a, b))
    assert optimizer.state[a]["previous_update"].shape == (4,)
    assert optimizer.counters["step"] == 4


def test_a_step_with_every_parameter_frozen_is_refused() -> None:
    model = _mlp()
    optimizer = SeriesSFN(model.parameters())
    model.requires_grad_(False)
    before = _copies(model)
    with pytest.raises(ValueError, match="no parameters that require gradients; unfreeze"):
        optimizer.step(_closure(model))
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before, strict=True))
    assert optimizer.counters["loss"] == 0


def test_an_unfrozen_parameter_is_checked_against_max_parameters() -> None:
    model = _mlp()
    model[0].weight.requires_grad_(False)
    optimizer = ExactSFN(model.parameters(), max_parameters=10)  # 4 + 4 + 1 trainable
    optimizer.step(_closure(model))
    model[0].weight.requires_grad_(True)
    with pytest.raises(ValueError, match="dense 21x21 Hessian, above max_parameters=10"):
        optimizer.step(_closure(model))


@pytest.mark.parametrize("optimizer_class", OPTIMIZERS)
def test_from_model_follows_requires_grad(optimizer_class) -> None:
    """The curvature operator is rebuilt over the parameters that require gradients."""
    pytest.importorskip("hvpseries.nn")
    model, twin = _mlp(), _mlp()
    built = optimizer_class.from_model(model, LOSS, damping=0.5)
    plain = optimizer_class(twin.parameters(), damping=0.5)
    data = _batch()
    for frozen in (False, True, False):
        model[0].weight.requires_grad_(not frozen)
        twin[0].weight.requires_grad_(not frozen)
        before = model[0].weight.detach().clone()
        built.step(data=data)
        plain.step(_closure(twin))
        assert torch.equal(model[0].weight, before) == frozen
        for p, q in zip(model.parameters(), twin.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-9, atol=1e-12)
    assert built.counters["step"] == 3


# ------------------------------------------------------------------ whole or nothing


class _Failure(Exception):
    pass


def _failing_on_second_call(closure):
    calls = []

    def failing():
        calls.append(None)
        if len(calls) == 2:  # the loss after the update
            raise _Failure
        return closure()

    return failing


@pytest.mark.parametrize("optimizer_class", OPTIMIZERS)
def test_an_exception_in_the_closure_undoes_the_step(optimizer_class) -> None:
    model, twin = _mlp(), _mlp()
    optimizer = optimizer_class(model.parameters(), **WITH_MOMENTUM)
    reference = optimizer_class(twin.parameters(), **WITH_MOMENTUM)
    for _ in range(2):
        optimizer.step(_closure(model))
        reference.step(_closure(twin))
    with pytest.raises(_Failure):
        optimizer.step(_failing_on_second_call(_closure(model)))
    assert _same_parameters(model, twin)
    assert _same_state(optimizer, reference)
    optimizer.step(_closure(model))
    reference.step(_closure(twin))
    assert _same_parameters(model, twin)


@pytest.mark.parametrize("optimizer_class", OPTIMIZERS)
def test_an_exception_in_the_loss_of_from_model_undoes_the_step(optimizer_class) -> None:
    pytest.importorskip("hvpseries.nn")
    model, twin = _mlp(), _mlp()
    armed = []

    def loss_fn(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if armed and not _same_parameters(model, twin):  # the loss after the update
            raise _Failure
        return LOSS(outputs, targets)

    optimizer = optimizer_class.from_model(model, loss_fn, **WITH_MOMENTUM)
    reference = optimizer_class.from_model(twin, LOSS, **WITH_MOMENTUM)
    for _ in range(2):
        optimizer.step(data=_batch())
        reference.step(data=_batch())
    armed.append(True)
    with pytest.raises(_Failure):
        optimizer.step(data=_batch())
    assert _same_parameters(model, twin)
    assert _same_state(optimizer, reference)


# ------------------------------------------------------------------ state_dict round trips


@pytest.mark.parametrize(
    "optimizer_class",
    [ExactSFN, KrylovSFN, LazySFN, SeriesSFN],
)
def test_from_model_state_dict_round_trip_is_bit_identical(optimizer_class) -> None:
    pytest.importorskip("hvpseries.nn")
    model = _mlp()
    optimizer = optimizer_class.from_model(model, LOSS, **WITH_MOMENTUM)
    for _ in range(3):
        optimizer.step(data=_batch())
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    saved_model = copy.deepcopy(model.state_dict())
    resumed_model = _mlp()
    resumed_model.load_state_dict(saved_model)
    resumed = optimizer_class.from_model(resumed_model, LOSS, **WITH_MOMENTUM)
    resumed.load_state_dict(saved_optimizer)
    for _ in range(2):
        optimizer.step(data=_batch())
        resumed.step(data=_batch())
        assert _same_parameters(model, resumed_model)
    assert _same_state(optimizer, resumed)


@pytest.mark.parametrize("optimizer_class", OPTIMIZERS)
def test_state_dict_round_trip_with_a_frozen_parameter_keeps_the_momentum(optimizer_class) -> None:
    model = _mlp()
    model[0].bias.requires_grad_(False)
    optimizer = optimizer_class(model.parameters(), **WITH_MOMENTUM)
    for _ in range(2):
        optimizer.step(_closure(model))
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    resumed_model = copy.deepcopy(model)
    resumed = optimizer_class(resumed_model.parameters(), **WITH_MOMENTUM)
    resumed.load_state_dict(saved_optimizer)
    for _ in range(2):
        optimizer.step(_closure(model))
        resumed.step(_closure(resumed_model))
        assert _same_parameters(model, resumed_model)
    assert _same_state(optimizer, resumed)
