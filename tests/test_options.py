"""``minilottery imp``'s options: argv parsed by the real command-line parser, then ``config_from_args``.

Each case gives the argv and the exact IMPConfig it must make, written out field by field from the paper's settings
(``IMPConfig()`` and ``TrainConfig()`` are LeNet-300-100's); no training runs. Explicit options override a preset,
an option left out keeps the preset's value, else the network's paper setting.
"""

from __future__ import annotations

import pytest

from minilottery.imp import IMPConfig
from minilottery.lab.cli import build_parser
from minilottery.lab.commands.imp import config_from_args
from minilottery.training import TrainConfig

BOTH = ("reinit", "random_prune")
CONV2 = dict(iterations=20_000, lr=2e-4)  # the paper's Conv-2 training (Figure 2)
CONV4 = dict(iterations=25_000, lr=3e-4)
CONV6 = dict(iterations=30_000, lr=3e-4)


def parse(*argv: str) -> IMPConfig:
    """The IMPConfig of ``minilottery imp <argv> --out run``, as the command builds it before any data loads."""
    args = build_parser().parse_args(["imp", *argv, "--out", "run"])
    return config_from_args(args)


def expected(train: dict | None = None, **fields) -> IMPConfig:
    """The paper's IMPConfig with ``fields`` changed and its TrainConfig with ``train`` changed."""
    return IMPConfig(train=TrainConfig(**(train or {})), **fields)


CASES = {
    "no options: the paper's LeNet": ([], expected()),
    "preset": (["--preset", "lenet-quick"], expected({"iterations": 5000}, rounds=12, controls=BOTH)),
    "preset + rounds, iterations": (["--preset", "lenet-quick", "--rounds", "3", "--iterations", "300"],
                                    expected({"iterations": 300}, rounds=3, controls=BOTH)),
    "preset + controls none": (["--preset", "lenet-paper", "--controls", "none"], expected(rounds=20)),
    "preset + one control": (["--preset", "lenet-paper", "--controls", "reinit"],
                             expected(rounds=20, controls=("reinit",))),
    "preset + flags left out stay off": (["--preset", "lenet-paper"], expected(rounds=20, controls=BOTH)),
    "controls in the given order, spaces": (["--controls", "random_prune, reinit"],
                                            expected(controls=("random_prune", "reinit"))),
    "controls NONE": (["--controls", "NONE"], expected()),
    "model without preset: its paper training": (["--model", "conv2"],
                                                 expected(CONV2, model="conv2", dataset="cifar10")),
    "model + preset: the preset's iterations": (["--preset", "lenet-quick", "--model", "conv4"],
                                                expected({**CONV4, "iterations": 5000}, model="conv4",
                                                         dataset="cifar10", controls=BOTH)),
    "model + dataset": (["--model", "lenet_300_100", "--dataset", "cifar10"], expected(dataset="cifar10")),
    "target alone: as many rounds as it needs": (["--target-percent", "5"],
                                                 expected(rounds=None, target_percent=5.0)),
    "target + rounds: at most that many": (["--target-percent", "5", "--rounds", "30"],
                                           expected(rounds=30, target_percent=5.0)),
    "preset + target: the target decides": (["--preset", "lenet-paper", "--target-percent", "3.6"],
                                            expected(rounds=None, target_percent=3.6, controls=BOTH)),
    "one-shot to a target": (["--one-shot", "--target-percent", "10"],
                             expected(rounds=None, target_percent=10.0, one_shot=True)),
    "one-shot to where rounds get": (["--one-shot", "--rounds", "5"], expected(rounds=5, one_shot=True)),
    "global pruning and its rate": (["--global", "--prune-rate", "0.3"], expected(global_pruning=True, prune_rate=0.3)),
    "conv and output rates": (["--model", "conv6", "--conv-rate", "0.15", "--output-rate", "0.05"],
                              expected(CONV6, model="conv6", dataset="cifar10", conv_rate=0.15, output_rate=0.05)),
    "optimizer, lr, batch size": (["--optimizer", "sgd", "--lr", "0.05", "--batch-size", "128"],
                                  expected({"optimizer": "sgd", "lr": 0.05, "batch_size": 128})),
    "iterations, eval-every, rewind": (["--iterations", "600", "--eval-every", "50", "--reset", "rewind:100"],
                                       expected({"iterations": 600, "eval_every": 50}, reset="rewind:100")),
    "seed: the weights' and the data order's": (["--seed", "7"], expected({"seed": 7}, seed=7)),
    "preset + training options": (["--preset", "lenet-quick", "--seed", "2", "--lr", "3e-3", "--optimizer", "sgd"],
                                  expected({"iterations": 5000, "seed": 2, "lr": 3e-3, "optimizer": "sgd"},
                                           controls=BOTH, seed=2)),
}


@pytest.mark.parametrize("argv, config", CASES.values(), ids=CASES.keys())
def test_options_make_this_config(argv, config):
    made = parse(*argv)
    assert made.to_dict() == config.to_dict()  # a readable diff, field by field
    assert made == config  # and the same types (controls a tuple)


ERRORS = {
    "zero rounds": (["--rounds", "0"], "--rounds must be an integer >= 1, got 0"),
    "target 0%": (["--target-percent", "0"], "--target-percent must be a real number in (0, 100), got 0.0"),
    "target 100%": (["--target-percent", "100"], "--target-percent must be a real number in (0, 100), got 100.0"),
    "prune rate 1": (["--prune-rate", "1"],
                     "--prune-rate must be a real number in (0, 1), got 1.0; give a fraction, e.g. 0.2 for 20%"),
    "output rate 0": (["--output-rate", "0"],
                      "--output-rate must be a real number in (0, 1), got 0.0; give a fraction, e.g. 0.2 for 20%"),
    "empty controls": (["--controls", ""], "--controls is empty (''); give comma-separated arms from "
                                           "reinit,random_prune, or 'none' for no control arm"),
    "controls of commas": (["--controls", " , "], "--controls is empty (' , '); give comma-separated arms from "
                                                  "reinit,random_prune, or 'none' for no control arm"),
    "a control twice": (["--controls", "reinit,reinit"], "--controls must name each arm once, got 'reinit,reinit'"),
    "an unknown control": (["--controls", "shuffle"], "--controls must be one of reinit, random_prune, got 'shuffle'"),
    "rewind past the end": (["--iterations", "500", "--reset", "rewind:600"],
                            "--reset rewind:600: the rewind iteration must be in 0..500 (--iterations), got 600"),
    "rewind past the preset's end": (["--preset", "lenet-quick", "--reset", "rewind:6000"],
                                     "--reset rewind:6000: the rewind iteration must be in 0..5000 (--iterations), "
                                     "got 6000"),
    "rewind without K": (["--reset", "rewind"],
                         "--reset must be 'init' or 'rewind:K' (K an iteration, e.g. rewind:500), got 'rewind'"),
    "zero iterations": (["--iterations", "0"], "--iterations must be an integer >= 1, got 0"),
    "zero eval-every": (["--eval-every", "0"], "--eval-every must be an integer >= 1, got 0"),
    "zero lr": (["--lr", "0"], "--lr must be a real number in (0, inf), got 0.0; e.g. 1.2e-3"),
    "negative seed": (["--seed", "-1"], "--seed must be an integer >= 0, got -1"),
}


@pytest.mark.parametrize("argv, message", ERRORS.values(), ids=ERRORS.keys())
def test_bad_options_fail_in_one_line(argv, message):
    with pytest.raises(ValueError) as error:
        parse(*argv)
    assert str(error.value) == message
