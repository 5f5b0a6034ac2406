"""Solution to exercise 7.1: IMP at a 40% rate against tutorial 7's 20%, compared at equal % of weights remaining.

Run (from the repository root): python tutorials/solutions/07_exercise_1.py [--quick]
Runs IMP with prune_rate 0.4 (the output layer at 0.2) for 7 rounds (2.9% of the weights; 6 rounds leave 4.7%),
with tutorial 7's training (5,000 iterations, seed 0): 8 trainings, about 4 minutes on one core. Tutorial 7's own
run (rate 0.2, 15 rounds) is read back from its run folder (trained there first if it is missing: 16 trainings).
Prints both schedules' rounds, and the 20% run's accuracy interpolated (in log % of weights) at each 40% round.
Draws: tutorials/figures/solutions/07_exercise_1/accuracy_vs_weights.png.
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from minilottery.data import load_mnist
from minilottery.imp import IMPConfig
from minilottery.lab import threads
from minilottery.lab.run_folder import run_imp_in_folder
from minilottery.lab.tutorial import run_folder
from minilottery.training import TrainConfig

tutorials = Path(__file__).resolve().parents[1]


def tutorial_run(tutorial, config, data, name="run"):
    """The folder where that tutorial keeps this run: figures/<tutorial>/<name>-<hash of the settings>/."""
    return run_folder(tutorials / "figures" / tutorial, config, data, name)


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="tutorial 7's --quick settings (small subset, 3 rounds)")
args = parser.parse_args()
threads.apply(1)
data = load_mnist()
if args.quick:
    data = data.subset(3000, 500, 1000)
training = TrainConfig(iterations=300 if args.quick else 5000, eval_every=50 if args.quick else 100, seed=0)
folder = "run_quick" if args.quick else "run"
runs = {}
for rate, rounds in ((0.2, 3 if args.quick else 15), (0.4, 2 if args.quick else 7)):
    config = IMPConfig(model="lenet_300_100", rounds=rounds, prune_rate=rate, reset="init", controls=(),
                       train=training, seed=0)  # tutorial 7's config but for the rate (and rounds)
    path = tutorial_run("07_iterative_magnitude_pruning", config, data) if rate == 0.2 else \
        tutorials / "figures" / "solutions" / "07_exercise_1" / folder
    result = run_imp_in_folder(config, data, path, progress=False)
    runs[rate] = [(r.percent_remaining, 100 * r.arms["ticket"].metrics["test_accuracy_at_early_stop"],
                   r.arms["ticket"].metrics["early_stop_iteration"]) for r in result.rounds]
    print(f"prune_rate {rate}:")
    for index, (percent, accuracy, stop) in enumerate(runs[rate]):
        print(f"  round {index:2d}: {percent:5.1f}% of the weights, test accuracy {accuracy:.2f}% "
              f"(early stop {stop:,})")
slow = np.array(runs[0.2])
print("at the 40% run's levels, the 20% run interpolated in log(% of weights):")
for percent, accuracy, _ in runs[0.4][1:]:
    if percent < slow[-1, 0]:  # np.interp would repeat the last value: no extrapolation
        print(f"  {percent:5.1f}%: rate 0.4 {accuracy:.2f}%, below the 20% run's last level ({slow[-1, 0]:.1f}%)")
        continue
    other = np.interp(np.log(percent), np.log(slow[::-1, 0]), slow[::-1, 1])
    print(f"  {percent:5.1f}%: rate 0.4 {accuracy:.2f}%, rate 0.2 {other:.2f}% ({accuracy - other:+.2f} points)")

out = tutorials / "figures" / "solutions" / "07_exercise_1"
out.mkdir(parents=True, exist_ok=True)
fig, ax = plt.subplots(figsize=(7, 4.5))
for rate, marker in ((0.2, "o-"), (0.4, "s--")):
    values = np.array(runs[rate])
    ax.plot(values[:, 0], values[:, 1], marker, lw=2, label=f"prune_rate {rate}")
ax.set_xscale("log")
ax.invert_xaxis()
ax.set_xlabel("weights remaining (%, log scale)")
ax.set_ylabel("test accuracy at early stop (%)")
ax.grid(alpha=0.3)
ax.legend()
fig.savefig(out / "accuracy_vs_weights.png", dpi=120, bbox_inches="tight")
