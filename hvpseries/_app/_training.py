"""Datasets, models and the training loop behind ``hvpseries train`` and ``hvpseries demo``.

This module compares optimizers fairly on small problems: every optimizer starts from the same
initial weights and sees the same mini-batches in the same order; the losses reported per epoch
are full-data losses evaluated after the epoch (not running batch averages); wall time counts
only the optimizer's work (forward, backward, HVPs, the update), never the evaluation.

Optional dependencies are imported lazily: PyTorch (extra ``torch``) for everything that
trains, scikit-learn (extra ``examples``) for the bundled ``digits`` and ``diabetes`` data,
matplotlib (extra ``plot``) for the curves. A missing one raises :class:`MissingDependencyError`
naming the extra to install.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import inspect
import itertools
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DATASETS",
    "OPTIMIZERS",
    "Dataset",
    "MissingDependencyError",
    "ModelSpec",
    "build_model",
    "compare_optimizers",
    "load_dataset",
    "make_optimizer",
    "parse_model_spec",
    "plot_record",
    "require",
    "save_record",
    "train_one",
]

DATASETS = ("digits", "diabetes", "saddle", "csv:PATH")
OPTIMIZERS = ("series-sfn", "krylov-sfn", "exact-sfn", "adam", "sgd")
SFN_OPTIMIZERS = {"series-sfn": "SeriesSFN", "krylov-sfn": "KrylovSFN", "exact-sfn": "ExactSFN"}
ACTIVATIONS = ("tanh", "relu", "gelu", "softplus", "sigmoid")
# First-order defaults: Adam's own default; SGD with momentum 0.9 at a rate that trains the
# standardised built-in problems without diverging.
DEFAULT_LR = {"adam": 1e-3, "sgd": 0.05}
SGD_MOMENTUM = 0.9
# A CSV target is a class label when every value is an integer and there are at most this many
# distinct values (otherwise, e.g. integer-valued prices, it is a regression target).
MAX_CSV_CLASSES = 100
SADDLE_INIT_SCALE = 1e-3


class MissingDependencyError(ImportError):
    """An optional dependency is not installed; the message names the extra that provides it."""


def require(module: str, extra: str, purpose: str) -> Any:
    """Import an optional dependency or raise :class:`MissingDependencyError`.

    Parameters
    ----------
    module : str
        The module to import, e.g. ``"sklearn.datasets"``.
    extra : str
        The hvpseries extra that installs it, e.g. ``"examples"``.
    purpose : str
        What needs it, for the message, e.g. ``"--dataset digits"``.

    Returns
    -------
    module
        The imported module.

    Raises
    ------
    MissingDependencyError
        When the import fails.

    Examples
    --------
    >>> require("json", "none", "this example").__name__
    'json'
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        package = module.split(".")[0]
        message = (
            f"{purpose} needs {package}, which is not installed or failed to import "
            f"({error}); install it with: pip install 'hvpseries[{extra}]'"
        )
        raise MissingDependencyError(message) from error


# --------------------------------------------------------------------------------------------
# Datasets


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


