"""HessianOperator against dense float64 Hessians, in every mode."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import copy  # noqa: E402
import warnings  # noqa: E402

import hvpseries as hs  # noqa: E402
from hvpseries.nn import HessianOperator, ModeFallbackWarning  # noqa: E402
from tests.nn.models import (  # noqa: E402
    CASES,
    DTYPE,
    SMOOTH_CASES,
    assert_close,
    dense_gradient,
    dense_hessian,
    make_case,
    random_vectors,
)

EXACT_MODES = ["double-backward", "linearize", "forward-over-reverse"]
# torch.func.linearize traces the gradient with make_fx at every new point (about a second
# each on a small CPU model), so the linearize mode runs on a representative subset.
LINEARIZE_CASES = {"mlp-tanh", "mlp-relu", "cnn-bn-train"}


def _mode_cases(cases, modes=EXACT_MODES):
    return [
        pytest.param(name, mode, id=f"{name}-{mode}")
        for name in cases
        for mode in modes
        if mode != "linearize" or name in LINEARIZE_CASES
    ]


# Central differences of gradients: truncation h^2 and rounding eps/h with h ~ eps^(1/3).
FD_RTOL = 1e-6


def _operator(case, **kwargs):
    return HessianOperator(case.model, case.loss_fn, case.data, **kwargs)


@pytest.mark.parametrize(("name", "mode"), _mode_cases(CASES))
def test_dense_hessian_equals_reference(name, mode):
    case = make_case(name)
    H = _operator(case, mode=mode)
    reference = dense_hessian(case)
    assert H.shape == reference.shape
    assert H.dtype == DTYPE and H.symmetric and H.psd is None
    assert H.mode == mode
    v = random_vectors(H.shape[1])
    assert_close(H @ v, reference @ v)
    assert_close(H.todense(), reference)


@pytest.mark.parametrize("name", SMOOTH_CASES)
def test_finite_difference_mode(name):
    case = make_case(name)
    H = _operator(case, mode="finite-difference")
    reference = dense_hessian(case)
    V = random_vectors(H.shape[1], 3)
    assert_close(H @ V, reference @ V, rtol=FD_RTOL)
    assert_close(H @ V[:, 0], reference @ V[:, 0], rtol=FD_RTOL)
    assert float(torch.linalg.vector_norm(H @ torch.zeros(H.shape[1], dtype=DTYPE))) == 0.0


def test_default_mode_is_double_backward():
    H = _operator(make_case("mlp-tanh"))
    assert H.mode == "double-backward"


@pytest.mark.parametrize(
    ("name", "mode"), _mode_cases(["mlp-tanh", "bn-train"], [*EXACT_MODES, "finite-difference"])
)
def test_matmat_equals_stacked_matvecs(name, mode):
    case = make_case(name)
    H = _operator(case, mode=mode)
    V = random_vectors(H.shape[1], 4, seed=3)
    block = H.matmat(V)
    columns = torch.stack([H.matvec(V[:, j]) for j in range(4)], dim=1)
    assert block.shape == (H.shape[0], 4)
    assert_close(block, columns, rtol=1e-12)
    assert H.matmat(V[:, :0]).shape == (H.shape[0], 0)
    assert_close(H.matmat(V[:, :1]), columns[:, :1], rtol=1e-12)


@pytest.mark.parametrize(
    ("by", "mode"),
    [("names", mode) for mode in EXACT_MODES] + [("tensors", "double-backward")],
)
def test_parameter_subset(by, mode):
    case = make_case("bn-train")
    names = ["3.weight", "0.bias", "1.weight"]
    named = dict(case.model.named_parameters())
    params = names if by == "names" else [named[name] for name in names]
    H = _operator(case, params=params, mode=mode)
    assert H.param_names == tuple(names)
    reference = dense_hessian(case, names)
    assert H.shape == reference.shape
    assert_close(H.todense(), reference)
    assert_close(H.gradient(), dense_gradient(case, names))


@pytest.mark.parametrize(
    ("name", "microbatch_size", "mode"),
    [
        (name, microbatch_size, mode)
        for name in ["mlp-tanh", "bn-train"]
        for microbatch_size in [None, 3]
        for mode in [*EXACT_MODES, "finite-difference"]
        # linearize traces each of the three batches: once on mlp-tanh is enough.
        if not (mode == "linearize" and name == "bn-train" and microbatch_size is None)
    ],
)
def test_several_batches_and_microbatches(name, microbatch_size, mode):
    case = make_case(name, n_batches=3)
    case.batches[1] = (case.batches[1][0][:5], case.batches[1][1][:5])  # unequal sizes
    H = _operator(case, mode=mode, microbatch_size=microbatch_size)
    assert H.n_samples == sum(x.shape[0] for x, _ in case.batches)
    if microbatch_size is not None and name == "bn-train":
        # Batch statistics over microbatches would be another loss: refused.
        with pytest.raises(ValueError, match="BatchNorm layers in train mode"):
            H @ random_vectors(H.shape[1], 2)
        return
    reference = dense_hessian(case)
    V = random_vectors(H.shape[1], 2)
    rtol = FD_RTOL if mode == "finite-difference" else 1e-10
    assert_close(H @ V, reference @ V, rtol=rtol)
    assert_close(H.gradient(), dense_gradient(case))


def test_microbatching_caches_nothing():
    case = make_case("mlp-tanh")
    H = _operator(case, microbatch_size=2)
    _ = H @ random_vectors(H.shape[1])
    assert H.cached_nbytes == 0


@pytest.mark.parametrize(
    ("name", "mode"),
    _mode_cases(["bn-eval", "cnn-bn-train"], [*EXACT_MODES, "finite-difference"]),
)
def test_products_never_change_buffers(name, mode):
    case = make_case(name)
    before = {k: b.clone() for k, b in case.model.named_buffers()}
    H = _operator(case, mode=mode)
    _ = H @ random_vectors(H.shape[1])
    _ = H @ random_vectors(H.shape[1], 3)
    _ = H.loss_and_gradient()
    H.update()
    _ = H @ random_vectors(H.shape[1])
    for key, value in case.model.named_buffers():
        assert torch.equal(value, before[key]), key
    assert all(bn.track_running_stats for bn in case.model.modules() if hasattr(bn, "momentum"))


def test_train_mode_batch_norm_against_finite_differences_of_reference_gradients():
    # Independent of torch's second derivatives: differences of first-order gradients.
    case = make_case("cnn-bn-train")
    H = _operator(case)
    v = random_vectors(H.shape[1], seed=7)
    from tests.nn.models import flat_loss

    loss, theta = flat_loss(case)

    def gradient(t):
        t = t.clone().requires_grad_()
        return torch.autograd.grad(loss(t), t)[0]

    h = 1e-5
    difference = (gradient(theta + h * v) - gradient(theta - h * v)) / (2 * h)
    assert_close(H @ v, difference, rtol=1e-7)


def test_train_and_eval_give_different_operators_and_switching_rebuilds():
    case = make_case("bn-train")
    H = _operator(case)
    v = random_vectors(H.shape[1])
    train = H @ v
    case.model.eval()
    evaluation = H @ v
    assert_close(evaluation, dense_hessian(case) @ v)
    assert float(torch.linalg.vector_norm(train - evaluation)) > 1e-3
    case.model.train()
    assert_close(H @ v, train, rtol=1e-13)


@pytest.mark.parametrize("mode", [*EXACT_MODES, "finite-difference"])
def test_no_stale_results_after_optimizer_step(mode):
    case = make_case("mlp-tanh")
    H = _operator(case, mode=mode)
    v = random_vectors(H.shape[1])
    before = H @ v
    gradient_before = H.gradient()
    optimizer = torch.optim.SGD(case.model.parameters(), lr=0.5)
    optimizer.zero_grad()
    case.loss_fn(case.model(case.batches[0][0]), case.batches[0][1]).backward()
    optimizer.step()
    after = H @ v
    rtol = FD_RTOL if mode == "finite-difference" else 1e-10
    assert_close(after, dense_hessian(case) @ v, rtol=rtol)
    assert float(torch.linalg.vector_norm(after - before)) > 1e-3
    assert_close(H.gradient(), dense_gradient(case))
    assert float(torch.linalg.vector_norm(H.gradient() - gradient_before)) > 1e-3


def test_load_state_dict_and_update_with_new_data():
    case = make_case("mlp-tanh")
    other = make_case("mlp-tanh")
    with torch.no_grad():
        for p in other.model.parameters():
            p.mul_(1.5)
    H = _operator(case)
    v = random_vectors(H.shape[1])
    _ = H @ v
    case.model.load_state_dict(other.model.state_dict())
    assert_close(H @ v, dense_hessian(case) @ v)
    new_batch = make_case("mlp-tanh", n_batches=2).batches[1]
    assert H.update(new_batch) is H
    case.batches = [new_batch]
    assert_close(H @ v, dense_hessian(case) @ v)


def test_products_inside_no_grad():
    case = make_case("bn-train")
    H = _operator(case)
    v = random_vectors(H.shape[1])
    with torch.no_grad():
        result = H @ v
        gradient = H.gradient()
    assert not result.requires_grad and not gradient.requires_grad
    assert_close(result, dense_hessian(case) @ v)


@pytest.mark.parametrize("mode", ["double-backward", "linearize"])
def test_cache_is_reported_and_released(mode):
    case = make_case("mlp-relu")
    H = _operator(case, mode=mode)
    assert H.cached_nbytes == 0
    v = random_vectors(H.shape[1])
    first = H @ v
    assert H.cached_nbytes > 0
    H.release()
    assert H.cached_nbytes == 0
    assert_close(H @ v, first, rtol=1e-13)


def test_gradient_and_loss():
    case = make_case("cnn-bn-train", n_batches=2)
    H = _operator(case)
    loss, gradient = H.loss_and_gradient()
    reference_loss, theta = __import__("tests.nn.models", fromlist=["flat_loss"]).flat_loss(case)
    assert_close(loss, reference_loss(theta).detach())
    assert_close(gradient, dense_gradient(case))
    assert_close(H.gradient(), gradient, rtol=0)
    assert loss.ndim == 0 and not gradient.requires_grad


@pytest.mark.parametrize("operator_class", ["hessian", "ggn"])
def test_loss_alone_runs_no_backward_and_keeps_buffers(operator_class):
    """``loss()``: the value of ``loss_and_gradient()`` from forward passes, buffers intact."""
    from hvpseries.nn import GGNOperator

    case = make_case("cnn-bn-train", n_batches=2)
    before = {k: b.clone() for k, b in case.model.named_buffers()}
    cls = HessianOperator if operator_class == "hessian" else GGNOperator
    H = cls(case.model, case.loss_fn, case.batches)
    backward_calls = []
    original = torch.autograd.grad

    def counting_grad(*args, **kwargs):
        backward_calls.append(1)
        return original(*args, **kwargs)

    torch.autograd.grad = counting_grad
    try:
        alone = H.loss()
    finally:
        torch.autograd.grad = original
    assert backward_calls == []
    assert alone.ndim == 0 and not alone.requires_grad
    reference_loss, theta = __import__("tests.nn.models", fromlist=["flat_loss"]).flat_loss(case)
    assert_close(alone, reference_loss(theta).detach())
    loss, _ = H.loss_and_gradient()
    assert torch.equal(alone, loss)
    assert H.loss() is loss  # cached with the gradient at this point
    with torch.no_grad():
        next(case.model.parameters()).add_(0.1)  # a new point: evaluated afresh
    moved = H.loss()
    assert moved is not loss and not torch.equal(moved, loss)
    for key, value in case.model.named_buffers():
        assert torch.equal(value, before[key]), key


def test_loss_alone_of_a_module_with_an_inference_fast_path():
    """A transformer in eval mode computes another value without autograd: loss() has autograd."""
    torch.manual_seed(0)
    padded = torch.zeros(6, 5, dtype=torch.bool)
    padded[:, 3:] = True

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            layer = torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
            self.encoder = torch.nn.TransformerEncoder(layer, 2)
            self.head = torch.nn.Linear(8, 1)

        def forward(self, x):
            return self.head(self.encoder(x, src_key_padding_mask=padded)).mean(1)

    model = Encoder().eval()
    data = (torch.randn(6, 5, 8), torch.randn(6, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's notes about nested tensors
        alone = HessianOperator(model, torch.nn.MSELoss(), data).loss()
        together = HessianOperator(model, torch.nn.MSELoss(), data).loss_and_gradient()[0]
    assert torch.equal(alone, together)


def test_loss_alone_follows_parameters_replaced_by_assignment():
    case = make_case("mlp-tanh")
    H = _operator(case)
    cached = H.loss_and_gradient()[0]
    shifted = {k: v + 0.5 for k, v in case.model.state_dict().items()}
    case.model.load_state_dict(shifted, assign=True)
    moved = H.loss()
    assert not torch.equal(moved, cached)
    assert torch.equal(moved, H.loss_and_gradient()[0])


def test_flatten_and_unflatten_methods():
    case = make_case("mlp-tanh")
    H = _operator(case)
    v = random_vectors(H.shape[1])
    parts = H.unflatten(v)
    assert list(parts) == list(H.param_names)
    assert [tuple(p.shape) for p in parts.values()] == [tuple(p.shape) for p in H.params]
    assert torch.equal(H.flatten(parts), v)
    assert torch.equal(H.flatten(list(parts.values())), v)
    with pytest.raises(ValueError, match="keys"):
        H.flatten({"0.weight": parts["0.weight"]})
    with pytest.raises(ValueError, match="shapes"):
        H.flatten([v])


@pytest.mark.parametrize("mode", ["double-backward", "forward-over-reverse"])
def test_float32(mode):
    case = make_case("mlp-tanh")
    reference = dense_hessian(case)
    case.model.float()
    case.batches = [(x.float(), y.float()) for x, y in case.batches]
    H = _operator(case, mode=mode)
    assert H.dtype == torch.float32
    v = random_vectors(H.shape[1])
    with pytest.raises(TypeError, match="float64"):
        H @ v
    assert_close(H @ v.float(), (reference @ v).float(), rtol=1e-5)


def test_composes_with_operator_algebra_and_counting():
    case = make_case("mlp-tanh")
    H = _operator(case)
    counted = hs.CountingOperator(H.shift(2.0))
    v = random_vectors(H.shape[1])
    assert_close(counted @ v, dense_hessian(case) @ v + 2.0 * v)
    assert counted.n_matvec == 1


def test_model_without_buffers_is_untouched_by_warnings():
    case = make_case("mlp-relu")
    H = _operator(case)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _ = H @ random_vectors(H.shape[1], 3)
    assert not isinstance(H, ModeFallbackWarning)


@pytest.mark.parametrize("name", ["mlp-tanh", "cnn-bn-train"])
def test_matmat_equals_dense_with_either_block_strategy(name):
    # The first blocks alternate between one batched call and a loop over the columns (timing
    # both); every block, whichever way it went, is the dense product.
    case = make_case(name)
    H = _operator(case)
    reference = dense_hessian(case)
    for seed in range(8):
        V = random_vectors(H.shape[1], 3, seed=seed)
        assert_close(H @ V, reference @ V)
    timings = H._block_timings
    assert timings is not None and timings["batched"] and timings["loop"]


@pytest.mark.parametrize("strategy", ["batched", "loop"])
def test_pinned_block_strategy_is_exact_and_bit_reproducible(strategy):
    case = make_case("mlp-tanh")
    reference = dense_hessian(case)
    V = random_vectors(reference.shape[1], 3)
    blocks = []
    for _ in range(2):  # a fresh operator each time: no timing decides anything
        H = _operator(case, block_strategy=strategy)
        assert H.block_strategy == strategy
        blocks.append([H @ V for _ in range(8)])
        assert_close(blocks[-1][0], reference @ V)
    first = blocks[0][0]
    assert all(torch.equal(first, block) for run in blocks for block in run)
    expected = {"batched": ["batched", "loop"], "loop": ["loop", "batched"]}[strategy]
    timings = H._block_timings
    assert timings is not None and timings[expected[0]] and not timings[expected[1]]


@pytest.mark.parametrize("strategy", ["vmap", None, ["loop"]])
def test_unknown_block_strategy_is_refused(strategy):
    case = make_case("mlp-tanh")
    with pytest.raises(ValueError, match="block_strategy must be one of"):
        _operator(case, block_strategy=strategy)


def test_replacing_a_parameter_free_module_rebuilds():
    case = make_case("mlp-tanh")
    H = _operator(case)
    v = random_vectors(H.shape[1])
    before = H @ v
    case.model[1] = torch.nn.Sigmoid()  # same parameters, another function
    assert_close(H @ v, dense_hessian(case) @ v)
    assert float(torch.linalg.vector_norm(H @ v - before)) > 1e-3
    assert_close(H.gradient(), dense_gradient(case))


# Parameters or their data replaced, data at a reused address, refused inputs.


def _model_and_data(batch_norm: bool = False):
    torch.manual_seed(0)
    layers = [torch.nn.Linear(3, 5)]
    if batch_norm:
        layers.append(torch.nn.BatchNorm1d(5))
    layers += [torch.nn.Tanh(), torch.nn.Linear(5, 1)]
    model = torch.nn.Sequential(*layers).double()
    data = (torch.randn(12, 3, dtype=torch.float64), torch.randn(12, 1, dtype=torch.float64))
    return model, data


def test_parameters_replaced_by_load_state_dict_assign() -> None:
    model, data = _model_and_data()
    loss = torch.nn.functional.mse_loss
    H = HessianOperator(model, loss, data)
    v = torch.ones(H.shape[0], dtype=torch.float64)
    _ = H @ v
    other = copy.deepcopy(model)
    with torch.no_grad():
        for p in other.parameters():
            p.mul_(1.7)
    model.load_state_dict(other.state_dict(), assign=True)
    fresh = HessianOperator(model, loss, data)
    torch.testing.assert_close(H @ v, fresh @ v)
    torch.testing.assert_close(H.gradient(), fresh.gradient())


def test_parameter_data_replaced() -> None:
    model, data = _model_and_data()
    loss = torch.nn.functional.mse_loss
    H = HessianOperator(model, loss, data)
    v = torch.ones(H.shape[0], dtype=torch.float64)
    _ = H @ v
    first = next(model.parameters())
    first.data = first.data * 2.0
    torch.testing.assert_close(H @ v, HessianOperator(model, loss, data) @ v)


def test_microbatching_batch_norm_in_train_mode_is_refused() -> None:
    model, data = _model_and_data(batch_norm=True)
    with pytest.raises(ValueError, match="BatchNorm layers in train mode"):
        HessianOperator(model, torch.nn.functional.mse_loss, data, microbatch_size=4) @ torch.ones(
            sum(p.numel() for p in model.parameters()), dtype=torch.float64
        )
    model.eval()
    H = HessianOperator(model, torch.nn.functional.mse_loss, data, microbatch_size=4)
    whole = HessianOperator(model, torch.nn.functional.mse_loss, data)
    v = torch.ones(H.shape[0], dtype=torch.float64)
    torch.testing.assert_close(H @ v, whole @ v)


def test_vectors_of_another_dtype_are_refused() -> None:
    model, data = _model_and_data()
    H = HessianOperator(model, torch.nn.functional.mse_loss, data)
    with pytest.raises(TypeError, match=r"parameters are torch\.float64"):
        H @ torch.ones(H.shape[0], dtype=torch.float32)


class _Scale(torch.nn.Module):
    """``tanh(x * w)`` summed: autograd saves the leaf ``w`` itself, not a view of its data."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(n, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x * self.w).sum(1, keepdim=True)


def test_parameter_data_at_a_reused_address_is_not_stale() -> None:
    # ``p.data = t`` keeps p's version counter, so the point is recognised by the address of
    # the data. Once the old data is freed, the allocator may place new data of the same size
    # at that address: the operator must not take it for the point it has cached (the
    # Hessian and the gradient were stale by O(1) at the third point here, glibc malloc).
    torch.manual_seed(0)
    n = 64
    model = _Scale(n)
    data = (torch.randn(10, n, dtype=torch.float64), torch.randn(10, 1, dtype=torch.float64))
    loss = torch.nn.functional.mse_loss
    H = HessianOperator(model, loss, data)
    v = torch.randn(n, dtype=torch.float64)
    for _ in range(100):
        model.w.data = torch.randn(n, dtype=torch.float64)  # frees the cached point's data
        model.w.data = torch.randn(n, dtype=torch.float64)
        fresh = HessianOperator(model, loss, data)
        torch.testing.assert_close(H @ v, fresh @ v)
        torch.testing.assert_close(H.gradient(), fresh.gradient())
