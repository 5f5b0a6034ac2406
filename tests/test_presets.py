"""The presets say what they are for: ``lenet-paper-trial`` is one trial of what ``check-paper`` reads."""

from __future__ import annotations

import math

import pytest

from minilottery.lab.paper import NEAR
from minilottery.lab.presets import from_preset
from minilottery.lab.progress import planned_percents, trainings
from minilottery.training import TrainConfig

CLAIM_LEVELS = (21.1, 13.5, 3.6)  # the percents of weights remaining the paper's LeNet claims are read at


def test_lenet_paper_trial_is_the_papers_training_down_to_3_6_percent():
    config = from_preset("lenet-paper-trial").validate()
    assert config.model == "lenet_300_100" and config.dataset == "mnist"
    assert config.train == TrainConfig()  # the paper's: 50,000 iterations, Adam 1.2e-3, batch 60, eval every 100
    assert (config.train.iterations, config.train.eval_every) == (50_000, 100)
    assert config.controls == ("reinit",)  # the control check-paper's reinit claims need
    percents = planned_percents(config, (1, 28, 28))
    assert percents[-1] == pytest.approx(3.6, abs=0.05)  # the last round is at 3.6%, and no further
    for level in CLAIM_LEVELS:  # paper.round_near finds a round for every claim
        assert min(abs(math.log(p / level)) for p in percents[1:]) < math.log(NEAR), level
    assert trainings(config, len(percents)) == 31  # the dense network, then a ticket and a reinit per round
