"""Clear errors for bad models, data, losses and vectors; the determinism check; imports."""

from __future__ import annotations

import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

from hvpseries.nn import GGNOperator, HessianOperator, NondeterministicLossError  # noqa: E402
from tests.nn.models import DTYPE, make_case, random_vectors  # noqa: E402

OPERATORS = [HessianOperator, GGNOperator]


@pytest.fixture
def case():
    return make_case("mlp-tanh")


@pytest.mark.parametrize("operator", OPERATORS)
def test_no_trainable_parameters(case, operator):
    for p in case.model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        operator(case.model, case.loss_fn, case.data)


@pytest.mark.parametrize("operator", OPERATORS)
def test_model_without_parameters(case, operator):
    with pytest.raises(ValueError, match="no trainable parameters"):
        operator(nn.Tanh(), case.loss_fn, case.data)


def test_bad_parameter_selection(case):
    with pytest.raises(ValueError, match="no parameter named 'nope'"):
        HessianOperator(case.model, case.loss_fn, case.data, params=["nope"])
    with pytest.raises(ValueError, match="not a parameter of the model"):
        HessianOperator(case.model, case.loss_fn, case.data, params=[torch.zeros(3)])
    with pytest.raises(ValueError, match="twice"):
        HessianOperator(case.model, case.loss_fn, case.data, params=["0.bias", "0.bias"])
    with pytest.raises(ValueError, match="empty"):
        HessianOperator(case.model, case.loss_fn, case.data, params=[])
    with pytest.raises(TypeError, match="iterable of parameter names"):
        HessianOperator(case.model, case.loss_fn, case.data, params="0.bias")
    case.model[0].bias.requires_grad_(False)
    with pytest.raises(ValueError, match="requires_grad=False"):
        HessianOperator(case.model, case.loss_fn, case.data, params=["0.bias"])
    H = HessianOperator(case.model, case.loss_fn, case.data)  # the frozen one is left out
    assert "0.bias" not in H.param_names


def test_mixed_parameter_dtypes(case):
    case.model[2].float()
    with pytest.raises(ValueError, match="one dtype and device"):
        HessianOperator(case.model, case.loss_fn, case.data)


@pytest.mark.parametrize("operator", OPERATORS)
def test_wrong_data_shapes(case, operator):
    x, y = case.batches[0]
    with pytest.raises(ValueError, match="leading dimension"):
        operator(case.model, case.loss_fn, (x, y[:-1]))
    with pytest.raises(ValueError, match="could not be evaluated on the data"):
        operator(case.model, case.loss_fn, (torch.randn(7, 4, dtype=DTYPE), y))
    with pytest.raises(ValueError, match="could not be evaluated on the data"):
        operator(case.model, case.loss_fn, (x.float(), y))
    with pytest.raises(ValueError, match="leading batch dimension"):
        operator(case.model, case.loss_fn, (x[0, 0], y[0, 0]))
    with pytest.raises(ValueError, match="empty"):
        operator(case.model, case.loss_fn, (x[:0], y[:0]))
    with pytest.raises(ValueError, match="no batches"):
        operator(case.model, case.loss_fn, [])
    with pytest.raises(TypeError, match="pair"):
        operator(case.model, case.loss_fn, [(x, y), (x,)])
    with pytest.raises(TypeError, match="one batch"):
        operator(case.model, case.loss_fn, x)
    with pytest.raises(ValueError, match="inputs are on meta but the parameters are on cpu"):
        operator(case.model, case.loss_fn, (x.to("meta"), y))


@pytest.mark.parametrize("operator", OPERATORS)
def test_loss_must_be_a_scalar(case, operator):
    with pytest.raises(ValueError, match="must return a scalar"):
        operator(case.model, nn.MSELoss(reduction="none"), case.data)
    with pytest.raises(TypeError, match="must return a tensor"):
        operator(case.model, lambda o, t: 1.0, case.data)
    with pytest.raises(TypeError, match="callable"):
        operator(case.model, "mse", case.data)


