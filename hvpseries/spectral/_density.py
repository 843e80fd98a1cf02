"""The spectral density of a symmetric A by stochastic Lanczos quadrature, and its plot."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._core._checks import check_choice, check_nonnegative, check_positive_int
from ..krylov._spectrum import _check_seed
from ._quadrature import (
    REORTHOGONALIZE_CHOICES,
    check_finite,
    checked_operator,
    gauss_rule,
    standard_error,
    start_probe,
)

__all__ = ["SpectralDensity", "spectral_density"]

_LOG_RANGE = 1e-6


@dataclass(frozen=True, repr=False, eq=False)
class SpectralDensity:
    r"""Frozen result of :func:`spectral_density`: a discrete measure approximating the spectrum.

    The measure puts weight ``weights[i]`` at ``nodes[i]``; it approximates the spectral
    measure ``(1/n) sum_j delta(t - lambda_j)`` of ``A``, so that the number of eigenvalues in an
    interval is about ``n`` times the weight of the nodes inside it (:meth:`count`).

    Attributes
    ----------
    nodes : numpy.ndarray
        The Ritz values of every probe's Lanczos run, ascending (float64, on the host).
    weights : numpy.ndarray
        The Gauss quadrature weight of each node (the squared first component of its Ritz
        vector) divided by the number of probes; they sum to 1.
    probes : numpy.ndarray
        The index of the probe each node comes from (for standard errors over probes).
    n_probes : int
        The number of random probes.
    dimension : int
        ``n``, the size of ``A``.
    n_matvec : int
        Operator applications spent.
    lanczos_steps : int
        The largest number of Lanczos steps of a probe (fewer after a breakdown).

    Examples
    --------
    >>> import numpy as np
    >>> from hvpseries.spectral import spectral_density
    >>> density = spectral_density(np.diag(np.arange(1.0, 7.0)), num_probes=3)
    >>> round(float(density.weights.sum()), 12), density.n_matvec
    (1.0, 18)
    >>> count, error = density.count(0.5, 3.5)
    >>> round(count, 8)
    3.0
    """

    nodes: np.ndarray
    weights: np.ndarray
    probes: np.ndarray
    n_probes: int
    dimension: int
    n_matvec: int
    lanczos_steps: int

    def default_width(self) -> float:
        """Return the default Gaussian width, ``(max(nodes) - min(nodes)) / lanczos_steps``.

        About the spacing of the Ritz values of one probe inside the spectrum, so that the
        smoothed density has no spikes at single nodes. For a spectrum of one point it is
        ``1e-3`` of its magnitude (1 at zero).
        """
        spread = float(self.nodes[-1] - self.nodes[0])
        if spread > 0:
            return spread / max(self.lanczos_steps, 1)
        scale = float(np.max(np.abs(self.nodes)))
        return 1e-3 * scale if scale > 0 else 1.0

    def evaluate(self, t: Any, *, width: float | None = None) -> np.ndarray:
        r"""Evaluate the Gaussian-smoothed density at the points ``t``.

        Parameters
        ----------
        t : array_like
            Points (float64 NumPy values) at which to evaluate.
        width : float, optional
            The standard deviation ``sigma`` of the Gaussian placed at each node; default
            :meth:`default_width`.

        Returns
        -------
        numpy.ndarray
            ``phi(t) = sum_i w_i exp(-(t - theta_i)^2 / (2 sigma^2)) / (sqrt(2 pi) sigma)``, of
            the shape of ``t``; it integrates to 1.

        Raises
        ------
        ValueError
            If ``width`` is not a positive finite number.
        """
        sigma = self._width(width)
        points = np.asarray(t, dtype=np.float64)
        flat = points.reshape(-1)
        values = np.empty(flat.shape)
        # in slices, so that the (points x nodes) table stays small for long grids
        for start in range(0, flat.size, 1024):
            chunk = flat[start : start + 1024]
            z = (chunk[:, None] - self.nodes[None, :]) / sigma
            values[start : start + 1024] = np.exp(-0.5 * z * z) @ self.weights
        return (values / (math.sqrt(2 * math.pi) * sigma)).reshape(points.shape)

    def fraction(self, lower: float, upper: float) -> tuple[float, float]:
        """Return the weight of the nodes in ``[lower, upper]`` and its standard error.

        The weight estimates the fraction of the eigenvalues of ``A`` in the interval; the
        standard error is that of the mean of the probes' weights (``inf`` for one probe).
        """
        inside = (self.nodes >= lower) & (self.nodes <= upper)
        per_probe = np.bincount(
            self.probes[inside], weights=self.weights[inside], minlength=self.n_probes
        )
        per_probe = per_probe * self.n_probes  # each probe's own weight, summing to 1
        return float(np.mean(per_probe)), standard_error(per_probe)

    def count(self, lower: float, upper: float) -> tuple[float, float]:
        """Return the estimated number of eigenvalues in ``[lower, upper]`` and its error.

        ``n`` times :meth:`fraction`.
        """
        share, error = self.fraction(lower, upper)
        return self.dimension * share, self.dimension * error

    def plot(
        self,
        ax: Any = None,
        *,
        num_points: int = 512,
        width: float | None = None,
        log: bool = False,
    ) -> Any:
        """Plot the smoothed density with matplotlib (an optional dependency).

        Parameters
        ----------
        ax : matplotlib.axes.Axes, optional
            The axes to draw on; a new figure's axes if omitted.
        num_points : int, default 512
            Points of the grid over ``[min(nodes) - 4 sigma, max(nodes) + 4 sigma]``.
        width : float, optional
            The Gaussian width ``sigma`` (see :meth:`evaluate`).
        log : bool, default False
            Use a logarithmic density axis, down to ``1e-6`` of its peak (shows small
            clusters).

        Returns
        -------
        matplotlib.axes.Axes

        Raises
        ------
        ImportError
            If matplotlib is not installed.
        """
        check_positive_int(num_points, "num_points")
        try:
            import matplotlib.pyplot as plt
        except ImportError as error:
            message = (
                "SpectralDensity.plot needs matplotlib, which is not installed; install it with "
                "`pip install matplotlib` (or `pip install hvpseries[plot]`), or plot "
                "SpectralDensity.evaluate(t) with another library"
            )
            raise ImportError(message) from error
        sigma = self._width(width)
        grid = np.linspace(self.nodes[0] - 4 * sigma, self.nodes[-1] + 4 * sigma, num_points)
        if ax is None:
            _, ax = plt.subplots()
        values = self.evaluate(grid, width=sigma)
        ax.plot(grid, values)
        ax.set_xlabel("eigenvalue")
        ax.set_ylabel("spectral density")
        if log:
            # Down to 1e-6 of the peak: below it are the Gaussian kernels' tails, not spectrum.
            ax.set_yscale("log")
            peak = float(np.max(values))
            ax.set_ylim(_LOG_RANGE * peak, 2.0 * peak)
        return ax

    def _width(self, width: float | None) -> float:
        if width is None:
            return self.default_width()
        value = check_nonnegative(width, "width")
        if value == 0:
            message = "width must be > 0 (the standard deviation of the Gaussian kernel), got 0"
            raise ValueError(message)
        return value

    def __repr__(self) -> str:
        return (
            f"SpectralDensity(n_nodes={self.nodes.size}, n_probes={self.n_probes}, "
            f"dimension={self.dimension}, n_matvec={self.n_matvec}, "
            f"range=[{self.nodes[0]:.4g}, {self.nodes[-1]:.4g}])"
        )


def spectral_density(
    A: Any,
    *,
    num_probes: int = 10,
    lanczos_steps: int = 80,
    reorthogonalize: str = "full",
    seed: int = 0,
) -> SpectralDensity:
    r"""Estimate the spectral density of a symmetric ``A`` by stochastic Lanczos quadrature.

    Parameters
    ----------
    A : LinearOperator or matrix
        A real symmetric operator; anything :func:`hvpseries.aslinearoperator` accepts.
    num_probes : int, default 10
        Random Rademacher probes; the weights' probe error falls like ``1/sqrt(num_probes)``.
    lanczos_steps : int, default 80
        Lanczos steps (matvecs) per probe, the nodes per probe; the resolution of the density
        is about ``(lambda_max - lambda_min) / lanczos_steps``. Fewer are taken for small
        ``n`` or after a breakdown.
    reorthogonalize : {"full", "partial", "none"}, default "full"
        As in :func:`trace_of_function`; without reorthogonalisation converged Ritz values
        repeat (ghosts), which splits their weight but keeps the measure right.
    seed : int, default 0
        Seed of the probes.

    Returns
    -------
    SpectralDensity
        At most ``num_probes * lanczos_steps`` matvecs are spent (800 by default, whatever
        the size of ``A``).

    Raises
    ------
    ValueError
        For a non-square, empty or non-symmetric operator or bad counts.
    TypeError
        For a complex operator or arguments of the wrong type.

    Notes
    -----
    Each probe ``z`` (entries ``+-1``) defines the measure
    ``mu_z = sum_j ((v_j^T z)^2 / n) delta(t - lambda_j)``, whose expectation is the spectral
    measure ``(1/n) sum_j delta(t - lambda_j)``. ``m`` Lanczos steps from ``z / sqrt(n)`` give
    its Gauss quadrature rule, nodes ``theta_i`` (the Ritz values) and weights ``tau_i^2``
    (squared first components of the eigenvectors of ``T_m``), which matches the first
    ``2m`` moments of ``mu_z``. The density is the average of the probes' rules, smoothed by
    a Gaussian of width ``sigma`` in :meth:`SpectralDensity.evaluate` (Lin, Saad and Yang's
    Lanczos method). Hessian spectra of neural networks computed this way show the bulk near
    zero and the few outliers (Ghorbani, Krishnan and Xiao).

    References
    ----------
    .. [1] L. Lin, Y. Saad and C. Yang, "Approximating spectral densities of large matrices",
       SIAM Review 58 (2016), 34-65.
    .. [2] B. Ghorbani, S. Krishnan and Y. Xiao, "An investigation into neural net
       optimization via Hessian eigenvalue density", ICML 2019.

    Examples
    --------
    >>> import numpy as np
    >>> from hvpseries.spectral import spectral_density
    >>> eigenvalues = np.concatenate([np.linspace(0.0, 1.0, 300), np.linspace(9.0, 10.0, 100)])
    >>> density = spectral_density(np.diag(eigenvalues), num_probes=10, lanczos_steps=30)
    >>> share, error = density.fraction(5.0, 11.0)  # the fraction of eigenvalues above 5
    >>> round(share, 6), round(error, 6)  # exact: the probes weigh every e_j of a diagonal A by 1/n
    (0.25, 0.0)
    >>> grid = np.linspace(-1.0, 11.0, 2001)
    >>> round(float(np.sum(density.evaluate(grid)) * (grid[1] - grid[0])), 4)
    1.0
    """
    operator = checked_operator(A, "spectral_density")
    check_positive_int(num_probes, "num_probes")
    check_positive_int(lanczos_steps, "lanczos_steps")
    check_choice(reorthogonalize, "reorthogonalize", REORTHOGONALIZE_CHOICES)
    _check_seed(seed)
    n = operator.global_shape[0]
    rng = np.random.default_rng(seed)
    nodes, weights, probes = [], [], []
    n_matvec, longest = 0, 0
    for index in range(num_probes):
        process = start_probe(operator, rng, reorthogonalize)
        steps = min(lanczos_steps, n)
        while process.num_steps < steps and process.step():
            pass
        n_matvec += process.n_matvec
        check_finite(process)
        theta, tau2 = gauss_rule(process, process.num_steps)
        nodes.append(theta)
        weights.append(tau2 / np.sum(tau2))
        probes.append(np.full(theta.size, index))
        longest = max(longest, process.num_steps)
    all_nodes = np.concatenate(nodes)
    order = np.argsort(all_nodes, kind="stable")
    return SpectralDensity(
        nodes=all_nodes[order],
        weights=np.concatenate(weights)[order] / num_probes,
        probes=np.concatenate(probes)[order],
        n_probes=num_probes,
        dimension=n,
        n_matvec=n_matvec,
        lanczos_steps=longest,
    )
