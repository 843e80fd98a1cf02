"""Saddle-free Newton optimizers against dense references, saddles, state and bad input."""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hvpseries.optim import ExactSFN, KrylovSFN, LazySFN, SeriesSFN  # noqa: E402

OPTIMIZERS = [ExactSFN, KrylovSFN, LazySFN, SeriesSFN]


def _tiny_network_loss(w: torch.Tensor) -> torch.Tensor:
    """A 2-3-1 tanh network's mean squared error on fixed data, weights in one flat vector."""
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(8, 2, generator=generator, dtype=torch.float64)
    targets = torch.randn(8, 1, generator=generator, dtype=torch.float64)
    w1, b1, w2, b2 = w[:6].view(3, 2), w[6:9], w[9:12].view(1, 3), w[12:13]
    hidden = torch.tanh(inputs @ w1.T + b1)
    return ((hidden @ w2.T + b2 - targets) ** 2).mean()


def _start(seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(13, generator=generator, dtype=torch.float64).requires_grad_()


def _dense_sfn_direction(loss_fn, w: torch.Tensor, damping: float) -> torch.Tensor:
    w = w.detach()
    hessian = torch.autograd.functional.hessian(loss_fn, w)
    gradient = torch.autograd.functional.jacobian(loss_fn, w)
    eigenvalues, eigenvectors = torch.linalg.eigh(hessian)
    return eigenvectors @ ((eigenvectors.T @ gradient) / (eigenvalues.abs() + damping))


def _indefinite_quadratic():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    a = (q * np.array([3.0, -2.0, 1.5, -1.0, 0.7, 2.5])) @ q.T
    return (a + a.T) / 2, rng.standard_normal(6), rng.standard_normal(6)


def _quadratic_loss(a: np.ndarray, b: np.ndarray):
    a_t, b_t = torch.tensor(a), torch.tensor(b)
    return lambda t: 0.5 * t @ a_t @ t - b_t @ t


def _fixed_step(make, loss_fn, w: torch.Tensor) -> torch.Tensor:
    before = w.detach().clone()
    make(w).step(lambda: loss_fn(w))
    return before - w.detach()


@pytest.mark.parametrize(
    ("make", "rtol"),
    [
        (lambda w: ExactSFN([w], damping=0.5, adaptive=False, damping_factor=1.0), 1e-10),
        (
            lambda w: KrylovSFN([w], damping=0.5, rtol=1e-11, adaptive=False, damping_factor=1.0),
            1e-8,
        ),
    ],
    ids=["exact", "krylov"],
)
def test_update_on_a_network_equals_the_dense_formula(make, rtol) -> None:
    w = _start()
    expected = _dense_sfn_direction(_tiny_network_loss, w, 0.5)
    update = _fixed_step(make, _tiny_network_loss, w)
    np.testing.assert_allclose(update.numpy(), expected.numpy(), rtol=rtol, atol=0)


def test_series_update_equals_the_dense_formula() -> None:
    """The series converges fast when |lambda| stays away from 0 (here |lambda| in [0.7, 3])."""
    a, b, theta = _indefinite_quadratic()
    loss_fn = _quadratic_loss(a, b)
    w = torch.tensor(theta, requires_grad=True)
    expected = _dense_sfn_direction(loss_fn, w, 0.5)
    make = lambda w: SeriesSFN(  # noqa: E731
        [w], damping=0.5, num_terms=200, scale="auto", adaptive=False, damping_factor=1.0
    )
    update = _fixed_step(make, loss_fn, w)
    np.testing.assert_allclose(update.numpy(), expected.numpy(), rtol=1e-8, atol=0)


def _paper_reference(a: np.ndarray, b: np.ndarray, theta: np.ndarray, steps: int) -> np.ndarray:
    """Spec section 6 written out by hand for f = theta.A.theta / 2 - b.theta (NumPy, float64)."""

    def loss(t):
        return 0.5 * t @ a @ t - b @ t

    scale, damping, previous, buffer, previous_alpha = 100.0, 1.0, np.zeros_like(theta), 0.0, 0.0
    buffer = np.zeros_like(theta)
    for step in range(steps):
        g = a @ theta - b
        scale = max(scale, np.linalg.norm(a @ (a @ g)) / np.linalg.norm(g))
        delta = damping / np.sqrt(scale)
        # damped coefficients by the forward recurrence (exact enough for delta = 0.1, 20 terms)
        binomial_half = [1.0]
        for n in range(1, 20):
            binomial_half.append(binomial_half[-1] * (0.5 - (n - 1)) / n)
        c = [1.0 / (1.0 + delta)]
        for n in range(1, 20):
            c.append((c[-1] + (-1) ** n * binomial_half[n]) / (1.0 - delta**2))
        v, partial, sums = g.copy(), np.zeros_like(g), []
        for n in range(20):
            partial = partial + c[n] * v
            sums.append(partial.copy())
            v = v - a @ (a @ v) / scale
        s0, s1, s2 = sums[-3:]

        def inverse(x):
            return x / (x @ x)

        accelerated = s1 + inverse(inverse(s2 - s1) - inverse(s1 - s0))
        u = accelerated / np.sqrt(scale)
        ug, gd = u @ g, g @ previous
        q = previous_alpha * (previous @ buffer)
        q = 1.0 if q == 0 else q
        if step == 0:
            alpha, mu = 1.0, 0.0
        else:
            alpha, mu = np.linalg.solve(np.array([[ug, gd], [gd, q]]), np.array([ug, gd]))
        update = alpha * u + mu * previous
        new_theta = theta - update
        model = 0.5 * (alpha**2 * ug + 2 * alpha * mu * gd + mu**2 * q) - alpha * ug - mu * gd
        rho = (loss(new_theta) - loss(theta)) / model
        damping = damping * 0.9 if rho > 0.75 else (damping / 0.9 if rho < 0.25 else damping)
        damping = min(max(damping, 1e-8), 1e4)
        buffer = mu * buffer + alpha * g
        previous, previous_alpha, theta = update, alpha, new_theta
    return theta


def test_default_series_sfn_is_the_papers_update_rule() -> None:
    a, b, theta0 = _indefinite_quadratic()
    expected = _paper_reference(a, b, theta0.copy(), steps=3)
    theta = torch.tensor(theta0, requires_grad=True)
    loss_fn = _quadratic_loss(a, b)
    optimizer = SeriesSFN([theta])
    for _ in range(3):
        optimizer.step(lambda: loss_fn(theta))
    np.testing.assert_allclose(theta.detach().numpy(), expected, rtol=1e-9, atol=1e-12)
    assert optimizer.counters["hvp"] == 3 * 38


def _saddle_loss(p: torch.Tensor) -> torch.Tensor:
    x, y = p[0], p[1]
    return x**2 - y**2 + y**4 / 4


def test_plain_newton_converges_to_the_saddle() -> None:
    p = torch.tensor([0.3, 1e-3], dtype=torch.float64)
    for _ in range(20):
        hessian = torch.autograd.functional.hessian(_saddle_loss, p)
        gradient = torch.autograd.functional.jacobian(_saddle_loss, p)
        p = p - torch.linalg.solve(hessian, gradient)
    assert float(p.abs().max()) < 1e-8  # the saddle point at the origin


@pytest.mark.parametrize("optimizer_class", OPTIMIZERS)
def test_saddle_free_newton_escapes_the_saddle(optimizer_class) -> None:
    p = torch.tensor([0.3, 1e-3], dtype=torch.float64, requires_grad=True)
    optimizer = optimizer_class([p], damping=0.1)
    for _ in range(60):
        optimizer.step(lambda: _saddle_loss(p))
    assert float(_saddle_loss(p.detach())) == pytest.approx(-1.0, abs=1e-8)  # minima y = +-sqrt 2
    assert abs(float(p.detach()[1])) == pytest.approx(2**0.5, rel=1e-6)


@pytest.mark.parametrize("optimizer_class", OPTIMIZERS)
def test_deep_linear_network_saddle(optimizer_class) -> None:
    """f(w1, w2) = (1 - w2 w1)^2 / 2 has a saddle at the origin and minima on w1 w2 = 1."""
    w = torch.tensor([1e-3, -2e-3], dtype=torch.float64, requires_grad=True)
    optimizer = optimizer_class([w], damping=0.1)
    for _ in range(80):
        optimizer.step(lambda: 0.5 * (1 - w[0] * w[1]) ** 2)
    assert float(w.detach().prod()) == pytest.approx(1.0, abs=1e-6)


def test_one_undamped_exact_step_solves_a_convex_quadratic() -> None:
    rng = np.random.default_rng(2)
    m = rng.standard_normal((5, 5))
    a, b = torch.tensor(m @ m.T + 5 * np.eye(5)), torch.tensor(rng.standard_normal(5))
    x = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    ExactSFN([x], damping=0.0).step(lambda: 0.5 * x @ a @ x - b @ x)
    np.testing.assert_allclose(
        x.detach().numpy(), np.linalg.solve(a.numpy(), b.numpy()), rtol=1e-10
    )


@pytest.mark.parametrize("optimizer_class", [SeriesSFN, KrylovSFN])
def test_converges_on_a_convex_quadratic(optimizer_class) -> None:
    a = torch.diag(torch.tensor([1.0, 2.0, 4.0, 8.0], dtype=torch.float64))
    b = torch.ones(4, dtype=torch.float64)
    x = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    optimizer = optimizer_class([x], damping=0.01)
    for _ in range(40):
        optimizer.step(lambda: 0.5 * x @ a @ x - b @ x)
    np.testing.assert_allclose(x.detach().numpy(), [1.0, 0.5, 0.25, 0.125], rtol=1e-6)


@pytest.mark.parametrize("optimizer_class", OPTIMIZERS)
def test_state_dict_round_trip_resumes_the_same_trajectory(optimizer_class) -> None:
    w = _start()
    optimizer = optimizer_class([w])
    for _ in range(2):
        optimizer.step(lambda: _tiny_network_loss(w))
    saved_state, saved_w = copy.deepcopy(optimizer.state_dict()), w.detach().clone()
    for _ in range(2):
        optimizer.step(lambda: _tiny_network_loss(w))
    resumed_w = saved_w.clone().requires_grad_()
    resumed = optimizer_class([resumed_w])
    resumed.load_state_dict(saved_state)
    for _ in range(2):
        resumed.step(lambda: _tiny_network_loss(resumed_w))
    assert torch.equal(resumed_w.detach(), w.detach())
    assert resumed.counters == optimizer.counters
    assert resumed.damping == optimizer.damping


def test_closure_that_calls_backward_gives_the_same_step() -> None:
    w1, w2 = _start(), _start()
    first, second = SeriesSFN([w1]), SeriesSFN([w2])

    def with_backward():
        second.zero_grad()
        loss = _tiny_network_loss(w2)
        loss.backward()
        return loss

    for _ in range(2):
        first.step(lambda: _tiny_network_loss(w1))
        second.step(with_backward)
    assert torch.equal(w1.detach(), w2.detach())


@pytest.mark.parametrize("optimizer_class", OPTIMIZERS)
def test_non_finite_loss_skips_the_step_and_raises_damping(optimizer_class) -> None:
    w = _start()
    before = w.detach().clone()
    optimizer = optimizer_class([w], damping=1.0)
    with pytest.warns(RuntimeWarning, match="skipped a step: the loss is not finite"):
        optimizer.step(lambda: _tiny_network_loss(w) * float("nan"))
    assert torch.equal(w.detach(), before)
    assert optimizer.damping == pytest.approx(1 / 0.9)
    assert optimizer.counters["skipped"] == 1


def test_non_finite_gradient_is_skipped() -> None:
    w = torch.tensor([0.0, 1.0], dtype=torch.float64, requires_grad=True)
    optimizer = ExactSFN([w])
    with pytest.warns(RuntimeWarning, match="gradient is not finite"):
        optimizer.step(lambda: torch.sqrt(w[0]) + w[1] ** 2)
    assert torch.equal(w.detach(), torch.tensor([0.0, 1.0], dtype=torch.float64))


def test_reject_increase_undoes_the_step() -> None:
    x = torch.ones(2, dtype=torch.float64, requires_grad=True)
    optimizer = ExactSFN([x], damping=0.0, adaptive=False, lr=3.0, reject_increase=True)
    optimizer.step(lambda: (x**2).sum())  # a step of 3 Newton steps overshoots: loss x4
    assert torch.equal(x.detach(), torch.ones(2, dtype=torch.float64))
    assert optimizer.counters["rejected"] == 1 and optimizer.damping > 0


def test_without_rejection_the_overshoot_is_kept() -> None:
    x = torch.ones(2, dtype=torch.float64, requires_grad=True)
    ExactSFN([x], damping=0.0, adaptive=False, lr=3.0, reject_increase=False).step(
        lambda: (x**2).sum()
    )
    np.testing.assert_allclose(x.detach().numpy(), [-2.0, -2.0])


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda w: SeriesSFN([w], lr=0.1), ValueError, "adaptive=False"),
        (lambda w: SeriesSFN([w], damping=-1.0), ValueError, "damping must be finite and >= 0"),
        (lambda w: SeriesSFN([w], num_terms=0), ValueError, "num_terms"),
        (lambda w: SeriesSFN([w], num_terms=2), ValueError, "2 \\* order \\+ 1"),
        (lambda w: SeriesSFN([w], scale="big"), ValueError, "scale must be"),
        (lambda w: SeriesSFN([w], damping_factor=1.5), ValueError, "damping_factor"),
        (lambda w: KrylovSFN([w], rtol=-1.0), ValueError, "rtol"),
        (lambda w: ExactSFN([w], max_parameters=5), ValueError, "max_parameters=5"),
        (
            lambda w: ExactSFN([{"params": [w]}, {"params": [torch.ones(1)]}]),
            ValueError,
            "one parameter group",
        ),
        (lambda w: ExactSFN([torch.ones(2)]), ValueError, "no parameters that require gradients"),
    ],
)
def test_bad_arguments(make, error, match) -> None:
    with pytest.raises(error, match=match):
        make(_start())


