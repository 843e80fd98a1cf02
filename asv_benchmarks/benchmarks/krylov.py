"""Krylov front end: matvecs to a relative error of 1e-8 for |A|^-1 b, and time.

Compares ``hvpseries.abs_inv(method="auto")`` (Lanczos on sparse/operator problems, fully
reorthogonalised up to n = 1000 and partially above; dense eigh on small dense matrices, so
Lanczos is forced here) with
plain Lanczos with full reorthogonalisation stopped by an oracle at the first step whose TRUE
error is below 1e-8, and with the paper's series.
"""

import time

import numpy as np

from .common import (
    indefinite_logspaced,
    laplacian_2d,
    matrix_from_eigenvalues,
    pick,
    pin_threads,
    significant,
)

TARGET = 1e-8
SERIES_CAP = 20000  # matvecs; the series needs ~kappa^2 log(1/eps), so it is stopped here


def helmholtz(m, negative_fraction=0.05):
    """The 2D Laplacian shifted between two eigenvalues: ~5% negative, and its eigenvalues."""
    one_d = 2.0 - 2.0 * np.cos(np.pi * np.arange(1, m + 1) / (m + 1))
    eigenvalues = np.sort(np.add.outer(one_d, one_d).ravel())
    count = round(negative_fraction * eigenvalues.size)
    window = np.arange(max(1, count - 5), count + 6)
    best = window[int(np.argmax(eigenvalues[window] - eigenvalues[window - 1]))]
    shift = (eigenvalues[best - 1] + eigenvalues[best]) / 2
    return laplacian_2d(m, shift)


def problems():
    """name -> (matrix, b, |A|^-1 b, (eigenvalues, |A|^-1 b in the eigenbasis))."""
    n = pick(400, 1000)
    result = {}
    rng = np.random.default_rng(1)
    for kappa in (1e2, 1e3, 1e4):
        eigenvalues = indefinite_logspaced(n, kappa, seed=0)
        a = matrix_from_eigenvalues(eigenvalues, seed=0)
        b = rng.standard_normal(n)
        w, v = np.linalg.eigh(a)
        components = (v.T @ b) / np.abs(w)
        result[f"logspaced-kappa{kappa:.0e}"] = (a, b, v @ components, (w, components))
    m = pick(40, 100)
    a = helmholtz(m)
    import scipy.fft

    b = rng.standard_normal(m * m)
    one_d = 2.0 - 2.0 * np.cos(np.pi * np.arange(1, m + 1) / (m + 1))
    shift = -(a[0, 0] - 4.0)
    spectrum = np.add.outer(one_d, one_d) - shift
    coefficients = scipy.fft.dstn(b.reshape(m, m), type=1, norm="ortho")
    components = coefficients / np.abs(spectrum)
    reference = scipy.fft.idstn(components, type=1, norm="ortho").ravel()
    result[f"helmholtz-{m}x{m}"] = (a, b, reference, (spectrum.ravel(), components.ravel()))
    return result


def full_lanczos_oracle(a, b, reference, target=TARGET):
    """Smallest m whose full-reorthogonalisation Lanczos iterate has true error <= target."""
    from hvpseries import krylov
    from hvpseries.krylov._funm_lanczos import f_tridiagonal_e1

    n = b.shape[0]
    norm_b, norm_ref = np.linalg.norm(b), np.linalg.norm(reference)

    def error(m):
        y, _ = f_tridiagonal_e1(
            lambda t: 1 / np.abs(t), decomposition.alpha[:m], decomposition.beta[: m - 1]
        )
        return np.linalg.norm(decomposition.basis[:, :m] @ (norm_b * y) - reference) / norm_ref

    # Full reorthogonalisation costs O(n m^2): double the run until its last iterate is good
    # enough (the recurrence is deterministic, so a longer run repeats the shorter one).
    limit = min(n, 500)
    while True:
        decomposition = krylov.lanczos(a, b, limit, reorthogonalize="full")
        total = decomposition.num_steps
        if total < limit or limit == min(n, 6000) or error(total) <= target:
            break
        limit = min(2 * limit, n, 6000)
    coarse = next((m for m in range(10, total + 1, 10) if error(m) <= target), total)
    # The error is not monotone in m: search the two windows of 10 before the first coarse hit.
    candidates = range(max(1, coarse - 19), coarse + 1)
    return next(m for m in candidates if error(m) <= target or m == coarse)


