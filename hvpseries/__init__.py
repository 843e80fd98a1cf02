"""hvpseries: matrix-free f(|A|) b for saddle-free Newton, on NumPy, PyTorch and CuPy.

Operators
    :class:`LinearOperator` and its constructors: :func:`aslinearoperator`,
    :class:`MatrixOperator`, :class:`FunctionOperator`, :class:`DiagonalOperator`,
    :class:`IdentityOperator`, and :class:`CountingOperator` to count matvecs.
Results
    :class:`SolveResult`, :class:`Status`, :class:`ConvergenceError`, shared by every solver.
"""

from importlib.metadata import PackageNotFoundError, version

from ._conversion import aslinearoperator
from ._counting import CountingOperator
from ._elementary import DiagonalOperator, IdentityOperator
from ._function_operator import FunctionOperator
from ._linear_operator import LinearOperator
from ._matrix_operator import MatrixOperator
from ._result import ConvergenceError, SolveResult, Status

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
    # results
    "ConvergenceError",
    "SolveResult",
    "Status",
    # metadata
    "__version__",
]
