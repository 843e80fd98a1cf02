"""Series solvers: ``f(A) b`` from a fixed power series in ``Z = I - M / V`` (``M = A^2`` or ``A``).

The method of Oldewage, Clarke and Hernandez-Lobato (TMLR 2024) and its relatives, with safe
scaling, stable coefficients, error estimates and acceleration:

- :func:`abs_inv`: ``(|A| + d I)^-1 b`` or ``(A^2 + d I)^-1/2 b`` for symmetric ``A`` (the
  saddle-free Newton direction), two matvecs per term;
- :func:`inv_sqrt`, :func:`sqrt`: ``A^-1/2 b`` and ``A^1/2 b`` for positive definite ``A``;
- :func:`neumann`: ``A^-1 b`` for positive definite ``A`` (Neumann series);
- :class:`SeriesOptions`: their shared controls (budget, scale, accelerator) as one value;
- :func:`coefficients`: the exact float64 coefficients of these series.
"""

from ._abs_inv import abs_inv
from ._coefficients import coefficients
from ._inv_sqrt import inv_sqrt, sqrt
from ._neumann import neumann
from ._options import SeriesOptions

__all__ = [
    # solvers
    "abs_inv",
    "inv_sqrt",
    "neumann",
    "sqrt",
    # controls
    "SeriesOptions",
    # coefficients
    "coefficients",
]