def plain_series_matvecs(eigenvalues, components, target=TARGET):
    """Matvecs of the plain (unaccelerated) series to relative error ``target``, computed exactly.

    The series for ``(A^2)^-1/2 b`` with the ideal scale ``V = max lambda^2`` (any safe scale is
    larger, and slower) sums ``V^-1/2 sum_n C(2n, n) 4^-n x^n`` per eigen-component, with
    ``x = 1 - lambda^2 / V``. Its tail after ``N`` terms is the upper tail of a negative
    binomial distribution with ``r = 1/2``: the component's share of ``|A|^-1 b`` times the
    regularised incomplete beta function ``I_x(N, 1/2)``. So the error after ``N`` terms is
    known without running them, for the ~kappa^2 log(1/eps) terms no benchmark could afford.
    Returns ``2 (N - 1)`` matvecs (two per term after the first; the scale's are not counted).
    """
    from scipy.special import betainc

    x = 1.0 - eigenvalues**2 / np.max(eigenvalues**2)
    size = np.linalg.norm(components)

    def error(terms):
        return np.linalg.norm(components * betainc(terms, 0.5, x)) / size

    low, high = 1, 2
    while error(high) > target:
        low, high = high, 2 * high
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if error(middle) <= target else (middle, high)
    return 2 * (high - 1)


def measure(name, problem, method):
    """Return (matvecs, seconds, true relative error) of one method on one problem."""
    import hvpseries as hs

    a, b, reference, spectrum = problem
    if method == "series-plain-exact":
        start = time.perf_counter()
        matvecs = plain_series_matvecs(*spectrum)
        return matvecs, time.perf_counter() - start, TARGET
    if method == "lanczos-full-oracle":
        start = time.perf_counter()
        m = full_lanczos_oracle(a, b, reference)
        return m, time.perf_counter() - start, TARGET
    operator = hs.CountingOperator(hs.aslinearoperator(a, symmetric=True))
    start = time.perf_counter()
    if method == "auto":
        # Forced to Lanczos: "auto" would diagonalise a small dense matrix outright.
        forced = "lanczos" if name.startswith("log") else "auto"
        result = hs.abs_inv(operator, b, rtol=TARGET, method=forced)
    elif method == "series":
        result = hs.abs_inv(operator, b, rtol=TARGET, method="series", maxiter=SERIES_CAP // 2)
    else:
        result = hs.abs_inv(operator, b, rtol=TARGET, method=method)
    seconds = time.perf_counter() - start
    error = np.linalg.norm(np.asarray(result.x) - reference) / np.linalg.norm(reference)
    return operator.n_matvec, seconds, error


METHODS = ["auto", "lanczos-full-oracle", "series", "series-plain-exact"]


class AbsInvMatvecs:
    """Matvecs to relative error 1e-8 (track) and the true error reached."""

    param_names = ["problem", "method"]
    params = [
        ["logspaced-kappa1e+02", "logspaced-kappa1e+03", "logspaced-kappa1e+04", "helmholtz"],
        METHODS,
    ]
    timeout = 1800

    def setup_cache(self):
        pin_threads(1)
        table = {}
        for name, problem in problems().items():
            key = "helmholtz" if name.startswith("helmholtz") else name
            for method in METHODS:
                table[(key, method)] = measure(name, problem, method)
        return table

    def track_n_matvec(self, table, problem, method):
        return table[(problem, method)][0]

    track_n_matvec.unit = "matvecs"

    def track_relative_error(self, table, problem, method):
        return significant(table[(problem, method)][2])

    track_relative_error.unit = "relative error"


class SolverOverhead:
    """Time per matvec of funm_lanczos beyond the matvec itself, sparse n >= 1e5."""

    param_names = ["reorthogonalize"]
    params = [["partial", "none"]]
    timeout = 1800

    def setup(self, reorthogonalize):
        pin_threads(1)
        m = pick(100, 320)
        self.a = helmholtz(m)
        self.b = np.random.default_rng(0).standard_normal(m * m)

    def track_overhead_fraction(self, reorthogonalize):
        import hvpseries as hs
        from hvpseries import krylov

        operator = hs.CountingOperator(hs.aslinearoperator(self.a, symmetric=True))
        start = time.perf_counter()
        from hvpseries.krylov._tridiagonal_functions import AbsInvFunction

        krylov.funm_lanczos(
            operator,
            self.b,
            AbsInvFunction(
                0.0, "damped"
            ),  # 1/|t| as hvpseries.abs_inv passes it (fast checkpoints)
            rtol=1e-6,
            reorthogonalize=reorthogonalize,
            maxiter=pick(400, 1000),
        )
        total = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(operator.n_matvec):
            self.a @ self.b
        matvecs = time.perf_counter() - start
        return significant((total - matvecs) / matvecs)

    track_overhead_fraction.unit = "overhead / matvec time"
