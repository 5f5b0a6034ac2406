"""Solution to exercise 9.3: Conv-2's per-layer % remaining after one round of global pruning.

Run (from the repository root): python tutorials/solutions/09_exercise_3.py [--quick]
Reads tutorial 9's Conv-2 run (tutorials/figures/09_beyond_the_paper/conv2-<hash>; it trains it first when missing,
about 3 minutes on one core), prunes its trained dense network (round 0) globally at the same 20% of all weights
that IMPConfig(global_pruning=True) prunes, and prints each layer's size, Glorot std, trained mean |w| and the percent
it keeps, beside the layer-wise round 1 of the tutorial's run. The per-layer % after one round depends only on the
trained dense network, so round 1 is not trained again.
"""

import argparse
from pathlib import Path

import numpy as np

from minilottery.data import load_mnist
from minilottery.imp import IMPConfig
from minilottery.lab import threads
from minilottery.lab.run_folder import run_imp_in_folder
from minilottery.lab.tutorial import run_folder
from minilottery.models import PAPER_TRAINING, build_model, layer_kind
from minilottery.prune import global_magnitude_prune, sparsity
from minilottery.training import TrainConfig

tutorials = Path(__file__).resolve().parents[1]


def tutorial_run(tutorial, config, data, name="run"):
    """The folder where that tutorial keeps this run: figures/<tutorial>/<name>-<hash of the settings>/."""
    return run_folder(tutorials / "figures" / tutorial, config, data, name)


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="tutorial 9's --quick settings")
args = parser.parse_args()
threads.apply(1)
full = load_mnist()
conv_data = full.subset(600, 100, 200) if args.quick else full.subset(len(full.y_train), 1000, 2000)  # tutorial 9's
config = IMPConfig(model="conv2", rounds=1, prune_rate=0.2, controls=(),
                   train=TrainConfig(iterations=10 if args.quick else 300, eval_every=5 if args.quick else 100,
                                     lr=PAPER_TRAINING["lenet_300_100"]["lr"], seed=0), seed=0)
run_dir = tutorial_run("09_beyond_the_paper", config, conv_data, "conv2")
result = run_imp_in_folder(config, conv_data, run_dir, progress=False)
dense = result.rounds[0]
trained = dense.arms["ticket"].final_weights
pooled = global_magnitude_prune(trained, dense.masks, config.prune_rate)  # what next_masks does for global_pruning
model = build_model("conv2", (1, 28, 28), seed=0)
theta0 = dense.arms["ticket"].init_weights
total = sum(m.size for m in dense.masks.values())
layer_wise, global_ = sparsity(result.rounds[1].masks)["layers"], sparsity(pooled)["layers"]
print(f"{'layer':5s} {'kind':6s} {'weights':>9s} {'share':>6s} {'θ0 std':>7s} {'trained mean |w|':>17s} "
      f"{'layer-wise':>11s} {'global':>7s}")
for name in dense.masks:
    w = trained[name]
    print(f"{name:5s} {layer_kind(model, name):6s} {w.size:9,} {100 * w.size / total:5.1f}% "
          f"{theta0[name].std():7.4f} "
          f"{np.abs(w).mean():17.4f} {layer_wise[name]['percent']:10.1f}% {global_[name]['percent']:6.1f}%")
print(f"total: layer-wise {sparsity(result.rounds[1].masks)['percent']:.1f}%, "
      f"global {sparsity(pooled)['percent']:.1f}%")
