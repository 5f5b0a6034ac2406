"""Solution to exercise 9.2: reset to θ0 against rewinding at a higher learning rate (Adam 5e-3).

Run (from the repository root): python tutorials/solutions/09_exercise_2.py [--lr 5e-3] [--quick]
Tutorial 9's part a (one-shot to 5%, 2,000 iterations a training, seed 0) with lr 5e-3 for reset to θ0 and
rewinding to θ100 (--resets): 4 trainings, about a minute on one core, runs in
tutorials/figures/solutions/09_exercise_2/. Prints each reset's test accuracy at early stop, and the dense network's.
"""

import argparse
from pathlib import Path

from minilottery.data import load_mnist
from minilottery.imp import IMPConfig
from minilottery.lab import threads
from minilottery.lab.run_folder import run_imp_in_folder
from minilottery.training import TrainConfig

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--lr", type=float, default=5e-3)
parser.add_argument("--resets", default="init,rewind:100", help="e.g. init,rewind:20,rewind:100")
parser.add_argument("--quick", action="store_true", help="tutorial 9's --quick settings")
args = parser.parse_args()
threads.apply(1)
full = load_mnist()
data = full.subset(3000, 500, 1000) if args.quick else full
folder = "run_quick" if args.quick else "run"
root = Path(__file__).resolve().parents[1] / "figures" / "solutions" / "09_exercise_2" / folder
training = TrainConfig(iterations=300 if args.quick else 2000, eval_every=50 if args.quick else 100, lr=args.lr, seed=0)
print(f"Adam lr {args.lr:g}, one-shot to 5% of the weights:")
for reset in args.resets.split(","):
    config = IMPConfig(model="lenet_300_100", rounds=1, one_shot=True, target_percent=5.0, reset=reset,
                       train=training, seed=0)
    result = run_imp_in_folder(config, data, root / f"lr_{args.lr:g}_{reset.replace(':', '_')}", progress=False)
    metrics = result.rounds[1].arms["ticket"].metrics
    print(f"  reset {reset:10s}: test accuracy {100 * metrics['test_accuracy_at_early_stop']:.2f}% "
          f"(early stop {metrics['early_stop_iteration']:,})")
dense = result.rounds[0].arms["ticket"].metrics
print(f"  dense network: test accuracy {100 * dense['test_accuracy_at_early_stop']:.2f}% "
      f"(early stop {dense['early_stop_iteration']:,})")
