"""Solution to exercise 8.1: the ticket-vs-reinit gap, run by run, and how much it varies from seed to seed.

Run (from the repository root): python tutorials/solutions/08_exercise_1.py DIR [DIR ...]
Each DIR is a run folder with a reinit arm (tutorial 8's tutorials/figures/08_controls/run-<hash>, `minilottery imp`'s
--out) or a `minilottery trials` folder (its seed_* runs are read). Trains nothing. Prints, per round, each run's
gap (ticket minus reinit, test accuracy at early stop, in points) and, over the runs, the mean gap and the
[min, max] of the gaps, beside the spread of the ticket's own accuracy.
"""

import argparse
from pathlib import Path

import numpy as np

from minilottery.lab import plots

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("dirs", nargs="+", type=Path)
args = parser.parse_args()
folders = []
for path in args.dirs:
    seeds = sorted(path.glob("seed_*"))
    folders.extend(seeds if seeds else [path])
summaries = [plots.load_summary(folder) for folder in folders]
print("runs:", ", ".join(str(folder) for folder in folders))
rounds = min(len(s["rounds"]) for s in summaries)
for index in range(1, rounds):
    infos = [s["rounds"][index] for s in summaries]
    ticket = np.array([100 * i["arms"]["ticket"]["test_accuracy_at_early_stop"] for i in infos])
    reinit = np.array([100 * i["arms"]["reinit"]["test_accuracy_at_early_stop"] for i in infos])
    gaps = ticket - reinit
    print(f"round {index:2d} ({infos[0]['percent_remaining']:5.1f}%): gap per run " +
          " ".join(f"{g:+.2f}" for g in gaps) +
          (f"; mean {gaps.mean():+.2f} [{gaps.min():+.2f}, {gaps.max():+.2f}], ticket's own spread "
           f"{ticket.max() - ticket.min():.2f} points" if len(gaps) > 1 else ""))
