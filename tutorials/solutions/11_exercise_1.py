"""Solution to exercise 11.1: instability of a ticket found and trained at Adam 5e-3, for k = 0, 100 and 500.

Run (from the repository root): python tutorials/solutions/11_exercise_1.py [--lr 5e-3] [--ks 0,100,500] [--quick]
Runs tutorial 11's IMP (50% a round, 5 rounds, 2,000 iterations a training, seed 0) at the higher learning rate in
tutorials/figures/solutions/11_exercise_1/, then spawns two children of its sparsest ticket from θk for each k
(a parent trained to the largest k, data seeds 1 and 2 for the children) and measures the test error at 11 points
of the line between them. About 23,000 training iterations: 4 minutes on one core.
Prints the ticket's rounds, then per k the error along the path and the instability.
"""

import argparse
from pathlib import Path

from minilottery.backend import to_device
from minilottery.data import load_mnist
from minilottery.imp import IMPConfig
from minilottery.lab import threads
from minilottery.lab.instability import alphas, instability, network, path_errors, spawn
from minilottery.lab.run_folder import run_imp_in_folder
from minilottery.lab.transfer import SourceRun
from minilottery.training import TrainConfig

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--lr", type=float, default=5e-3)
parser.add_argument("--ks", default="0,100,500")
parser.add_argument("--quick", action="store_true", help="tutorial 11's --quick settings (k up to 99)")
args = parser.parse_args()
threads.apply(1)
data = load_mnist()
if args.quick:
    data = data.subset(3000, 500, 1000)
training = TrainConfig(iterations=100 if args.quick else 2000, eval_every=50 if args.quick else 100, lr=args.lr,
                       seed=0)
config = IMPConfig(model="lenet_300_100", rounds=2 if args.quick else 5, prune_rate=0.5, controls=(), train=training,
                   seed=0)
run_dir = Path(__file__).resolve().parents[1] / "figures" / "solutions" / "11_exercise_1" / \
    (f"run_quick_lr_{args.lr:g}" if args.quick else f"run_lr_{args.lr:g}")
result = run_imp_in_folder(config, data, run_dir, progress=False)
for rnd in result.rounds:
    metrics = rnd.arms["ticket"].metrics
    print(f"round {rnd.index}: {rnd.percent_remaining:5.1f}% of the weights, test accuracy "
          f"{100 * metrics['test_accuracy_at_early_stop']:.2f}% (early stop {metrics['early_stop_iteration']:,})")
source = SourceRun.read(run_dir)
r = len(result.rounds) - 1
masks = source.masks(r)
ks = [k for k in (int(k) for k in args.ks.split(",")) if k < training.iterations]
children = spawn(config, data, source.start, masks, ks, "cpu", progress=False, desc="ticket")
x_test, y_test = to_device(data.x_test, "cpu"), to_device(data.y_test, "cpu")
model = network(config, source.input_shape, source.start, masks, "cpu")
print(f"ticket of round {r} ({result.rounds[r].percent_remaining:.1f}% of the weights), Adam lr {args.lr:g}:")
for k, (a, b) in children.items():
    errors = path_errors(model, a.final_weights, b.final_weights, x_test, y_test, alphas(11),
                         training.eval_batch_size)
    print(f"  k = {k:4d}: test error (%) along the path " + " ".join(f"{100 * e:.2f}" for e in errors)
          + f"; instability {100 * instability(errors):.2f} points")
