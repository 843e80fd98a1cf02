"""Each method's iterations over a hand-written floor doing the same vector passes in place.

``track_ratio_to_floor`` times, in one run and interleaved, a fixed number of a method's
iterations and a bare loop of the same matvecs and the same vector passes written with BLAS-1
in place on the loop's own arrays (SciPy's ``daxpy``/``dscal``/``ddot``/``dnrm2``, no
checks, no stopping test, no bookkeeping). 1.0 means the method adds nothing to the vector
work it must do; the issue's target is at most 1.25. The operator is the 5-point Laplacian
plus ``0.01 I`` (n = 10^4 fast, 99 856 regular), NumPy, one BLAS thread. Where only the
vector passes matter for the time, the floors use fixed scalars instead of the method's
(bounded, so the values stay normal numbers).
"""

import numpy as np

from .common import best_time, laplacian_2d, pick, pin_threads, significant

# the spectrum of the Laplacian + 0.01 I lies in (0.01, 8.01): Chebyshev on an interval holding it
INTERVAL = (0.01, 8.1)
METHODS = ["cg", "minres", "lanczos", "lanczos_two_pass", "chebyshev", "cg_multishift"]


def _blas():
    from scipy.linalg import blas

    return blas.daxpy, blas.dscal, blas.ddot, blas.dnrm2


def lanczos_step(A, q, q_previous, beta):
    """One Lanczos step on the floor's own arrays: two axpys, a dot, a norm and a scale."""
    daxpy, dscal, ddot, dnrm2 = _blas()
    w = A @ q
    daxpy(q_previous, w, a=-beta)
    daxpy(q, w, a=-ddot(q, w))
    beta = dnrm2(w)
    dscal(1.0 / beta, w)
    return w, beta


def cg_floor(A, b, k, shifts=0):
    """CG: one matvec, two dots, three axpys and one scale per iteration.

    With ``shifts``, multi-shift CG: per shift one more axpy for ``x_s`` and a scale and an
    axpy for ``p_s``.
    """
    daxpy, dscal, ddot, _ = _blas()
    x, r = np.zeros_like(b), b.copy()
    p, rr = r.copy(), ddot(r, r)
    xs = [np.zeros_like(b) for _ in range(shifts)]
    ps = [b.copy() for _ in range(shifts)]
    for _ in range(k):
        q = A @ p
        a = rr / ddot(p, q)
        daxpy(p, x, a=a)
        daxpy(q, r, a=-a)
        rr_next = ddot(r, r)
        beta = rr_next / rr
        dscal(beta, p)
        daxpy(r, p, a=1.0)
        rr = rr_next
        for x_shift, p_shift in zip(xs, ps, strict=True):
            daxpy(p_shift, x_shift, a=0.9 * a)
            dscal(0.9 * beta, p_shift)
            daxpy(r, p_shift, a=0.9)


def lanczos_floor(A, b, k, *, store=True):
    """Lanczos: two axpys, a dot, a norm and the normalisation; the basis stored, then combined."""
    dnrm2 = _blas()[3]
    q, q_previous, beta = b / dnrm2(b), np.zeros_like(b), 0.0
    basis = np.empty((k + 1, b.size)) if store else None
    if store:
        basis[0] = q
    for j in range(k):
        w, beta = lanczos_step(A, q, q_previous, beta)
        q_previous, q = q, w
        if store:
            basis[j + 1] = q
    if store:
        return np.ones(k + 1) @ basis
    return q


def lanczos_two_pass_floor(A, b, k):
    """Two passes: the recurrence twice, and the second one accumulates ``x += y_j q_j``."""
    lanczos_floor(A, b, k, store=False)
    daxpy, _, _, dnrm2 = _blas()
    q, q_previous, beta = b / dnrm2(b), np.zeros_like(b), 0.0
    x = q * 0.5
    for _ in range(k):
        w, beta = lanczos_step(A, q, q_previous, beta)
        q_previous, q = q, w
        daxpy(q, x, a=0.5)


