"""The training loop behind ``hvpseries train`` and ``hvpseries demo``.

Optimizers are compared fairly on small problems: every optimizer starts from the same initial
weights and sees the same mini-batches in the same order; the losses reported are full-data
losses (not running batch averages) evaluated after each epoch and, with a time budget, at the
same marks of optimizer time for every optimizer; wall time counts only the optimizer's work
(forward, backward, HVPs, the update), never the evaluation.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

from ._budget import TimeBudget, schedule
from ._datasets import Dataset
from ._dependencies import require
from ._models import ModelSpec, build_model, parse_model_spec
from ._objective import as_tensors, batch_closure, evaluate, loss_function
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
# The lists of a run's time history (with a time budget): one row per time mark.
TIME_HISTORY_KEYS = ("time_mark", "step", *HISTORY_KEYS)


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
    epochs: int | None = None,
    batch_size: int = 128,
    seconds: float | None = None,
    time_points: int | None = None,
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
    epochs : int, optional
        Passes over the training set. Without ``seconds`` the run takes exactly this many
        (default 10); with ``seconds`` it is an upper bound (default: none, time alone ends
        the run).
    batch_size : int, default 128
        Mini-batch size; each epoch splits a fresh permutation of the training set into
        ``ceil(n_train / batch_size)`` batches of near-equal size.
    seconds : float, optional
        A time budget: train for this many seconds of optimizer time (the ``wall_time`` of the
        history, evaluation excluded), through as many epochs as it takes. The run stops after
        the first step that reaches ``seconds``.
    time_points : int, optional
        With ``seconds`` (and only with it): evaluate the full-data losses at the marks
        ``seconds * k / time_points``, ``k = 1, ..., time_points`` (default 20), each after the
        first step that reaches it.
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
        ``optimizer``, ``optimizer_class``, ``hyperparameters``, ``status`` (``"completed"``,
        or ``"diverged"`` when the training loss became NaN or infinite, which ends the run),
        ``message`` (why a run diverged, or that the epoch limit ended it before the time
        budget was spent), ``history`` and, with ``seconds``, ``time_history`` and ``end``.

        ``history`` has one row per completed epoch (row 0 is the initial model), as lists of
        ``epoch``, ``train_loss``, ``test_loss`` (full-data losses after the epoch; null when
        not finite), ``train_accuracy`` and ``test_accuracy`` (classification; else None),
        ``wall_time`` (seconds of optimizer work since the start, evaluation excluded), and
        the cumulative counts ``hvp``, ``gradient`` and ``loss`` (evaluations of the loss).

        ``time_history`` has one row per time mark (row 0 is the initial model, at mark 0),
        with the same lists plus ``time_mark`` (the mark, in seconds) and ``step`` (steps
        taken); there ``wall_time`` is the optimizer time actually spent (at least the mark)
        and ``epoch`` the passes over the data so far, ``step / ceil(n_train / batch_size)``.
        A step that reaches several marks gives each of them the same state. A run that
        diverges or meets the epoch limit has rows only for the marks it reached.

        ``end`` holds the ``wall_time``, ``step`` and ``epoch`` at which the run stopped.

    Raises
    ------
    ValueError
        For bad ``epochs``, ``batch_size``, ``seconds`` or ``time_points`` (also when given
        without ``seconds``), or optimizer options.
    TypeError
        When ``seconds`` is not a real number.
    """
    torch = require("torch", "torch", "training")
    epochs, budget = schedule(epochs, batch_size, seconds, time_points)
    tensors = as_tensors(dataset, next(model.parameters()).dtype, device)
    first_order = optimizer_name in DEFAULT_LR
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        optimizer = make_optimizer(
            optimizer_name, model.parameters(), lr=lr, damping=damping, options=options
        )
        training = _Training(
            model,
            optimizer,
            tensors,
            dataset.task,
            first_order=first_order,
            device=device,
            batch_size=batch_size,
            budget=budget,
        )
        generator = torch.Generator().manual_seed(seed)
        bar = _progress_bar(
            optimizer_name,
            training.bar_length(epochs),
            progress,
            progress_file,
            timed=budget is not None,
        )
        try:
            status, note = _train(training, epochs, generator, bar)
        finally:
            if bar is not None:
                bar.close()
    return training.run_record(optimizer_name, status, note)


def _train(training: _Training, epochs: int | None, generator: Any, bar: Any) -> tuple[str, str]:
    """Take steps until the epochs or the time budget are spent or the loss diverges.

    Return the status and the message of the run.
    """
    training.record_start()
    epoch = 0
    while (epochs is None or epoch < epochs) and not training.budget_spent:
        epoch += 1
        for indices in _batches(training.n_train, training.batch_size, generator):
            if training.budget_spent:
                return "completed", ""
            loss, seconds = training.step(indices)
            _advance(bar, loss, 1 if training.budget is None else seconds)
            if not training.record_marks():
                return "diverged", (
                    f"the training loss became NaN or infinite by {training.elapsed:.3g} s of "
                    f"optimizer time (epoch {epoch})"
                )
        if not training.record_epoch(epoch):
            return "diverged", f"the training loss became NaN or infinite in epoch {epoch}"
    if training.budget is not None and not training.budget_spent:
        return "completed", (
            f"the epoch limit ({epochs}) ended the run after {training.elapsed:.3g} s, before "
            f"the time budget of {training.budget.seconds:g} s was spent"
        )
    return "completed", ""


