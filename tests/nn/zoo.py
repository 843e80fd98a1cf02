"""A model zoo of the architectures people train, small and in float64, for exact-HVP tests.

Each entry is a :class:`tests.nn.models.Case`: attention (encoder with a padding mask, in train
and eval mode; ``MultiheadAttention``; a causal decoder-style model), a residual network with
BatchNorm, recurrent networks, tied weights, frozen parameters, buffers, and a model that
replaces its parameters through ``torch.func.functional_call``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tests.nn.models import DTYPE, Case, _generator, _warm_batch_norm

BATCH, LENGTH, WIDTH, VOCABULARY = 3, 5, 8, 7


def _sequences(seed: int) -> torch.Tensor:
    return torch.randn(BATCH, LENGTH, WIDTH, generator=_generator(seed), dtype=DTYPE)


def _padding_mask() -> torch.Tensor:
    """True where a position is padding: sequence j has LENGTH - j real tokens."""
    positions = torch.arange(LENGTH)
    return positions[None, :] >= (LENGTH - torch.arange(BATCH))[:, None]


class MaskedMSE(nn.Module):
    """Mean squared error over the real (unpadded) positions only."""

    def __init__(self, padding: torch.Tensor) -> None:
        super().__init__()
        self.keep = (~padding)[..., None].to(DTYPE)

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        squares = (outputs - targets) ** 2 * self.keep
        return squares.sum() / (self.keep.sum() * outputs.shape[-1])


class PaddedEncoder(nn.Module):
    """A ``TransformerEncoder`` applied with a fixed key padding mask."""

    def __init__(self, padding: torch.Tensor) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(
            WIDTH, nhead=2, dim_feedforward=16, dropout=0.0, batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers=1)
        self.register_buffer("padding", padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x, src_key_padding_mask=self.padding)


class SelfAttention(nn.Module):
    """``nn.MultiheadAttention`` on its input, with an attention mask, and a readout."""

    def __init__(self) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(WIDTH, num_heads=2, batch_first=True)
        self.readout = nn.Linear(WIDTH, 2)
        mask = torch.zeros(LENGTH, LENGTH, dtype=DTYPE)
        mask[0, -1] = -1.0  # a soft additive mask: every position still attends somewhere
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        attended, _ = self.attention(x, x, x, attn_mask=self.mask, need_weights=False)
        return self.readout(attended.mean(dim=1))


class CausalDecoder(nn.Module):
    """Next-token prediction with causal scaled-dot-product attention and tied embeddings."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(VOCABULARY, WIDTH)
        self.query_key_value = nn.Linear(WIDTH, 3 * WIDTH)
        self.norm = nn.LayerNorm(WIDTH)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embedding(tokens)
        q, k, v = self.query_key_value(x).chunk(3, dim=-1)
        heads = [t.unflatten(-1, (2, WIDTH // 2)).transpose(1, 2) for t in (q, k, v)]
        attended = F.scaled_dot_product_attention(*heads, is_causal=True)
        x = self.norm(x + attended.transpose(1, 2).flatten(-2))
        return (x @ self.embedding.weight.T).transpose(1, 2)  # (batch, vocabulary, length)


class ResidualNet(nn.Module):
    """Two convolutions with BatchNorm and a skip connection, then a linear classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 3, 3, padding=1)
        self.block = nn.Sequential(
            nn.BatchNorm2d(3), nn.Tanh(), nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3)
        )
        self.head = nn.Linear(3 * 4 * 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        return self.head(torch.tanh(h + self.block(h)).flatten(1))


class Recurrent(nn.Module):
    """An LSTM or GRU over a sequence, read out from its last hidden state."""

    def __init__(self, cell: type[nn.Module]) -> None:
        super().__init__()
        self.rnn = cell(WIDTH, 4, batch_first=True)
        self.readout = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs, _ = self.rnn(x)
        return self.readout(outputs[:, -1])


class WithBuffers(nn.Module):
    """A model whose forward uses registered buffers (a fixed shift and scale)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(WIDTH, 2)
        self.register_buffer("shift", torch.linspace(-1.0, 1.0, WIDTH, dtype=DTYPE))
        self.register_buffer("scale", torch.tensor(0.5, dtype=DTYPE))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.linear(self.scale * (x.mean(dim=1) - self.shift)))


class Functional(nn.Module):
    """A model that runs a skeleton network on its own parameters via ``functional_call``."""

    def __init__(self) -> None:
        super().__init__()
        self.skeleton = nn.Sequential(nn.Linear(WIDTH, 4), nn.Tanh(), nn.Linear(4, 2))
        self.weights = nn.ParameterDict(
            {
                name.replace(".", "_"): nn.Parameter(p.detach().clone())
                for name, p in self.skeleton.named_parameters()
            }
        )
        for p in self.skeleton.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parameters = {name.replace("_", "."): p for name, p in self.weights.items()}
        return torch.func.functional_call(self.skeleton, parameters, (x.mean(dim=1),))


def _regression_case(name: str, model: nn.Module, loss_fn, targets_shape) -> Case:
    inputs = _sequences(0)
    targets = torch.randn(*targets_shape, generator=_generator(1), dtype=DTYPE)
    return Case(name, model.to(DTYPE), loss_fn, [(inputs, targets)])


def make_zoo_case(name: str) -> Case:
    """Build the zoo model ``name`` with its loss and one batch, seeded."""
    torch.manual_seed(4321)
    if name in ("transformer-train", "transformer-eval"):
        padding = _padding_mask()
        case = _regression_case(
            name, PaddedEncoder(padding), MaskedMSE(padding), (BATCH, LENGTH, WIDTH)
        )
        case.model.train(name.endswith("train"))
        return case
    if name == "multihead-attention":
        return _regression_case(name, SelfAttention(), nn.MSELoss(), (BATCH, 2))
    if name == "causal-decoder":
        tokens = torch.randint(0, VOCABULARY, (BATCH, LENGTH + 1), generator=_generator(2))
        inputs, targets = tokens[:, :-1], tokens[:, 1:]
        return Case(name, CausalDecoder().to(DTYPE), F.cross_entropy, [(inputs, targets)])
    if name in ("resnet-bn-train", "resnet-bn-eval"):
        model = ResidualNet().to(DTYPE)
        inputs = torch.randn(4, 1, 4, 4, generator=_generator(3), dtype=DTYPE)
        targets = torch.randint(0, 3, (4,), generator=_generator(4))
        _warm_batch_norm(model, inputs)
        model.train(name.endswith("train"))
        return Case(name, model, F.cross_entropy, [(inputs, targets)])
    if name in ("lstm", "gru"):
        cell = nn.LSTM if name == "lstm" else nn.GRU
        return _regression_case(name, Recurrent(cell), nn.MSELoss(), (BATCH, 2))
    if name == "frozen":
        case = _regression_case(name, Recurrent(nn.GRU), nn.MSELoss(), (BATCH, 2))
        case.model.rnn.weight_hh_l0.requires_grad_(False)
        return case
    if name == "buffers":
        return _regression_case(name, WithBuffers(), nn.MSELoss(), (BATCH, 2))
    if name == "functional-call":
        return _regression_case(name, Functional(), nn.MSELoss(), (BATCH, 2))
    raise ValueError(name)


ZOO = [
    "transformer-train",
    "transformer-eval",
    "multihead-attention",
    "causal-decoder",
    "resnet-bn-train",
    "resnet-bn-eval",
    "lstm",
    "gru",
    "frozen",
    "buffers",
    "functional-call",
]
ATTENTION = ["transformer-train", "transformer-eval", "multihead-attention", "causal-decoder"]
