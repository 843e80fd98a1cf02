"""The datasets of ``hvpseries train``: built-in, synthetic and CSV, split and standardised."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from ._dependencies import require

__all__ = ["DATASETS", "SADDLE_INIT_SCALE", "Dataset", "load_dataset"]

DATASETS = ("digits", "diabetes", "saddle", "csv:PATH")
# A CSV target is a class label when every value is an integer and there are at most this many
# distinct values (otherwise, e.g. integer-valued prices, it is a regression target).
MAX_CSV_CLASSES = 100
# The default --init-scale of --dataset saddle: start near the saddle point at zero.
SADDLE_INIT_SCALE = 1e-3


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A standardised train/test split held as NumPy arrays.

    Attributes
    ----------
    name : str
        The name it was loaded by (``"digits"``, ``"csv:data.csv"``, ...).
    task : {"classification", "regression"}
        Classification targets are integer labels ``0 .. n_classes - 1`` (shape ``(n,)``);
        regression targets have shape ``(n, n_outputs)``.
    x_train, y_train, x_test, y_test : numpy.ndarray
        Inputs standardised with the training set's mean and standard deviation (features with
        zero spread are only centred); regression targets standardised the same way, so a mean
        squared error of 1 is what predicting the mean achieves.
    n_classes : int
        Number of classes (0 for regression).
    description : str
        One line on where the data came from.
    """

    name: str
    task: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    description: str

    @property
    def n_features(self) -> int:
        """Number of input features."""
        return int(self.x_train.shape[1])

    @property
    def n_outputs(self) -> int:
        """Number of model outputs: classes, or regression targets."""
        return self.n_classes if self.task == "classification" else int(self.y_train.shape[1])

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable description (no data)."""
        return {
            "name": self.name,
            "task": self.task,
            "n_train": int(self.x_train.shape[0]),
            "n_test": int(self.x_test.shape[0]),
            "n_features": self.n_features,
            "n_outputs": self.n_outputs,
            "n_classes": self.n_classes,
            "description": self.description,
        }


def load_dataset(
    spec: str, *, seed: int = 0, test_fraction: float = 0.25, task: str = "auto"
) -> Dataset:
    """Load a built-in or CSV dataset, split it and standardise it.

    Parameters
    ----------
    spec : str
        ``"digits"`` (8x8 handwritten digits, 10 classes, 1797 samples) or ``"diabetes"``
        (10 features, 442 samples, regression), both bundled with scikit-learn (no download);
        ``"saddle"`` (synthetic, see Notes); or ``"csv:PATH"``: a comma-separated file with one
        sample per row and the target in the last column (a header row is skipped).
    seed : int, default 0
        Seed of the train/test split (and of the synthetic data): the same seed gives the same
        split.
    test_fraction : float, default 0.25
        Fraction of the samples held out for testing, in (0, 1).
    task : {"auto", "classification", "regression"}, default "auto"
        For CSV files: ``"auto"`` treats the target as class labels when all values are
        integers and there are at most 100 distinct ones. Built-in datasets have a fixed task.

    Returns
    -------
    Dataset

    Raises
    ------
    ValueError
        For an unknown name, an unreadable or malformed CSV file, too few samples, or a bad
        ``test_fraction``/``task``.
    MissingDependencyError
        For ``digits``/``diabetes`` without scikit-learn.

    Notes
    -----
    ``saddle`` is the deep-linear-network regression of Saxe, McClelland and Ganguli (2014):
    1000 inputs ``x ~ N(0, I_8)`` and targets ``y = M x + 0.05 e`` with ``M`` (4 x 8) of
    singular values 4, 2, 1 and 0.5. For a network whose weights are all zero the gradient
    vanishes and the Hessian of the mean squared error has eigenvalues of both signs (plus and
    minus the singular values of the input-output correlation): a strict saddle point for one
    hidden layer, a flatter higher-order one for more. Further saddles lie where only some of
    the singular modes have been learnt. ``hvpseries train`` starts this problem near the
    origin (``--init-scale`` 1e-3 unless given), where gradient descent plateaus while a
    saddle-free Newton step ``|H|^-1 g`` is repelled by the negative curvature.

    Examples
    --------
    >>> data = load_dataset("saddle", seed=0)
    >>> data.task, data.n_features, data.n_outputs, data.x_train.shape
    ('regression', 8, 4, (750, 8))
    >>> bool(abs(data.x_train.mean()) < 1e-12)
    True
    """
    if not isinstance(spec, str):
        message = f"dataset must be a string such as 'digits' or 'csv:PATH', got {spec!r}"
        raise TypeError(message)
    if not (isinstance(test_fraction, float | int) and 0.0 < test_fraction < 1.0):
        message = f"test_fraction must be in (0, 1), got {test_fraction!r}"
        raise ValueError(message)
    if task not in ("auto", "classification", "regression"):
        message = f"task must be 'auto', 'classification' or 'regression', got {task!r}"
        raise ValueError(message)
    if spec in ("digits", "diabetes"):
        if task != "auto":
            expected = "classification" if spec == "digits" else "regression"
            if task != expected:
                message = f"--dataset {spec} is a {expected} problem; --task {task} does not apply"
                raise ValueError(message)
        datasets = require("sklearn.datasets", "examples", f"--dataset {spec}")
        if spec == "digits":
            bunch = datasets.load_digits()
            x, y = bunch.data.astype(np.float64), bunch.target.astype(np.int64)
            description = "scikit-learn digits: 8x8 images of handwritten digits, 10 classes"
            return _split(spec, x, y, "classification", seed, test_fraction, description)
        bunch = datasets.load_diabetes(scaled=False)
        x, y = bunch.data.astype(np.float64), bunch.target.astype(np.float64)
        description = "scikit-learn diabetes: disease progression after one year, 10 features"
        return _split(spec, x, y, "regression", seed, test_fraction, description)
    if spec == "saddle":
        if task not in ("auto", "regression"):
            message = f"--dataset saddle is a regression problem; --task {task} does not apply"
            raise ValueError(message)
        x, y = _saddle_data(seed)
        description = (
            "synthetic deep-linear-network regression y = M x + noise (Saxe et al. 2014), "
            "8 inputs, 4 outputs, singular values 4, 2, 1, 0.5"
        )
        return _split(spec, x, y, "regression", seed, test_fraction, description)
    if spec.startswith("csv:"):
        path = spec[4:]
        x, y = _read_csv(path)
        if task == "auto":
            task = _infer_task(y)
        description = f"CSV file {path}: {x.shape[1]} features, target in the last column"
        return _split(spec, x, y, task, seed, test_fraction, description)
    message = (
        f"unknown dataset {spec!r}: choose digits, diabetes, saddle, or csv:PATH for a "
        "comma-separated file with the target in the last column"
    )
    raise ValueError(message)


def _saddle_data(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, 0x5ADD1E])
    n_samples, n_inputs, n_outputs = 1000, 8, 4
    left, _ = np.linalg.qr(rng.standard_normal((n_outputs, n_outputs)))
    right, _ = np.linalg.qr(rng.standard_normal((n_inputs, n_outputs)))
    mixing = left @ np.diag([4.0, 2.0, 1.0, 0.5]) @ right.T
    x = rng.standard_normal((n_samples, n_inputs))
    y = x @ mixing.T + 0.05 * rng.standard_normal((n_samples, n_outputs))
    return x, y


def _read_csv(path: str) -> tuple[np.ndarray, np.ndarray]:
    if not path:
        message = "csv: needs a file name, e.g. --dataset csv:data.csv"
        raise ValueError(message)
    file = Path(path)
    if not file.is_file():
        message = f"CSV file {path!r} does not exist"
        raise ValueError(message)
    try:
        lines = file.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        message = f"cannot read CSV file {path!r}: {error}"
        raise ValueError(message) from None
    rows = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if rows and not _is_numeric_row(rows[0]):
        rows = rows[1:]  # a header
    table = []
    for number, row in enumerate(rows, start=1):
        try:
            table.append([float(field) for field in row.split(",")])
        except ValueError:
            message = f"CSV file {path!r}: row {number} is not all numbers: {row[:80]!r}"
            raise ValueError(message) from None
    widths = {len(row) for row in table}
    if len(widths) > 1:
        message = f"CSV file {path!r}: rows have different numbers of columns {sorted(widths)}"
        raise ValueError(message)
    data = np.asarray(table, dtype=np.float64)
    if data.ndim != 2 or data.shape[1] < 2:
        message = (
            f"CSV file {path!r} needs at least two columns (features, then the target), "
            f"got shape {data.shape}"
        )
        raise ValueError(message)
    if not np.all(np.isfinite(data)):
        message = f"CSV file {path!r} contains NaN or infinite values; clean the data first"
        raise ValueError(message)
    return data[:, :-1], data[:, -1]


def _is_numeric_row(row: str) -> bool:
    try:
        [float(field) for field in row.split(",")]
    except ValueError:
        return False
    return True


def _infer_task(y: np.ndarray) -> str:
    integral = bool(np.all(y == np.round(y)))
    return "classification" if integral and np.unique(y).size <= MAX_CSV_CLASSES else "regression"


def _standardise(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = train.mean(axis=0)
    spread = train.std(axis=0)
    spread = np.where(spread > 0, spread, 1.0)  # constant features (digits' border pixels)
    return (train - mean) / spread, (test - mean) / spread


def _split(
    name: str,
    x: np.ndarray,
    y: np.ndarray,
    task: str,
    seed: int,
    test_fraction: float,
    description: str,
) -> Dataset:
    n = x.shape[0]
    n_test = round(test_fraction * n)
    if n < 4 or n_test < 1 or n - n_test < 2:
        message = (
            f"dataset {name!r} has {n} samples; at least 4 are needed for a train/test split "
            f"with test fraction {test_fraction}"
        )
        raise ValueError(message)
    order = np.random.default_rng(seed).permutation(n)
    test, train = order[:n_test], order[n_test:]
    x_train, x_test = _standardise(x[train], x[test])
    if task == "classification":
        if not np.all(y == np.round(y)):
            message = f"dataset {name!r}: classification needs integer labels in the target"
            raise ValueError(message)
        labels, codes = np.unique(y.astype(np.int64), return_inverse=True)
        if labels.size < 2:
            message = f"dataset {name!r}: classification needs at least two distinct labels"
            raise ValueError(message)
        codes = codes.reshape(-1)
        return Dataset(
            name,
            task,
            x_train,
            codes[train],
            x_test,
            codes[test],
            int(labels.size),
            description,
        )
    targets = y.reshape(n, -1).astype(np.float64)
    y_train, y_test = _standardise(targets[train], targets[test])
    return Dataset(name, task, x_train, y_train, x_test, y_test, 0, description)