def test_bad_closures() -> None:
    w = _start()
    optimizer = ExactSFN([w])
    with pytest.raises(ValueError, match="needs a closure"):
        optimizer.step()
    with pytest.raises(TypeError, match="scalar torch tensor"):
        optimizer.step(lambda: 1.0)
    with pytest.raises(ValueError, match="does not depend on the optimizer's parameters"):
        optimizer.step(lambda: torch.tensor(1.0))


def test_adaptive_rule_solves_to_the_plain_step() -> None:
    """The published 2x2 system's right-hand side is its first column: alpha = 1, mu = 0."""
    a, b, theta0 = _indefinite_quadratic()
    loss_fn = _quadratic_loss(a, b)
    theta = torch.tensor(theta0, requires_grad=True)
    optimizer = SeriesSFN([theta])
    for _ in range(3):
        optimizer.step(lambda: loss_fn(theta))
        assert optimizer.state[theta]["previous_alpha"] == pytest.approx(1.0, rel=1e-12)


def test_zero_damping_stays_zero_when_fixed() -> None:
    p = torch.tensor([1.0, 0.0], dtype=torch.float64, requires_grad=True)
    optimizer = ExactSFN([p], damping=0.0, damping_factor=1.0)
    for _ in range(3):
        optimizer.step(lambda: p[0] ** 2 + 1e-3 * p[1] + p[1] ** 4)
    assert optimizer.damping == 0.0
    assert float(p.detach().abs().max()) < 1.0  # the pure |H|^-1 g step, no blow-up


