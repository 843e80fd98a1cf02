"""The Hessian spectrum of a small network near a saddle point and after training.

A two-hidden-layer tanh network (2-16-16-1, 337 parameters) is fitted by mean squared error
to a smooth function of two inputs. Its initial weights are scaled by 0.05, close to the
saddle point at zero weights, where the Hessian has eigenvalues of both signs; after training
with Adam the negative curvature is gone and the spectrum is that of a (nearly) flat
minimum. At both points the script prints the extreme eigenvalues (``hs.eigsh`` with
``which="BE"``), the trace (``hs.trace``) with its standard error, and compares them with
the dense Hessian of ``torch.func.hessian``; ``--plot PATH`` writes both spectral densities
(``hs.spectral_density``) in one figure.

Run from the repository root::

    python docs/scripts/hessian_spectrum.py [--plot density.png] [--steps N]

See ``docs/spectral.rst`` for the output and its reading.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from torch import nn

import hvpseries as hs
from hvpseries.nn import HessianOperator


def _data(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.rand(256, 2, generator=generator, dtype=torch.float64) * 4.0 - 2.0
    targets = torch.sin(inputs[:, :1]) * torch.cos(inputs[:, 1:]) + 0.3 * inputs[:, :1]
    return inputs, targets


def _model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 1)
    ).double()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(0.05)
    return model


def _dense_eigenvalues(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor]) -> np.ndarray:
    names = [name for name, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    sizes = [p.numel() for p in model.parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def loss(vector: torch.Tensor) -> torch.Tensor:
        pieces = torch.split(vector, sizes)
        params = {n: piece.reshape(s) for n, piece, s in zip(names, pieces, shapes, strict=True)}
        prediction = torch.func.functional_call(model, params, (data[0],))
        return nn.functional.mse_loss(prediction, data[1])

    hessian = torch.func.hessian(loss)(flat)
    return np.linalg.eigvalsh(hessian.numpy())


def _report(label: str, model: nn.Module, data: tuple[torch.Tensor, torch.Tensor]) -> object:
    operator = HessianOperator(model, nn.functional.mse_loss, data)
    eigen = hs.eigsh(operator, 6, which="BE", rtol=1e-8)
    trace = hs.trace(operator, rtol=1e-2)
    density = hs.spectral_density(operator, num_probes=10, lanczos_steps=60)
    exact = _dense_eigenvalues(model, data)
    print(f"== {label}: loss {float(operator.loss()):.4g}, n = {operator.shape[0]}")
    print(f"eigsh (BE, k=6): {eigen.status.name}, {eigen.n_matvec} HVPs")
    print("  lowest   ", np.array2string(eigen.eigenvalues[:3], precision=6))
    print("  exact    ", np.array2string(exact[:3], precision=6))
    print("  highest  ", np.array2string(eigen.eigenvalues[3:], precision=6))
    print("  exact    ", np.array2string(exact[-3:], precision=6))
    print(
        f"trace: {trace.estimate:.5g} +- {trace.standard_error:.2g} ({trace.n_matvec} HVPs), "
        f"exact {exact.sum():.5g}"
    )
    # Below -1e-3 ||H||: clearly negative curvature (many eigenvalues sit at 0 +- rounding).
    threshold = -1e-3 * float(np.max(np.abs(exact)))
    negative = float(np.sum(density.weights[density.nodes < threshold]))
    print(
        f"density: {density.n_matvec} HVPs; weight below {threshold:.2g}: {negative:.3f} "
        f"(exact fraction of eigenvalues there {np.mean(exact < threshold):.3f})"
    )
    return density


def _train(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor], steps: int) -> None:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(data[0]), data[1])
        loss.backward()
        optimizer.step()


def main() -> None:
    """Print the spectra before and after training; optionally plot the densities."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="Adam steps (default 2000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", default=None, help="write both densities to this image")
    arguments = parser.parse_args()
    torch.set_num_threads(1)
    data = _data(arguments.seed)
    model = _model(arguments.seed)
    before = _report("near the saddle (initial weights x 0.05)", model, data)
    _train(model, data, arguments.steps)
    after = _report(f"after {arguments.steps} Adam steps", model, data)
    if arguments.plot:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        figure = Figure(figsize=(9.0, 3.6), layout="constrained")
        FigureCanvasAgg(figure)
        axes = figure.subplots(1, 2)
        for axis, density, title in zip(
            axes, (before, after), ("near the saddle", "after training"), strict=True
        ):
            density.plot(ax=axis, log=True)
            axis.set_title(title)
        figure.savefig(arguments.plot)
        print(f"plot: {arguments.plot}")


if __name__ == "__main__":
    main()
