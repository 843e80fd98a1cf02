"""``hvpseries solve``: f(A) b for a matrix from a file or a built-in problem."""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ._subcommand import InputError, Subcommand, report_error

__all__ = ["SOLVE", "add_built_in_arguments", "add_matrix_argument", "read_matrix", "run_solve"]

FUNCTIONS = ("abs-inv", "inv-sqrt", "sqrt", "sign", "inv")
METHODS = ("auto", "lanczos", "chebyshev", "rational", "series", "dense", "cg", "minres")
BUILT_IN = ("helmholtz2d",)
# Relative asymmetry ``max|A - A^T| / max|A|`` above which a matrix is refused as non-symmetric.
SYMMETRY_TOLERANCE = 1e-10


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``hvpseries solve`` to its ``parser``."""
    add_matrix_argument(parser)
    parser.add_argument(
        "--function",
        choices=FUNCTIONS,
        default="abs-inv",
        help="abs-inv: (|A| + dI)^-1 b; inv-sqrt / sqrt: (A + dI)^-+1/2 b (A positive "
        "definite); sign: sign(A) b; inv: A^-1 b (default: abs-inv)",
    )
    parser.add_argument("--damping", type=float, default=0.0, help="d >= 0 (default 0)")
    parser.add_argument("--method", choices=METHODS, default="auto", help="default: auto")
    parser.add_argument("--rtol", type=float, default=1e-6, help="relative tolerance (1e-6)")
    parser.add_argument("--maxiter", type=int, default=None, help="iteration limit")
    parser.add_argument(
        "--rhs",
        default=None,
        help="right-hand side: a .npy file with shape (n,) or (n, k), or 'ones' or 'random' "
        "(required for matrix files; built-in problems default to 'random')",
    )
    parser.add_argument("--out", default="x.npy", help="output .npy file (default x.npy)")
    add_built_in_arguments(parser)
    parser.add_argument("--seed", type=int, default=0, help="seed of --rhs random (default 0)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def add_matrix_argument(parser: argparse.ArgumentParser, *, alternative: str | None = None) -> None:
    """Add the positional ``matrix``, read by :func:`read_matrix`.

    With ``alternative`` (the text of another input the subcommand accepts) it is optional.
    """
    text = "a .mtx or .npz file, or the name of a built-in problem: helmholtz2d"
    if alternative is None:
        parser.add_argument("matrix", help=text)
    else:
        parser.add_argument("matrix", nargs="?", help=f"{text} (or give {alternative})")


def add_built_in_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of the built-in problem helmholtz2d (``--grid``, ``--negative-fraction``)."""
    parser.add_argument(
        "--grid", type=int, default=64, help="helmholtz2d: grid size m, n = m^2 (default 64)"
    )
    parser.add_argument(
        "--negative-fraction",
        type=float,
        default=0.05,
        help="helmholtz2d: fraction of negative eigenvalues (default 0.05)",
    )


def helmholtz2d(grid: int, negative_fraction: float) -> Any:
    """Return the 5-point Laplacian on a ``grid x grid`` mesh, shifted to be indefinite.

    The shift sits halfway between two consecutive eigenvalues (known in closed form), so
    the operator is nonsingular with ``round(negative_fraction n)`` negative eigenvalues.
    """
    import scipy.sparse as sp

    if grid < 2:
        message = f"--grid must be >= 2, got {grid}"
        raise InputError(message)
    if not 0.0 <= negative_fraction < 1.0:
        message = f"--negative-fraction must be in [0, 1), got {negative_fraction}"
        raise InputError(message)
    one_d = 2.0 - 2.0 * np.cos(np.pi * np.arange(1, grid + 1) / (grid + 1))
    eigenvalues = np.sort(np.add.outer(one_d, one_d).ravel())
    count = round(negative_fraction * eigenvalues.size)
    if count == 0:
        shift = eigenvalues[0] / 2
    else:
        # Eigenvalues of the square grid are repeated: put the shift in the widest gap
        # among the neighbours of the requested count, halfway, so A stays well away from
        # singular.
        width = max(1, round(0.005 * eigenvalues.size))
        candidates = np.arange(max(1, count - width), min(eigenvalues.size, count + width + 1))
        gaps = eigenvalues[candidates] - eigenvalues[candidates - 1]
        best = candidates[int(np.argmax(gaps))]
        shift = (eigenvalues[best - 1] + eigenvalues[best]) / 2
    tridiagonal = sp.diags([-1.0, 2.0, -1.0], [-1, 0, 1], shape=(grid, grid))
    eye = sp.identity(grid)
    laplacian = sp.kron(tridiagonal, eye) + sp.kron(eye, tridiagonal)
    return (laplacian - shift * sp.identity(grid * grid)).tocsr()


