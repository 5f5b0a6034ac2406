"""Solution to exercise 12.2: each method's mask shuffled within each layer, trained beside the method's own.

Run (from the repository root): python tutorials/solutions/12_exercise_2.py [--rounds 5] [--quick]
Reads tutorial 12's IMP run (trained first if missing), builds SNIP's, GraSP's and SynFlow's masks at round 5's
count (3.2% of the weights) and their shuffles (the same per-layer counts, new positions: Scorer's "<method>_shuffled"),
and trains all six from θ0 with the run's settings (2,000 iterations, seed 0): about 2 minutes on one core.
Prints each method's accuracy, its shuffled mask's, and the difference.
"""

import argparse
from pathlib import Path

from minilottery.data import load_mnist
from minilottery.imp import IMPConfig, train_arm
from minilottery.lab import threads
from minilottery.lab.prune_at_init import Scorer, targets_from_run
from minilottery.lab.run_folder import run_imp_in_folder
from minilottery.lab.transfer import SourceRun
from minilottery.lab.tutorial import run_folder
from minilottery.prune import sparsity
from minilottery.training import TrainConfig

tutorials = Path(__file__).resolve().parents[1]


def tutorial_run(tutorial, config, data, name="run"):
    """The folder where that tutorial keeps this run: figures/<tutorial>/<name>-<hash of the settings>/."""
    return run_folder(tutorials / "figures" / tutorial, config, data, name)


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--rounds", default="5", help="the run's rounds whose counts to prune to, e.g. 3,5")
parser.add_argument("--quick", action="store_true", help="tutorial 12's --quick run (round 2)")
args = parser.parse_args()
threads.apply(1)
data = load_mnist()
if args.quick:
    data = data.subset(3000, 500, 1000)
training = TrainConfig(iterations=100 if args.quick else 2000, eval_every=50 if args.quick else 100, seed=0)
config = IMPConfig(model="lenet_300_100", rounds=2 if args.quick else 5, prune_rate=0.5, controls=(), train=training,
                   seed=0)  # tutorial 12's
run_dir = tutorial_run("12_tickets_without_training", config, data)
result = run_imp_in_folder(config, data, run_dir, progress=False)
source = SourceRun.read(run_dir)
chosen = [2] if args.quick else [int(r) for r in args.rounds.split(",")]
scorer = Scorer(config, source.input_shape, source.start, data)
for target in (t for t in targets_from_run(source, None) if t.round in chosen):
    ticket = result.rounds[target.round].arms["ticket"].metrics["test_accuracy_at_early_stop"]
    print(f"round {target.round}: {sparsity(target.ticket)['percent']:.2f}% of the weights "
          f"(ticket {100 * ticket:.2f}%)")
    for method in ("snip", "grasp", "synflow"):
        accuracy = {}
        for variant in (method, f"{method}_shuffled"):
            masks = scorer.masks(variant, target)
            accuracy[variant] = train_arm(config, data, source.start, masks, "cpu", False, variant)[0].metrics[
                "test_accuracy_at_early_stop"]
        own, shuffled = accuracy[method], accuracy[f"{method}_shuffled"]
        print(f"  {method:8s} {100 * own:.2f}%, shuffled {100 * shuffled:.2f}% ({100 * (shuffled - own):+.2f} points)")
