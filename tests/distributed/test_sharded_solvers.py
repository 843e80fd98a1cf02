"""Solvers on row-sharded vectors (DistributedOperator) match the single-process run.

Each rank holds an uneven block of rows of every vector. Two operators: a shifted 1D
Laplacian whose matvec does a halo exchange (the neighbours' boundary entries), and a dense
symmetric indefinite matrix from a prescribed spectrum whose matvec takes the all-gathered
vector (``gather=True``). The reference is the same solver on the whole matrix in one process.
"""

from __future__ import annotations

import math

import pytest

pytest.importorskip("torch")

from tests.distributed.launch import run_on_ranks

N_LAPLACIAN = 60
N_DENSE = 50
MATCH = 1e-10


def _bounds(n, world_size):
    """Uneven row blocks: rank r holds a share growing with r."""
    total = world_size * (world_size + 1)
    cuts = [0] + [round(n * (r + 1) * (r + 2) / total) for r in range(world_size)]
    return cuts


def _laplacian(n, shift):
    import torch

    main = torch.full((n,), 2.0 - shift, dtype=torch.float64)
    off = -torch.ones(n - 1, dtype=torch.float64)
    return torch.diag(main) + torch.diag(off, 1) + torch.diag(off, -1)


def _dense_indefinite(n):
    import numpy as np
    import torch

    rng = np.random.default_rng(7)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    half = n // 2
    spectrum = np.concatenate([np.linspace(-3.0, -1.0, half), np.linspace(1.0, 4.0, n - half)])
    return torch.as_tensor((q * spectrum) @ q.T)


def _halo_operator(n, shift, start, stop, *, psd):
    """The shifted Laplacian on rows start:stop, with a one-collective halo exchange."""
    import torch
    import torch.distributed as dist

    import hvpseries as hs

    world = dist.get_world_size()
    rank = dist.get_rank()

    def matvec(x):
        ends = torch.stack([x[0], x[-1]])
        everyone = [torch.empty_like(ends) for _ in range(world)]
        dist.all_gather(everyone, ends)
        left = everyone[rank - 1][1] if rank > 0 else x.new_zeros(())
        right = everyone[rank + 1][0] if rank < world - 1 else x.new_zeros(())
        y = (2.0 - shift) * x
        y[1:] -= x[:-1]
        y[:-1] -= x[1:]
        y[0] -= left
        y[-1] -= right
        return y

    return hs.DistributedOperator(
        matvec, stop - start, global_size=n, symmetric=True, psd=True if psd else None
    )


def _relative(gathered, reference):
    import torch

    return float(
        torch.linalg.vector_norm(gathered - reference) / torch.linalg.vector_norm(reference)
    )


def _summary(D, result, reference):
    x = D.gather(result.x)
    return {
        "error": _relative(x, reference.x),
        "n_matvec": result.n_matvec,
        "reference_n_matvec": reference.n_matvec,
        "status": result.status.name,
        "reference_status": reference.status.name,
    }


