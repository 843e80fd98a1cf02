"""Krylov methods for a symmetric A: Lanczos, f(A) b, and linear solvers.

Decompositions
    :func:`lanczos` (tridiagonalisation with full, partial or no reorthogonalisation).
Eigenvalues
    :func:`eigsh` (extreme eigenpairs by thick-restart Lanczos with locking).
Matrix functions
    :func:`funm_lanczos` (f(A) b with an a posteriori error estimate),
    :func:`funm_chebyshev` (Chebyshev expansion on a spectral interval),
    :func:`abs_inv_rational` ((|A| + d I)^-1 b by quadrature and multi-shift CG).
Linear solvers
    :func:`cg`, :func:`minres`, :func:`cg_multishift`.
"""

from ._cg import cg
from ._chebyshev import funm_chebyshev
from ._eigsh import EigshResult, eigsh
from ._funm_lanczos import funm_lanczos
from ._lanczos import LanczosDecomposition, lanczos
from ._minres import minres
from ._multishift import cg_multishift
from ._rational import abs_inv_rational

__all__ = [
    # decompositions
    "LanczosDecomposition",
    "lanczos",
    # eigenvalues
    "EigshResult",
    "eigsh",
    # matrix functions
    "abs_inv_rational",
    "funm_chebyshev",
    "funm_lanczos",
    # linear solvers
    "cg",
    "cg_multishift",
    "minres",
]
