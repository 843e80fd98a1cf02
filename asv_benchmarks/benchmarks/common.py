"""Shared pieces of the hvpseries benchmarks: profiles, thread pinning, test matrices.

The profile comes from the environment variable ``HVPSERIES_BENCH_PROFILE``: ``fast`` (the
default, small problems, for CI smoke runs and quick comparisons) or ``regular`` (the sizes the
performance targets are stated for).
"""

import numbers
import os

import numpy as np

PROFILE = os.environ.get("HVPSERIES_BENCH_PROFILE", "fast")
if PROFILE not in ("fast", "regular"):
    raise ValueError(f"HVPSERIES_BENCH_PROFILE must be 'fast' or 'regular', got {PROFILE!r}")


def pick(fast, regular):
    """Choose a size by profile."""
    return fast if PROFILE == "fast" else regular


def significant(x, digits=3):
    """``x`` rounded to ``digits`` significant digits: what a ``track_`` method returns.

    asv prints a tracked float with all its digits (``0.002110223320427755``); timings and
    errors carry no more than a few. NaN and infinities pass through, and so do integers
    (exact counts stay exact).
    """
    if isinstance(x, numbers.Integral):
        return int(x)
    return float(f"{float(x):.{digits}g}")


def require_torch():
    """Skip the calling benchmark where torch is not installed.

    asv's convention: a ``NotImplementedError`` raised in ``setup`` marks the benchmark as
    skipped (n/a) instead of failed.
    """
    try:
        import torch  # noqa: F401
    except ImportError:
        raise NotImplementedError("torch is not installed") from None


def pin_threads(count=1):
    """Fix the thread count of torch and BLAS so timings compare like with like."""
    os.environ.setdefault("OMP_NUM_THREADS", str(count))
    try:
        import threadpoolctl

        threadpoolctl.threadpool_limits(count)
    except ImportError:
        pass
    try:
        import torch

        torch.set_num_threads(count)
    except ImportError:
        pass


def matrix_from_eigenvalues(eigenvalues, seed=0):
    """A dense symmetric matrix Q diag(eigenvalues) Q^T with a random orthogonal Q."""
    n = len(eigenvalues)
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    q = q * np.sign(np.diag(r))
    a = (q * eigenvalues) @ q.T
    return (a + a.T) / 2


def indefinite_logspaced(n, kappa, negative_fraction=0.5, seed=0):
    """Eigenvalues log-spaced in [1/kappa, 1] in magnitude, a fraction of them negative."""
    rng = np.random.default_rng(seed)
    magnitudes = np.logspace(-np.log10(kappa), 0, n)
    signs = np.where(rng.random(n) < negative_fraction, -1.0, 1.0)
    return magnitudes * signs


def laplacian_2d(m, shift=0.0):
    """The 5-point Laplacian on an m x m grid (n = m^2) minus shift * I, as CSR."""
    import scipy.sparse as sp

    one_d = sp.diags([-1.0, 2.0, -1.0], [-1, 0, 1], shape=(m, m))
    eye = sp.identity(m)
    return (sp.kron(one_d, eye) + sp.kron(eye, one_d) - shift * sp.identity(m * m)).tocsr()


def laplacian_3d_27_point(m):
    """The 27-point Laplacian on an m x m x m grid (n = m^3), as CSR: 26 on the diagonal, -1 for
    each of the 26 neighbours; spectrum in (0, 54). Per row it moves ~6x the bytes of the
    5-point stencil, so it shows how solver overhead shrinks as the matvec gets dearer.
    """
    import scipy.sparse as sp

    ones = sp.diags([1.0, 1.0, 1.0], [-1, 0, 1], shape=(m, m))
    neighbours = sp.kron(ones, sp.kron(ones, ones))
    return (27.0 * sp.identity(m**3) - neighbours).tocsr()


def best_time(function, repeats=5):
    """The shortest of ``repeats`` wall-clock timings of ``function()``, in seconds."""
    import time

    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        timings.append(time.perf_counter() - start)
    return min(timings)
