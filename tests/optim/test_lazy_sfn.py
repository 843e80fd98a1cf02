"""LazySFN: the low-rank model, its refresh schedule and staleness test, against references."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hvpseries.optim import LazySFN  # noqa: E402


def _indefinite_quadratic(n: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    spectrum = np.linspace(-2.0, 3.0, n)
    a = torch.tensor((q * spectrum) @ q.T)
    a = (a + a.T) / 2
    b = torch.tensor(rng.standard_normal(n))
    return a, b


def _dense_direction(a: torch.Tensor, g: torch.Tensor, damping: float) -> torch.Tensor:
    eigenvalues, eigenvectors = torch.linalg.eigh(a)
    return eigenvectors @ ((eigenvectors.T @ g) / (eigenvalues.abs() + damping))


def _fixed(**options):
    return {"adaptive": False, "lr": 1.0, "damping_factor": 1.0, **options}


def test_a_full_rank_refresh_is_the_exact_saddle_free_newton_step() -> None:
    # rank >= n: the Krylov space of g is the whole space (or invariant), so the model is exact.
    a, b = _indefinite_quadratic()
    w = torch.zeros(6, dtype=torch.float64, requires_grad=True)
    with torch.no_grad():
        w += torch.linspace(-1.0, 1.0, 6, dtype=torch.float64)
    gradient = (a @ w - b).detach()
    expected = _dense_direction(a, gradient, 0.3)
    before = w.detach().clone()
    optimizer = LazySFN([w], rank=6, damping=0.3, **_fixed())
    optimizer.step(lambda: 0.5 * w @ a @ w - b @ w)
    torch.testing.assert_close(before - w.detach(), expected, rtol=1e-10, atol=1e-12)
    assert optimizer.counters["hvp"] == 6 and optimizer.counters["refresh"] == 1


def test_between_refreshes_the_stored_model_is_applied_to_the_new_gradient() -> None:
    a, b = _indefinite_quadratic(n=30, seed=1)
    w = torch.linspace(-1.0, 1.0, 30, dtype=torch.float64).requires_grad_()
    optimizer = LazySFN(
        [w], rank=5, refresh_every=3, damping=0.2, reject_increase=False, **_fixed()
    )
    loss = lambda: 0.5 * w @ a @ w - b @ w  # noqa: E731
    optimizer.step(loss)  # refresh: 5 HVPs
    state = optimizer.state[w]
    vectors, values = state["ritz_vectors"], state["ritz_values"]
    # the model: Ritz pairs of a's restriction to an orthonormal basis
    torch.testing.assert_close(vectors.T @ vectors, torch.eye(5, dtype=torch.float64))
    torch.testing.assert_close(vectors.T @ a @ vectors, torch.diag(values), atol=1e-10, rtol=0)
    gradient = (a @ w - b).detach()
    rest = 1.0 / (float(values.abs().max()) + 0.2)
    coefficients = vectors.T @ gradient
    expected = vectors @ ((1.0 / (values.abs() + 0.2) - rest) * coefficients) + rest * gradient
    before = w.detach().clone()
    optimizer.step(loss)  # no refresh, no HVP
    torch.testing.assert_close(before - w.detach(), expected, rtol=1e-12, atol=1e-14)
    assert optimizer.counters["hvp"] == 5 and optimizer.counters["refresh"] == 1


def test_the_schedule_refreshes_every_refresh_every_steps() -> None:
    a, b = _indefinite_quadratic(n=40, seed=2)
    a = a @ a + torch.eye(40, dtype=torch.float64)  # convex: every step is a good one
    w = torch.zeros(40, dtype=torch.float64, requires_grad=True)
    optimizer = LazySFN([w], rank=4, refresh_every=3, damping=1.0)
    for _ in range(10):
        optimizer.step(lambda: 0.5 * w @ a @ w - b @ w)
    counters = optimizer.counters
    assert counters["rejected"] == counters["skipped"] == 0
    assert counters["refresh"] == math.ceil(10 / 3)
    assert counters["hvp"] == 4 * counters["refresh"]
    assert counters["gradient"] == 10


def test_a_rejected_step_refreshes_the_model_at_the_next_step() -> None:
    # A model built at one point of a non-quadratic loss and then far off: the step that
    # raises the loss is undone, and the next step rebuilds the curvature before schedule.
    w = torch.tensor([0.1, 0.1], dtype=torch.float64, requires_grad=True)
    loss = lambda: (w**4).sum() - (w**2).sum() + 5.0 * torch.sin(3.0 * w).sum()  # noqa: E731
    optimizer = LazySFN([w], rank=2, refresh_every=1000, damping=1e-3, damping_factor=0.5)
    refreshes = []
    for _ in range(40):
        optimizer.step(loss)
        refreshes.append(optimizer.counters["refresh"])
    counters = optimizer.counters
    assert counters["rejected"] > 0
    assert counters["refresh"] > 1  # never by schedule: every later one is the staleness test
    assert counters["refresh"] <= 1 + counters["rejected"] + counters["skipped"]


def test_minus_infinity_turns_the_staleness_test_off() -> None:
    w = torch.tensor([0.1, 0.1], dtype=torch.float64, requires_grad=True)
    loss = lambda: (w**4).sum() - (w**2).sum() + 5.0 * torch.sin(3.0 * w).sum()  # noqa: E731
    optimizer = LazySFN(
        [w], rank=2, refresh_every=1000, damping=1e-3, damping_factor=0.5, stale_ratio=-math.inf
    )
    for _ in range(40):
        optimizer.step(loss)
    assert optimizer.counters["rejected"] > 0
    assert optimizer.counters["refresh"] == 1


def test_a_refresh_builds_the_hessian_graph_and_other_steps_do_not(monkeypatch) -> None:
    from hvpseries.optim import _base

    calls = {"hessian": 0, "gradient": 0}
    hessian_of_closure, gradient_of_closure = _base.hessian_of_closure, _base.gradient_of_closure

    def counting_hessian(*args):
        calls["hessian"] += 1
        return hessian_of_closure(*args)

    def counting_gradient(*args):
        calls["gradient"] += 1
        return gradient_of_closure(*args)

    monkeypatch.setattr(_base, "hessian_of_closure", counting_hessian)
    monkeypatch.setattr(_base, "gradient_of_closure", counting_gradient)
    a, b = _indefinite_quadratic(n=20, seed=3)
    a = a @ a + torch.eye(20, dtype=torch.float64)
    w = torch.zeros(20, dtype=torch.float64, requires_grad=True)
    optimizer = LazySFN([w], rank=3, refresh_every=4)
    for _ in range(8):
        optimizer.step(lambda: 0.5 * w @ a @ w - b @ w)
    assert calls == {"hessian": optimizer.counters["refresh"], "gradient": 8 - calls["hessian"]}
    assert calls["hessian"] == 2


def test_zero_damping_is_the_pseudo_inverse_of_the_model() -> None:
    # A singular Hessian (a rank-one quadratic): no division by a zero curvature.
    u = torch.tensor([1.0, 2.0, 2.0], dtype=torch.float64) / 3.0
    w = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64, requires_grad=True)
    optimizer = LazySFN(
        [w], rank=3, damping=0.0, damping_min=0.0, relative_damping_min=0.0, **_fixed()
    )
    optimizer.step(lambda: 0.5 * (u @ w) ** 2)
    assert torch.all(torch.isfinite(w))
    torch.testing.assert_close(u @ w.detach(), torch.tensor(0.0, dtype=torch.float64))


def test_the_applied_damping_is_at_least_a_fraction_of_the_largest_curvature() -> None:
    # d = 0.001 is below c max|theta| = 0.1 * max|lambda| (full rank: the Ritz values are the
    # eigenvalues), so the step is the saddle-free Newton step damped by the floor.
    a, b = _indefinite_quadratic()
    w = torch.linspace(-1.0, 1.0, 6, dtype=torch.float64).requires_grad_()
    gradient = (a @ w - b).detach()
    floor = 0.1 * float(torch.linalg.eigvalsh(a).abs().max())
    expected = _dense_direction(a, gradient, floor)
    before = w.detach().clone()
    optimizer = LazySFN([w], rank=6, damping=1e-3, relative_damping_min=0.1, **_fixed())
    optimizer.step(lambda: 0.5 * w @ a @ w - b @ w)
    torch.testing.assert_close(before - w.detach(), expected, rtol=1e-10, atol=1e-12)
    assert optimizer.damping == 1e-3  # the floor is applied, the damping state is d


def test_a_stationary_point_takes_a_zero_step() -> None:
    w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    optimizer = LazySFN([w], rank=2)
    optimizer.step(lambda: (w**2).sum())
    assert torch.equal(w.detach(), torch.zeros(3, dtype=torch.float64))
    assert optimizer.counters["hvp"] == 0


def test_lazy_sfn_escapes_a_saddle_on_a_small_network_with_few_hvps() -> None:
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(64, 4, generator=generator, dtype=torch.float64)
    targets = inputs @ torch.randn(4, 2, generator=generator, dtype=torch.float64)
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 2))
    model = model.double()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1e-3)  # next to the strict saddle at zero
    loss = lambda: torch.nn.functional.mse_loss(model(inputs), targets)  # noqa: E731
    start = float(loss().detach())
    optimizer = LazySFN(model.parameters(), rank=10, refresh_every=10)
    for _ in range(60):
        optimizer.step(loss)
    assert float(loss().detach()) < 0.05 * start
    assert optimizer.counters["hvp"] <= 10 * optimizer.counters["refresh"]
    assert optimizer.counters["hvp"] / 60 < 5  # far below KrylovSFN's 40 per step


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"rank": 0}, ValueError, "rank"),
        ({"rank": 2.5}, TypeError, "rank"),
        ({"refresh_every": 0}, ValueError, "refresh_every"),
        ({"stale_ratio": 1.0}, ValueError, "stale_ratio"),
        ({"stale_ratio": math.nan}, ValueError, "stale_ratio"),
        ({"stale_ratio": "0.5"}, TypeError, "stale_ratio"),
        ({"stale_ratio": math.inf}, ValueError, "stale_ratio"),
        ({"stale_ratio": True}, TypeError, "stale_ratio"),
        ({"relative_damping_min": -0.1}, ValueError, "relative_damping_min"),
        ({"relative_damping_min": math.nan}, ValueError, "relative_damping_min"),
        ({"relative_damping_min": "0.1"}, TypeError, "relative_damping_min"),
    ],
)
def test_bad_options_are_refused_with_a_clear_error(options, error, match) -> None:
    w = torch.zeros(2, requires_grad=True)
    with pytest.raises(error, match=match):
        LazySFN([w], **options)
