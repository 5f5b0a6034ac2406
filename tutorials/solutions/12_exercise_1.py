"""Solution to exercise 12.1: how much SNIP's and GraSP's masks change with the number of scoring examples.

Run (from the repository root): python tutorials/solutions/12_exercise_1.py [--quick]
Reads tutorial 12's IMP run (tutorials/figures/12_tickets_without_training/run-<hash>; trained first if missing) for its
targets at rounds 3 and 5, computes SNIP's and GraSP's masks from 10, 100 (the default) and 1,000 training examples,
and prints the overlap of each with the 100-example mask (the fraction of kept weights they share), and each mask's
per-layer percent kept. Trains nothing: under a minute on one core.
"""

import argparse
from pathlib import Path

from minilottery.data import load_mnist
from minilottery.imp import IMPConfig
from minilottery.lab import threads
from minilottery.lab.prune_at_init import Scorer, targets_from_run
from minilottery.lab.run_folder import run_imp_in_folder
from minilottery.lab.sanity import overlap
from minilottery.lab.transfer import SourceRun
from minilottery.lab.tutorial import run_folder
from minilottery.prune import sparsity
from minilottery.training import TrainConfig

tutorials = Path(__file__).resolve().parents[1]


def tutorial_run(tutorial, config, data, name="run"):
    """The folder where that tutorial keeps this run: figures/<tutorial>/<name>-<hash of the settings>/."""
    return run_folder(tutorials / "figures" / tutorial, config, data, name)


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="tutorial 12's --quick run (rounds 1 and 2)")
args = parser.parse_args()
threads.apply(1)
data = load_mnist()
if args.quick:
    data = data.subset(3000, 500, 1000)
training = TrainConfig(iterations=100 if args.quick else 2000, eval_every=50 if args.quick else 100, seed=0)
config = IMPConfig(model="lenet_300_100", rounds=2 if args.quick else 5, prune_rate=0.5, controls=(), train=training,
                   seed=0)  # tutorial 12's
run_dir = tutorial_run("12_tickets_without_training", config, data)
run_imp_in_folder(config, data, run_dir, progress=False)
source = SourceRun.read(run_dir)
chosen = [1, 2] if args.quick else [3, 5]
targets = [t for t in targets_from_run(source, None) if t.round in chosen]
scorers = {n: Scorer(config, source.input_shape, source.start, data, examples=n) for n in (10, 100, 1000)}
for target in targets:
    print(f"round {target.round}: {sparsity(target.ticket)['percent']:.2f}% of the weights")
    for method in ("snip", "grasp"):
        reference = scorers[100].masks(method, target)
        for n, scorer in scorers.items():
            masks = reference if n == 100 else scorer.masks(method, target)
            layers = "/".join(f"{layer['percent']:.2f}" for layer in sparsity(masks)["layers"].values())
            print(f"  {method:5s} {n:5,} examples: overlap with 100 examples {100 * overlap(masks, reference):5.1f}%, "
                  f"% of 1.W/3.W/5.W kept {layers}")
