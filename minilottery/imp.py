"""Iterative magnitude pruning (IMP): how Frankle & Carbin (2019) find winning tickets (Section 2).

    1. Randomly initialise a network f(x; θ0).
    2. Train it for j iterations, arriving at θj.
    3. Prune p% of the remaining weights of each layer with the smallest magnitude, creating a mask m.
    4. Reset the surviving weights to their values in θ0 (the pruned ones are 0): the ticket f(x; m ⊙ θ0).
    5. Repeat 2-4 with the ticket, so the mask shrinks round after round.

``run_imp`` does exactly this, for ``config.rounds`` pruning rounds after the dense round 0, or until the
network keeps ``config.target_percent`` % of its weights. Every training uses the same data order (the same
``TrainConfig.seed``), so rounds differ only in their masks and initial weights. Options:

* ``reset="rewind:K"``: reset the survivors to their values at iteration K of the dense run instead of θ0
  ("late resetting", Frankle et al. 2019, *Stabilizing the Lottery Ticket Hypothesis*).
* ``one_shot=True``: prune the trained dense network once, straight to the target (one pruning round).
* ``global_pruning=True``: one magnitude threshold over all layers pooled (the paper's Section 5).
* ``controls``: the paper's two baselines, trained in every round >= 1 with the ticket's sparsity:
  ``"reinit"`` (the ticket's masks, a fresh random initialisation θ0') and ``"random_prune"`` (random masks
  with the ticket's per-layer counts, the ticket's initial weights). A winning ticket learns faster and
  reaches a higher test accuracy than both.

Quick start (``minilottery imp --preset lenet-quick`` does the same from the shell)::

    from minilottery.data import load_mnist
    from minilottery.imp import IMPConfig, run_imp
    result = run_imp(IMPConfig.from_preset("lenet-quick"), load_mnist(), out_dir="runs/lenet-quick")
    for r in result.rounds:
        print(r.index, r.percent_remaining, r.arms["ticket"].metrics["test_accuracy_at_early_stop"])

With ``out_dir`` the run is recorded as ``runs.py`` describes, and running it again continues after the last
completed round, with the same results an uninterrupted run gives.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from minilottery.lab import runs, threads
from minilottery.backend import get_backend
from minilottery.files import stale_temporaries
from minilottery.models import MODELS, build_model
from minilottery.prune import (
    default_rates, full_masks, global_magnitude_prune, magnitude_prune, masked_weights, one_shot_rates,
    random_prune, sparsity,
)
from minilottery.train import TrainConfig, train

CONTROLS = ("reinit", "random_prune")
DATASETS = ("mnist", "cifar10")
TRIALS_FILE = "trials.json"  # the marker of a ``minilottery trials`` folder (owned here so imp can refuse one)
REINIT_SEED_OFFSET = 1000  # round r's reinit arm draws θ0' with build_model(seed=config.seed + 1000 + r)
RANDOM_PRUNE_STREAM = 7  # random_prune's masks in round r come from default_rng([config.seed, 7, r])

# Presets: plain dicts of IMPConfig / TrainConfig fields, easy to read and edit. Explicit options override them.
PRESETS: dict[str, dict[str, Any]] = {
    # Frankle & Carbin (2019), Figure 2 and Figure 3: LeNet-300-100 on MNIST, Adam 1.2e-3, batch 60, 50K
    # iterations; 20% of the hidden weights and 10% of the output weights per round. 20 rounds end at
    # 1.2% of the weights remaining.
    "lenet-paper": {
        "model": "lenet_300_100", "dataset": "mnist", "rounds": 20, "prune_rate": 0.2, "reset": "init",
        "controls": ("reinit", "random_prune"),
        "iterations": 50_000, "optimizer": "adam", "lr": 1.2e-3, "batch_size": 60, "eval_every": 100,
    },
    # About 5 minutes on a 2-core laptop CPU: the paper's training, cut to 5,000 iterations (the dense network's
    # validation loss bottoms out around 2,000-5,000), 12 rounds (down to 6.9% of the weights), both controls.
    "lenet-quick": {
        "model": "lenet_300_100", "dataset": "mnist", "rounds": 12, "prune_rate": 0.2, "reset": "init",
        "controls": ("reinit", "random_prune"),
        "iterations": 5000, "optimizer": "adam", "lr": 1.2e-3, "batch_size": 60, "eval_every": 100,
    },
}


@dataclass
class IMPConfig:
    """Everything that determines an IMP run's results (the run directory's config.json).

    Attributes:
        model: one of ``models.MODELS``.
        dataset: "mnist" or "cifar10" (recorded; the caller passes the data to ``run_imp``).
        rounds: pruning rounds after the dense round 0 (so ``rounds + 1`` trainings of the ticket); with
            ``target_percent`` set, the most rounds to run (None: as many as the target needs).
        target_percent: stop after the first round that keeps at most this % of the weights.
        prune_rate: fraction of the remaining hidden dense weights pruned per round (the paper: 0.2).
        conv_rate: overrides the paper's conv rate (0.1; 0.15 for conv6).
        output_rate: overrides the output layer's rate (default: ``prune_rate / 2``).
        global_pruning: prune ``prune_rate`` of all remaining weights pooled across layers.
        one_shot: prune the trained dense network once, to ``target_percent`` (or to what ``rounds``
            rounds of IMP would leave).
        reset: "init" (reset to θ0, the paper) or "rewind:K" (to the weights at iteration K of round 0).
        controls: any of "reinit", "random_prune".
        train: how each network is trained (the same for every round and arm).
        seed: seed of θ0 (and of the controls' draws).
    """

    model: str = "lenet_300_100"
    dataset: str = "mnist"
    rounds: int | None = 12
    target_percent: float | None = None
    prune_rate: float = 0.2
    conv_rate: float | None = None
    output_rate: float | None = None
    global_pruning: bool = False
    one_shot: bool = False
    reset: str = "init"
    controls: tuple[str, ...] = ()
    train: TrainConfig = field(default_factory=lambda: TrainConfig(iterations=2000))
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.controls, str):  # "reinit,random_prune" as the command line gives it
            self.controls = tuple(c.strip() for c in self.controls.split(",") if c.strip())
        self.controls = tuple(self.controls)

    @property
    def arms(self) -> tuple[str, ...]:
        """("ticket", *controls): the networks trained in each round >= 1."""
        return ("ticket", *self.controls)

    @property
    def rewind_iteration(self) -> int | None:
        """K for ``reset="rewind:K"``, None for ``reset="init"`` (call ``validate`` first)."""
        return None if self.reset == "init" else int(self.reset.partition(":")[2])

    def validate(self) -> "IMPConfig":
        """Checks every option; raises ValueError naming the command-line option. Returns self."""
        if self.model not in MODELS:
            raise ValueError(f"--model must be one of {', '.join(MODELS)}, got {self.model!r}")
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {', '.join(DATASETS)}, got {self.dataset!r}")
        if self.rounds is not None and (isinstance(self.rounds, bool) or not isinstance(self.rounds, (int, np.integer))
                                        or self.rounds < 1):
            raise ValueError(f"--rounds must be an integer >= 1, got {self.rounds!r}")
        if self.target_percent is not None and not (_is_number(self.target_percent) and 0 < self.target_percent < 100):
            raise ValueError(f"--target-percent must be a number in (0, 100), got {self.target_percent!r}")
        if self.rounds is None and self.target_percent is None:
            raise ValueError("give --rounds or --target-percent (or both): IMP needs to know when to stop")
        for option, rate in (("--prune-rate", self.prune_rate), ("--conv-rate", self.conv_rate),
                             ("--output-rate", self.output_rate)):
            if rate is not None and not (_is_number(rate) and 0 < rate < 1):
                raise ValueError(f"{option} must be a fraction in (0, 1), e.g. 0.2 for 20%, got {rate!r}")
        if not isinstance(self.train, TrainConfig):
            raise ValueError(f"train must be a TrainConfig, got {type(self.train).__name__}")
        self.train.validate()
        _parse_reset(self.reset, self.train.iterations)
        unknown = [c for c in self.controls if c not in CONTROLS]
        if unknown or len(set(self.controls)) != len(self.controls):
            raise ValueError(f"--controls must be distinct names from {', '.join(CONTROLS)} (comma-separated), "
                             f"got {','.join(self.controls)!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"--seed must be a non-negative integer, got {self.seed!r}")
        return self

    # -- conversions ------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (``train`` nested), the content of DIR/config.json."""
        d = dataclasses.asdict(self)
        d["controls"] = list(self.controls)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "IMPConfig":
        """The inverse of ``to_dict`` (keys it does not know, such as config.json's "data", are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in names and k != "train"}
        kwargs["controls"] = tuple(kwargs.get("controls", ()))
        return cls(train=TrainConfig(**d["train"]), **kwargs)

    @classmethod
    def from_options(cls, preset: str | None = None, **options: Any) -> "IMPConfig":
        """A config from a preset (optional) and flat options: IMPConfig and TrainConfig fields by name.

        Options that are None are ignored, so command-line flags left out keep the preset's value. ``seed``
        sets both the weights' seed and the data order's (``TrainConfig.seed``). Not validated: call
        ``validate``.
        """
        if preset is not None and preset not in PRESETS:
            raise ValueError(f"--preset must be one of {', '.join(PRESETS)}, got {preset!r}")
        values = dict(PRESETS[preset]) if preset else {}
        values.update({k: v for k, v in options.items() if v is not None})
        imp_names = {f.name for f in dataclasses.fields(cls)} - {"train"}
        train_names = {f.name for f in dataclasses.fields(TrainConfig)}
        unknown = sorted(set(values) - imp_names - train_names)
        if unknown:
            raise ValueError(f"unknown IMP option(s) {', '.join(unknown)}; options are "
                             f"{', '.join(sorted(imp_names | train_names))}")
        train_kwargs = {k: v for k, v in values.items() if k in train_names}
        train_kwargs.setdefault("iterations", 2000)
        return cls(train=TrainConfig(**train_kwargs), **{k: v for k, v in values.items() if k in imp_names})

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> "IMPConfig":
        """``PRESETS[name]`` with ``overrides`` (flat, as ``from_options``)."""
        return cls.from_options(preset=name, **overrides)


@dataclass
class ArmResult:
    """One trained network of a round: where it started, where it ended, and how it learned.

    Attributes:
        masks: name -> bool mask it trained with (the ticket's masks, or random_prune's own).
        init_weights: name -> host array it started from (the pruned weights are 0).
        final_weights: name -> host array after training.
        metrics: ``TrainResult.to_dict()`` (history, early_stop_iteration, test accuracies; fractions).
    """

    masks: dict[str, np.ndarray]
    init_weights: dict[str, np.ndarray]
    final_weights: dict[str, np.ndarray]
    metrics: dict[str, Any]


@dataclass
class RoundResult:
    """One round: the ticket's masks and every arm trained with them.

    Attributes:
        index: 0 for the dense network, then 1, 2, ...
        masks: name -> bool mask of the ticket (True = kept).
        arms: "ticket" (and in rounds >= 1 each control) -> ArmResult.
        info: the round.json content: round, percent_remaining, layers, arms' headline numbers.
    """

    index: int
    masks: dict[str, np.ndarray]
    arms: dict[str, ArmResult]
    info: dict[str, Any]

    @property
    def percent_remaining(self) -> float:
        return self.info["percent_remaining"]


@dataclass
class IMPResult:
    """A whole run: ``rounds[r]`` is round r. ``summary()`` is DIR/summary.json's content."""

    config: IMPConfig
    rounds: list[RoundResult]
    out_dir: Path | None = None

    def summary(self) -> dict[str, Any]:
        return {"config": self.config.to_dict(), "rounds": [r.info for r in self.rounds]}


# -- the IMP loop -------------------------------------------------------------------------------------


def run_imp(
    config: IMPConfig,
    data: Any,
    *,
    out_dir: str | Path | None = None,
    device: str | None = None,
    progress: bool = True,
    on_round: Callable[[RoundResult], None] | None = None,
    overwrite: bool = False,
) -> IMPResult:
    """Runs iterative magnitude pruning (Section 2) and returns every round's masks, weights and metrics.

    Args:
        config: the experiment (validated here, before anything is written).
        data: a ``minilottery.data.Dataset``; ``data.x_train`` is (N, C, H, W).
        out_dir: record the run there (see ``runs.py``); if it already holds this run, continue after its
            last completed round. None: keep everything in memory only.
        device: "cpu" or "gpu" (default: the current default device).
        progress: show a progress bar per training.
        on_round: called with each RoundResult once it is complete (also for rounds loaded on resume).
        overwrite: replace a run in ``out_dir`` made with a different config (only the run's own files).

    Raises:
        ValueError: an invalid config, or ``out_dir`` holding a run with a different config.
    """
    config.validate()
    _check_data(data, config)
    device = get_backend(device).name  # an unusable device fails here, before anything is written
    input_shape = tuple(data.x_train.shape[1:])  # (C, H, W)
    model = build_model(config.model, input_shape, seed=config.seed)  # θ0: fixed by the seed
    rates = default_rates(config.model, model, config.prune_rate, config.conv_rate, config.output_rate)
    result = IMPResult(config, [], Path(out_dir) if out_dir is not None else None)
    with contextlib.ExitStack() as stack:
        run = None
        if out_dir is not None:  # checked before the lock creates anything; one writer per run folder
            _check_run_dir(Path(out_dir), run_record(config, data), overwrite)
            stack.enter_context(runs.locked(out_dir))
            run = _RunDir(out_dir, config, data, model.state_dict(), rates, overwrite)
        theta0 = run.theta0(model.state_dict()) if run else model.state_dict()
        rewind = run.rewind_weights() if run and run.done and config.rewind_iteration is not None else None

        for index in itertools.count():
            if run and index < len(run.finished):  # finished before an interruption: read back
                rnd = run.finished[index]
            else:
                masks = full_masks(_weights(theta0, rates)) if index == 0 else _next_masks(config, rates, result.rounds)
                rnd, snapshot = _train_round(config, data, index, masks, theta0, rewind, device, progress)
                if snapshot is not None:
                    rewind = snapshot
                if run:
                    run.save_round(rnd, rewind if index == 0 else None)
            result.rounds.append(rnd)
            if on_round is not None:
                on_round(rnd)
            if _finished(config, result.rounds):
                return result
    raise AssertionError("unreachable")


def _train_round(
    config: IMPConfig, data: Any, index: int, masks: dict[str, np.ndarray], theta0: dict[str, np.ndarray],
    rewind: dict[str, np.ndarray] | None, device: str, progress: bool,
) -> tuple[RoundResult, dict[str, np.ndarray] | None]:
    """Trains the ticket (and in rounds >= 1 the controls) of one round; returns it and round 0's rewind point."""
    k = config.rewind_iteration
    start = theta0 if rewind is None else rewind  # Section 2 step 4: reset to θ0 (or to θ_K when rewinding)
    last = 1 if config.one_shot else config.rounds
    label = f"round {index}" if last is None else f"round {index}/{last}"
    arms = {}
    arms["ticket"], snapshots = _train_arm(config, data, start, masks, device, progress, f"{label} ticket",
                                           snapshot_at=(k,) if index == 0 and k is not None else ())
    snapshot = snapshots.get(k) if index == 0 and k is not None else None
    for control in config.controls if index > 0 else ():
        if control == "reinit":  # same masks, a fresh random initialisation θ0'
            fresh = build_model(config.model, tuple(data.x_train.shape[1:]),
                                seed=config.seed + REINIT_SEED_OFFSET + index).state_dict()
            arm_start, arm_masks = fresh, masks
        else:  # random_prune: as many weights per layer as the ticket, chosen at random; the ticket's start
            rng = np.random.default_rng([config.seed, RANDOM_PRUNE_STREAM, index])
            arm_start, arm_masks = start, random_prune(masks, rng)
        arms[control], _ = _train_arm(config, data, arm_start, arm_masks, device, progress, f"{label} {control}")
    return RoundResult(index, masks, arms, _round_info(index, masks, arms)), snapshot


def _train_arm(
    config: IMPConfig, data: Any, start: dict[str, np.ndarray], masks: dict[str, np.ndarray], device: str,
    progress: bool, desc: str, snapshot_at: tuple[int, ...] = (),
) -> tuple[ArmResult, dict[int, dict[str, np.ndarray]]]:
    """Trains one network from ``start * masks``; returns its ArmResult and the requested snapshots."""
    init = masked_weights(start, masks)  # survivors keep their start values, pruned weights are exactly 0
    model = build_model(config.model, tuple(data.x_train.shape[1:]), seed=config.seed)  # the architecture
    model.load_state_dict(init)
    model.set_masks(masks)
    model.to(device)
    trained = train(model, data, config.train, device=device, snapshot_at=snapshot_at, progress=progress,
                    desc=desc)
    metrics = json.loads(json.dumps(trained.to_dict()))  # exactly what metrics.json will hold
    return ArmResult(masks, init, model.state_dict(), metrics), trained.snapshots


def _next_masks(config: IMPConfig, rates: dict[str, float], rounds: list[RoundResult]) -> dict[str, np.ndarray]:
    """Section 2 step 3: prune the last round's trained ticket (one-shot: the dense round 0's)."""
    previous = rounds[-1]
    trained = previous.arms["ticket"].final_weights
    if config.one_shot:
        sizes = {name: previous.masks[name].size for name in rates}
        if config.global_pruning:  # one pooled rate: keep exactly the target fraction of all weights
            target = config.target_percent if config.target_percent is not None else \
                100.0 * (1.0 - config.prune_rate) ** config.rounds
            return global_magnitude_prune(trained, previous.masks, 1.0 - target / 100.0)
        layer_rates = one_shot_rates(rates, sizes, target_percent=config.target_percent,
                                     rounds=None if config.target_percent is not None else config.rounds)
        return magnitude_prune(trained, previous.masks, layer_rates)
    if config.global_pruning:
        return global_magnitude_prune(trained, previous.masks, config.prune_rate)
    return magnitude_prune(trained, previous.masks, rates)


def _finished(config: IMPConfig, rounds: list[RoundResult]) -> bool:
    """Stop after one-shot's single pruning round, after ``config.rounds`` rounds, or at the target."""
    infos = [r.info for r in rounds]
    if _stuck(infos) and not _reached_end(config, infos[-1]):
        last = rounds[-1]
        warnings.warn(f"round {last.index} pruned no weight (too few remain for --prune-rate "
                      f"{config.prune_rate}); stopping at {last.percent_remaining:.2f}% remaining", stacklevel=3)
    return is_complete(config, infos)


def is_complete(config: IMPConfig, rounds: list[dict[str, Any]]) -> bool:
    """Whether a run with these completed rounds (their round.json contents, in order) has finished."""
    return bool(rounds) and (_reached_end(config, rounds[-1]) or _stuck(rounds))


def _reached_end(config: IMPConfig, last: dict[str, Any]) -> bool:
    if config.one_shot:
        return last["round"] >= 1
    return (config.rounds is not None and last["round"] >= config.rounds) or \
        (config.target_percent is not None and last["percent_remaining"] <= config.target_percent)


def _stuck(rounds: list[dict[str, Any]]) -> bool:
    """The last round pruned no weight (too few remain): going on would repeat it forever."""
    return len(rounds) >= 2 and rounds[-1]["remaining"] == rounds[-2]["remaining"]


def _check_data(data: Any, config: IMPConfig) -> None:
    """The checks on the data that must pass before the run directory is touched."""
    for split in ("train", "val", "test"):
        if len(getattr(data, f"y_{split}")) == 0:
            raise ValueError(f"the {split} split is empty: IMP needs train, validation and test examples")
    if config.train.batch_size > len(data.y_train):
        raise ValueError(f"--batch-size {config.train.batch_size} is larger than the training set "
                         f"({len(data.y_train)} examples); use a smaller --batch-size")


def _round_info(index: int, masks: dict[str, np.ndarray], arms: dict[str, ArmResult]) -> dict[str, Any]:
    """round.json: the round's sparsity (exact counts) and each arm's headline numbers."""
    s = sparsity(masks)
    headline = ("early_stop_iteration", "test_accuracy_at_early_stop", "final_test_accuracy")
    return {
        "round": index,
        "percent_remaining": s["percent"],
        "remaining": s["remaining"],
        "total": s["total"],
        "layers": s["layers"],
        "arms": {arm: {key: a.metrics[key] for key in headline} for arm, a in arms.items()},
    }


def _weights(state: dict[str, np.ndarray], rates: dict[str, float]) -> dict[str, np.ndarray]:
    """The prunable entries of a state dict (the weights ``rates`` names; biases are never pruned)."""
    return {name: state[name] for name in rates}


def _parse_reset(reset: Any, iterations: int) -> int | None:
    """"init" -> None; "rewind:K" -> K, checked to be in 0..iterations."""
    if reset == "init":
        return None
    kind, _, k = str(reset).partition(":")
    if kind != "rewind" or not k.strip().lstrip("-").isdigit():
        raise ValueError(f"--reset must be 'init' or 'rewind:K' (K an iteration, e.g. rewind:500), got {reset!r}")
    k = int(k)
    if not 0 <= k <= iterations:
        raise ValueError(f"--reset rewind:{k}: the rewind iteration must be in 0..{iterations} (--iterations), "
                         f"got {k}")
    return k


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
        and bool(np.isfinite(value))


# -- the run directory --------------------------------------------------------------------------------


def run_record(config: IMPConfig, data: Any) -> dict[str, Any]:
    """DIR/config.json's content: the config and the data set's name and split sizes."""
    return {**config.to_dict(), "data": _describe(data, config.dataset)}


def run_status(path: str | Path, config: IMPConfig, data: Any, overwrite: bool = False) -> str:
    """What ``run_imp(config, data, out_dir=path)`` would find there, without changing anything.

    Returns:
        "new" (nothing of a run there yet, or one that ``overwrite`` will replace), "partial" (this run,
        interrupted: it will continue) or "complete" (this run, finished: it only reloads).

    Raises:
        ValueError: ``path`` is a file or a trials folder, or holds a run of another config (and ``overwrite``
        is False), or files that minilottery did not write.
    """
    path = Path(path)
    record = run_record(config.validate(), data)
    if not _usable_out(path).is_dir():
        return "new"
    if _check_run_dir(path, record, overwrite) or not (path / "config.json").is_file():
        return "new"
    done = runs.completed_rounds(path)
    return "complete" if is_complete(config, done) else "partial" if done else "new"


def _usable_out(path: Path) -> Path:
    """Raises ValueError when ``path`` cannot hold an IMP run: a file, or a ``minilottery trials`` folder."""
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {path} is a file; give a folder (new or holding this run)")
    if (path / TRIALS_FILE).exists():
        raise ValueError(f"--out {path} holds a `minilottery trials` run; continue it with `minilottery trials`, "
                         f"or give `imp` another --out")
    return path


def _check_run_dir(path: Path, record: dict[str, Any], overwrite: bool) -> list[str]:
    """Raises ValueError unless DIR is new, holds this run, or ``overwrite`` allows replacing it; returns how
    the run there differs from ``record`` (empty: the same run, or nothing there)."""
    _usable_out(path)
    config_file = path / "config.json"
    if config_file.is_file() or config_file.is_symlink():
        old = runs.read_json(config_file, fix="choose another --out")
        if config_file.is_symlink() or not runs.is_run_record(old):
            raise ValueError(f"{config_file} was not written by minilottery (it is not an IMP run record); "
                             f"choose another --out: nothing in {path} is replaced, even with --overwrite")
        diffs = _differences(old, record)
        if diffs and not overwrite:
            raise ValueError(f"{path} was made with a different config (differs in: {', '.join(diffs)}); "
                             f"use --overwrite to replace it or choose another --out")
        return diffs
    found = [p.name for p in runs.round_dirs(path)] + [n for n in runs.RUN_FILES if (path / n).exists()]
    if found:
        raise ValueError(f"{path} holds files named like a run's ({', '.join(found[:3])}) but no config.json; "
                         f"minilottery will not delete them, even with --overwrite: choose another --out")
    return []


class _RunDir:
    """DIR of one run (see ``runs.py``): checks it against the config, then reads and writes rounds.

    Opening it validates everything first (so bad input destroys nothing): the config, and every file of the
    completed rounds (names and shapes), so that a damaged file is named now, not after hours of training.
    Then it discards what an interrupted run left half-done: temporary files and every round folder from the
    first one without its round.json marker on. The caller holds the folder's lock (``runs.locked``).
    """

    def __init__(self, path: str | Path, config: IMPConfig, data: Any, state: dict[str, np.ndarray],
                 rates: dict[str, float], overwrite: bool) -> None:
        self.path = Path(path)
        self.config = config
        self.record = run_record(config, data)
        self.shapes = {name: tuple(value.shape) for name, value in state.items()}
        self.mask_shapes = {name: self.shapes[name] for name in rates}
        diffs = _check_run_dir(self.path, self.record, overwrite)
        # From here on DIR is ours to change. --overwrite replaces a run of another config, or a damaged one;
        # an intact run of the same config is this run, which continues.
        self.finished: list[RoundResult] = []  # the completed rounds, each file read (and checked) once
        replace = bool(diffs)
        if not diffs and (self.path / "config.json").is_file():
            try:
                self.finished = self._read_finished()
            except runs.RunFileError:
                if not overwrite:
                    raise
                replace = True
        if replace:
            runs.remove_run(self.path)
            self.finished = []
        self.record["environment"] = self._environment()
        runs.atomic_write_json(self.path / "config.json", self.record)
        self.done = [rnd.info for rnd in self.finished]
        for stale in runs.round_dirs(self.path)[len(self.done):]:  # rounds without their round.json marker
            runs.remove_folder(stale)
        for temporary in stale_temporaries(self.path):
            temporary.unlink()
        if self.done:  # a run killed between a round's marker and its summary: bring the summary up to date
            runs.write_summary(self.path, self.record, self.done)

    def _environment(self) -> dict[str, Any]:
        """The BLAS library and thread count the run started with (results depend on them: README,
        "Threads and reproducibility"); continuing under other settings warns and is recorded too."""
        current = threads.describe()
        config_file = self.path / "config.json"
        if not config_file.is_file():
            return current
        old = runs.read_json(config_file, dict)
        recorded = old.get("environment")
        message = threads.difference(recorded, current)
        if message:
            warnings.warn(f"{self.path}: {message}", RuntimeWarning, stacklevel=4)
            self.record["resumed_with"] = [*old.get("resumed_with", []), current]
        elif "resumed_with" in old:
            self.record["resumed_with"] = old["resumed_with"]
        return recorded or current

    def _read_finished(self) -> list[RoundResult]:
        """Reads every file the resumed run will use, so that a damaged one is named (RunFileError) before any
        training; returns the completed rounds."""
        done = runs.completed_rounds(self.path)
        if done or (self.path / "theta0.npz").exists():
            runs.load_npz(self.path / "theta0.npz", self.shapes)
        if done and self.config.rewind_iteration is not None:
            runs.load_npz(self.path / "rewind.npz", self.shapes)
        return [self._load_round(index, info) for index, info in enumerate(done)]

    def theta0(self, fresh: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """θ0 from DIR/theta0.npz, writing ``fresh`` there first if the run is new."""
        path = self.path / "theta0.npz"
        if not path.is_file():
            runs.atomic_savez(path, **fresh)
        return runs.load_npz(path, self.shapes)

    def rewind_weights(self) -> dict[str, np.ndarray]:
        return runs.load_npz(self.path / "rewind.npz", self.shapes)

    def save_round(self, rnd: RoundResult, rewind: dict[str, np.ndarray] | None) -> None:
        """Writes every file of the round, then round.json (the completion marker), then the summary."""
        folder = runs.round_dir(self.path, rnd.index)
        if rewind is not None:
            runs.atomic_savez(self.path / "rewind.npz", **rewind)
        runs.atomic_savez(runs.check_real_folder(folder, self.path) / "masks.npz", **rnd.masks)
        for name, arm in rnd.arms.items():
            arm_dir = runs.check_real_folder(folder / name, self.path)
            runs.atomic_savez(arm_dir / "init.npz", **arm.init_weights)
            runs.atomic_savez(arm_dir / "final.npz", **arm.final_weights)
            runs.atomic_write_json(arm_dir / "metrics.json", arm.metrics)
            if name == "random_prune":
                runs.atomic_savez(arm_dir / "masks.npz", **arm.masks)
        runs.atomic_write_json(folder / "round.json", rnd.info)
        self.done.append(rnd.info)
        runs.write_summary(self.path, self.record, self.done)

    def _load_round(self, index: int, info: dict[str, Any]) -> RoundResult:
        """Round ``index`` (its round.json: ``info``) read back, every array checked by name and shape."""
        folder = runs.round_dir(self.path, index)
        masks = runs.load_npz(folder / "masks.npz", self.mask_shapes)
        arms = {}
        for name in info["arms"]:
            if name not in ("ticket", *CONTROLS):
                raise runs.RunFileError(f"{folder / 'round.json'} names an unknown arm {name!r}; {runs.DAMAGED_FIX}")
            arm_masks = runs.load_npz(folder / name / "masks.npz", self.mask_shapes) if name == "random_prune" else masks
            metrics = runs.read_json(folder / name / "metrics.json", dict)
            if not isinstance(metrics.get("history"), dict):
                raise runs.RunFileError(f"{folder / name / 'metrics.json'} has no training history; {runs.DAMAGED_FIX}")
            arms[name] = ArmResult(arm_masks, runs.load_npz(folder / name / "init.npz", self.shapes),
                                   runs.load_npz(folder / name / "final.npz", self.shapes), metrics)
        return RoundResult(index, masks, arms, info)


def _describe(data: Any, name: str) -> dict[str, Any]:
    """The data set's name and split sizes: a run resumed on other data would not be the same run."""
    return {"name": getattr(data, "name", "") or name, "train": len(data.y_train), "val": len(data.y_val),
            "test": len(data.y_test), "shape": list(data.x_train.shape[1:])}


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """["iterations 2000 vs 3000", ...]: the flattened keys whose values differ (old value first)."""
    a, b = _flatten(old), _flatten(new)
    changed = [key for key in sorted(set(a) | set(b)) if a.get(key) != b.get(key)]
    return [f"{key} {_show(a.get(key))} vs {_show(b.get(key))}" for key in changed]


def _flatten(d: dict[str, Any]) -> dict[str, Any]:
    """Nested config -> flat names: the train options under their own names (``iterations``), clashes and
    the data description prefixed (``train.seed``, ``data.train``)."""
    flat = {k: v for k, v in d.items() if not isinstance(v, dict)}
    for k, v in (d.get("train") or {}).items():
        flat[f"train.{k}" if k in flat else k] = v
    for k, v in (d.get("data") or {}).items():
        flat[f"data.{k}"] = v
    return flat


def _show(value: Any) -> str:
    return "(none)" if value is None else json.dumps(value) if isinstance(value, (list, dict)) else str(value)


__all__ = ["CONTROLS", "PRESETS", "IMPConfig", "ArmResult", "RoundResult", "IMPResult", "run_imp", "run_status",
           "run_record", "is_complete"]
