"""Regression tests for torch 2.x pitfalls of Hessian-vector products, and mode fallback."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from hvpseries.nn import HessianOperator, ModeFallbackWarning  # noqa: E402
from tests.nn.models import (  # noqa: E402
    DTYPE,
    Case,
    assert_close,
    dense_hessian,
    make_case,
    random_vectors,
)


@pytest.mark.parametrize(
    "loss_fn",
    [
        F.mse_loss,
        nn.MSELoss(),
        nn.MSELoss(reduction="sum"),
        lambda o, t: F.mse_loss(o, t, reduction="none").mean(),
    ],
    ids=["functional-mean", "module-mean", "module-sum", "none-then-mean"],
)
def test_forward_over_reverse_with_stock_mse_loss(loss_fn):
    # torch.func.jvp(grad) of aten::mse_loss(reduction="mean") raises "ZeroTensors are
    # immutable"; the operator computes the loss from elementary operations instead.
    case = make_case("mlp-tanh")
    case.loss_fn = loss_fn
    H = HessianOperator(case.model, loss_fn, case.data, mode="forward-over-reverse")
    V = random_vectors(H.shape[1], 3)
    assert_close(H @ V, dense_hessian(case) @ V)
    assert H.mode == "forward-over-reverse"


def test_linearize_with_stock_mse_loss_does_not_crash():
    # torch.func.linearize of the gradient of aten::mse_loss kills the interpreter (SIGSEGV)
    # with torch 2.13, for every reduction. Run in a child process so a regression is a test
    # failure, not a crashed test session.
    code = textwrap.dedent(
        """
        import torch
        from hvpseries.nn import HessianOperator
        torch.manual_seed(0)
        model = torch.nn.Sequential(
            torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)
        ).double()
        data = (torch.randn(6, 3, dtype=torch.float64), torch.randn(6, 2, dtype=torch.float64))
        for reduction in ("mean", "sum"):
            loss = torch.nn.MSELoss(reduction=reduction)
            H = HessianOperator(model, loss, data, mode="linearize")
            D = HessianOperator(model, loss, data, mode="double-backward")
            v = torch.randn(H.shape[1], dtype=torch.float64)
            error = float((H @ v - D @ v).abs().max() / (D @ v).abs().max())
            assert error < 1e-12, error
            assert H.mode == "linearize"
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    assert result.stdout.strip() == "ok"


@pytest.mark.parametrize("mode", ["forward-over-reverse", "linearize"])
def test_torch_func_modes_on_train_mode_batch_norm(mode):
    # Every torch.func path fails on BatchNorm in training mode (in-place running-stat
    # update inside a transform); the operator evaluates the batch-statistics loss without
    # the update, and the result is the exact train-mode Hessian (the CNN with BatchNorm2d is
    # in test_hessian.py).
    case = make_case("bn-train")
    before = [b.clone() for b in case.model.buffers()]
    H = HessianOperator(case.model, case.loss_fn, case.data, mode=mode)
    v = random_vectors(H.shape[1])
    assert_close(H @ v, dense_hessian(case) @ v)
    assert H.mode == mode
    assert all(torch.equal(a, b) for a, b in zip(before, case.model.buffers(), strict=True))


def test_forward_over_reverse_falls_back_on_huber_loss_once():
    # torch 2.13 has no forward-mode derivative of huber_loss_backward.
    case = make_case("mlp-tanh")
    case.loss_fn = F.huber_loss
    H = HessianOperator(case.model, F.huber_loss, case.data, mode="forward-over-reverse")
    v = random_vectors(H.shape[1])
    with pytest.warns(ModeFallbackWarning, match="forward-over-reverse.*double-backward"):
        result = H @ v
    assert H.mode == "double-backward"
    assert_close(result, dense_hessian(case) @ v)
    # Said once: no further warning (the suite runs with -W error).
    assert_close(H @ v, result, rtol=1e-14)
    _ = H @ random_vectors(H.shape[1], 2)


