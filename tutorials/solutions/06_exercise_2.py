"""Solution to exercise 6.2: fine-tuning the one-shot-pruned network at 7% for 2,000 iterations.

Run (from the repository root): python tutorials/solutions/06_exercise_2.py [--quick]
Trains tutorial 6's dense network (seed 0, 5,000 iterations; the first of 6.1-6.3 to run keeps it in
tutorials/figures/solutions/06_dense.npz for the others), prunes it layer-wise to 7.0% of its weights in one
shot, and retrains the survivors from their trained values with the mask attached (a fresh Adam, lr 1.2e-3,
data seed 0). About 45 s on one core. Prints the test accuracy before pruning, after pruning and after retraining.
"""

import argparse
import copy
from pathlib import Path

import numpy as np

from minilottery.data import load_mnist
from minilottery.lab import threads
from minilottery.models import build_model
from minilottery.prune import default_rates, full_masks, magnitude_prune, one_shot_rates, sparsity
from minilottery.training import TrainConfig, evaluate, train

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="a small subset and 300 + 200 iterations")
args = parser.parse_args()
threads.apply(1)
data = load_mnist()
if args.quick:
    data = data.subset(2000, 500, 1000)
model = build_model("lenet_300_100", seed=0)
dense_file = Path(__file__).resolve().parents[1] / "figures" / "solutions" / \
    ("06_dense_quick.npz" if args.quick else "06_dense.npz")
if dense_file.is_file():  # the dense network 6.1-6.3 share, kept by the first of them to run
    model.load_state_dict(dict(np.load(dense_file)))
else:
    train(model, data, TrainConfig(iterations=300 if args.quick else 5000, eval_every=100), progress=False)
    dense_file.parent.mkdir(parents=True, exist_ok=True)
    np.savez(dense_file, **model.state_dict())
print(f"dense: test accuracy {100 * evaluate(model, data.x_test, data.y_test)[1]:.2f}%")
weights = {name: w for name, w in model.state_dict().items() if name.endswith(".W")}
rates = one_shot_rates(default_rates("lenet_300_100", model), {n: w.size for n, w in weights.items()},
                       target_percent=7.0)
masks = magnitude_prune(weights, full_masks(weights), rates)
pruned = copy.deepcopy(model)
pruned.set_masks(masks)  # the trained weights stay; the forward pass uses W * mask
before = evaluate(pruned, data.x_test, data.y_test)[1]
print(f"pruned to {sparsity(masks)['percent']:.2f}% in one shot, no retraining: test accuracy {100 * before:.2f}%")
result = train(pruned, data, TrainConfig(iterations=200 if args.quick else 2000, eval_every=100, seed=0),
               progress=False)
print(f"fine-tuned {result.history['iteration'][-1]:,} iterations: test accuracy at early stop "
      f"{100 * result.test_accuracy_at_early_stop:.2f}% (iteration {result.early_stop_iteration:,}), at the end "
      f"{100 * result.final_test_accuracy:.2f}%")
print("test accuracy at the first evaluations of fine-tuning:",
      ", ".join(f"{i}: {100 * a:.2f}%" for i, a in zip(result.history["iteration"][:5],
                                                       result.history["test_accuracy"][:5])))
