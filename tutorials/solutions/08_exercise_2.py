"""Solution to exercise 8.2: a "sign-only" control, the ticket's mask with θ0's signs and fresh magnitudes.

Run (from the repository root): python tutorials/solutions/08_exercise_2.py [--round R] [--quick]
Reads tutorial 8's run (tutorials/figures/08_controls/run-<hash>; trained first if missing: 37 trainings), builds
sign(θ0) ⊙ |θ0'| on the ticket's mask of round R (default: the sparsest, 12: 7.0% of the weights), with θ0' the reinit
arm's start, and trains it with the run's settings (5,000 iterations, seed 0; about 40 s on one core). Prints its
test accuracy at early stop beside the ticket's and reinit's of that round.
"""

import argparse
from pathlib import Path

import numpy as np

from minilottery.data import load_mnist
from minilottery.lab import threads
from minilottery.lab.presets import from_preset
from minilottery.lab.run_folder import run_imp_in_folder
from minilottery.lab.tutorial import run_folder
from minilottery.models import build_model
from minilottery.training import train

tutorials = Path(__file__).resolve().parents[1]


def tutorial_run(tutorial, config, data, name="run"):
    """The folder where that tutorial keeps this run: figures/<tutorial>/<name>-<hash of the settings>/."""
    return run_folder(tutorials / "figures" / tutorial, config, data, name)


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--round", type=int, default=None, help="the round (default: the last)")
parser.add_argument("--quick", action="store_true", help="tutorial 8's --quick run (3 rounds, 300 iterations)")
args = parser.parse_args()
threads.apply(1)
data = load_mnist()
if args.quick:
    data = data.subset(3000, 500, 1000)
quick = {"rounds": 3, "iterations": 300, "eval_every": 50} if args.quick else {}
config = from_preset("lenet-quick", controls=("reinit", "random_prune"), **quick)  # tutorial 8's config
run_dir = tutorial_run("08_controls", config, data)
result = run_imp_in_folder(config, data, run_dir, progress=False)
rnd = result.rounds[-1 if args.round is None else args.round]
theta0 = result.rounds[0].arms["ticket"].init_weights  # round 0 starts from θ0 itself (nothing masked)
fresh = rnd.arms["reinit"].init_weights  # θ0' ⊙ m: the reinit arm's start
start = {name: np.sign(theta0[name]) * np.abs(fresh[name]) if name in rnd.masks else theta0[name]
         for name in theta0}  # weights: θ0's signs, θ0''s magnitudes (0 where pruned); biases: θ0's
model = build_model(config.model, seed=config.seed)
model.load_state_dict(start)
model.set_masks(rnd.masks)
trained = train(model, data, config.train, progress=False)
print(f"round {rnd.index}, {rnd.percent_remaining:.1f}% of the weights, test accuracy at early stop "
      f"(early-stop iteration):")
for label, accuracy, stop in (
        ("ticket (m, θ0)", rnd.arms["ticket"].metrics["test_accuracy_at_early_stop"],
         rnd.arms["ticket"].metrics["early_stop_iteration"]),
        ("sign-only (m, sign θ0 |θ0'|)", trained.test_accuracy_at_early_stop, trained.early_stop_iteration),
        ("reinit (m, θ0')", rnd.arms["reinit"].metrics["test_accuracy_at_early_stop"],
         rnd.arms["reinit"].metrics["early_stop_iteration"])):
    print(f"  {label:30s} {100 * accuracy:.2f}% ({stop:,})")
