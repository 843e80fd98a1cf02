"""GGNOperator against dense J^T H_L J."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

from hvpseries.nn import GGNOperator, HessianOperator  # noqa: E402
from tests.nn.models import (  # noqa: E402
    assert_close,
    dense_ggn,
    dense_gradient,
    dense_hessian,
    make_case,
    random_vectors,
)


@pytest.mark.parametrize(
    "name", ["mlp-tanh", "mlp-relu", "mlp-nobias", "cnn", "bn-eval", "cnn-bn-train"]
)
def test_ggn_equals_dense_reference(name):
    case = make_case(name)
    G = GGNOperator(case.model, case.loss_fn, case.data)
    assert G.psd and G.symmetric
    reference = dense_ggn(case)
    dense = G.todense()
    assert_close(dense, reference)
    v = random_vectors(G.shape[1])
    assert_close(G @ v, reference @ v)
    assert float(torch.linalg.eigvalsh(dense).min()) >= -1e-12 * float(dense.abs().max())


@pytest.mark.parametrize("microbatch_size", [None, 4])
def test_ggn_several_batches_subset_and_microbatches(microbatch_size):
    case = make_case("mlp-relu", n_batches=2)
    names = ["2.weight", "0.weight"]
    G = GGNOperator(
        case.model, case.loss_fn, case.data, params=names, microbatch_size=microbatch_size
    )
    V = random_vectors(G.shape[1], 3)
    assert_close(G @ V, dense_ggn(case, names) @ V)
    assert_close(G.gradient(), dense_gradient(case, names))
    assert (G.cached_nbytes > 0) == (microbatch_size is None)


def test_ggn_matmat_equals_stacked_matvecs_and_release():
    case = make_case("cnn-bn-train")
    G = GGNOperator(case.model, case.loss_fn, case.data)
    V = random_vectors(G.shape[1], 4)
    columns = torch.stack([G @ V[:, j] for j in range(4)], dim=1)
    assert_close(G @ V, columns, rtol=1e-12)
    G.release()
    assert G.cached_nbytes == 0
    assert_close(G @ V, columns, rtol=1e-12)


@pytest.mark.parametrize("strategy", ["batched", "loop"])
def test_ggn_pinned_block_strategy_is_exact_and_bit_reproducible(strategy):
    case = make_case("cnn-bn-train")
    V = random_vectors(dense_ggn(case).shape[1], 3)
    blocks = []
    for _ in range(2):
        G = GGNOperator(case.model, case.loss_fn, case.data, block_strategy=strategy)
        assert G.block_strategy == strategy
        blocks.append(G @ V)
    assert_close(blocks[0], dense_ggn(case) @ V)
    assert torch.equal(blocks[0], blocks[1])


def test_ggn_of_linear_model_with_mse_is_the_hessian():
    # For a model linear in its parameters the network term vanishes: G = H.
    case = make_case("mlp-tanh")
    model = nn.Linear(3, 2).double()
    G = GGNOperator(model, case.loss_fn, case.data).todense()
    H = HessianOperator(model, case.loss_fn, case.data).todense()
    assert_close(G, H)
    case.model = model
    assert_close(G, dense_hessian(case))


def test_ggn_is_rebuilt_after_parameter_change():
    case = make_case("mlp-tanh")
    G = GGNOperator(case.model, case.loss_fn, case.data)
    v = random_vectors(G.shape[1])
    before = G @ v
    with torch.no_grad():
        case.model[0].weight.mul_(2.0)
    after = G @ v
    assert_close(after, dense_ggn(case) @ v)
    assert float(torch.linalg.vector_norm(after - before)) > 1e-3
