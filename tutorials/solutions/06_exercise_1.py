"""Solution to exercise 6.1: global magnitude pruning (one threshold over all layers) against layer-wise pruning.

Run (from the repository root): python tutorials/solutions/06_exercise_1.py [--quick]
Trains tutorial 6's dense network (seed 0, 5,000 iterations; the first of 6.1-6.3 to run keeps it in
tutorials/figures/solutions/06_dense.npz for the others; about 30 s on one core), prunes it once to the
tutorial's targets both ways, and prints the percent of each layer kept and the test accuracy without retraining.
"""

import argparse
import copy
from pathlib import Path

import numpy as np

from minilottery.data import load_mnist
from minilottery.lab import threads
from minilottery.models import build_model
from minilottery.prune import (
    default_rates,
    full_masks,
    global_magnitude_prune,
    magnitude_prune,
    one_shot_rates,
    sparsity,
)
from minilottery.training import TrainConfig, evaluate, train

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="a small subset and 300 iterations")
args = parser.parse_args()
threads.apply(1)
data = load_mnist()
if args.quick:
    data = data.subset(2000, 500, 1000)
model = build_model("lenet_300_100", seed=0)  # tutorial 6, section 1
dense_file = Path(__file__).resolve().parents[1] / "figures" / "solutions" / \
    ("06_dense_quick.npz" if args.quick else "06_dense.npz")
if dense_file.is_file():  # the dense network 6.1-6.3 share, kept by the first of them to run
    model.load_state_dict(dict(np.load(dense_file)))
else:
    train(model, data, TrainConfig(iterations=300 if args.quick else 5000, eval_every=100), progress=False)
    dense_file.parent.mkdir(parents=True, exist_ok=True)
    np.savez(dense_file, **model.state_dict())
print(f"dense test accuracy: {100 * evaluate(model, data.x_test, data.y_test)[1]:.2f}%")
weights = {name: w for name, w in model.state_dict().items() if name.endswith(".W")}
rates = default_rates("lenet_300_100", model)
sizes = {name: w.size for name, w in weights.items()}
print(f"{'target':>7s} {'mode':>10s} {'1.W':>7s} {'3.W':>7s} {'5.W':>7s} {'total':>7s}  test accuracy")
for target in (80, 51.3, 21.1, 7.0, 3.6, 1.9):
    layer_wise = magnitude_prune(weights, full_masks(weights), one_shot_rates(rates, sizes, target_percent=target))
    kept = sparsity(layer_wise)["remaining"]  # global pruning keeps exactly as many weights in all
    total = sum(sizes.values())
    pooled = global_magnitude_prune(weights, full_masks(weights), 1.0 - kept / total)
    assert sparsity(pooled)["remaining"] == kept
    for mode, masks in (("layer-wise", layer_wise), ("global", pooled)):
        pruned = copy.deepcopy(model)
        pruned.set_masks(masks)
        accuracy = evaluate(pruned, data.x_test, data.y_test)[1]
        report = sparsity(masks)
        print(f"{target:7.1f} {mode:>10s} " + " ".join(f"{layer['percent']:6.2f}%" for layer in
                                                       report["layers"].values())
              + f" {report['percent']:6.2f}%  {100 * accuracy:.2f}%")
