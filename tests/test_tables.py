"""The results table of trials: each cell is the mean over the trials with [min, max] beside it, from known values."""

from __future__ import annotations

import re

from minilottery.lab.tables import format_table
from minilottery.lab.trials import aggregate

METRICS = ("early_stop_iteration", "test_accuracy_at_early_stop", "final_test_accuracy")
# Three trials: per round (percent remaining, {arm: (early-stop iteration, accuracy there, final accuracy)}).
TRIALS = [
    [(100.0, {"ticket": (4000, 0.9710, 0.9700)}),
     (80.0, {"ticket": (3000, 0.9790, 0.9780), "reinit": (5000, 0.9700, 0.9690)})],
    [(100.0, {"ticket": (5200, 0.9800, 0.9790)}),
     (80.0, {"ticket": (3500, 0.9810, 0.9800), "reinit": (5500, 0.9660, 0.9650)})],
    [(100.0, {"ticket": (4600, 0.9749, 0.9760)}),
     (80.0, {"ticket": (4000, 0.9800, 0.9790), "reinit": (6000, 0.9680, 0.9670)})],
]


def _summary(seed: int, rounds: list) -> dict:
    """One trial's summary (``{"config", "rounds"}``, as a run folder holds it) from the rows of ``TRIALS``."""
    return {"config": {"model": "lenet_300_100", "seed": seed, "controls": ["reinit"]},
            "rounds": [{"round": number, "percent_remaining": percent,
                        "arms": {arm: dict(zip(METRICS, values)) for arm, values in arms.items()}}
                       for number, (percent, arms) in enumerate(rounds)]}


def _cells(line: str) -> list[str]:
    """A table row's cells: columns are two or more spaces apart, a cell's own spaces are single."""
    return re.split(r"\s{2,}", line.strip())


def test_trials_cells_show_mean_min_and_max():
    table = format_table(aggregate([_summary(seed, rounds) for seed, rounds in enumerate(TRIALS)]))
    lines = table.splitlines()
    dense, pruned = _cells(lines[2]), _cells(lines[3])
    # accuracy at early stop in round 0: mean of 97.10, 98.00, 97.49 is 97.53; the final accuracy has no range
    assert dense[3] == "97.53 [97.10, 98.00]"
    assert dense == ["0", "100.0", "4,600 [4,000, 5,200]", "97.53 [97.10, 98.00]", "97.50", "-", "-", "-"]
    assert pruned == ["1", "80.0", "3,500 [3,000, 4,000]", "98.00 [97.90, 98.10]", "97.90",
                      "5,500 [5,000, 6,000]", "96.80 [96.60, 97.00]", "96.70"]
    assert lines[4] == "mean over 3 trials (seeds 0, 1, 2); [min, max] in brackets"
    assert len({len(line) for line in lines[1:4]}) == 1  # the columns line up