def load_matrix(name: str) -> Any:
    """Read a matrix file (.mtx via scipy.io.mmread, .npz via scipy.sparse.load_npz)."""
    import scipy.io
    import scipy.sparse as sp

    path = Path(name)
    if not path.exists():
        message = f"matrix file {name!r} does not exist (built-in problems: {', '.join(BUILT_IN)})"
        raise InputError(message)
    try:
        if path.suffix == ".npz":
            matrix = sp.load_npz(path)
        elif path.suffix in (".mtx", ".mm") or path.name.endswith((".mtx.gz", ".mm.gz")):
            matrix = scipy.io.mmread(path)
        else:
            message = f"cannot read {name!r}: expected a .mtx (Matrix Market) or .npz file"
            raise InputError(message)
    except InputError:
        raise
    except Exception as error:  # the readers raise many kinds of errors on corrupt files
        message = f"cannot read {name!r}: {type(error).__name__}: {error}"
        raise InputError(message) from None
    matrix = sp.csr_matrix(matrix) if sp.issparse(matrix) else np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        message = f"the matrix must be square, {name!r} has shape {matrix.shape}"
        raise InputError(message)
    if not np.issubdtype(matrix.dtype, np.floating):
        if np.issubdtype(matrix.dtype, np.complexfloating):
            message = f"{name!r} holds complex entries; only real symmetric matrices are supported"
            raise InputError(message)
        matrix = matrix.astype(np.float64)
    return matrix


def check_symmetric(matrix: Any) -> None:
    """Refuse a clearly non-symmetric matrix (one pass over the stored entries)."""
    import scipy.sparse as sp

    if sp.issparse(matrix):
        asymmetry = abs(matrix - matrix.T).max() if matrix.nnz else 0.0
        largest = abs(matrix).max() if matrix.nnz else 0.0
        finite = bool(np.all(np.isfinite(matrix.data)))
    else:
        asymmetry = float(np.max(np.abs(matrix - matrix.T))) if matrix.size else 0.0
        largest = float(np.max(np.abs(matrix))) if matrix.size else 0.0
        finite = bool(np.all(np.isfinite(matrix)))
    if not finite:
        message = "the matrix has NaN or infinite entries"
        raise InputError(message)
    if asymmetry > SYMMETRY_TOLERANCE * largest:
        message = (
            f"the matrix is not symmetric (max |A - A^T| = {float(asymmetry):.3g}, "
            f"max |A| = {float(largest):.3g}); hvpseries solve needs a symmetric matrix"
        )
        raise InputError(message)


def read_matrix(arguments: argparse.Namespace) -> Any:
    """Return the symmetric matrix that ``arguments.matrix`` names: built in, or from a file."""
    if arguments.matrix in BUILT_IN:
        matrix = helmholtz2d(arguments.grid, arguments.negative_fraction)
    else:
        matrix = load_matrix(arguments.matrix)
    check_symmetric(matrix)
    return matrix


