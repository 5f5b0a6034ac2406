"""Options that several commands share, each written once, with its default shown from where it is set.

Every training option defaults to None on the command line, so that an option left out keeps the preset's
value or, without a preset, the paper's setting for the network (``models.PAPER_TRAINING`` for the iterations,
learning rate and data set; ``TrainConfig``'s defaults for the rest). The help shows those values.
"""

from __future__ import annotations

import argparse

from minilottery.data import DATASETS
from minilottery.lab.sparse_training import MODES, SPARSE_DENSITY, SPARSE_MIN_WEIGHTS
from minilottery.models import DEFAULT_MODEL, MODELS, PAPER_TRAINING
from minilottery.optim import OPTIMIZERS
from minilottery.training import TrainConfig

TRAINING_OPTIONS = ("model", "dataset", "iterations", "lr", "optimizer", "batch_size", "eval_every", "seed")


def by_model(key: str) -> str:
    """``"50000 for lenet_300_100, 20000 for conv2, ..."``: the paper's ``key`` for each network."""
    return ", ".join(f"{settings[key]} for {model}" for model, settings in PAPER_TRAINING.items())


PRESET_NOTE = "; a preset's value with --preset"  # for the options a preset can set (imp, trials)


def add_training_options(parser: argparse.ArgumentParser, seed_help: str, preset: bool = False) -> None:
    """--model, --dataset, --iterations, --lr, --optimizer, --batch-size, --eval-every, --seed.

    ``preset``: the command takes ``--preset``, whose values replace these defaults (the help says so).
    """
    defaults = TrainConfig()
    note = PRESET_NOTE if preset else ""
    parser.add_argument("--model", choices=MODELS, default=None, help=f"network (default: {DEFAULT_MODEL}{note})")
    parser.add_argument("--dataset", choices=DATASETS, default=None,
                        help=f"data set (default: the paper's for the network: {by_model('dataset')}{note})")
    parser.add_argument("--iterations", type=int, default=None,
                        help=f"training steps per network (default: the paper's: {by_model('iterations')}{note})")
    parser.add_argument("--lr", type=float, default=None,
                        help=f"learning rate (default: the paper's: {by_model('lr')}{note})")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default=None,
                        help=f"optimizer (default: {defaults.optimizer}{note})")
    parser.add_argument("--batch-size", type=int, default=None,
                        help=f"examples per step (default: {defaults.batch_size}{note})")
    parser.add_argument("--eval-every", type=int, default=None,
                        help=f"evaluate on the validation and test sets every N iterations "
                             f"(default: {defaults.eval_every}{note})")
    parser.add_argument("--seed", type=int, default=None, help=f"{seed_help} (default: {defaults.seed}{note})")


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """--device, --data-dir, --no-progress: where a command computes, reads its data, and whether it shows bars."""
    parser.add_argument("--device", choices=["cpu", "gpu"], default=None, help="where to compute (default: cpu)")
    parser.add_argument("--data-dir", default=None, metavar="DIR",
                        help="the data root (one folder per data set), or the data set's own folder (default: "
                             "$MINILOTTERY_DATA, else the checkout's data/, else the user cache)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_kernels_option(parser: argparse.ArgumentParser) -> None:
    """--sparse-kernels: how a pruned network's dense layers train (``minilottery.lab.sparse_training``)."""
    # "off" by default: a sparse step agrees with the masked dense one to float rounding, not bit for bit, and the
    # runs the README and the tutorials' solutions quote (the demo's rounds 11-12, and the experiments built on its
    # round-12 ticket) were trained dense; "auto" changes the last bits of every round below SPARSE_DENSITY
    parser.add_argument("--sparse-kernels", choices=MODES, default="off",
                        help=f"train pruned dense layers over their kept weights only: auto (on the CPU, layers of "
                             f"at least {SPARSE_MIN_WEIGHTS:,} weights keeping at most {100 * SPARSE_DENSITY:g}%% "
                             "of them, and a smaller one right after those when the compiled loops run), on (every "
                             "dense layer), off (masked dense layers, as the paper) (default: off)")


def add_workers_option(parser: argparse.ArgumentParser, default: int = 1) -> None:
    """--workers: train each round's arms at the same time in N processes (``minilottery.lab.arm_pool``)."""
    parser.add_argument("--workers", type=int, default=default, metavar="N",
                        help="train each round's arms (the ticket and its controls) at the same time in N worker "
                             "processes, each with --threads BLAS threads; the numbers are the same bit for bit "
                             f"(default: {default})")


def round_list(text: str) -> list[int]:
    """The type of a list of rounds (``transfer --rounds``, ``sanity --round``): comma-separated round numbers
    >= 1, or argparse's one-line usage error."""
    try:
        rounds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected round numbers such as 7,12, got {text!r}") from None
    if not rounds or min(rounds) < 1:
        raise argparse.ArgumentTypeError(f"expected round numbers >= 1 (round 0 is the dense network), got {text!r}")
    return rounds


def comma_list(kind: type, example: str):
    """An argparse ``type``: a comma-separated list of ``kind`` (``instability --k/--arms``, ``sanity --variants``),
    or argparse's one-line usage error naming ``example``."""
    def parse(text: str) -> list:
        try:
            values = [kind(part.strip()) for part in text.split(",") if part.strip()]
        except ValueError:
            values = []
        if not values:
            raise argparse.ArgumentTypeError(f"expected {example}, got {text!r}")
        return values
    return parse
