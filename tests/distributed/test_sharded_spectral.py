"""Spectral estimates on row-sharded vectors (DistributedOperator) match the one-process run.

The shifted 1D Laplacian of ``test_sharded_solvers`` with its halo-exchange matvec, on 2
and 3 ranks with uneven row blocks: eigenpairs, trace, diagonal, log-determinant and the
spectral density must equal the single-process estimates at the same seed (the probes are
drawn for the whole length and sharded).
"""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from tests.distributed.launch import run_on_ranks
from tests.distributed.test_sharded_solvers import _bounds, _halo_operator, _laplacian

N = 60
SHIFT = -0.3  # positive definite: eigenvalues in (0.3, 4.3)
MATCH = 1e-9


def _spectral_worker(rank, world_size):
    import hvpseries as hs

    cuts = _bounds(N, world_size)
    start, stop = cuts[rank], cuts[rank + 1]
    sharded = _halo_operator(N, SHIFT, start, stop, psd=True)
    local = hs.aslinearoperator(_laplacian(N, SHIFT), symmetric=True, psd=True)
    out = {}
    for name, run in {
        "eigsh": lambda a: hs.eigsh(a, 4, which="BE", rtol=1e-10),
        "trace": lambda a: hs.trace(a, rtol=1e-2, maxiter=20),
        "diagonal": lambda a: hs.diagonal(a, method="hutchinson", rtol=1e-2, maxiter=20),
        "logdet": lambda a: hs.logdet(a, num_probes=3, lanczos_steps=12),
        "density": lambda a: hs.spectral_density(a, num_probes=2, lanczos_steps=12),
    }.items():
        result, reference = run(sharded), run(local)
        if name == "eigsh":
            values = (result.eigenvalues, reference.eigenvalues)
        elif name == "diagonal":
            values = (sharded.gather(result.estimate).numpy(), reference.estimate.numpy())
        elif name == "density":
            values = (result.nodes, reference.nodes)
        else:
            values = ([result.estimate], [reference.estimate])
        difference = max(abs(float(a) - float(b)) for a, b in zip(*values, strict=True))
        scale = max(abs(float(b)) for b in values[1])
        out[name] = {
            "difference": difference / scale,
            "n_matvec": (result.n_matvec, reference.n_matvec),
            "status": getattr(result, "status", None) and result.status.name,
        }
    return out


@pytest.mark.parametrize("world_size", [2, 3])
def test_sharded_spectral_estimates_match_the_single_process_run(world_size):
    results = run_on_ranks(_spectral_worker, world_size)
    for name in results[0]:
        for outcome in (r[name] for r in results):
            assert outcome["difference"] <= MATCH, (name, outcome)
            assert outcome["n_matvec"][0] == outcome["n_matvec"][1], (name, outcome)
    assert results[0]["eigsh"]["status"] == "SUCCESS"
