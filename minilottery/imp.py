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

Quick start::

    from minilottery.data import load_mnist
    from minilottery.imp import IMPConfig, run_imp
    from minilottery.training import TrainConfig
    config = IMPConfig(rounds=3, controls=("reinit",), train=TrainConfig(iterations=1000))
    result = run_imp(config, load_mnist())
    for r in result.rounds:
        print(r.index, r.percent_remaining, r.arms["ticket"].metrics["test_accuracy_at_early_stop"])

``run_imp`` keeps everything in memory. To record a run on disk and continue it after an interruption, give
it a ``store`` (see ``RunStore``): ``minilottery.lab.run_folder.run_imp_in_folder`` does that with a run
folder, and ``minilottery imp --preset lenet-quick --out DIR`` does it from the shell.
"""

from __future__ import annotations

import itertools
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from minilottery.backend import get_backend
from minilottery.imp_config import ARMS, CONTROLS, IMPConfig
from minilottery.models import build_model
from minilottery.prune import (
    default_rates,
    full_masks,
    global_magnitude_prune,
    magnitude_prune,
    masked_weights,
    one_shot_rates,
    random_prune,
    sparsity,
)
from minilottery.training import check_data, train

ARM_METRICS = ("early_stop_iteration", "test_accuracy_at_early_stop", "final_test_accuracy")  # per arm in round.json
REINIT_SEED_OFFSET = 1000  # round r's reinit arm draws θ0' with build_model(seed=config.seed + 1000 + r)
RANDOM_PRUNE_STREAM = 7  # random_prune's masks in round r come from default_rng([config.seed, 7, r])


# -- results ------------------------------------------------------------------------------------------


@dataclass(repr=False)
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

    def __repr__(self) -> str:  # the arrays would print millions of numbers
        return (f"ArmResult(early_stop_iteration={self.metrics.get('early_stop_iteration')}, "
                f"test_accuracy_at_early_stop={self.metrics.get('test_accuracy_at_early_stop')})")


@dataclass(repr=False)
class RoundResult:
    """One round: the ticket's masks and every arm trained with them.

    Attributes:
        index: 0 for the dense network, then 1, 2, ...
        masks: name -> bool mask of the ticket (True = kept).
        arms: "ticket" (and in rounds >= 1 each control) -> ArmResult.
        info: the round.json content: round, percent_remaining, layers, each arm's ``ARM_METRICS``.
    """

    index: int
    masks: dict[str, np.ndarray]
    arms: dict[str, ArmResult]
    info: dict[str, Any]

    @property
    def percent_remaining(self) -> float:
        return self.info["percent_remaining"]

    def __repr__(self) -> str:
        return (f"RoundResult(index={self.index}, percent_remaining={self.percent_remaining:.1f}, "
                f"arms={list(self.arms)})")


@dataclass(repr=False)
class IMPResult:
    """A whole run: ``rounds[r]`` is round r. ``summary()`` is a run folder's summary.json content.

    ``out_dir`` is the run folder when the run was recorded in one (``lab.run_folder``), else None.
    """

    config: IMPConfig
    rounds: list[RoundResult]
    out_dir: Path | None = None

    def summary(self) -> dict[str, Any]:
        return {"config": self.config.to_dict(), "rounds": [r.info for r in self.rounds]}

    def __repr__(self) -> str:
        where = f", out_dir={str(self.out_dir)!r}" if self.out_dir is not None else ""
        return f"IMPResult(model={self.config.model!r}, rounds={len(self.rounds)}{where})"


class RunStore(Protocol):
    """Where ``run_imp`` keeps a run so that it can stop and continue later with the same results.

    ``minilottery.lab.run_folder.RunFolder`` keeps one in a folder on disk; without a store the run lives in
    memory only. ``run_imp`` asks for θ0 first, then for rounds 0, 1, 2, ... in order: each round the store
    has is read back, the first one it lacks is trained, saved, and from then on every round is new.
    """

    def theta0(self, fresh: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The run's θ0: the stored one, or ``fresh`` (the seed's draw), stored now when there is none."""

    def rewind(self) -> dict[str, np.ndarray] | None:
        """The stored rewind point θK (``reset="rewind:K"``, saved with round 0), or None."""

    def save_rewind(self, weights: dict[str, np.ndarray]) -> None:
        """Stores θK, before round 0 is saved."""

    def load_round(self, index: int) -> RoundResult | None:
        """Round ``index`` as completed earlier, or None when it was not."""

    def save_round(self, rnd: RoundResult) -> None:
        """Stores a completed round; it counts as completed only once this returns."""