class _Training:
    """One optimizer's run: its steps, its optimizer time and the history rows so far."""

    def __init__(
        self,
        model: Any,
        optimizer: Any,
        tensors: tuple[Any, Any, Any, Any],
        task: str,
        *,
        first_order: bool,
        device: Any,
        batch_size: int,
        budget: TimeBudget | None,
    ) -> None:
        self.model, self.optimizer, self.tensors, self.task = model, optimizer, tensors, task
        self.first_order, self.device = first_order, device
        self.batch_size, self.budget = batch_size, budget
        self.loss_fn = loss_function(task)
        self.n_train = tensors[0].shape[0]
        self.steps, self.elapsed = 0, 0.0
        self.history: dict[str, list[Any]] = {key: [] for key in HISTORY_KEYS}
        self.time_history: dict[str, list[Any]] = {key: [] for key in TIME_HISTORY_KEYS}

    @property
    def batches_per_epoch(self) -> int:
        """The number of batches in one pass over the training set."""
        return max(1, math.ceil(self.n_train / self.batch_size))

    @property
    def marks_recorded(self) -> int:
        """The number of time marks with a row (row 0, the start, is not a mark)."""
        return len(self.time_history["time_mark"]) - 1

    @property
    def budget_spent(self) -> bool:
        """Whether a time budget is set and all its marks are recorded."""
        return self.budget is not None and self.marks_recorded == self.budget.time_points

    def bar_length(self, epochs: int | None) -> float:
        """Return the length of the progress bar: seconds with a time budget, else steps.

        ``epochs`` is None only with a time budget.
        """
        if self.budget is not None:
            return self.budget.seconds
        return (epochs or 0) * self.batches_per_epoch

    def step(self, indices: Any) -> tuple[Any, float]:
        """Take one optimizer step on the batch ``indices``; return its loss and seconds."""
        torch = require("torch", "torch", "training")
        x_train, y_train = self.tensors[0], self.tensors[1]
        closure = batch_closure(
            self.model,
            self.loss_fn,
            self.optimizer,
            x_train[indices],
            y_train[indices],
            self.first_order,
        )
        loss, seconds = _timed_step(torch, self.optimizer, closure, self.device)
        self.elapsed += seconds
        self.steps += 1
        return loss, seconds

    def record_epoch(self, epoch: int) -> bool:
        """Append the state after ``epoch`` to ``history``; return whether the loss is finite."""
        row = {"epoch": epoch, **self._state()}
        _append_row(self.history, row)
        return row["train_loss"] is not None

    def record_start(self) -> None:
        """Record the initial model as row 0 of ``history`` and, with a budget, ``time_history``."""
        state = self._state()
        _append_row(self.history, {"epoch": 0, **state})
        if self.budget is not None:
            _append_row(self.time_history, {"time_mark": 0.0, "step": 0, "epoch": 0.0, **state})

    def record_marks(self) -> bool:
        """Append the state as the row of every time mark reached since the last row.

        Without a budget, or when no new mark was reached, do nothing. Return whether the
        training loss is finite (True when nothing was evaluated).
        """
        if self.budget is None:
            return True
        marks = self.budget.marks[self.marks_recorded : self.budget.marks_reached(self.elapsed)]
        if not marks:
            return True
        row = {"step": self.steps, "epoch": self.steps / self.batches_per_epoch, **self._state()}
        for mark in marks:
            _append_row(self.time_history, {"time_mark": mark, **row})
        return row["train_loss"] is not None

    def run_record(self, name: str, status: str, message: str) -> dict[str, Any]:
        """Return the record of the run of the optimizer ``name`` (see :func:`train_one`)."""
        record = {
            "optimizer": name,
            "optimizer_class": type(self.optimizer).__name__,
            "hyperparameters": hyperparameters(self.optimizer),
            "status": status,
            "message": message,
            "history": self.history,
        }
        if self.budget is not None:
            record["time_history"] = self.time_history
            record["end"] = {
                "wall_time": self.elapsed,
                "step": self.steps,
                "epoch": self.steps / self.batches_per_epoch,
            }
        return record

    def _state(self) -> dict[str, Any]:
        """Return the full-data losses and accuracies, the optimizer time and work counts now."""
        x_train, y_train, x_test, y_test = self.tensors
        train_loss, train_accuracy = evaluate(self.model, x_train, y_train, self.task)
        test_loss, test_accuracy = evaluate(self.model, x_test, y_test, self.task)
        return {
            "train_loss": finite_or_none(train_loss),
            "test_loss": finite_or_none(test_loss),
            "train_accuracy": train_accuracy,
            "test_accuracy": test_accuracy,
            "wall_time": self.elapsed,
            **_counters(self.optimizer, self.steps, self.first_order),
        }