def load_rhs(spec: str | None, n: int, seed: int, built_in: bool) -> np.ndarray:
    """Return the right-hand side from ``--rhs`` (a .npy file, 'ones' or 'random')."""
    if spec is None:
        if not built_in:
            message = (
                "no right-hand side: pass --rhs FILE.npy (shape (n,) or (n, k)), or --rhs ones "
                "or --rhs random"
            )
            raise InputError(message)
        spec = "random"
    if spec == "ones":
        return np.ones(n)
    if spec == "random":
        return np.random.default_rng(seed).standard_normal(n)
    path = Path(spec)
    if not path.exists():
        message = f"right-hand side file {spec!r} does not exist (or use --rhs ones/random)"
        raise InputError(message)
    try:
        rhs = np.load(path, allow_pickle=False)
    except Exception as error:  # corrupt or non-.npy file
        message = f"cannot read the right-hand side {spec!r}: {type(error).__name__}: {error}"
        raise InputError(message) from None
    if rhs.ndim not in (1, 2) or rhs.shape[0] != n:
        message = f"the right-hand side must have shape ({n},) or ({n}, k), got {rhs.shape}"
        raise InputError(message)
    if np.iscomplexobj(rhs):
        message = (
            f"the right-hand side {spec!r} is complex; hvpseries solve works in real arithmetic"
        )
        raise InputError(message)
    if not np.issubdtype(rhs.dtype, np.floating):
        rhs = rhs.astype(np.float64)
    if not np.all(np.isfinite(rhs)):
        message = f"the right-hand side {spec!r} has NaN or infinite entries"
        raise InputError(message)
    return rhs


# Methods that report no progress before the end: the bar ticks once per iteration instead.
_ITERATION_TICKS = ("chebyshev", "rational", "series", "cg", "minres")


def _progress(enabled: bool) -> tuple[Any, dict[str, Any]]:
    """Return a tqdm bar (shown after half a second, short runs stay quiet) and its hooks.

    ``progress(n_matvec, error_estimate)`` moves it to the count reported; ``tick(xk)`` by
    one step, for methods that report their progress only at the end.
    """
    if not enabled:
        return None, {}
    from tqdm import tqdm

    bar = tqdm(desc="hvpseries solve", unit=" matvec", delay=0.5, file=sys.stderr, leave=False)

    def progress(n_matvec: int, estimate: Any) -> None:
        bar.update(max(n_matvec - bar.n, 0))
        if estimate is not None and np.ndim(estimate) == 0:
            bar.set_postfix(error=f"{float(estimate):.2e}", refresh=False)

    def tick(xk: Any) -> None:
        bar.update(1)

    return bar, {"progress": progress, "tick": tick}


def _compute(
    arguments: argparse.Namespace, matrix: Any, rhs: np.ndarray, hooks: dict[str, Any]
) -> Any:
    import hvpseries as hs

    method = arguments.method
    common = {"rtol": arguments.rtol, "maxiter": arguments.maxiter}
    common["progress"] = hooks.get("progress")
    if method in _ITERATION_TICKS:
        common["callback"] = hooks.get("tick")
    allowed = {
        "abs-inv": ("auto", "lanczos", "chebyshev", "rational", "series", "dense"),
        "inv-sqrt": ("auto", "lanczos", "chebyshev", "series", "dense"),
        "sqrt": ("auto", "lanczos", "chebyshev", "series", "dense"),
        "sign": ("auto", "lanczos", "dense"),
        "inv": ("auto", "cg", "minres", "dense"),
    }[arguments.function]
    if method not in allowed:
        message = (
            f"--method {method} is not available for --function {arguments.function}; "
            f"choose one of {', '.join(allowed)}"
        )
        raise InputError(message)
    operator = hs.aslinearoperator(matrix, symmetric=True)
    if arguments.function == "abs-inv":
        return hs.abs_inv(operator, rhs, damping=arguments.damping, method=method, **common)
    if arguments.function == "inv-sqrt":
        return hs.inv_sqrt(operator, rhs, damping=arguments.damping, method=method, **common)
    if arguments.function == "sqrt":
        return hs.sqrt(operator, rhs, damping=arguments.damping, method=method, **common)
    if arguments.function == "sign":
        return hs.sign(operator, rhs, method=method, **common)
    if arguments.damping != 0.0:
        operator = operator.shift(arguments.damping).with_structure(symmetric=True)
    return hs.solve(operator, rhs, method=method, **common)


