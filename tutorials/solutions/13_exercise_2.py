"""Solution to exercise 13.2: dense inference on two BLAS threads against SparseModel(workers=1 and 2).

Run (from the repository root): python tutorials/solutions/13_exercise_2.py [--quick]
Trains LeNet-300-100 as tutorial 13's --class does (seed 0, 1,000 iterations; 1,000 iterations on one thread, so
the network is the one of 13.1 and 13.3), prunes it in one shot to 9 levels, then with two BLAS threads times the
masked dense network and the SparseModel with workers=1 and workers=2 on the 10,000 test images. About 2 minutes.
Timings: they depend on the machine and on what else runs on it; print your load average with them.
"""

import argparse
import copy
import os
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
threads.apply(1)  # train on one thread: the same network as 13.1 and 13.3
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


model = build_model("lenet_300_100", seed=0)
train(model, data, TrainConfig(iterations=200 if args.quick else 1000, eval_every=100, seed=0), progress=False)
weights = {name: to_numpy(model.parameters()[name]) for name in weight_names(model)}
rates = default_rates("lenet_300_100", model)
sizes = {name: w.size for name, w in weights.items()}
print(f"load average before timing: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
print(f"{'weights':>7}  {'dense, 2 BLAS threads':>22} {'sparse, workers=1':>18} {'sparse, workers=2':>18}  (ms)")
with threads.limit(2):
    for target in [None, 51.3, 35.0, 21.1, 14.0, 10.0, 7.0, 3.6, 1.2]:
        level_rates = {} if target is None else one_shot_rates(rates, sizes, target_percent=target)
        masks = magnitude_prune(weights, full_masks(weights), level_rates)
        network = copy.deepcopy(model)
        network.set_masks(masks)
        network.eval()
        one, two = SparseModel.from_model(network), SparseModel.from_model(network, workers=2)
        assert np.array_equal(to_numpy(two.predict(x)), to_numpy(network.forward(x)).argmax(1))
        dense_ms, one_ms, two_ms = median_ms(network.forward, x), median_ms(one.forward, x), median_ms(two.forward, x)
        print(f"{sparsity(masks)['percent']:6.1f}%  {dense_ms:22.1f} {one_ms:18.1f} {two_ms:18.1f}")
print(f"load average after timing: {os.getloadavg()[0]:.1f}")