def _solvers_worker(rank, world_size):
    import numpy as np
    import torch

    import hvpseries as hs
    from hvpseries import krylov, series

    cuts = _bounds(N_LAPLACIAN, world_size)
    start, stop = cuts[rank], cuts[rank + 1]
    out = {"local_rows": stop - start}
    b_full = torch.as_tensor(np.random.default_rng(3).standard_normal(N_LAPLACIAN))
    b = b_full[start:stop].clone()

    def inverse_abs(t):
        return 1.0 / np.abs(t)

    # SPD Laplacian (+0.05 I): CG, also through CountingOperator and a shift of the operator
    spd_matrix = _laplacian(N_LAPLACIAN, -0.05)
    spd = _halo_operator(N_LAPLACIAN, -0.05, start, stop, psd=True)
    reference = krylov.cg(hs.aslinearoperator(spd_matrix, psd=True), b_full, rtol=1e-12)
    counted = hs.CountingOperator(spd)
    before = spd.n_all_reduce
    out["cg"] = _summary(spd, krylov.cg(counted, b, rtol=1e-12), reference)
    out["cg"]["counted"] = counted.n_matvec
    out["cg"]["all_reduce_per_iteration"] = (spd.n_all_reduce - before) / reference.n_iter
    shifted_reference = krylov.cg(
        hs.aslinearoperator(spd_matrix, psd=True).shift(1.0), b_full, rtol=1e-12
    )
    out["cg_shifted"] = _summary(spd, krylov.cg(spd.shift(1.0), b, rtol=1e-12), shifted_reference)

    # indefinite Laplacian (-1 I): MINRES and Lanczos f(A) b with 1/|t|
    matrix = _laplacian(N_LAPLACIAN, 1.0)
    local = hs.aslinearoperator(matrix, symmetric=True)
    indefinite = _halo_operator(N_LAPLACIAN, 1.0, start, stop, psd=False)
    reference = krylov.minres(local, b_full, rtol=1e-12)
    out["minres"] = _summary(indefinite, krylov.minres(indefinite, b, rtol=1e-12), reference)
    for mode in ("full", "partial", "none"):
        options = {"rtol": 1e-10, "reorthogonalize": mode}
        reference = krylov.funm_lanczos(local, b_full, inverse_abs, **options)
        result = krylov.funm_lanczos(indefinite, b, inverse_abs, **options)
        out[f"funm_{mode}"] = _summary(indefinite, result, reference)
    reference = hs.abs_inv(local, b_full, method="lanczos", rtol=1e-10)
    result = hs.abs_inv(indefinite, b, method="lanczos", rtol=1e-10)
    out["abs_inv_lanczos"] = _summary(indefinite, result, reference)

    # dense indefinite matrix, all-gather matvec: the series (fixed budget and tolerance)
    cuts = _bounds(N_DENSE, world_size)
    start, stop = cuts[rank], cuts[rank + 1]
    dense = _dense_indefinite(N_DENSE)
    rows = dense[start:stop, :].clone()
    gathered = hs.DistributedOperator(
        lambda x: rows @ x, stop - start, global_size=N_DENSE, gather=True, symmetric=True
    )
    local = hs.aslinearoperator(dense, symmetric=True)
    c_full = torch.as_tensor(np.random.default_rng(5).standard_normal(N_DENSE))
    c = c_full[start:stop].clone()
    for name, options in (
        ("series_fixed", {"num_terms": 120}),
        ("series_rtol", {"rtol": 1e-9}),
    ):
        reference = series.abs_inv(local, c_full, **options)
        result = series.abs_inv(gathered, c, **options)
        out[name] = _summary(gathered, result, reference)
    before = gathered.n_all_reduce
    fixed = series.abs_inv(gathered, c, num_terms=120, scale=20.0, acceleration=None)
    # n_iter terms: n_iter - 1 products, each followed by one norm, plus ||b|| once (when the
    # problem is posed; the series reads it from there) and ||x|| once (the relative error
    # estimate)
    out["series_all_reduce_extra"] = gathered.n_all_reduce - before - (fixed.n_iter - 1)
    return out


@pytest.mark.parametrize("world_size", [2, 3])
def test_sharded_solvers_match_the_single_process_run(world_size):
    results = run_on_ranks(_solvers_worker, world_size)
    rows = [r.pop("local_rows") for r in results]
    assert sum(rows) in (N_LAPLACIAN,) and len(set(rows)) == world_size  # uneven shards
    assert {r.pop("series_all_reduce_extra") for r in results} == {2}  # one norm per term
    for name in results[0]:
        per_rank = [r[name] for r in results]
        for outcome in per_rank:
            assert outcome["error"] <= MATCH, (name, outcome)
            assert outcome["status"] == outcome["reference_status"], (name, outcome)
            assert outcome["n_matvec"] == outcome["reference_n_matvec"], (name, outcome)
        # every rank took the same decisions
        assert len({(o["n_matvec"], o["status"]) for o in per_rank}) == 1, (name, per_rank)
    assert all(r["cg"]["counted"] == r["cg"]["n_matvec"] for r in results)
    # CG: p^T A p and r^T r (plus the rare true-residual norms)
    assert all(r["cg"]["all_reduce_per_iteration"] < 2.2 for r in results)
    assert results[0]["cg"]["status"] == "SUCCESS"
    assert results[0]["funm_full"]["status"] == "SUCCESS"