def test_a_rejected_step_restores_the_parameters_exactly() -> None:
    x = torch.tensor([1 + 1e-9], dtype=torch.float64, requires_grad=True)
    before = x.detach().clone()
    optimizer = ExactSFN([x], damping=0.0, adaptive=False, lr=50.0, reject_increase=True)
    optimizer.step(lambda: torch.log1p(x**2).sum())
    assert optimizer.counters["rejected"] == 1
    assert torch.equal(x.detach(), before)


def test_second_parameter_group_is_refused() -> None:
    a = torch.ones(1, requires_grad=True)
    optimizer = SeriesSFN([a])
    with pytest.raises(ValueError, match="one parameter group"):
        optimizer.add_param_group({"params": [torch.ones(1, requires_grad=True)]})


def test_closure_with_the_function_form_of_backward() -> None:
    w1, w2 = _start(), _start()
    first, second = ExactSFN([w1]), ExactSFN([w2])

    def closure():
        loss = _tiny_network_loss(w2)
        torch.autograd.backward(loss)
        return loss

    first.step(lambda: _tiny_network_loss(w1))
    second.step(closure)
    assert torch.equal(w1.detach(), w2.detach())
    assert torch.autograd.backward.__name__ == "backward"  # the original is restored


def test_non_finite_loss_after_the_step_is_undone_with_a_warning() -> None:
    x = torch.ones(1, dtype=torch.float64, requires_grad=True)
    optimizer = ExactSFN([x], damping=0.0, adaptive=False, lr=2.0)
    with pytest.warns(RuntimeWarning, match="undid a step"):
        optimizer.step(lambda: (x**2 + torch.log(x)).sum())  # log of a negative x is NaN
    assert torch.equal(x.detach(), torch.ones(1, dtype=torch.float64))