def minres_floor(A, b, k):
    """MINRES: the Lanczos step, the three-term direction update and the solution update."""
    daxpy, dscal, _, dnrm2 = _blas()
    q, q_previous, beta = b / dnrm2(b), np.zeros_like(b), 0.0
    d, d_previous, x = np.zeros_like(b), np.zeros_like(b), np.zeros_like(b)
    for _ in range(k):
        w, beta = lanczos_step(A, q, q_previous, beta)
        # d_new = (q - delta d - epsilon d_previous) / gamma, into d_previous's memory
        dscal(-0.1, d_previous)
        daxpy(q, d_previous, a=1.0)
        daxpy(d, d_previous, a=-0.2)
        dscal(1.0 / 1.1, d_previous)
        d, d_previous = d_previous, d
        daxpy(d, x, a=0.3)
        q_previous, q = q, w


def chebyshev_floor(A, b, k, interval=INTERVAL):
    """Chebyshev: ``T_{j+1} = 2 t(A) T_j - T_{j-1}`` and ``y += c_j T_{j+1}``."""
    daxpy, dscal, _, _ = _blas()
    lo, hi = interval
    scale, center = 2.0 / (hi - lo), (hi + lo) / (hi - lo)
    t_previous = b
    t_current = A @ b
    dscal(scale, t_current)
    daxpy(b, t_current, a=-center)
    y = b * 0.5
    daxpy(t_current, y, a=0.5)
    for _ in range(k - 1):
        w = A @ t_current
        dscal(2.0 * scale, w)
        daxpy(t_current, w, a=-2.0 * center)
        daxpy(t_previous, w, a=-1.0)
        daxpy(w, y, a=0.5)
        t_previous, t_current = t_current, w


FLOORS = {
    "cg": cg_floor,
    "minres": minres_floor,
    "lanczos": lanczos_floor,
    "lanczos_two_pass": lanczos_two_pass_floor,
    "chebyshev": chebyshev_floor,
    "cg_multishift": lambda A, b, k: cg_floor(A, b, k, shifts=2),
}


class IterationFloor:
    """Time of ``k`` iterations of each method over its in-place floor (1.0 = no overhead)."""

    params = [METHODS]
    param_names = ["method"]
    timeout = 600

    def setup(self, method):
        pin_threads(1)
        import scipy.sparse as sp

        import hvpseries as hs

        m = pick(100, 316)
        self.matrix = (laplacian_2d(m) + 0.01 * sp.identity(m * m)).tocsr()
        self.operator = hs.aslinearoperator(self.matrix, symmetric=True)
        self.b = np.random.default_rng(0).standard_normal(m * m)
        self.iterations = pick(100, 200)

    def _solve(self, method):
        from hvpseries import krylov

        A, b, k = self.operator, self.b, self.iterations
        if method == "cg":
            return krylov.cg(A, b, rtol=0.0, maxiter=k)
        if method == "minres":
            return krylov.minres(A, b, rtol=0.0, maxiter=k)
        if method == "lanczos":
            return krylov.funm_lanczos(A, b, np.sqrt, rtol=0.0, maxiter=k, reorthogonalize="none")
        if method == "lanczos_two_pass":
            return krylov.funm_lanczos(A, b, np.sqrt, rtol=0.0, maxiter=k, memory="two-pass")
        if method == "cg_multishift":
            return krylov.cg_multishift(A, b, [0.0, 1.0], rtol=0.0, maxiter=k)
        return krylov.funm_chebyshev(A, b, np.sqrt, interval=INTERVAL, degree=k)

    def track_ratio_to_floor(self, method):
        floor = FLOORS[method]
        floor_times, solve_times = [], []
        for _ in range(5):  # interleaved, so that a slow spell of the machine hits both
            floor_times.append(best_time(lambda: floor(self.matrix, self.b, self.iterations), 1))
            solve_times.append(best_time(lambda: self._solve(method), 1))
        return significant(min(solve_times) / min(floor_times))

    track_ratio_to_floor.unit = "solver / floor"
