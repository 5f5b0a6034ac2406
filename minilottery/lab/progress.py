"""What an IMP run will do, said before it starts, and one progress bar over all of its trainings.

``minilottery imp``, ``trials`` and ``demo`` print a plan before they train anything::

    plan: lenet_300_100 on mnist (55000 train / 5000 val / 10000 test examples)
      rounds     12 after the dense round 0, down to 6.9% of the weights
      arms       ticket, reinit, random_prune (the controls train in rounds >= 1)
      training   5000 iterations per training, batch 60, adam at lr 0.0012, reset init
      trainings  37 in all: 7 read back from disk (rounds 0-3), 30 to train
      device     cpu, 1 BLAS thread(s); writing runs/lenet-quick
      estimate   about 40 min (extrapolated from 20 timed training steps and one evaluation pass here)

The percent of weights the rounds reach is computed exactly, without training: every pruning step removes a
known number of weights (``prune.prune_count``), whatever their values, so IMP's own pruning step run on θ0
gives the run's counts. The estimate is only an estimate:
``time_training`` times a few training steps of the dense network and one evaluation pass of the validation and
test sets, then scales them to a training's iterations and evaluations (pruned networks train at the dense
speed: their masks are applied to dense arrays).

``RunBar`` is then one bar (tqdm, on stderr) over every training of the run, with its rate and ETA, advanced as
rounds complete; each training keeps its own bar below it (``training.train``). ``--no-progress`` hides both.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from minilottery.backend import to_device
from minilottery.imp import ArmResult, IMPConfig, RoundResult, next_masks, stop_reason
from minilottery.models import build_model
from minilottery.optim import make_optimizer
from minilottery.prune import default_rates, full_masks, sparsity
from minilottery.training import evaluate, evaluation_batch, train_step

TIMED_STEPS = 20  # training steps timed for the estimate (after one untimed warm-up step)


# -- what the run will do --------------------------------------------------------------------------------------


def planned_percents(config: IMPConfig, input_shape: tuple[int, ...]) -> list[float]:
    """The percent of weights remaining after each round, 0 (the dense network, 100%) to the last, as
    ``imp.run_imp`` will prune them: its own ``next_masks`` and ``stop_reason``, with θ0 standing in for the
    trained weights (how many weights a round prunes depends only on how many are alive, not on their values).

    Args:
        config: the experiment (validated).
        input_shape: (C, H, W) of one example.
    """
    model = build_model(config.model, input_shape, seed=config.seed)
    rates = default_rates(config.model, model, config.prune_rate, config.conv_rate, config.output_rate)
    weights = model.state_dict()
    rounds = [_as_round(0, full_masks({name: weights[name] for name in rates}), weights)]
    while stop_reason(config, [rnd.info for rnd in rounds]) is None:  # "stuck" stops it too
        rounds.append(_as_round(len(rounds), next_masks(config, rates, rounds[-1]), weights))
    return [rnd.percent_remaining for rnd in rounds]


def _as_round(index: int, masks: dict[str, np.ndarray], weights: dict[str, np.ndarray]) -> RoundResult:
    """A round whose ticket "trained" to ``weights``: all that ``next_masks`` and ``stop_reason`` read."""
    kept = sparsity(masks)
    info = {"round": index, "percent_remaining": kept["percent"], "remaining": kept["remaining"]}
    return RoundResult(index, masks, {"ticket": ArmResult(masks, weights, weights, {})}, info)


def trainings(config: IMPConfig, rounds: int) -> int:
    """How many networks the first ``rounds`` rounds train: the dense ticket in round 0, every arm after."""
    return 0 if rounds <= 0 else 1 + (rounds - 1) * len(config.arms)


def time_training(config: IMPConfig, data: Any, device: str, steps: int = TIMED_STEPS) -> float:
    """Seconds one training of ``config`` should take here: ``steps`` training steps of the dense network and one
    evaluation pass (validation and test sets) are timed, then scaled to ``config.train.iterations`` steps and
    their evaluations (one every ``eval_every`` iterations and one at the end).

    Every step trains on the same first batch: only the time matters, not what is learnt. What a training does
    once, not at every step or evaluation, is left out of the clock as it is of the scaling: the first step and a
    first evaluation batch run untimed (allocations; on a GPU, CuPy compiles each kernel at its first call, which
    can take longer than a whole evaluation pass), and the evaluation sets are on the device before the clock
    starts, as ``training.train`` moves them there once.
    """
    train = config.train
    model = build_model(config.model, tuple(data.x_train.shape[1:]), seed=config.seed).to(device)
    optimizer = make_optimizer(train.optimizer, model, train.lr, **train.optimizer_kwargs())
    x = to_device(data.x_train[:train.batch_size], device)  # (B, C, H, W)
    y = to_device(data.y_train[:train.batch_size], device)  # (B,)
    x_val, y_val = to_device(data.x_val, device), to_device(data.y_val, device)
    x_test, y_test = to_device(data.x_test, device), to_device(data.y_test, device)
    eval_batch = train.eval_batch_size or evaluation_batch(model, tuple(x_val.shape[1:]))
    with np.errstate(over="ignore", invalid="ignore"):  # the loss does not matter here, only the clock
        float(train_step(model, optimizer, x, y))  # warm-up of the step
        evaluate(model, x_val[:eval_batch], y_val[:eval_batch], eval_batch)  # warm-up of the evaluation
        started = time.perf_counter()
        for _ in range(steps):
            loss = train_step(model, optimizer, x, y)
        float(loss)  # waits for the device to finish every step
        step = (time.perf_counter() - started) / steps
        started = time.perf_counter()
        evaluate(model, x_val, y_val, eval_batch)
        evaluate(model, x_test, y_test, eval_batch)
        evaluation = time.perf_counter() - started
    return step * train.iterations + evaluation * math.ceil(train.iterations / train.eval_every)


@dataclass
class Plan:
    """What a run (or K trials) will do, printed before it starts (``lines``).

    Attributes:
        config: the experiment (the first trial's seed for trials).
        data: the data set (its split sizes are printed).
        percents: percent of weights remaining after each round (``planned_percents``).
        read_back: per run folder (one, or one per trial), the number of completed rounds on disk.
        device, threads, out: where it computes, with how many BLAS threads, where it writes.
        seconds_per_training: ``time_training``'s estimate (None: not timed, nothing left to train).
        parallel: trainings that run at once (trials on W worker processes: W).
        where: how the trials are spread ("this process", "2 local processes", ...; "" for one run).
        arm_workers: processes that train a round's arms at the same time (``imp --workers``; 1: in turn).
    """

    config: IMPConfig
    data: Any
    percents: list[float]
    read_back: list[int]
    device: str
    threads: int
    out: str
    seconds_per_training: float | None = None
    parallel: int = 1
    where: str = ""
    steps: int = field(default=TIMED_STEPS)
    arm_workers: int = 1

    @property
    def total(self) -> int:
        """Trainings of the whole run (all trials)."""
        return trainings(self.config, len(self.percents)) * len(self.read_back)

    @property
    def done(self) -> int:
        """Trainings already on disk, read back instead of trained."""
        return sum(trainings(self.config, n) for n in self.read_back)

    @property
    def left(self) -> int:
        return self.total - self.done

    @property
    def seconds(self) -> float | None:
        """The estimated wall-clock time of what is left (None: not timed)."""
        if self.seconds_per_training is None:
            return None
        if self.arm_workers > 1:  # a round takes as long as its arms' turns on the workers: ceil(arms / workers)
            turns = [1] + [-(-len(self.config.arms) // self.arm_workers)] * (len(self.percents) - 1)
            return self.seconds_per_training * sum(sum(turns[n:]) for n in self.read_back)
        runs_left = sum(1 for n in self.read_back if n < len(self.percents))
        return self.seconds_per_training * self.left / max(1, min(self.parallel, runs_left))

    def lines(self) -> list[str]:
        """The plan, one line per fact."""
        config, data = self.config, self.data
        last = len(self.percents) - 1
        if config.one_shot:
            rounds = f"1, one-shot: the trained dense network pruned once, to {self.percents[-1]:.1f}% of the weights"
        else:
            why = f" (until at most {config.target_percent:g}% remain)" if config.target_percent is not None else ""
            rounds = f"{last} after the dense round 0{why}, down to {self.percents[-1]:.1f}% of the weights"
        controls = " (the controls train in rounds >= 1)" if config.controls else ""
        lines = [
            f"plan: {config.model} on {config.dataset} ({len(data.y_train)} train / {len(data.y_val)} val / "
            f"{len(data.y_test)} test examples)",
            f"  rounds     {rounds}",
            f"  arms       {', '.join(config.arms)}{controls}",
            f"  training   {config.train.iterations} iterations per training, batch {config.train.batch_size}, "
            f"{config.train.optimizer} at lr {config.train.lr:g}, reset {config.reset}",
        ]
        if len(self.read_back) > 1:
            count = len(self.read_back)
            lines.append(f"  trials     {count} (seeds {config.seed}..{config.seed + count - 1}), on {self.where}")
        lines.append(f"  trainings  {self._trainings()}")
        lines.append(f"  device     {self.device}, {self.threads} BLAS thread(s){' per trial' if self.where else ''}; "
                     f"writing {self.out}")
        lines.append(f"  estimate   {self._estimate()}")
        return lines

    def _trainings(self) -> str:
        if not self.done:
            return f"{self.total} in all, none on disk yet"
        if len(self.read_back) == 1:
            back = f" (rounds 0-{self.read_back[0] - 1})" if self.read_back[0] > 1 else " (round 0)"
        else:
            back = ""
        return f"{self.total} in all: {self.done} read back from disk{back}, {self.left} to train"

    def _estimate(self) -> str:
        if not self.left:
            return "nothing left to train: the run is complete"
        if self.seconds is None:
            return "not timed"
        spread = f", {self.parallel} at a time if the cores keep up" if self.parallel > 1 else ""
        if self.arm_workers > 1:
            at_once = min(self.arm_workers, len(self.config.arms))
            spread = f", each round's arms {at_once} at a time on {self.arm_workers} processes"
        return (f"about {duration(self.seconds)} for {self.left} trainings{spread} (an estimate, extrapolated from "
                f"{self.steps} timed training steps and one evaluation pass here)")


def duration(seconds: float) -> str:
    """``"40 s"``, ``"12 min"``, ``"3 h 20 min"``: a duration as a person reads it."""
    if seconds < 60:
        return f"{max(1, round(seconds))} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


# -- the overall progress bar ----------------------------------------------------------------------------------


class RunBar:
    """One progress bar over every training still to run (tqdm, on stderr), with its rate and ETA.

    ``round_done`` advances it by a trained round's networks (pass it as ``on_round``); ``count`` sets it
    (trials on worker processes, counted from their folders). ``write`` prints a line above the bars. Use it as
    a context manager, which closes the bar.
    """

    def __init__(self, total: int, enabled: bool = True, desc: str = "IMP run") -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, desc=desc, unit="training", disable=not enabled or total == 0,
                        dynamic_ncols=True)

    def round_done(self, rnd: RoundResult) -> None:
        self.bar.update(len(rnd.arms))

    def count(self, trained: int) -> None:
        if trained != self.bar.n:
            self.bar.n = trained
            self.bar.refresh()

    def write(self, line: str, to: Callable[[str], None] | None = None) -> None:
        """Prints ``line`` (on stdout, or with ``to``) without breaking the bars: they are drawn again below it."""
        with self.bar.external_write_mode():
            if to is None:
                print(line, flush=True)
            else:
                to(line)

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> RunBar:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


__all__ = ["TIMED_STEPS", "Plan", "RunBar", "duration", "planned_percents", "time_training", "trainings"]
