"""A tiny regression problem for the training-loop and run-record tests."""

from __future__ import annotations

import numpy as np

from hvpseries._app._datasets import Dataset


def tiny_regression(seed: int = 0, n: int = 64) -> Dataset:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3))
    y = (x @ np.array([1.0, -2.0, 0.5]))[:, None] + 0.1 * rng.standard_normal((n, 1))
    return Dataset("tiny", "regression", x[:48], y[:48], x[48:], y[48:], 0, "test data")
