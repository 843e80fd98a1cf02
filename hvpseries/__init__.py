"""hvpseries: matrix-free f(|A|) b for saddle-free Newton, on NumPy, PyTorch and CuPy.

Operators
    :class:`LinearOperator` and its constructors: :func:`aslinearoperator`,
    :class:`MatrixOperator`, :class:`FunctionOperator`, :class:`DiagonalOperator`,
    :class:`IdentityOperator`, and :class:`CountingOperator` to count matvecs.
Vector spaces
    :class:`VectorSpace`, the inner products and norms every solver takes from its operator,
    and :class:`DistributedOperator`, whose vectors are row-sharded over a
    ``torch.distributed`` group (PyTorch imported when one is built).
Results
    :class:`SolveResult`, :class:`Status`, :class:`ConvergenceError`, shared by every solver.
Matrix functions (front end)
    :func:`abs_inv`, :func:`inv_sqrt`, :func:`sqrt`, :func:`sign`, :func:`funm` and
    :func:`solve`: f(A) b for symmetric A with the fastest suitable method.
Spectral estimates
    :func:`eigsh` (extreme eigenpairs by thick-restart Lanczos), :func:`trace` and
    :func:`diagonal` (Hutchinson, Hutch++, XTrace, XDiag), :func:`logdet` and
    :func:`spectral_density` (stochastic Lanczos quadrature), :func:`spectral_bounds`,
    :func:`power_iteration`.
Subpackages
    :mod:`hvpseries.krylov` (Lanczos, CG, MINRES, Chebyshev, rational methods),
    :mod:`hvpseries.series` (the paper's square-root/inverse series, Neumann series),
    :mod:`hvpseries.spectral` (the stochastic estimators and their result types),
    :mod:`hvpseries.acceleration` (Wynn epsilon, Levin, Aitken); with PyTorch installed,
    :mod:`hvpseries.nn` (Hessian and Gauss-Newton operators of models) and
    :mod:`hvpseries.optim` (saddle-free Newton optimizers), imported on first use
    (``hvpseries.nn`` works without importing it by name; ``import hvpseries`` alone never
    imports torch).
"""

from importlib.metadata import PackageNotFoundError, version
from types import ModuleType

from . import acceleration, krylov, series, spectral
from ._core._result import ConvergenceError, SolveResult, Status
from ._core._vector_space import VectorSpace
from ._front_end._functions import abs_inv, funm, inv_sqrt, sign, solve, sqrt
from ._operators._base import LinearOperator
from ._operators._convert import aslinearoperator
from ._operators._counting import CountingOperator
from ._operators._elementary import DiagonalOperator, IdentityOperator
from ._operators._explicit import MatrixOperator
from ._operators._function import FunctionOperator
from ._operators._sharded import DistributedOperator
from .krylov._eigsh import eigsh
from .krylov._spectrum import power_iteration, spectral_bounds
from .spectral import diagonal, logdet, spectral_density, trace

try:
    __version__ = version("hvpseries")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    # operators
    "CountingOperator",
    "DiagonalOperator",
    "FunctionOperator",
    "IdentityOperator",
    "LinearOperator",
    "MatrixOperator",
    "aslinearoperator",
    # vector spaces
    "DistributedOperator",
    "VectorSpace",
    # matrix functions
    "abs_inv",
    "funm",
    "inv_sqrt",
    "sign",
    "solve",
    "sqrt",
    # spectral estimates
    "diagonal",
    "eigsh",
    "logdet",
    "power_iteration",
    "spectral_bounds",
    "spectral_density",
    "trace",
    # subpackages
    "acceleration",
    "krylov",
    "series",
    "spectral",
    # results
    "ConvergenceError",
    "SolveResult",
    "Status",
    # metadata
    "__version__",
]

# Subpackages that import torch: bound on first attribute access (PEP 562), so that
# ``hvpseries.optim`` works like ``hvpseries.krylov`` without making torch a core dependency.
_TORCH_SUBPACKAGES = ("nn", "optim")


def __getattr__(name: str) -> ModuleType:
    if name == "nn":
        import hvpseries.nn  # binds hvpseries.nn, so this hook is not called again

        return hvpseries.nn
    if name == "optim":
        import hvpseries.optim

        return hvpseries.optim
    message = f"module 'hvpseries' has no attribute {name!r}"
    raise AttributeError(message)


def __dir__() -> list[str]:
    return sorted({*globals(), *_TORCH_SUBPACKAGES})