@pytest.mark.parametrize(
    "params",
    [
        [torch.ones(2, requires_grad=True), torch.ones(2, dtype=torch.float64, requires_grad=True)],
        [torch.ones(2, dtype=torch.complex128, requires_grad=True)],
    ],
    ids=["mixed", "complex"],
)
def test_parameter_dtypes_are_checked(params) -> None:
    with pytest.raises(TypeError, match="real floating parameters of one dtype"):
        SeriesSFN(params)


def test_krylov_method_is_validated() -> None:
    with pytest.raises(ValueError, match="method must be one of"):
        KrylovSFN([_start()], method="bogus")


def test_sablonniere_option_escapes_the_saddle() -> None:
    p = torch.tensor([0.3, 1e-3], dtype=torch.float64, requires_grad=True)
    optimizer = SeriesSFN([p], damping=0.1, acceleration="wynn-sablonniere")
    for _ in range(60):
        optimizer.step(lambda: _saddle_loss(p))
    assert float(_saddle_loss(p.detach())) == pytest.approx(-1.0, abs=1e-8)


@pytest.mark.parametrize("optimizer_class", OPTIMIZERS)
def test_from_model_matches_the_closure_form(optimizer_class) -> None:
    pytest.importorskip("hvpseries.nn")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    model = model.double()
    twin = copy.deepcopy(model)
    inputs, targets = (
        torch.randn(10, 3, dtype=torch.float64),
        torch.randn(10, 1, dtype=torch.float64),
    )
    loss_fn = torch.nn.functional.mse_loss
    built = optimizer_class.from_model(model, loss_fn, damping=0.5)
    plain = optimizer_class(twin.parameters(), damping=0.5)
    for _ in range(3):
        built.step(data=(inputs, targets))
        plain.step(lambda: loss_fn(twin(inputs), targets))
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="data=\\(inputs, targets\\)"):
        built.step(lambda: loss_fn(model(inputs), targets))
    with pytest.raises(ValueError, match="from_model"):
        plain.step(data=(inputs, targets))
