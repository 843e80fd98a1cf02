"""The training loop behind ``hvpseries train`` and ``hvpseries demo``.

Optimizers are compared fairly on small problems: every optimizer starts from the same initial
weights and sees the same mini-batches in the same order; the losses reported per epoch are
full-data losses evaluated after the epoch (not running batch averages); wall time counts only
the optimizer's work (forward, backward, HVPs, the update), never the evaluation.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

from ._datasets import Dataset
from ._dependencies import require
from ._models import ModelSpec, build_model, parse_model_spec
from ._optimizers import DEFAULT_LR, make_optimizer
from ._records import finite_or_none, hyperparameters

__all__ = ["compare_optimizers", "train_one"]

# The per-epoch lists of a run's history, in the order of the record.
HISTORY_KEYS = (
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
    _check_positive_integers(epochs=epochs, batch_size=batch_size)
    tensors = _as_tensors(dataset, next(model.parameters()).dtype, device)
    x_train, y_train = tensors[0], tensors[1]
    loss_fn = _loss_function(dataset.task)
    first_order = optimizer_name in DEFAULT_LR
    history: dict[str, list[Any]] = {key: [] for key in HISTORY_KEYS}
    status, note = "completed", ""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        optimizer = make_optimizer(
            optimizer_name, model.parameters(), lr=lr, damping=damping, options=options
        )
        generator = torch.Generator().manual_seed(seed)
        steps, elapsed = 0, 0.0

        def record(epoch: int) -> bool:
            finite = _record_losses(history, epoch, model, tensors, dataset.task)
            history["wall_time"].append(elapsed)
            for key, count in _counters(optimizer, steps, first_order).items():
                history[key].append(count)
            return finite

        record(0)
        n_batches = max(1, math.ceil(x_train.shape[0] / batch_size))
        bar = _progress_bar(optimizer_name, epochs * n_batches, progress, progress_file)
        try:
            for epoch in range(1, epochs + 1):
                batches = _batches(x_train.shape[0], batch_size, generator)
                for indices in batches:
                    x_batch, y_batch = x_train[indices], y_train[indices]
                    closure = _closure(model, loss_fn, optimizer, x_batch, y_batch, first_order)
                    loss, seconds = _timed_step(torch, optimizer, closure, device)
                    elapsed += seconds
                    steps += 1
                    _advance(bar, loss)
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
        "hyperparameters": hyperparameters(optimizer),
        "status": status,
        "message": note,
        "history": history,
    }


def _check_positive_integers(**values: Any) -> None:
    for label, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            message = f"{label} must be a positive integer, got {value!r}"
            raise ValueError(message)


def _as_tensors(dataset: Dataset, dtype: Any, device: Any) -> tuple[Any, Any, Any, Any]:
    """Return ``x_train, y_train, x_test, y_test`` as tensors (integer class labels)."""
    torch = require("torch", "torch", "training")
    target_dtype = torch.int64 if dataset.task == "classification" else dtype
    return (
        torch.as_tensor(dataset.x_train, dtype=dtype, device=device),
        torch.as_tensor(dataset.y_train, dtype=target_dtype, device=device),
        torch.as_tensor(dataset.x_test, dtype=dtype, device=device),
        torch.as_tensor(dataset.y_test, dtype=target_dtype, device=device),
    )


def _record_losses(
    history: dict[str, list[Any]],
    epoch: int,
    model: Any,
    tensors: tuple[Any, Any, Any, Any],
    task: str,
) -> bool:
    """Append ``epoch`` and the full-data losses and accuracies after it to ``history``.

    Return whether the training loss is finite.
    """
    x_train, y_train, x_test, y_test = tensors
    train_loss, train_accuracy = _evaluate(model, x_train, y_train, task)
    test_loss, test_accuracy = _evaluate(model, x_test, y_test, task)
    history["epoch"].append(epoch)
    history["train_loss"].append(finite_or_none(train_loss))
    history["test_loss"].append(finite_or_none(test_loss))
    history["train_accuracy"].append(train_accuracy)
    history["test_accuracy"].append(test_accuracy)
    return math.isfinite(train_loss)


def _timed_step(
    torch: Any, optimizer: Any, closure: Callable[[], Any], device: Any
) -> tuple[Any, float]:
    """Take one optimizer step; return its loss and the seconds it took (GPU work included)."""
    start = time.perf_counter()
    loss = optimizer.step(closure)
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()
    return loss, time.perf_counter() - start


def _advance(bar: Any, loss: Any) -> None:
    """Move the progress bar (if shown) on by one step and show the batch loss."""
    if bar is not None and not bar.disable:
        bar.update(1)
        if loss is not None:
            bar.set_postfix(loss=f"{float(loss.detach()):.4g}", refresh=False)


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
    lr, options = _settings_per_optimizer(lr, options, optimizers)
    initial = build_model(
        model_spec,
        dataset.n_features,
        dataset.n_outputs,
        seed=seed,
        init_scale=init_scale,
        dtype=dtype,
        device=device,
    )
    _check_configurations(initial, optimizers, lr, damping, options)
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
            run = _failed_run(name, error)
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


def _settings_per_optimizer(
    lr: dict[str, float] | None,
    options: dict[str, dict[str, Any]] | None,
    optimizers: Sequence[str],
) -> tuple[dict[str, float], dict[str, dict[str, Any]]]:
    """Copy the learning rates and options; refuse those for optimizers not compared."""
    lr = dict(lr or {})
    options = {name: dict(value) for name, value in (options or {}).items()}
    unknown = sorted(set(lr) - set(optimizers)) + sorted(set(options) - set(optimizers))
    if unknown:
        message = f"settings given for optimizers that are not compared: {', '.join(unknown)}"
        raise ValueError(message)
    return lr, options


def _check_configurations(
    initial: Any,
    optimizers: Sequence[str],
    lr: dict[str, float],
    damping: float | None,
    options: dict[str, dict[str, Any]],
) -> None:
    """Construct every optimizer once, before spending time on training, to check it."""
    for name in optimizers:
        make_optimizer(
            name,
            copy.deepcopy(initial).parameters(),
            lr=lr.get(name),
            damping=damping,
            options=options.get(name),
        )


def _failed_run(name: str, error: Exception) -> dict[str, Any]:
    """Return the run record of an optimizer whose training raised ``error``."""
    return {
        "optimizer": name,
        "status": "failed",
        "message": f"{type(error).__name__}: {error}",
        "history": None,
    }