CASES = {
    "sum": "add up to 10, not to global_size",
    "global": "different global_size",
    "negative": "integer >= 0",
    "dtype": "different dtypes",
}


def _inconsistent_worker(rank, world_size):
    import torch

    import hvpseries as hs

    messages = {}
    for case in CASES:
        local, total, dtype = 5, 10, torch.float64
        if case == "sum":
            total = 11  # 5 + 5 rows are not 11
        elif case == "global":
            total = 10 + rank  # the ranks disagree on the global size
        elif case == "negative":
            local = 5 if rank == 0 else -1
        else:
            dtype = torch.float64 if rank == 0 else torch.float32
        try:
            hs.DistributedOperator(lambda x: x, local, global_size=total, dtype=dtype)
        except ValueError as error:
            messages[case] = str(error)
        else:
            messages[case] = None
    return messages


def test_inconsistent_sizes_raise_on_every_rank():
    results = run_on_ranks(_inconsistent_worker, 2, collective_timeout=10.0, deadline=60.0)
    for case, expected in CASES.items():
        messages = [r[case] for r in results]
        assert all(m is not None and expected in m and "rank 1" in m for m in messages), messages
        assert messages[0] == messages[1]


def _nonfinite_on_one_rank_worker(rank, world_size):
    import numpy as np
    import torch

    import hvpseries as hs
    from hvpseries import krylov, series

    cuts = _bounds(N_LAPLACIAN, world_size)
    start, stop = cuts[rank], cuts[rank + 1]
    spd = _halo_operator(N_LAPLACIAN, -0.05, start, stop, psd=True)
    b = torch.ones(stop - start, dtype=torch.float64)
    if rank == world_size - 1:
        b[-1] = math.nan  # only the last rank sees it

    def inverse_abs(t):
        return 1.0 / np.abs(t)

    solvers = {
        "cg": lambda: krylov.cg(spd, b),
        "minres": lambda: krylov.minres(spd, b),
        "funm_lanczos": lambda: krylov.funm_lanczos(spd, b, inverse_abs),
        "cg_multishift": lambda: krylov.cg_multishift(spd, b, [0.0, 1.0]),
        "abs_inv_rational": lambda: krylov.abs_inv_rational(spd, b, damping=0.1),
        "series": lambda: series.abs_inv(spd, b, num_terms=10),
        "abs_inv": lambda: hs.abs_inv(spd, b),
        "solve": lambda: hs.solve(spd, b),
    }
    return {name: solve().status.name for name, solve in solvers.items()}


def test_a_nonfinite_entry_on_one_rank_is_reported_on_every_rank():
    # A local finiteness test would send the ranks down different branches (and into a hang).
    results = run_on_ranks(_nonfinite_on_one_rank_worker, 2, collective_timeout=10.0, deadline=90.0)
    for name in results[0]:
        assert [r[name] for r in results] == ["NONFINITE", "NONFINITE"], (name, results)


def _nccl_worker(rank, world_size):
    """A DistributedOperator on CUDA under NCCL (which refuses CPU tensors in collectives)."""
    import torch

    import hvpseries as hs
    from hvpseries import krylov

    device = torch.device("cuda", rank)
    torch.cuda.set_device(device)
    d = torch.arange(1.0, 5.0, dtype=torch.float64, device=device)
    A = hs.DistributedOperator(lambda x: d * x, 4, global_size=4, device=device, symmetric=True)
    result = krylov.cg(A, torch.ones(4, dtype=torch.float64, device=device), rtol=1e-12)
    return result.converged, result.x.cpu().tolist()


@pytest.mark.gpu
def test_distributed_operator_on_nccl():
    import torch
    import torch.distributed as dist

    if not (torch.cuda.is_available() and dist.is_nccl_available()):
        pytest.skip("needs a CUDA device and NCCL")
    ((converged, x),) = run_on_ranks(_nccl_worker, 1, backend="nccl")
    assert converged
    assert x == pytest.approx([1.0, 0.5, 1 / 3, 0.25], rel=1e-10)
