"""Solution to exercise 7.2: IMP past 3.6% (rounds=20, 1.2% of the weights), against the dense network.

Run (from the repository root): python tutorials/solutions/07_exercise_2.py [--quick]
Copies tutorial 7's run folder (rounds 0-15) into tutorials/figures/solutions/07_exercise_2/ when that folder is
new, then extends it to 20 rounds: 5 trainings of 5,000 iterations, about 2.5 minutes on one core (without
tutorial 7's run, all 21 trainings). Prints each round's test accuracy at early stop beside the dense network's.
"""

import argparse
import dataclasses
import shutil
from pathlib import Path

from minilottery.data import load_mnist
from minilottery.imp import IMPConfig
from minilottery.lab import plots, threads
from minilottery.lab.run_folder import run_imp_in_folder
from minilottery.lab.tutorial import run_folder
from minilottery.training import TrainConfig

tutorials = Path(__file__).resolve().parents[1]


def tutorial_run(tutorial, config, data, name="run"):
    """The folder where that tutorial keeps this run: figures/<tutorial>/<name>-<hash of the settings>/."""
    return run_folder(tutorials / "figures" / tutorial, config, data, name)


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="tutorial 7's --quick settings, 5 rounds")
args = parser.parse_args()
threads.apply(1)
data = load_mnist()
if args.quick:
    data = data.subset(3000, 500, 1000)
folder = "run_quick" if args.quick else "run"
config = IMPConfig(model="lenet_300_100", rounds=5 if args.quick else 20, prune_rate=0.2, reset="init", controls=(),
                   train=TrainConfig(iterations=300 if args.quick else 5000, eval_every=50 if args.quick else 100,
                                     seed=0), seed=0)
source = tutorial_run("07_iterative_magnitude_pruning",
                      dataclasses.replace(config, rounds=3 if args.quick else 15), data)  # tutorial 7's own run
run_dir = tutorials / "figures" / "solutions" / "07_exercise_2" / folder
if source.is_dir() and not run_dir.exists():
    shutil.copytree(source, run_dir)  # the same settings: its rounds are read back, only the new ones train
run_imp_in_folder(config, data, run_dir, progress=False)
summary = plots.load_summary(run_dir)
dense = summary["rounds"][0]["arms"]["ticket"]["test_accuracy_at_early_stop"]
for info in summary["rounds"]:
    ticket = info["arms"]["ticket"]
    gap = 100 * (ticket["test_accuracy_at_early_stop"] - dense)
    print(f"round {info['round']:2d}: {info['percent_remaining']:5.1f}% of the weights, test accuracy "
          f"{100 * ticket['test_accuracy_at_early_stop']:.2f}% ({gap:+.2f} points vs dense), early stop "
          f"{ticket['early_stop_iteration']:,}")
at_least = [info["percent_remaining"] for info in summary["rounds"][1:]
            if info["arms"]["ticket"]["test_accuracy_at_early_stop"] >= dense]
print(f"the ticket is at least as accurate as the dense network last at {min(at_least, default=100):.1f}% "
      f"of the weights")