def test_bad_options(case):
    with pytest.raises(ValueError, match="mode must be one of"):
        HessianOperator(case.model, case.loss_fn, case.data, mode="exact")
    with pytest.raises(ValueError, match="microbatch_size"):
        HessianOperator(case.model, case.loss_fn, case.data, microbatch_size=0)
    with pytest.raises(TypeError, match="microbatch_size"):
        HessianOperator(case.model, case.loss_fn, case.data, microbatch_size=2.5)
    with pytest.raises(TypeError, match="check_deterministic"):
        HessianOperator(case.model, case.loss_fn, case.data, check_deterministic="yes")
    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        HessianOperator(lambda x: x, case.loss_fn, case.data)


@pytest.mark.parametrize("operator", OPERATORS)
def test_wrong_vectors(case, operator):
    H = operator(case.model, case.loss_fn, case.data)
    n = H.shape[1]
    with pytest.raises(ValueError, match=f"expects shape \\({n},\\)"):
        H @ random_vectors(n + 1)
    with pytest.raises(ValueError, match="device"):
        H @ torch.zeros(n, dtype=DTYPE, device="meta")
    H32 = operator(case.model.float(), case.loss_fn, _float(case.data))
    with pytest.raises(TypeError, match="float64"):
        H32 @ random_vectors(n)
    with pytest.raises(TypeError, match="Mismatched array namespaces"):
        H @ random_vectors(n).numpy()


def _float(batch):
    return tuple(t.float() if t.is_floating_point() else t for t in batch)


def test_ggn_needs_a_tensor_output(case):
    class TupleModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(3, 2).to(DTYPE)

        def forward(self, x):
            out = self.linear(x)
            return out, out

    loss = lambda outputs, targets: ((outputs[0] - targets) ** 2).mean()  # noqa: E731
    with pytest.raises(TypeError, match="returns one tensor"):
        GGNOperator(TupleModel(), loss, case.data)
    H = HessianOperator(TupleModel(), loss, case.data)  # fine for the Hessian
    assert H.shape == (8, 8)


@pytest.mark.parametrize("operator", OPERATORS)
def test_determinism_check_catches_dropout(operator):
    case = make_case("mlp-tanh")
    model = nn.Sequential(case.model[0], nn.Tanh(), nn.Dropout(0.5), case.model[2]).train()
    H = operator(model, case.loss_fn, case.data, check_deterministic=True)
    with pytest.raises(NondeterministicLossError, match=r"model\.eval\(\)"):
        H @ random_vectors(H.shape[1])
    with pytest.raises(RuntimeError, match="Dropout"):  # a RuntimeError, checked again
        H @ random_vectors(H.shape[1])
    model.eval()
    _ = H @ random_vectors(H.shape[1])  # deterministic now


def test_determinism_check_passes_deterministic_train_mode_batch_norm():
    case = make_case("bn-train")
    H = HessianOperator(case.model, case.loss_fn, case.data, check_deterministic=True)
    _ = H @ random_vectors(H.shape[1])


def test_import_hvpseries_does_not_import_torch():
    code = "import sys, hvpseries; assert 'torch' not in sys.modules, 'torch was imported'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_missing_torch_gives_install_hint():
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "try:\n"
        "    import hvpseries.nn\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "pip install hvpseries[torch]" in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize("operator", OPERATORS)
@pytest.mark.parametrize("group", [True, "world", 0])
def test_bad_process_group(case, operator, group):
    with pytest.raises(TypeError, match=rf"process_group must be .* got {group!r}"):
        operator(case.model, case.loss_fn, case.data, process_group=group)


@pytest.mark.parametrize("operator", OPERATORS)
@pytest.mark.parametrize("group", [None, False])
def test_no_process_group_is_local(case, operator, group):
    # torch.distributed is not initialised in the test process: both mean a local operator.
    H = operator(case.model, case.loss_fn, case.data, process_group=group)
    assert H.process_group is None
    assert H.n_samples == H.n_local_samples == case.data[0].shape[0]
    local = operator(case.model, case.loss_fn, case.data)
    v = random_vectors(H.shape[0])
    assert torch.equal(H @ v, local @ v)


def test_an_empty_batch_is_refused_without_a_process_group(case):
    inputs, targets = case.data
    with pytest.raises(ValueError, match="only a rank's shard of data-parallel data"):
        HessianOperator(case.model, case.loss_fn, (inputs[:0], targets[:0]), process_group=False)
