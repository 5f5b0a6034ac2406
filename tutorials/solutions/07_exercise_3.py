"""Solution to exercise 7.3: weight decay and the first layer's border pixels.

Run (from the repository root): python tutorials/solutions/07_exercise_3.py [--weight-decay L] [--quick]
Runs tutorial 7's IMP with TrainConfig(weight_decay=1e-4) for 1 round (--rounds; 2 trainings of 5,000 iterations, about
a minute on one core) and reads the same rounds of tutorial 7's run (no weight decay) back. Prints, round by round, the
connections a border pixel and a central pixel keep in 1.W, and the mean |w| of the border's trained weights.
"""

import argparse
from pathlib import Path

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
parser.add_argument("--weight-decay", type=float, default=1e-4)
parser.add_argument("--rounds", type=int, default=1, help="IMP rounds with weight decay (the mask after round r)")
parser.add_argument("--quick", action="store_true", help="tutorial 7's --quick settings")
args = parser.parse_args()
threads.apply(1)
data = load_mnist()
if args.quick:
    data = data.subset(3000, 500, 1000)
folder = "run_quick" if args.quick else "run"
border = np.ones((28, 28), dtype=bool)
border[4:24, 4:24] = False  # tutorial 7's 4-pixel frame
for decay, rounds in ((0.0, 3 if args.quick else 15), (args.weight_decay, args.rounds)):
    training = TrainConfig(iterations=300 if args.quick else 5000, eval_every=50 if args.quick else 100, seed=0,
                           weight_decay=decay)
    config = IMPConfig(model="lenet_300_100", rounds=rounds, prune_rate=0.2, reset="init", controls=(),
                       train=training, seed=0)
    path = tutorial_run("07_iterative_magnitude_pruning", config, data) if decay == 0 else \
        tutorials / "figures" / "solutions" / "07_exercise_3" / folder  # tutorial 7's run, then ours
    result = run_imp_in_folder(config, data, path, progress=False)
    print(f"weight_decay {decay:g}:")
    for rnd in result.rounds[:args.rounds + 1]:
        per_pixel = rnd.masks["1.W"].sum(axis=0).reshape(28, 28)  # (784,) -> (28, 28): connections kept per pixel
        trained = np.abs(rnd.arms["ticket"].final_weights["1.W"]).reshape(300, 28, 28)  # (300, 784) -> (300, 28, 28)
        kept = rnd.masks["1.W"].reshape(300, 28, 28)
        print(f"  round {rnd.index}: border pixel keeps {per_pixel[border].mean():5.1f} of 300, central pixel "
              f"{per_pixel[~border].mean():5.1f}; trained |w| of the border's kept weights "
              f"{trained[:, border][kept[:, border]].mean():.5f}"
              f" (central {trained[:, ~border][kept[:, ~border]].mean():.5f}); test accuracy "
              f"{100 * rnd.arms['ticket'].metrics['test_accuracy_at_early_stop']:.2f}%")
