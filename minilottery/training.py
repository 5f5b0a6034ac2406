"""Training by iterations, as in Frankle & Carbin (2019): minibatches of 60, early stopping on validation loss.

The paper counts training in iterations (minibatch steps), not epochs, and judges a network by two numbers
(Section 2, Figure 3): the *iteration of early stopping*, the evaluated iteration where the validation loss
is lowest, and the test accuracy at that iteration. ``train`` records both, plus the whole learning curve.

Where the time goes, and how this loop keeps it on the device:

* The training set is moved to the device once. Each epoch draws a permutation on the host from a generator
  seeded with ``config.seed`` (so the same seed gives the same batches in every IMP round), moves it to the
  device once, and slices a batch's indices from it per step: no host-device copy and no synchronisation per
  step. The last partial batch of an epoch is dropped, so every step sees exactly ``batch_size`` examples.
* ``train_step`` returns the loss as a 0-d device array. The losses are kept on the device and fetched in one
  copy at each evaluation (``float()`` on a GPU array waits for the GPU: do it once per evaluation, not per
  step). That is also where a non-finite loss is caught, naming the first step that produced it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from minilottery.backend import device_of, get_array_module, get_backend, to_device, to_numpy
from minilottery.checks import check_choice, check_int, check_real, is_integer
from minilottery.files import atomic_write_json
from minilottery.layers import Conv2d, Sequential
from minilottery.loss import softmax_cross_entropy
from minilottery.models import DEFAULT_MODEL, PAPER_TRAINING
from minilottery.optim import OPTIMIZERS, make_optimizer


class NonFiniteLossError(RuntimeError):
    """The training loss became nan or inf (usually a learning rate too large for the network).

    Attributes:
        iteration: the first iteration (1-based: the n-th step) whose loss was not finite.
    """

    def __init__(self, message: str, iteration: int) -> None:
        super().__init__(message)
        self.iteration = iteration

    def __reduce__(self):
        # The default pickling of an exception calls ``cls(*self.args)``, which lacks ``iteration``: a worker
        # process raising this error would reach the parent as a BrokenProcessPool instead.
        return type(self), (str(self.args[0]), self.iteration)


class ChanceLevelWarning(UserWarning):
    """Training ended with the validation accuracy at chance level: it diverged (but stayed finite) or did
    not learn, e.g. Adam with a learning rate far too large. The numbers are still recorded."""


CHANCE_FACTOR = 1.5  # a final validation accuracy <= CHANCE_FACTOR / classes counts as chance level


@dataclass
class TrainConfig:
    """How to train one network. The defaults are the paper's LeNet-300-100 settings (Figure 2: Adam 1.2e-3,
    batch 60, 50K iterations); ``TrainConfig.paper(model)`` gives another network's.

    Attributes:
        iterations: number of minibatch steps (the paper: 50K for LeNet, 20K-30K for Conv-2/4/6).
        batch_size: examples per step.
        optimizer: "adam" or "sgd".
        lr: learning rate.
        momentum, nesterov: SGD only.
        weight_decay: L2 penalty added to the gradient (0 in the paper's main experiments).
        eval_every: evaluate on the validation and test sets every this many iterations (and at the end).
        seed: seed of the data order (the weights' seed is the model's own, see ``models.build_model``).
        eval_batch_size: examples per forward pass when evaluating; None (the default): as many as a memory
            budget allows (``evaluation_batch``). Memory and speed depend on it, and the last bits of the mean
            loss (it is summed batch by batch), so a run folder continues under another value.
    """

    iterations: int = PAPER_TRAINING[DEFAULT_MODEL]["iterations"]
    batch_size: int = 60
    optimizer: str = "adam"
    lr: float = PAPER_TRAINING[DEFAULT_MODEL]["lr"]
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    eval_every: int = 100
    seed: int = 0
    eval_batch_size: int | None = None

    @classmethod
    def paper(cls, model: str, **overrides: Any) -> TrainConfig:
        """The paper's training of ``model`` (Figure 2: its iterations and learning rate, Adam, batch 60), with
        ``overrides`` (TrainConfig fields; a value of None keeps the paper's)."""
        check_choice("--model", model, PAPER_TRAINING)
        settings = {"iterations": PAPER_TRAINING[model]["iterations"], "lr": PAPER_TRAINING[model]["lr"]}
        return cls(**{**settings, **{k: v for k, v in overrides.items() if v is not None}})

    def validate(self) -> TrainConfig:
        """Checks every field; raises ValueError naming the command-line option. Returns self."""
        for option, value in (("--iterations", self.iterations), ("--batch-size", self.batch_size),
                              ("--eval-every", self.eval_every), ("--eval-batch-size", self.eval_batch_size)):
            if value is not None or option != "--eval-batch-size":  # None: by the memory budget
                check_int(option, value)
        check_choice("--optimizer", self.optimizer, OPTIMIZERS)
        check_real("--lr", self.lr, low=0, low_open=True, hint="e.g. 1.2e-3")
        check_real("--momentum", self.momentum, low=0, high=1, hint="e.g. 0.9, or 0 for plain SGD")
        if self.optimizer != "sgd" and (self.momentum or self.nesterov):
            raise ValueError(f"--momentum and --nesterov apply to --optimizer sgd only, got --optimizer "
                             f"{self.optimizer} with momentum {self.momentum}, nesterov {self.nesterov}")
        if self.nesterov and self.momentum == 0:
            raise ValueError("--nesterov needs --momentum > 0, got --momentum 0")
        check_real("--weight-decay", self.weight_decay, low=0, hint="e.g. 1e-4, or 0 for none")
        check_int("--seed", self.seed, low=0)
        return self

    def optimizer_kwargs(self) -> dict[str, Any]:
        """The keyword arguments ``make_optimizer`` takes for ``self.optimizer``."""
        if self.optimizer == "sgd":
            return {"momentum": self.momentum, "nesterov": self.nesterov, "weight_decay": self.weight_decay}
        return {"weight_decay": self.weight_decay}


HISTORY_KEYS = ("iteration", "train_loss", "val_loss", "val_accuracy", "test_loss", "test_accuracy")


@dataclass
class TrainResult:
    """What a training run measured. Accuracies are fractions in [0, 1].

    Attributes:
        history: one list per key of ``HISTORY_KEYS``, one entry per evaluation; ``train_loss`` is the mean
            training loss over the steps since the previous evaluation.
        early_stop_iteration: the evaluated iteration with the lowest validation loss (the paper's
            "iteration of early stopping"; the first one on a tie).
        test_accuracy_at_early_stop: test accuracy at that iteration.
        final_test_accuracy: test accuracy after the last iteration.
        snapshots: iteration -> host copy of every parameter (``model.state_dict()``) for rewinding.
        seconds: wall-clock time of the run, evaluations included.
        kernels: weight name -> "sparse" or "dense", how each weighted layer was computed, when a ``kernels``
            hook of ``train`` ran the steps (e.g. ``minilottery.lab.sparse_training``); empty when the model's
            own masked dense layers did.
    """

    history: dict[str, list]
    early_stop_iteration: int
    test_accuracy_at_early_stop: float
    final_test_accuracy: float
    snapshots: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)
    seconds: float = 0.0
    kernels: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of everything except the snapshots."""
        return {
            "early_stop_iteration": self.early_stop_iteration,
            "test_accuracy_at_early_stop": self.test_accuracy_at_early_stop,
            "final_test_accuracy": self.final_test_accuracy,
            "seconds": self.seconds,
            "history": {key: list(values) for key, values in self.history.items()},
            **({"kernels": dict(self.kernels)} if self.kernels else {}),
        }


def train_step(model: Sequential, optimizer: Any, x: Any, y: Any) -> Any:
    """One minibatch step: forward, softmax cross-entropy, backward, optimizer update.

    Args:
        x: (N, C, H, W) images on the model's device; y: (N,) int64 labels on the same device.

    Returns:
        The minibatch's mean loss, a 0-d device array (no host synchronisation happens here).
    """
    logits = model.forward(x)  # (N, 10)
    loss, dlogits = softmax_cross_entropy(logits, y)
    model.backward(dlogits, input_grad=False)  # the gradient w.r.t. the images is never needed
    optimizer.step()  # masked weights get a zero gradient in backward, so they stay as they are
    return loss


# The evaluation batch when none is given (``evaluation_batch``): as many examples as keep the largest array of one
# forward pass (an activation, or a convolution's im2col matrix) within this many bytes, within EVAL_BATCH_BOUNDS.
# On a CPU a batch whose arrays stay in the cache is fastest: LeNet-300-100 evaluated 15,000 images in 114-116 ms
# at batches of 500-1,000 against 144 ms at 100 (one thread, median of 6); on a GPU fewer, larger batches launch
# fewer kernels. Conv-2's im2col matrix (1.3 MB per image) keeps it at the lower bound on a CPU.
EVAL_BATCH_BYTES = {"cpu": 4 * 2**20, "gpu": 256 * 2**20}
EVAL_BATCH_BOUNDS = (100, 10_000)


def evaluation_batch(model: Sequential, example_shape: tuple[int, ...]) -> int:
    """Examples per evaluation pass for ``model`` on inputs of ``example_shape`` (C, H, W), from its memory budget.

    One example goes through the model in evaluation mode to find the largest array a forward pass makes per
    example (counting each convolution's im2col matrix, KH*KW*C rows by OH*OW columns); the batch is
    ``EVAL_BATCH_BYTES[device]`` over that array's bytes, within ``EVAL_BATCH_BOUNDS``.
    """
    device = _model_device(model)
    params = list(model.parameters().values())
    dtype = params[0].dtype if params else np.float32
    x = to_device(np.zeros((1, *example_shape), dtype=dtype), device)  # (1, C, H, W)
    largest = x.size
    was_training = all(layer.training for layer in model.layers)
    model.eval()
    try:
        for layer in model.layers:
            out = layer.forward(x)
            # a convolution's im2col matrix, (KH*KW*C, OH*OW) for one example: more than Winograd's convolution
            # keeps where it runs instead (36 x C numbers per 16 output pixels)
            if isinstance(layer, Conv2d):
                largest = max(largest, layer.kh * layer.kw * x.shape[1] * out.shape[2] * out.shape[3])
            largest, x = max(largest, out.size), out
    finally:
        if was_training:
            model.train()
    low, high = EVAL_BATCH_BOUNDS
    budget = EVAL_BATCH_BYTES.get(device, EVAL_BATCH_BYTES["cpu"])
    return max(low, min(high, budget // (largest * np.dtype(dtype).itemsize)))


def evaluate(model: Sequential, x: Any, y: Any, batch_size: int | None = None) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on (x, y), in batches, on the model's device.

    Args:
        x: (N, C, H, W) images; y: (N,) int64 labels (host or device arrays; moved to the model's device).
        batch_size: examples per forward pass (None: ``evaluation_batch``, from the memory budget).

    Returns:
        (mean loss, accuracy in [0, 1]) as Python floats: one synchronisation at the end, none per batch.
        The model is in evaluation mode meanwhile and in training mode afterwards if it was before.
    """
    n = len(y)
    if n == 0:
        raise ValueError("evaluate: the evaluation set is empty")
    device = _model_device(model)
    x, y = to_device(x, device), to_device(y, device)
    if batch_size is None:
        batch_size = evaluation_batch(model, tuple(x.shape[1:]))
    was_training = all(layer.training for layer in model.layers)
    model.eval()
    try:
        total_loss = correct = 0.0
        for start in range(0, n, batch_size):
            xb, yb = x[start:start + batch_size], y[start:start + batch_size]
            logits = model.forward(xb)  # (B, 10)
            loss, _ = softmax_cross_entropy(logits, yb)
            total_loss = total_loss + loss * len(yb)  # 0-d device arrays: summed on the device
            correct = correct + (logits.argmax(axis=1) == yb).sum()
        return float(total_loss) / n, float(correct) / n
    finally:
        if was_training:
            model.train()


def train(
    model: Sequential,
    data: Any,
    config: TrainConfig,
    *,
    device: str | None = None,
    snapshot_at: Iterable[int] = (),
    progress: bool = True,
    desc: str = "",
    kernels: Callable[[Sequential], contextlib.AbstractContextManager[Any]] | None = None,
) -> TrainResult:
    """Trains ``model`` (with whatever masks it holds) for ``config.iterations`` steps; returns the curve.

    Args:
        model: the network, e.g. from ``models.build_model``; it is moved to ``device`` and trained in place.
        data: a ``minilottery.data.Dataset`` (host arrays x_train, y_train, x_val, y_val, x_test, y_test).
        config: the settings (validated here).
        device: "cpu", "gpu", ...; default: where the model's parameters already are.
        snapshot_at: iterations at which to keep a host copy of the weights (0 = before the first step);
            the lottery ticket experiment rewinds to these (Section 2; Frankle et al. 2019 for k > 0).
        progress: show a tqdm progress bar with the latest loss and validation accuracy.
        desc: the bar's label, e.g. "round 3 ticket".
        kernels: None (the specification): the steps run on ``model``'s own masked dense layers. Otherwise a
            hook that computes the same steps another way: called with the model (on ``device``, in training
            mode), it returns a context manager that yields the network the steps, evaluations and snapshots
            run on (a ``Sequential`` with the model's parameter names, whose ``state_dict()`` is the model's),
            and writes the trained weights back into ``model`` on exit; the network's ``kernels`` attribute is
            recorded in the result. E.g. ``minilottery.lab.sparse_training.SparseKernels()``.

    Returns:
        TrainResult with the history, the early-stopping iteration and the test accuracies.

    Raises:
        ValueError: an invalid config, labels outside the model's classes, an empty split, a batch larger
            than the training set, or a snapshot iteration outside 0..iterations.
        NonFiniteLossError: the training loss became nan or inf; the message names the first such iteration.

    Warns:
        ChanceLevelWarning: the final validation accuracy is at chance level (<= 1.5 / number of classes).
    """
    config.validate()
    snapshot_at = _check_snapshots(snapshot_at, config.iterations)
    num_classes = _num_classes(model)
    check_data(data, config.batch_size, num_classes)
    n_train = len(data.y_train)
    device = get_backend(device).name if device is not None else _model_device(model)
    model.to(device).train()

    # Every split moves to the device once; batches are slices of these arrays from here on.
    x_train, y_train = to_device(data.x_train, device), to_device(data.y_train, device)
    x_val, y_val = to_device(data.x_val, device), to_device(data.y_val, device)
    x_test, y_test = to_device(data.x_test, device), to_device(data.y_test, device)
    xp = get_array_module(x_train)
    batches_per_epoch = n_train // config.batch_size  # the last partial batch is dropped
    order_rng = np.random.default_rng(config.seed)  # the data order depends on config.seed only

    history: dict[str, list] = {key: [] for key in HISTORY_KEYS}
    snapshots = {0: model.state_dict()} if 0 in snapshot_at else {}
    pending: list[Any] = []  # 0-d device losses of the steps since the last evaluation
    started = time.perf_counter()
    bar = tqdm(total=config.iterations, desc=desc or None, disable=not progress, unit="it", dynamic_ncols=True)
    # NumPy's overflow/invalid warnings are off: a loss that is not finite is caught below (_check_finite),
    # naming its iteration, which those warnings would only repeat, less clearly.
    stepped = contextlib.nullcontext(model) if kernels is None else kernels(model)
    with np.errstate(over="ignore", invalid="ignore"), stepped as net:  # net: what the steps run on (the model)
        optimizer = make_optimizer(config.optimizer, net, config.lr, **config.optimizer_kwargs())
        # found once, not at each evaluation: its one-example pass would resize Conv2d's workspaces every time
        eval_batch = config.eval_batch_size or evaluation_batch(net, tuple(x_val.shape[1:]))
        try:
            order = None
            for iteration in range(1, config.iterations + 1):
                step_in_epoch = (iteration - 1) % batches_per_epoch
                if step_in_epoch == 0:  # a new epoch: a new permutation, moved to the device once
                    order = to_device(order_rng.permutation(n_train), device)  # (n_train,) int64
                index = order[step_in_epoch * config.batch_size:(step_in_epoch + 1) * config.batch_size]  # (B,)
                pending.append(train_step(net, optimizer, x_train[index], y_train[index]))
                bar.update(1)

                if iteration in snapshot_at:
                    snapshots[iteration] = net.state_dict()
                if iteration % config.eval_every == 0 or iteration == config.iterations:
                    losses = to_numpy(xp.stack(pending))  # (steps since last eval,): one copy, one sync
                    _check_finite(losses, iteration - len(losses) + 1, config)
                    pending = []
                    val_loss, val_acc = evaluate(net, x_val, y_val, eval_batch)
                    test_loss, test_acc = evaluate(net, x_test, y_test, eval_batch)
                    for key, value in zip(HISTORY_KEYS, (iteration, float(losses.mean()), val_loss, val_acc,
                                                         test_loss, test_acc)):
                        history[key].append(value)
                    bar.set_postfix(loss=f"{losses.mean():.4f}", val_acc=f"{val_acc:.4f}", refresh=False)
        finally:
            bar.close()

    val_losses = np.array(history["val_loss"])
    best = int(np.argmin(np.where(np.isnan(val_losses), np.inf, val_losses)))  # the first minimum
    _warn_if_chance_level(history["val_accuracy"][-1], num_classes, config)
    return TrainResult(
        history=history,
        early_stop_iteration=history["iteration"][best],
        test_accuracy_at_early_stop=history["test_accuracy"][best],
        final_test_accuracy=history["test_accuracy"][-1],
        snapshots=snapshots,
        seconds=time.perf_counter() - started,
        kernels=dict(getattr(net, "kernels", {})),  # the model itself records nothing: its masked dense layers
    )


def save_metrics(result: Any, path: str | os.PathLike[str], **extra: Any) -> Path:
    """Writes ``result`` (a TrainResult, anything with ``to_dict()``, or a dict) plus ``extra`` as JSON.

    Atomic: written to a temporary file in the same folder, then renamed over ``path``, so a run that is
    interrupted never leaves half a file behind. Dataclasses in ``extra`` (e.g. the TrainConfig) are turned
    into dicts. Returns the path written.
    """
    content = result.to_dict() if hasattr(result, "to_dict") else dict(result)
    for key, value in extra.items():
        content[key] = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
    return atomic_write_json(path, content)


def check_data(data: Any, batch_size: int, num_classes: int | None = None) -> None:
    """Checks, on the host and before anything is trained or written, that ``data`` can be trained on.

    Every split (train, validation, test) must be non-empty, with as many labels as images, integer labels in
    ``0..num_classes - 1`` (only ``>= 0`` when ``num_classes`` is None, e.g. before the model is built), and the
    training set must hold at least one batch of ``batch_size`` examples. ``train`` calls it with the model's
    output width; ``imp.run_imp`` calls it before it touches the run folder.

    Args:
        data: a ``minilottery.data.Dataset`` (x_train (N, ...), y_train (N,), and the same for val and test).
        batch_size: examples per training step (``--batch-size``).
        num_classes: K, the number of classes the model tells apart.

    Raises:
        ValueError: one line naming the split (or ``--batch-size``) and what is wrong with it.
    """
    for split in ("train", "val", "test"):
        x, y = getattr(data, f"x_{split}"), to_numpy(getattr(data, f"y_{split}"))
        if len(y) == 0:
            raise ValueError(f"the {split} split is empty: training needs train, validation and test examples")
        if len(x) != len(y):
            raise ValueError(f"x_{split} has {len(x)} examples but y_{split} has {len(y)} labels")
        if not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"y_{split} must hold integer class labels, got dtype {y.dtype}")
        low, high = int(y.min()), int(y.max())
        if num_classes is None and low < 0:
            raise ValueError(f"y_{split} must hold class labels >= 0, got labels from {low} to {high}")
        if num_classes is not None and (low < 0 or high >= num_classes):
            raise ValueError(f"y_{split} must hold labels in 0..{num_classes - 1} (the model has {num_classes} "
                             f"outputs), got labels from {low} to {high}")
    n_train = len(data.y_train)
    if batch_size > n_train:
        raise ValueError(f"--batch-size {batch_size} is larger than the training set ({n_train} examples); "
                         f"use a smaller --batch-size")


# -- helpers -------------------------------------------------------------------------------------------


def _model_device(model: Sequential) -> str:
    params = list(model.parameters().values())
    return device_of(params[0]) if params else "cpu"


def _check_snapshots(snapshot_at: Iterable[int], iterations: int) -> set[int]:
    wanted = set()
    for it in snapshot_at:
        if not is_integer(it) or not 0 <= it <= iterations:
            raise ValueError(f"snapshot iterations must be integers in 0..{iterations} (--iterations), got {it!r}")
        wanted.add(int(it))
    return wanted


def _num_classes(model: Sequential) -> int:
    """K, the width of the model's last weighted layer: the number of classes it tells apart."""
    weights = [layer for layer in model.layers if "W" in layer.params]
    if not weights:
        raise ValueError("the model has no weighted layer to train")
    return int(weights[-1].params["W"].shape[0])  # Dense W is (out, in): out = number of classes


def _warn_if_chance_level(val_accuracy: float, num_classes: int, config: TrainConfig) -> None:
    """Warns (ChanceLevelWarning) when the final validation accuracy is no better than guessing.

    A learning rate far too large can make the loss blow up without becoming nan (e.g. Adam at 10 drives
    every ReLU dead): the run then "finishes" at ~1/K accuracy, which is worth a word.
    """
    if val_accuracy <= CHANCE_FACTOR / num_classes:
        warnings.warn(ChanceLevelWarning(
            f"final validation accuracy {100 * val_accuracy:.1f}% is at chance level ({num_classes} classes): "
            f"training diverged (lower --lr, now {config.lr:g}) or did not learn yet (more --iterations)"),
            stacklevel=3)


def _check_finite(losses: np.ndarray, first_iteration: int, config: TrainConfig) -> None:
    """Raises NonFiniteLossError naming the first iteration whose loss is nan or inf."""
    bad = np.flatnonzero(~np.isfinite(losses))
    if bad.size:
        iteration = first_iteration + int(bad[0])
        value = "nan" if np.isnan(losses[bad[0]]) else "inf"
        raise NonFiniteLossError(
            f"training loss became {value} at iteration {iteration}; lower --lr (now {config.lr:g}) "
            f"or check the input data for nan/inf", iteration)