class _InMemory:
    """The store of a run kept in memory only: nothing to read back, nothing to write."""

    def theta0(self, fresh: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return fresh

    def rewind(self) -> None:
        return None

    def save_rewind(self, weights: dict[str, np.ndarray]) -> None:
        pass

    def load_round(self, index: int) -> None:
        return None

    def save_round(self, rnd: RoundResult) -> None:
        pass


# -- the IMP loop -------------------------------------------------------------------------------------


def run_imp(
    config: IMPConfig,
    data: Any,
    *,
    store: RunStore | None = None,
    device: str | None = None,
    progress: bool = True,
    on_round: Callable[[RoundResult], None] | None = None,
    kernels: Callable[[Any], Any] | None = None,
    train_arms: TrainArms | None = None,
) -> IMPResult:
    """Runs iterative magnitude pruning (Section 2) and returns every round's masks, weights and metrics.

    Args:
        config: the experiment (validated here, before anything is trained or stored).
        data: a ``minilottery.data.Dataset``; ``data.x_train`` is (N, C, H, W).
        store: where the run is kept (``RunStore``); the rounds it already holds are read back, not trained
            again. None: keep everything in memory only.
        device: "cpu" or "gpu" (default: the current default device).
        progress: show a progress bar per training.
        on_round: called with each RoundResult once it is complete (also for rounds read back).
        kernels: how every arm's steps are computed, ``minilottery.training.train``'s hook (None: the masked dense
            layers). Not part of the experiment: it changes how long a round takes, not its numbers beyond float
            rounding, so it is not in the config and a run folder continues under another choice.
        train_arms: how a round's arms are trained (None: one after another, ``train_arms_in_turn``). The arms
            of a round are independent of each other, so ``minilottery.lab.arm_pool.ArmPool`` trains them in
            parallel processes instead, with the same numbers bit for bit; not in the config either.

    Raises:
        ValueError: an invalid config, or data too small for it.
    """
    config.validate()
    check_data(data, config.train.batch_size)  # an empty split or a batch larger than the data fails now
    device = get_backend(device).name  # an unusable device fails here, before anything is trained
    store = store if store is not None else _InMemory()
    model = build_model(config.model, tuple(data.x_train.shape[1:]), seed=config.seed)  # θ0: fixed by the seed
    rates = default_rates(config.model, model, config.prune_rate, config.conv_rate, config.output_rate)
    theta0 = store.theta0(model.state_dict())
    rewind = store.rewind()  # θK of an interrupted rewinding run (None: reset to θ0, or round 0 not done yet)
    result = IMPResult(config, [])
    for index in itertools.count():
        rnd = store.load_round(index)
        if rnd is None:
            ### BEGIN SOLUTION imp_loop
            if index == 0:  # the dense network: every weight kept (``rates`` names the weights, not the biases)
                masks = full_masks({name: theta0[name] for name in rates})
            else:
                masks = next_masks(config, rates, result.rounds[-1])
            rnd, snapshot = train_round(config, data, index, masks, theta0, rewind, device, progress, kernels,
                                        train_arms)
            ### END SOLUTION
            if snapshot is not None:  # round 0 of a rewinding run: θK, the start of every later round
                rewind = snapshot
                store.save_rewind(rewind)
            store.save_round(rnd)
        result.rounds.append(rnd)
        if on_round is not None:
            on_round(rnd)
        reason = stop_reason(config, [r.info for r in result.rounds])
        if reason == "stuck":
            warnings.warn(f"round {rnd.index} pruned no weight (too few remain for --prune-rate "
                          f"{config.prune_rate}); stopping at {rnd.percent_remaining:.2f}% remaining", stacklevel=2)
        if reason is not None:
            return result
    raise AssertionError("unreachable")


def train_round(
    config: IMPConfig, data: Any, index: int, masks: dict[str, np.ndarray], theta0: dict[str, np.ndarray],
    rewind: dict[str, np.ndarray] | None, device: str, progress: bool, kernels: Callable[[Any], Any] | None = None,
    train_arms: TrainArms | None = None,
) -> tuple[RoundResult, dict[str, np.ndarray] | None]:
    """Trains the ticket of round ``index`` and, in rounds >= 1, each control with the ticket's sparsity.

    Each arm is an ``ArmJob`` (where it starts, its masks); ``train_arms`` trains them (None:
    ``train_arms_in_turn``). Returns the round and, in round 0 of a ``reset="rewind:K"`` run, the snapshot θK
    (else None).
    """
    k = config.rewind_iteration
    start = theta0 if rewind is None else rewind  # Section 2 step 4: reset to θ0 (or to θK when rewinding)
    last = 1 if config.one_shot else config.rounds
    label = f"round {index}" if last is None else f"round {index}/{last}"
    snapshot_at = (k,) if index == 0 and k is not None else ()
    jobs = {"ticket": ArmJob(start, masks, f"{label} ticket", snapshot_at)}
    for control in config.controls if index > 0 else ():
        if control == "reinit":  # same masks, a fresh random initialisation θ0'
            ### BEGIN SOLUTION control_reinit
            arm_start = build_model(config.model, tuple(data.x_train.shape[1:]),
                                    seed=config.seed + REINIT_SEED_OFFSET + index).state_dict()
            arm_masks = masks
            ### END SOLUTION
        else:  # random_prune: as many weights per layer as the ticket, chosen at random; the ticket's start
            ### BEGIN SOLUTION control_random_prune
            arm_start = start
            arm_masks = random_prune(masks, np.random.default_rng([config.seed, RANDOM_PRUNE_STREAM, index]))
            ### END SOLUTION
        jobs[control] = ArmJob(arm_start, arm_masks, f"{label} {control}")
    trained = (train_arms or train_arms_in_turn)(config, data, jobs, device, progress, kernels)
    arms = {name: arm for name, (arm, _) in trained.items()}
    snapshots = trained["ticket"][1]
    return RoundResult(index, masks, arms, _round_info(index, masks, arms)), snapshots.get(k)


@dataclass(frozen=True)
class ArmJob:
    """One network of a round to train: from ``start * masks``, with snapshots at ``snapshot_at`` iterations."""

    start: dict[str, np.ndarray]
    masks: dict[str, np.ndarray]
    desc: str  # its progress bar's label, e.g. "round 3/12 reinit"
    snapshot_at: tuple[int, ...] = ()


# train_arms(config, data, jobs, device, progress, kernels) -> arm name -> (ArmResult, snapshots)
TrainArms = Callable[..., dict[str, tuple[ArmResult, dict[int, dict[str, np.ndarray]]]]]


def train_arms_in_turn(
    config: IMPConfig, data: Any, jobs: dict[str, ArmJob], device: str, progress: bool,
    kernels: Callable[[Any], Any] | None = None,
) -> dict[str, tuple[ArmResult, dict[int, dict[str, np.ndarray]]]]:
    """Trains the arms of a round one after another: arm name -> ``train_arm``'s (ArmResult, snapshots)."""
    return {name: train_arm(config, data, job.start, job.masks, device, progress, job.desc, job.snapshot_at, kernels)
            for name, job in jobs.items()}


def train_arm(
    config: IMPConfig, data: Any, start: dict[str, np.ndarray], masks: dict[str, np.ndarray], device: str,
    progress: bool, desc: str, snapshot_at: tuple[int, ...] = (), kernels: Callable[[Any], Any] | None = None,
) -> tuple[ArmResult, dict[int, dict[str, np.ndarray]]]:
    """Trains one network from ``start * masks``; returns its ArmResult and the requested snapshots."""
    init = masked_weights(start, masks)  # survivors keep their start values, pruned weights are exactly 0
    model = build_model(config.model, tuple(data.x_train.shape[1:]), seed=config.seed)  # the architecture
    model.load_state_dict(init)
    model.set_masks(masks)
    model.to(device)
    trained = train(model, data, config.train, device=device, snapshot_at=snapshot_at, progress=progress,
                    desc=desc, kernels=kernels)
    metrics = json.loads(json.dumps(trained.to_dict()))  # exactly what is stored (metrics.json) and read back
    return ArmResult(masks, init, model.state_dict(), metrics), trained.snapshots


def next_masks(config: IMPConfig, rates: dict[str, float], previous: RoundResult) -> dict[str, np.ndarray]:
    """Section 2 step 3: prune the previous round's trained ticket (one-shot: the dense round 0's)."""
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


def stop_reason(config: IMPConfig, rounds: list[dict[str, Any]]) -> str | None:
    """Why IMP stops after these completed rounds (their round.json contents, in order), or None to go on.

    Returns "one-shot" (its single pruning round is done), "rounds" (``config.rounds`` rounds done), "target"
    (at most ``config.target_percent`` % remain), or "stuck" (the last round pruned no weight: too few remain,
    so going on would repeat it forever).
    """
    if not rounds:
        return None
    last = rounds[-1]
    if config.one_shot:
        return "one-shot" if last["round"] >= 1 else None
    if config.rounds is not None and last["round"] >= config.rounds:
        return "rounds"
    if config.target_percent is not None and last["percent_remaining"] <= config.target_percent:
        return "target"
    if len(rounds) >= 2 and last["remaining"] == rounds[-2]["remaining"]:
        return "stuck"
    return None


def _round_info(index: int, masks: dict[str, np.ndarray], arms: dict[str, ArmResult]) -> dict[str, Any]:
    """round.json: the round's sparsity (exact counts) and each arm's ``ARM_METRICS``."""
    s = sparsity(masks)
    return {
        "round": index,
        "percent_remaining": s["percent"],
        "remaining": s["remaining"],
        "total": s["total"],
        "layers": s["layers"],
        "arms": {arm: {key: a.metrics[key] for key in ARM_METRICS} for arm, a in arms.items()},
    }


__all__ = ["ARMS", "ARM_METRICS", "CONTROLS", "REINIT_SEED_OFFSET", "RANDOM_PRUNE_STREAM", "IMPConfig", "ArmResult",
           "RoundResult", "IMPResult", "RunStore", "ArmJob", "TrainArms", "run_imp", "train_round",
           "train_arms_in_turn", "train_arm", "next_masks", "stop_reason"]
