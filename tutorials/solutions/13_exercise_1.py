"""Solution to exercise 13.1: the sparse ticket against a fair dense baseline (the mask folded into W).

Run (from the repository root): python tutorials/solutions/13_exercise_1.py [--quick]
Trains LeNet-300-100 as tutorial 13's --class does (seed 0, 1,000 iterations), prunes it in one shot to 9 levels
from 100% to 1.2% of the weights, and times, at each level, the masked dense network (W * mask at every pass), the
same network with each mask folded into its weight and removed, and the SparseModel: on the 10,000 test images
and one image at a time (500 images). About 3 minutes on one core. Timings: they depend on the machine and on what
else runs on it (the .md quotes a run on a loaded 2-core machine).
"""

import argparse
import copy
import statistics
import time

import numpy as np

from minilottery.backend import to_numpy
from minilottery.data import load_mnist
from minilottery.lab import threads
from minilottery.lab.sparse import SparseModel
from minilottery.models import build_model, weight_names
from minilottery.prune import default_rates, full_masks, magnitude_prune, one_shot_rates, sparsity
from minilottery.training import TrainConfig, train

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="a small subset, 200 iterations, 1,000 test images")
args = parser.parse_args()
threads.apply(1)
data = load_mnist()
if args.quick:
    data = data.subset(2000, 500, 1000)
x = data.x_test
repeats = 3 if args.quick else 7


def median_ms(function, *inputs):
    """Median ms of ``function(*inputs)`` over ``repeats`` calls, after one warm-up call."""
    function(*inputs)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(*inputs)
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def folded(network):
    """The same network with W * mask stored and the masks removed: a plain dense network."""
    plain = copy.deepcopy(network)
    for name, mask in network.masks().items():
        plain.set_parameter(name, to_numpy(network.parameters()[name]) * to_numpy(mask))
        plain.set_masks({name: None})  # None removes the mask: forward uses W as stored
    return plain.eval()


model = build_model("lenet_300_100", seed=0)
train(model, data, TrainConfig(iterations=200 if args.quick else 1000, eval_every=100, seed=0), progress=False)
weights = {name: to_numpy(model.parameters()[name]) for name in weight_names(model)}
rates = default_rates("lenet_300_100", model)
sizes = {name: w.size for name, w in weights.items()}
one = [x[i:i + 1] for i in range(100 if args.quick else 500)]  # batch 1
print(f"{'weights':>7}  {'masked':>9} {'folded':>9} {'sparse':>9}  (ms, {len(x):,} images)   "
      f"{'masked':>8} {'folded':>8} {'sparse':>8}  (µs per image, batch 1)")
for target in [None, 51.3, 35.0, 21.1, 14.0, 10.0, 7.0, 3.6, 1.2]:
    level_rates = {} if target is None else one_shot_rates(rates, sizes, target_percent=target)
    masks = magnitude_prune(weights, full_masks(weights), level_rates)
    network = copy.deepcopy(model)
    network.set_masks(masks)
    network.eval()
    plain, sparse = folded(network), SparseModel.from_model(network)
    assert np.array_equal(to_numpy(plain.forward(x)).argmax(1), to_numpy(network.forward(x)).argmax(1))
    large = [median_ms(f, x) for f in (network.forward, plain.forward, sparse.forward)]
    single = [1e3 * median_ms(lambda f=f: [f(image) for image in one]) / len(one)
              for f in (network.forward, plain.forward, sparse.forward)]
    print(f"{sparsity(masks)['percent']:6.1f}%  " + " ".join(f"{t:9.1f}" for t in large) + "                      "
          + " ".join(f"{t:8.1f}" for t in single))
