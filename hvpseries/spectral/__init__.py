"""Spectral estimates of A from matvecs: trace, diagonal, log-determinant, density.

Stochastic estimators built on random probes and on the Lanczos process of
:mod:`hvpseries.krylov`; the public names are re-exported at the top level.

Trace and diagonal
    :func:`trace` (Hutchinson, Hutch++, XTrace; ``trace f(A)`` with ``f=``) with
    :class:`TraceResult`, :func:`diagonal` (Bekas-Kokiopoulou-Saad, XDiag) with
    :class:`DiagonalResult`.
Stochastic Lanczos quadrature
    :func:`trace_of_function` (``tr f(A)``) and :func:`logdet` (``log det A``,
    ``log |det A|``) with :class:`SpectralTraceResult`; :func:`spectral_density` with
    :class:`SpectralDensity` (smoothed density, counts, plot).
"""

from ._density import SpectralDensity, spectral_density
from ._diagonal import DiagonalResult, diagonal
from ._quadrature import SpectralTraceResult, logdet, trace_of_function
from ._trace import TraceResult, trace

__all__ = [
    # trace and diagonal
    "DiagonalResult",
    "TraceResult",
    "diagonal",
    "trace",
    # stochastic Lanczos quadrature
    "SpectralDensity",
    "SpectralTraceResult",
    "logdet",
    "spectral_density",
    "trace_of_function",
]