def _append_row(history: dict[str, list[Any]], row: dict[str, Any]) -> None:
    for key, values in history.items():
        values.append(row[key])


def _timed_step(
    torch: Any, optimizer: Any, closure: Callable[[], Any], device: Any
) -> tuple[Any, float]:
    """Take one optimizer step; return its loss and the seconds it took (GPU work included)."""
    start = time.perf_counter()
    loss = optimizer.step(closure)
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()
    return loss, time.perf_counter() - start


def _advance(bar: Any, loss: Any, amount: float) -> None:
    """Move the progress bar (if shown) on by ``amount`` and show the batch loss."""
    if bar is not None and not bar.disable:
        bar.update(amount)
        if loss is not None:
            bar.set_postfix(loss=f"{float(loss.detach()):.4g}", refresh=False)


def _progress_bar(name: str, total: float, progress: bool | None, file: Any, *, timed: bool) -> Any:
    """Return a tqdm bar over ``total`` steps, or ``total`` seconds of optimizer time."""
    if progress is False:
        return None
    from tqdm import tqdm

    # A time budget counts seconds, which tqdm would print with all their digits.
    bar_format = "{l_bar}{bar}| {n:.2f}/{total:.2f} s of optimizer time{postfix}" if timed else None
    # disable=None: tqdm shows the bar only when the output is a terminal.
    return tqdm(
        total=total,
        desc=f"{name:<10}",
        unit="step",
        bar_format=bar_format,
        file=file,
        leave=False,
        disable=None if progress is None else False,
    )


def compare_optimizers(
    dataset: Dataset,
    model_spec: str | ModelSpec,
    optimizers: Sequence[str],
    *,
    epochs: int | None = None,
    batch_size: int = 128,
    seconds: float | None = None,
    time_points: int | None = None,
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
    epochs, batch_size, seconds, time_points, seed, device, progress, progress_file
        See :func:`train_one`; ``seed`` also seeds the initial weights. With ``seconds`` every
        optimizer trains for the same optimizer time and its losses are evaluated at the same
        time marks.
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
        count), ``config`` and ``runs`` (one :func:`train_one` record per optimizer; a failed
        run has ``history`` None, and ``time_history`` None with a time budget). ``config``
        holds the settings; its ``epochs`` is the number of epochs, or with a time budget the
        epoch limit (None: none), and its ``budget`` is None without a time budget, else
        ``{"seconds": S, "time_points": N, "time_marks": [S/N, 2S/N, ..., S]}``: the marks of
        the rows 1 to N of every run's ``time_history``.

    Raises
    ------
    ValueError
        For bad settings (see :func:`train_one`), settings for an optimizer not compared, or
        an optimizer that cannot be constructed with its settings.
    """
    torch = require("torch", "torch", "training")
    if on_error not in ("raise", "record"):
        message = f"on_error must be 'raise' or 'record', got {on_error!r}"
        raise ValueError(message)
    epochs, budget = schedule(epochs, batch_size, seconds, time_points)
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
    settings = {
        "epochs": epochs,
        "batch_size": batch_size,
        "seconds": seconds,
        "time_points": time_points,
        "seed": seed,
        "damping": damping,
        "device": device,
        "progress": progress,
        "progress_file": progress_file,
    }
    runs = _train_each(
        initial, dataset, optimizers, settings, lr=lr, options=options, on_error=on_error
    )
    return {
        "dataset": dataset.summary(),
        "model": {
            "spec": str(model_spec),
            "n_parameters": sum(p.numel() for p in initial.parameters()),
        },
        "config": {
            "epochs": epochs,
            "batch_size": batch_size,
            "budget": None if budget is None else budget.summary(),
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


def _train_each(
    initial: Any,
    dataset: Dataset,
    optimizers: Sequence[str],
    settings: dict[str, Any],
    *,
    lr: dict[str, float],
    options: dict[str, dict[str, Any]],
    on_error: str,
) -> list[dict[str, Any]]:
    """Train a copy of ``initial`` with each optimizer; return their run records.

    ``settings`` (all but ``lr`` and ``options``, which are per optimizer) go to
    :func:`train_one`. With ``on_error="record"`` a run that raises is recorded as failed.
    """
    runs = []
    for name in optimizers:
        model = copy.deepcopy(initial)
        try:
            run = train_one(
                model, dataset, name, lr=lr.get(name), options=options.get(name), **settings
            )
        except Exception as error:
            if on_error == "raise":
                raise
            run = _failed_run(name, error, timed=settings["seconds"] is not None)
        runs.append(run)
    return runs


def _failed_run(name: str, error: Exception, *, timed: bool) -> dict[str, Any]:
    """Return the run record of an optimizer whose training raised ``error``."""
    run: dict[str, Any] = {
        "optimizer": name,
        "status": "failed",
        "message": f"{type(error).__name__}: {error}",
        "history": None,
    }
    if timed:
        run["time_history"] = None
    return run