def run_solve(arguments: argparse.Namespace) -> int:
    """Run ``hvpseries solve``; return the exit status."""
    try:
        matrix = read_matrix(arguments)
        if not (math.isfinite(arguments.damping) and arguments.damping >= 0):
            message = f"--damping must be finite and >= 0, got {arguments.damping}"
            raise InputError(message)
        if not (math.isfinite(arguments.rtol) and arguments.rtol >= 0):
            message = f"--rtol must be finite and >= 0, got {arguments.rtol}"
            raise InputError(message)
        if arguments.maxiter is not None and arguments.maxiter < 1:
            message = f"--maxiter must be >= 1, got {arguments.maxiter}"
            raise InputError(message)
        built_in = arguments.matrix in BUILT_IN
        rhs = load_rhs(arguments.rhs, matrix.shape[0], arguments.seed, built_in)
        bar, hooks = _progress(not arguments.no_progress)
        start = time.perf_counter()
        try:
            result = _compute(arguments, matrix, rhs, hooks)
        except (ValueError, TypeError) as error:  # the library's messages for bad combinations
            raise InputError(str(error)) from None
        finally:
            if bar is not None:
                bar.close()
        elapsed = time.perf_counter() - start
        out = Path(arguments.out)
        if out.suffix != ".npy":
            out = out.with_name(out.name + ".npy")  # what np.save writes anyway
        try:
            np.save(out, np.asarray(result.x))
        except OSError as error:
            message = f"cannot write {str(out)!r}: {error}"
            raise InputError(message) from None
    except InputError as error:
        return report_error("solve", error)
    estimate_text = "n/a"
    if result.relative_error_estimate is not None:
        values = np.atleast_1d(result.relative_error_estimate)
        estimate_text = ", ".join(f"{float(e):.3g}" for e in values) + " (relative)"
    elif result.residual_norm is not None:  # CG, MINRES: the residual test, relative to b
        values = np.atleast_1d(result.residual_norm) / np.linalg.norm(rhs, axis=0)
        estimate_text = ", ".join(f"{float(e):.3g}" for e in values) + " (relative residual)"
    n = matrix.shape[0]
    print(f"problem        {arguments.matrix} (n = {n}, nnz = {_nnz(matrix)})")
    print(f"function       {arguments.function} (damping {arguments.damping:g})")
    print(f"method         {result.info.get('method', arguments.method)}")
    print(f"status         {result.status.name}")
    print(f"matvecs        {result.n_matvec}")
    print(f"error estimate {estimate_text}")
    print(f"time           {elapsed:.3f} s")
    print(f"output         {out} (shape {tuple(np.shape(result.x))})")
    if not result.converged:
        print(f"note: {result.message}", file=sys.stderr)
        return 1
    return 0


def _nnz(matrix: Any) -> int:
    import scipy.sparse as sp

    return int(matrix.nnz) if sp.issparse(matrix) else int(np.count_nonzero(matrix))


SOLVE = Subcommand(
    "solve",
    help="compute f(A) b (|A|^-1 b, A^-1/2 b, ...) for a symmetric matrix from a file",
    description=(
        "Compute x = f(A) b for a symmetric matrix A read from a Matrix Market (.mtx) or "
        "SciPy sparse (.npz) file, or built in (helmholtz2d), and write x to a .npy file. "
        "Exit status: 0 converged, 1 not converged (x is still written), 2 bad input."
    ),
    add_arguments=_add_arguments,
    run=run_solve,
)