# --------------------------------------------------------------------------------------------
# Models


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A parsed ``--model`` string: hidden layer widths and the activation."""

    hidden: tuple[int, ...]
    activation: str

    def __str__(self) -> str:
        if not self.hidden:
            return "linear"
        widths = ",".join(str(width) for width in self.hidden)
        return f"mlp:{widths}:{self.activation}"


def parse_model_spec(spec: str) -> ModelSpec:
    """Parse ``"mlp:50"``, ``"mlp:50,50"``, ``"mlp:32:relu"`` or ``"linear"``.

    Parameters
    ----------
    spec : str
        ``mlp:W1[,W2,...][:ACTIVATION]`` with positive widths and an activation among tanh
        (default; smooth, so the Hessian is informative), relu, gelu, softplus and sigmoid; or
        ``linear`` (no hidden layer: linear or softmax regression, a convex problem).

    Returns
    -------
    ModelSpec

    Raises
    ------
    ValueError
        For anything else, with the expected form in the message.

    Examples
    --------
    >>> parse_model_spec("mlp:50,20")
    ModelSpec(hidden=(50, 20), activation='tanh')
    >>> str(parse_model_spec("mlp:8:relu"))
    'mlp:8:relu'
    """
    expected = "expected 'mlp:50', 'mlp:50,50', 'mlp:50:relu' or 'linear'"
    if not isinstance(spec, str):
        message = f"model must be a string ({expected}), got {spec!r}"
        raise TypeError(message)
    if spec.strip() == "linear":
        return ModelSpec((), "tanh")
    kind, _, rest = spec.partition(":")
    if kind != "mlp" or not rest:
        message = f"unknown model {spec!r}: {expected}"
        raise ValueError(message)
    widths_text, _, activation = rest.partition(":")
    activation = activation or "tanh"
    if activation not in ACTIVATIONS:
        message = f"unknown activation {activation!r} in model {spec!r}: choose from " + ", ".join(
            ACTIVATIONS
        )
        raise ValueError(message)
    try:
        widths = tuple(int(width) for width in widths_text.split(","))
    except ValueError:
        message = f"bad layer widths {widths_text!r} in model {spec!r}: {expected}"
        raise ValueError(message) from None
    if any(width < 1 for width in widths):
        message = f"layer widths must be positive integers, got {widths_text!r} in {spec!r}"
        raise ValueError(message)
    return ModelSpec(widths, activation)


def build_model(
    spec: str | ModelSpec,
    n_features: int,
    n_outputs: int,
    *,
    seed: int = 0,
    init_scale: float = 1.0,
    dtype: Any = None,
    device: Any = "cpu",
) -> Any:
    """Build the multilayer perceptron described by ``spec`` as a ``torch.nn.Sequential``.

    Parameters
    ----------
    spec : str or ModelSpec
        See :func:`parse_model_spec`.
    n_features, n_outputs : int
        Input and output widths.
    seed : int, default 0
        Seed of the initial weights (PyTorch's default initialisation); the global random
        state is left untouched.
    init_scale : float, default 1.0
        Multiplies every initial parameter; small values start near the saddle point at zero.
    dtype : torch.dtype, optional
        Default ``torch.float32``.
    device : str or torch.device, default "cpu"

    Returns
    -------
    torch.nn.Sequential

    Examples
    --------
    >>> model = build_model("mlp:5", 3, 2, seed=0)
    >>> sum(p.numel() for p in model.parameters())  # 3*5 + 5 + 5*2 + 2
    32
    """
    torch = require("torch", "torch", "training")
    if isinstance(spec, str):
        spec = parse_model_spec(spec)
    if not (isinstance(init_scale, float | int) and math.isfinite(init_scale) and init_scale > 0):
        message = f"init_scale must be a positive number, got {init_scale!r}"
        raise ValueError(message)
    activation = {
        "tanh": torch.nn.Tanh,
        "relu": torch.nn.ReLU,
        "gelu": torch.nn.GELU,
        "softplus": torch.nn.Softplus,
        "sigmoid": torch.nn.Sigmoid,
    }[spec.activation]
    widths = [n_features, *spec.hidden, n_outputs]
    layers: list[Any] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for index, (width_in, width_out) in enumerate(itertools.pairwise(widths)):
            layers.append(torch.nn.Linear(width_in, width_out))
            if index < len(widths) - 2:
                layers.append(activation())
    model = torch.nn.Sequential(*layers)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(init_scale)
    return model.to(dtype=dtype or torch.float32, device=device)


# --------------------------------------------------------------------------------------------
# Optimizers


def make_optimizer(
    name: str,
    params: Any,
    *,
    lr: float | None = None,
    damping: float | None = None,
    options: dict[str, Any] | None = None,
) -> Any:
    """Construct an optimizer by its command-line name.

    Parameters
    ----------
    name : {"series-sfn", "krylov-sfn", "exact-sfn", "adam", "sgd"}
        The saddle-free Newton optimizers of :mod:`hvpseries.optim` (``SeriesSFN``,
        ``KrylovSFN``, ``ExactSFN``), ``torch.optim.Adam``, or ``torch.optim.SGD`` with
        momentum 0.9.
    params : iterable
        Model parameters.
    lr : float, optional
        Learning rate. Default: 1e-3 for Adam, 0.05 for SGD, and the optimizer's own default
        for the SFN optimizers (an adaptive step size).
    damping : float, optional
        Initial damping of the SFN optimizers (their default when None); refused for Adam/SGD.
    options : dict, optional
        Further keyword arguments of the optimizer's constructor, e.g. ``{"maxiter": 40}`` for
        ``krylov-sfn`` or ``{"momentum": 0.0}`` for ``sgd``.

    Returns
    -------
    torch.optim.Optimizer

    Raises
    ------
    ValueError
        For an unknown name, a non-positive ``lr``, or an option the optimizer does not take.
    MissingDependencyError
        Without torch, or for an SFN optimizer when :mod:`hvpseries.optim` is unavailable.
    """
    torch = require("torch", "torch", f"--optimizer {name}")
    if name not in OPTIMIZERS:
        message = f"unknown optimizer {name!r}: choose from {', '.join(OPTIMIZERS)}"
        raise ValueError(message)
    if lr is not None and not (math.isfinite(lr) and lr > 0):
        message = f"the learning rate of {name} must be a positive number, got {lr!r}"
        raise ValueError(message)
    if damping is not None and not (math.isfinite(damping) and damping >= 0):
        message = f"the damping of {name} must be a number >= 0, got {damping!r}"
        raise ValueError(message)
    keywords: dict[str, Any] = {}
    if name in DEFAULT_LR:
        if damping is not None:
            message = f"--damping applies to the SFN optimizers only, not to {name}"
            raise ValueError(message)
        cls = torch.optim.Adam if name == "adam" else torch.optim.SGD
        keywords["lr"] = DEFAULT_LR[name] if lr is None else lr
        if name == "sgd":
            keywords["momentum"] = SGD_MOMENTUM
    else:
        cls = _sfn_class(name)
        accepted = inspect.signature(cls).parameters
        if lr is not None:
            if "lr" not in accepted:
                message = f"{name} sets its own step size and takes no learning rate (--lr)"
                raise ValueError(message)
            # A given learning rate replaces the adaptive step size (and momentum).
            keywords["lr"] = lr
            if "adaptive" in accepted:
                keywords["adaptive"] = False
        if damping is not None:
            keywords["damping"] = damping
    accepted = inspect.signature(cls).parameters
    for key, value in (options or {}).items():
        if key == "params" or key not in accepted:
            known = ", ".join(k for k in accepted if k not in ("params", "self"))
            message = f"{name} has no option {key!r}; its options are: {known}"
            raise ValueError(message)
        keywords[key] = value
    try:
        return cls(params, **keywords)
    except (TypeError, ValueError) as error:
        message = f"cannot construct {name} ({cls.__name__}): {error}"
        raise ValueError(message) from error


def _sfn_class(name: str) -> type:
    try:  # torch is optional: hvpseries.optim is imported only when an SFN optimizer is asked for
        from ..optim import ExactSFN, KrylovSFN, SeriesSFN
    except ImportError as error:
        message = (
            f"--optimizer {name} needs hvpseries.optim (the saddle-free Newton optimizers), "
            f"which failed to import: {error}"
        )
        raise MissingDependencyError(message) from error
    classes = {"ExactSFN": ExactSFN, "KrylovSFN": KrylovSFN, "SeriesSFN": SeriesSFN}
    return classes[SFN_OPTIMIZERS[name]]


def _hyperparameters(optimizer: Any) -> dict[str, Any]:
    """Return the optimizer's defaults as JSON-friendly values."""
    result = {}
    for key, value in getattr(optimizer, "defaults", {}).items():
        if isinstance(value, bool | int | float | str) or value is None:
            result[key] = _finite_or_none(value) if isinstance(value, float) else value
        elif isinstance(value, tuple | list) and all(isinstance(v, int | float) for v in value):
            result[key] = [_finite_or_none(float(v)) for v in value]
        else:
            result[key] = repr(value)
    return result


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


# --------------------------------------------------------------------------------------------
# Training


def _loss_function(task: str) -> Callable[[Any, Any], Any]:
    torch = require("torch", "torch", "training")
    if task == "classification":
        return torch.nn.functional.cross_entropy
    return torch.nn.functional.mse_loss


def _evaluate(model: Any, x: Any, y: Any, task: str) -> tuple[float, float | None]:
    torch = require("torch", "torch", "training")
    with torch.no_grad():
        output = model(x)
        loss = float(_loss_function(task)(output, y))
        accuracy = None
        if task == "classification":
            accuracy = float((output.argmax(dim=1) == y).to(torch.float64).mean())
    return loss, accuracy


def _batches(n: int, batch_size: int, generator: Any) -> list[Any]:
    """Split a shuffled ``range(n)`` into ``ceil(n / batch_size)`` near-equal batches.

    Near-equal sizes (rather than full batches and a small remainder) keep every curvature
    estimate on a comparable number of samples.
    """
    torch = require("torch", "torch", "training")
    order = torch.randperm(n, generator=generator)
    count = max(1, math.ceil(n / batch_size))
    return list(torch.tensor_split(order, count))


def _counters(optimizer: Any, steps: int, first_order: bool) -> dict[str, int]:
    if first_order:
        return {"hvp": 0, "gradient": steps, "loss": steps}
    counters = getattr(optimizer, "counters", None) or {}
    return {key: int(counters.get(key, 0)) for key in ("hvp", "gradient", "loss")}


def train_one(
    model: Any,
    dataset: Dataset,
    optimizer_name: str,
    *,
    epochs: int = 10,
    batch_size: int = 128,
    seed: int = 0,
    lr: float | None = None,
    damping: float | None = None,
    options: dict[str, Any] | None = None,
    device: Any = "cpu",
    progress: bool | None = None,
    progress_file: Any = None,
) -> dict[str, Any]:
    """Train ``model`` in place with one optimizer; return a JSON-serialisable run record.

    Parameters
    ----------
    model : torch.nn.Module
        Modified in place (pass a copy to keep the original).
    dataset : Dataset
        Classification uses the cross-entropy loss, regression the mean squared error.
    optimizer_name : str
        See :func:`make_optimizer`.
    epochs : int, default 10
        Passes over the training set.
    batch_size : int, default 128
        Mini-batch size; each epoch splits a fresh permutation of the training set into
        ``ceil(n_train / batch_size)`` batches of near-equal size.
    seed : int, default 0
        Seeds the batch order and any randomness inside the optimizer (the global random state
        is restored afterwards): the same seed gives the same run.
    lr, damping, options
        Passed to :func:`make_optimizer`.
    device : str or torch.device, default "cpu"
        Where the data goes (the model must already be there).
    progress : bool or None, default None
        Show a tqdm progress bar: True always, False never, None only on a terminal.
    progress_file : file, optional
        Where the bar is drawn (default standard error).

    Returns
    -------
    dict
        ``optimizer``, ``hyperparameters``, ``status`` (``"completed"``, ``"diverged"`` when
        the loss became NaN or infinite, which ends the run), ``message``, and ``history``:
        lists indexed by epoch (entry 0 is the initial model) of ``epoch``, ``train_loss``,
        ``test_loss`` (full-data losses after the epoch), ``train_accuracy`` and
        ``test_accuracy`` (classification; else None), ``wall_time`` (seconds of optimizer work
        since the start, evaluation excluded), and cumulative counts ``hvp``, ``gradient`` and
        ``loss`` (evaluations of the loss).

    Raises
    ------
    ValueError
        For bad ``epochs``/``batch_size`` or optimizer options.
    """
    torch = require("torch", "torch", "training")
    for value, label in ((epochs, "epochs"), (batch_size, "batch_size")):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            message = f"{label} must be a positive integer, got {value!r}"
            raise ValueError(message)
    dtype = next(model.parameters()).dtype
    target_dtype = torch.int64 if dataset.task == "classification" else dtype
    x_train = torch.as_tensor(dataset.x_train, dtype=dtype, device=device)
    y_train = torch.as_tensor(dataset.y_train, dtype=target_dtype, device=device)
    x_test = torch.as_tensor(dataset.x_test, dtype=dtype, device=device)
    y_test = torch.as_tensor(dataset.y_test, dtype=target_dtype, device=device)
    loss_fn = _loss_function(dataset.task)
    first_order = optimizer_name in DEFAULT_LR
    history: dict[str, list[Any]] = {
        key: []
        for key in (
            "epoch",
            "train_loss",
            "test_loss",
            "train_accuracy",
            "test_accuracy",
            "wall_time",
            "hvp",
            "gradient",
            "loss",
        )
    }
    status, note = "completed", ""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        optimizer = make_optimizer(
            optimizer_name, model.parameters(), lr=lr, damping=damping, options=options
        )
        generator = torch.Generator().manual_seed(seed)
        steps, elapsed = 0, 0.0

        def record(epoch: int) -> bool:
            train_loss, train_accuracy = _evaluate(model, x_train, y_train, dataset.task)
            test_loss, test_accuracy = _evaluate(model, x_test, y_test, dataset.task)
            history["epoch"].append(epoch)
            history["train_loss"].append(_finite_or_none(train_loss))
            history["test_loss"].append(_finite_or_none(test_loss))
            history["train_accuracy"].append(train_accuracy)
            history["test_accuracy"].append(test_accuracy)
            history["wall_time"].append(elapsed)
            for key, count in _counters(optimizer, steps, first_order).items():
                history[key].append(count)
            return math.isfinite(train_loss)

        record(0)
        n_batches = max(1, math.ceil(x_train.shape[0] / batch_size))
        bar = _progress_bar(optimizer_name, epochs * n_batches, progress, progress_file)
        try:
            for epoch in range(1, epochs + 1):
                batches = _batches(x_train.shape[0], batch_size, generator)
                for indices in batches:
                    x_batch, y_batch = x_train[indices], y_train[indices]
                    closure = _closure(model, loss_fn, optimizer, x_batch, y_batch, first_order)
                    start = time.perf_counter()
                    loss = optimizer.step(closure)
                    if str(device).startswith("cuda"):
                        torch.cuda.synchronize()
                    elapsed += time.perf_counter() - start
                    steps += 1
                    if bar is not None and not bar.disable:
                        bar.update(1)
                        if loss is not None:
                            bar.set_postfix(loss=f"{float(loss.detach()):.4g}", refresh=False)
                if not record(epoch):
                    status = "diverged"
                    note = f"the training loss became NaN or infinite in epoch {epoch}"
                    break
        finally:
            if bar is not None:
                bar.close()
    return {
        "optimizer": optimizer_name,
        "optimizer_class": type(optimizer).__name__,
        "hyperparameters": _hyperparameters(optimizer),
        "status": status,
        "message": note,
        "history": history,
    }


def _closure(
    model: Any, loss_fn: Any, optimizer: Any, x: Any, y: Any, first_order: bool
) -> Callable[[], Any]:
    """Return the closure ``optimizer.step`` calls: it recomputes the batch loss.

    For first-order optimizers it also computes the gradient; the SFN optimizers differentiate
    the returned loss themselves.
    """
    if first_order:

        def closure() -> Any:
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            return loss

        return closure

    def sfn_closure() -> Any:
        return loss_fn(model(x), y)

    return sfn_closure


def _progress_bar(name: str, total: int, progress: bool | None, file: Any) -> Any:
    if progress is False:
        return None
    from tqdm import tqdm

    # disable=None: tqdm shows the bar only when the output is a terminal.
    return tqdm(
        total=total,
        desc=f"{name:<10}",
        unit="step",
        file=file,
        leave=False,
        disable=None if progress is None else False,
    )


def compare_optimizers(
    dataset: Dataset,
    model_spec: str | ModelSpec,
    optimizers: Sequence[str],
    *,
    epochs: int = 10,
    batch_size: int = 128,
    seed: int = 0,
    lr: dict[str, float] | None = None,
    damping: float | None = None,
    options: dict[str, dict[str, Any]] | None = None,
    init_scale: float = 1.0,
    dtype: Any = None,
    device: Any = "cpu",
    progress: bool | None = None,
    progress_file: Any = None,
    on_error: str = "raise",
) -> dict[str, Any]:
    """Train the same initial model with each optimizer on the same batches.

    Parameters
    ----------
    dataset : Dataset
    model_spec : str or ModelSpec
        See :func:`parse_model_spec`.
    optimizers : sequence of str
        Names for :func:`make_optimizer`, each trained from an identical copy of the initial
        model.
    epochs, batch_size, seed, device, progress, progress_file
        See :func:`train_one`; ``seed`` also seeds the initial weights.
    lr : dict, optional
        Learning rate per optimizer name (missing names use their default).
    damping : float, optional
        Initial damping for the SFN optimizers.
    options : dict, optional
        Constructor options per optimizer name, e.g. ``{"krylov-sfn": {"maxiter": 40}}``.
    init_scale, dtype
        See :func:`build_model`.
    on_error : {"raise", "record"}, default "raise"
        What to do when an optimizer raises during training: re-raise, or record the run with
        status ``"failed"`` and the error message and go on with the next optimizer.
        Configuration errors (an unknown name, a missing dependency) are always raised before
        any training starts.

    Returns
    -------
    dict
        A JSON-serialisable record: ``dataset`` (its summary), ``model`` (spec and parameter
        count), ``config`` and ``runs`` (one :func:`train_one` record per optimizer).
    """
    torch = require("torch", "torch", "training")
    if on_error not in ("raise", "record"):
        message = f"on_error must be 'raise' or 'record', got {on_error!r}"
        raise ValueError(message)
    if isinstance(model_spec, str):
        model_spec = parse_model_spec(model_spec)
    lr = dict(lr or {})
    options = {name: dict(value) for name, value in (options or {}).items()}
    unknown = sorted(set(lr) - set(optimizers)) + sorted(set(options) - set(optimizers))
    if unknown:
        message = f"settings given for optimizers that are not compared: {', '.join(unknown)}"
        raise ValueError(message)
    initial = build_model(
        model_spec,
        dataset.n_features,
        dataset.n_outputs,
        seed=seed,
        init_scale=init_scale,
        dtype=dtype,
        device=device,
    )
    # Check every optimizer's configuration before spending time on training.
    for name in optimizers:
        make_optimizer(
            name,
            copy.deepcopy(initial).parameters(),
            lr=lr.get(name),
            damping=damping,
            options=options.get(name),
        )
    runs = []
    for name in optimizers:
        model = copy.deepcopy(initial)
        try:
            run = train_one(
                model,
                dataset,
                name,
                epochs=epochs,
                batch_size=batch_size,
                seed=seed,
                lr=lr.get(name),
                damping=damping,
                options=options.get(name),
                device=device,
                progress=progress,
                progress_file=progress_file,
            )
        except Exception as error:
            if on_error == "raise":
                raise
            run = {
                "optimizer": name,
                "status": "failed",
                "message": f"{type(error).__name__}: {error}",
                "history": None,
            }
        runs.append(run)
    return {
        "dataset": dataset.summary(),
        "model": {
            "spec": str(model_spec),
            "n_parameters": sum(p.numel() for p in initial.parameters()),
        },
        "config": {
            "epochs": epochs,
            "batch_size": batch_size,
            "seed": seed,
            "init_scale": init_scale,
            "dtype": str(next(initial.parameters()).dtype).removeprefix("torch."),
            "device": str(device),
            "damping": damping,
            "lr": lr,
            "options": options,
            "torch": torch.__version__,
        },
        "runs": runs,
    }


def save_record(record: dict[str, Any], path: str | Path) -> None:
    """Write a record as strict JSON (non-finite numbers were already stored as null)."""
    text = json.dumps(record, indent=2, allow_nan=False)
    Path(path).write_text(text + "\n")


# --------------------------------------------------------------------------------------------
# Plot


def plot_record(record: dict[str, Any], path: str | Path, *, title: str | None = None) -> None:
    """Plot training (solid) and test (dashed) loss against epoch and against wall time.

    A third panel shows test accuracy for classification. Failed runs are left out.

    Parameters
    ----------
    record : dict
        As returned by :func:`compare_optimizers`.
    path : str or Path
        Output file; the format follows the suffix (``.png``, ``.svg``, ``.pdf``).
    title : str, optional
        Default: dataset and model.

    Raises
    ------
    MissingDependencyError
        Without matplotlib.
    """
    require("matplotlib", "plot", "plotting (--plot)")
    # The object-oriented API with an explicit Agg canvas: no global backend state is touched
    # and no display is needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    classification = record["dataset"]["task"] == "classification"
    panels = 3 if classification else 2
    figure = Figure(figsize=(4.6 * panels, 3.8), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, panels)
    for index, run in enumerate(record["runs"]):
        history = run.get("history")
        if not history:
            continue
        color = f"C{index}"
        label = run["optimizer"]
        train_loss = [_nan_if_none(v) for v in history["train_loss"]]
        test_loss = [_nan_if_none(v) for v in history["test_loss"]]
        for axis, x in ((axes[0], history["epoch"]), (axes[1], history["wall_time"])):
            axis.plot(x, train_loss, color=color, label=f"{label} train", marker=".")
            axis.plot(x, test_loss, color=color, linestyle="--", label=f"{label} test")
        if classification:
            accuracy = [_nan_if_none(v) for v in history["test_accuracy"]]
            axes[2].plot(history["epoch"], accuracy, color=color, label=label, marker=".")
    loss_name = "cross-entropy" if classification else "mean squared error (standardised)"
    for axis, xlabel in ((axes[0], "epoch"), (axes[1], "wall time of the optimizer (s)")):
        axis.set_xlabel(xlabel)
        axis.set_ylabel(loss_name)
        axis.set_yscale("log")
        axis.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize="small")
    axes[0].xaxis.set_major_locator(MaxNLocator(integer=True))
    if classification:
        axes[2].set_xlabel("epoch")
        axes[2].set_ylabel("test accuracy")
        axes[2].grid(True, alpha=0.3)
        axes[2].legend(fontsize="small")
        axes[2].xaxis.set_major_locator(MaxNLocator(integer=True))
    config = record.get("config", {})
    figure.suptitle(
        title
        or (
            f"{record['dataset']['name']}, {record['model']['spec']} "
            f"({record['model']['n_parameters']} parameters), batch {config.get('batch_size')}"
        )
    )
    figure.savefig(path, dpi=120)


def _nan_if_none(value: float | None) -> float:
    return math.nan if value is None else value