class _OldStyleCube(torch.autograd.Function):
    """A legacy autograd.Function: twice differentiable, unusable in torch.func."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x**3

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return 3 * x**2 * grad_output


class _CubeGradient(torch.autograd.Function):
    """3 x^2 g with a forward-mode derivative but no backward: no double backward."""

    @staticmethod
    def forward(x, g):
        return 3 * x**2 * g

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.x, ctx.g = inputs

    @staticmethod
    def backward(ctx, grad_output):
        message = "_CubeGradient has no second derivative"
        raise RuntimeError(message)

    @staticmethod
    def jvp(ctx, x_tangent, g_tangent):
        return 6 * ctx.x * ctx.g * x_tangent + 3 * ctx.x**2 * g_tangent


class _ForwardOnlyCube(torch.autograd.Function):
    """x^3 whose gradient supports forward mode but not reverse mode."""

    @staticmethod
    def forward(x):
        return x**3

    @staticmethod
    def setup_context(ctx, inputs, output):
        (ctx.x,) = inputs

    @staticmethod
    def backward(ctx, grad_output):
        return _CubeGradient.apply(ctx.x, grad_output)

    @staticmethod
    def jvp(ctx, tangent):
        return 3 * ctx.x**2 * tangent


class _Activation(nn.Module):
    def __init__(self, function):
        super().__init__()
        self.function = function

    def forward(self, x):
        if self.function is None:
            return x**3
        return self.function.apply(x)


def _cube_case(function) -> tuple[Case, Case]:
    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(3, 4), _Activation(function), nn.Linear(4, 2)).to(DTYPE)
    reference = nn.Sequential(nn.Linear(3, 4), _Activation(None), nn.Linear(4, 2)).to(DTYPE)
    reference.load_state_dict(model.state_dict())
    batch = make_case("mlp-tanh").batches
    return Case("cube", model, nn.MSELoss(), batch), Case("ref", reference, nn.MSELoss(), batch)


@pytest.mark.parametrize("mode", ["forward-over-reverse", "linearize"])
def test_torch_func_failure_falls_back_to_double_backward(mode):
    case, reference = _cube_case(_OldStyleCube)
    H = HessianOperator(case.model, case.loss_fn, case.data, mode=mode)
    V = random_vectors(H.shape[1], 3)
    with pytest.warns(ModeFallbackWarning, match=f"mode='{mode}' failed"):
        result = H @ V
    assert H.mode == "double-backward"
    assert_close(result, dense_hessian(reference) @ V)


def test_double_backward_failure_falls_back_to_forward_over_reverse():
    case, reference = _cube_case(_ForwardOnlyCube)
    H = HessianOperator(case.model, case.loss_fn, case.data)
    v = random_vectors(H.shape[1])
    with pytest.warns(ModeFallbackWarning, match="double-backward.*forward-over-reverse"):
        result = H @ v
    assert H.mode == "forward-over-reverse"
    assert_close(result, dense_hessian(reference) @ v)
    assert_close(H.gradient(), H.gradient())


def test_once_differentiable_is_not_silently_wrong():
    # Autograd prunes the error node of a @once_differentiable backward and returns
    # incomplete second derivatives without raising; the operator refuses instead.
    from torch.autograd.function import once_differentiable

    class OnceCube(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x**3

        @staticmethod
        @once_differentiable
        def backward(ctx, grad_output):
            (x,) = ctx.saved_tensors
            return 3 * x**2 * grad_output

    case, _ = _cube_case(OnceCube)
    H = HessianOperator(case.model, case.loss_fn, case.data)
    with (
        pytest.warns(ModeFallbackWarning, match="once_differentiable"),
        pytest.raises(RuntimeError, match="no exact Hessian-vector product mode"),
    ):
        H @ random_vectors(H.shape[1])


def test_once_differentiable_in_gauss_newton_raises():
    from torch.autograd.function import once_differentiable

    from hvpseries.nn import GGNOperator

    class OnceCube(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x**3

        @staticmethod
        @once_differentiable
        def backward(ctx, grad_output):
            (x,) = ctx.saved_tensors
            return 3 * x**2 * grad_output

    case, _ = _cube_case(OnceCube)
    G = GGNOperator(case.model, case.loss_fn, case.data)
    with pytest.raises(RuntimeError, match="once_differentiable"):
        G @ random_vectors(G.shape[1])


def test_genuine_model_errors_are_not_masked_by_fallback():
    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(3, 2).to(DTYPE)
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            if self.calls > 1:
                message = "broken after the first call"
                raise RuntimeError(message)
            return self.linear(x)

    model = Broken()
    case = make_case("mlp-tanh")
    H = HessianOperator(model, nn.MSELoss(), case.data)
    with pytest.raises(RuntimeError, match="broken after the first call"):
        H @ random_vectors(H.shape[1])


def test_finite_differences_have_no_fallback():
    case, _ = _cube_case(_OldStyleCube)
    H = HessianOperator(case.model, case.loss_fn, case.data, mode="finite-difference")
    _ = H @ random_vectors(H.shape[1])
    assert H.mode == "finite-difference"
