"""Plot error against matvecs: plain and accelerated series, and Lanczos (docs/series.rst).

Run from the repository root: ``python docs/scripts/series_convergence.py``; writes
``docs/_static/series_convergence.png``.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import hvpseries as hs
from hvpseries.series import abs_inv

OUTPUT = Path(__file__).resolve().parents[1] / "_static" / "series_convergence.png"


def problem(n=200, kappa=10.0, seed=0):
    rng = np.random.default_rng(seed)
    magnitudes = np.logspace(-np.log10(kappa), 0, n)
    eigenvalues = magnitudes * np.where(rng.random(n) < 0.5, -1.0, 1.0)
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    q = q * np.sign(np.diag(r))
    matrix = (q * eigenvalues) @ q.T
    b = rng.standard_normal(n)
    reference = q @ ((q.T @ b) / (np.abs(eigenvalues) + DAMPING))
    return (matrix + matrix.T) / 2, b, reference


DAMPING = 1e-2


def main():
    matrix, b, reference = problem()
    scale = np.linalg.norm(reference)
    figure, axis = plt.subplots(figsize=(7.0, 4.2), dpi=120)
    budgets = np.unique(np.geomspace(3, 1500, 60).astype(int))
    styles = {None: "plain series", "wynn": "Wynn (order 1)", "levin": "Levin t", "tail": "tail"}
    for acceleration, label in styles.items():
        matvecs, errors = [], []
        for terms in budgets:
            result = abs_inv(
                matrix, b, damping=DAMPING, num_terms=int(terms), acceleration=acceleration
            )
            matvecs.append(result.n_matvec)
            errors.append(np.linalg.norm(result.x - reference) / scale)
        axis.semilogy(matvecs, errors, label=label)
    matvecs, errors = [], []
    for rtol in np.geomspace(1e-1, 1e-12, 24):
        result = hs.abs_inv(matrix, b, damping=DAMPING, method="lanczos", rtol=float(rtol))
        matvecs.append(result.n_matvec)
        errors.append(np.linalg.norm(result.x - reference) / scale)
    order = np.argsort(matvecs)
    axis.semilogy(np.array(matvecs)[order], np.array(errors)[order], "k--", label="Lanczos")
    axis.set_xlabel("matrix-vector products (HVPs), Lanczos bound for the scale included")
    axis.set_ylabel("relative error of (|A| + dI)^-1 b")
    axis.set_title("Indefinite A, n = 200, kappa = 10, d = 0.01")
    axis.set_ylim(1e-13, 2)
    axis.grid(True, which="major", alpha=0.3)
    axis.legend()
    figure.tight_layout()
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(OUTPUT)
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
