"""Named experiments (presets), and an ``IMPConfig`` from a preset and flat options, as the command line gives them.

A preset is a plain dict of ``IMPConfig`` and ``TrainConfig`` fields, easy to read and edit; explicit options
override it::

    from minilottery.lab.presets import config_from_options, from_preset
    quick = from_preset("lenet-quick")                                  # minilottery imp --preset lenet-quick
    short = from_preset("lenet-quick", rounds=3, iterations=300)        # ... --rounds 3 --iterations 300
    mine = config_from_options(model="lenet_300_100", rounds=2, iterations=60, controls="reinit")
"""

from __future__ import annotations

import dataclasses
from typing import Any

from minilottery.checks import check_choice
from minilottery.imp import CONTROLS, IMPConfig
from minilottery.models import DEFAULT_MODEL, MODELS, PAPER_TRAINING
from minilottery.training import TrainConfig

DEMO_PRESET = "lenet-quick"  # what ``minilottery demo`` runs

# Each preset names only what differs from the defaults, which are the paper's settings (``IMPConfig`` and
# ``TrainConfig``: LeNet-300-100 on MNIST, Adam 1.2e-3, batch 60, 50K iterations, 20% of the hidden and 10% of
# the output weights per round, reset to θ0).
PRESETS: dict[str, dict[str, Any]] = {
    # Frankle & Carbin (2019), Figures 2 and 3, with both controls: 20 rounds end at 1.2% of the weights.
    "lenet-paper": {"model": "lenet_300_100", "rounds": 20, "controls": CONTROLS},
    # One trial of what ``check-paper`` reads (minilottery/lab/paper.py), at the paper's training (50,000
    # iterations, evaluated every 100): the reinit control, and 15 rounds, down to 3.6% of the weights (the
    # claims sit at 21.1%, 13.5% and 3.6%). 31 trainings; the README gives the time a trial takes.
    "lenet-paper-trial": {"model": "lenet_300_100", "rounds": 15, "controls": ("reinit",)},
    # The paper's protocol, shortened for a laptop CPU: 5,000 iterations per training (the dense network's
    # validation loss bottoms out around 2,000-5,000) and 12 rounds (down to 6.9% of the weights).
    "lenet-quick": {"model": "lenet_300_100", "rounds": 12, "controls": CONTROLS, "iterations": 5000},
    # lenet-quick's protocol on Fashion-MNIST (a harder drop-in: the dense network reaches 88%, not 98%), three
    # rounds further, down to 3.6% of the weights (15 rounds), to compare with the paper's sparsest MNIST tickets.
    "lenet-fashion-quick": {"model": "lenet_300_100", "dataset": "fashion-mnist", "rounds": 15, "controls": CONTROLS,
                            "iterations": 5000},
    # Conv-2 (the paper's Figure 5 network, Adam 2e-4) on Fashion-MNIST for a 2-core CPU: a training took 346-443 s
    # here at two BLAS threads, so its 11 trainings take about 75 minutes (it was sized from a 0.17 s step and a
    # 14 s evaluation of the 15,000 validation and test images, timed alone: an hour, which was too little):
    # 1,500 iterations per training instead of 20,000, evaluated every 250, the reinit control only, and pruned
    # faster (50% of the dense and 25% of the conv and output weights per round instead of 20%, 10% and 10%),
    # so that 5 rounds reach 3.4% of the weights, where the paper's rates take 16 rounds.
    "conv2-fashion-quick": {"model": "conv2", "dataset": "fashion-mnist", "rounds": 5, "controls": ("reinit",),
                            "iterations": 1500, "eval_every": 250, "prune_rate": 0.5, "conv_rate": 0.25,
                            "output_rate": 0.25},
    # The paper's Conv-2 protocol on Fashion-MNIST (20,000 iterations, its pruning rates, both controls), for a
    # GPU (--device gpu): 16 rounds end near 3% of the weights.
    "conv2-fashion-paper": {"model": "conv2", "dataset": "fashion-mnist", "rounds": 16, "controls": CONTROLS},
}


def config_from_options(preset: str | None = None, **options: Any) -> IMPConfig:
    """An IMPConfig from a preset (optional) and flat options: IMPConfig and TrainConfig fields by name.

    Options that are None are ignored, so command-line flags left out keep the preset's value, else the
    paper's setting for the model (``TrainConfig.paper``: its iterations and learning rate; its data set).
    ``seed`` sets both the weights' seed and the data order's (``TrainConfig.seed``). Not validated: call
    ``validate``.

    Raises:
        ValueError: an unknown preset or option name.
    """
    if preset is not None:
        check_choice("--preset", preset, PRESETS)
    values = {**(PRESETS[preset] if preset else {}), **{k: v for k, v in options.items() if v is not None}}
    model = values.setdefault("model", DEFAULT_MODEL)
    check_choice("--model", model, MODELS)
    values.setdefault("dataset", PAPER_TRAINING[model]["dataset"])  # the network's data set in the paper
    imp_names = {f.name for f in dataclasses.fields(IMPConfig)} - {"train"}
    train_names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - imp_names - train_names)
    if unknown:
        raise ValueError(f"unknown IMP option(s) {', '.join(unknown)}; options are "
                         f"{', '.join(sorted(imp_names | train_names))}")
    train = TrainConfig.paper(model, **{k: v for k, v in values.items() if k in train_names})
    return IMPConfig(train=train, **{k: v for k, v in values.items() if k in imp_names})


def from_preset(name: str, **overrides: Any) -> IMPConfig:
    """``PRESETS[name]`` with ``overrides`` (flat, as ``config_from_options`` takes them)."""
    return config_from_options(preset=name, **overrides)


__all__ = ["PRESETS", "config_from_options", "from_preset"]
