"""Solution to exercise 13.3: magnitude masks against random masks with the same per-layer counts, exported sparse.

Run (from the repository root): python tutorials/solutions/13_exercise_3.py [--quick]
Trains LeNet-300-100 as tutorial 13's --class does (seed 0, 1,000 iterations), prunes it in one shot to 21.1%
down to 1.2% of the weights, draws a random mask with each level's per-layer counts (prune.random_prune, rng seed
0), and prints for both the SparseModel's time on the 10,000 test images and, for 1.W, the input columns some weight
reads, the hidden units with no input and the longest row; then where the unread input pixels lie at 1.2%. About a
minute. The counts are deterministic (one BLAS thread); the times depend on the machine and its load.
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
from minilottery.prune import default_rates, full_masks, magnitude_prune, one_shot_rates, random_prune, sparsity
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


def structure(csr):
    """(input columns read, rows with no entry, longest row) of a CSR matrix."""
    lengths = np.diff(csr.indptr)  # (out,) stored weights per row
    return len(np.unique(csr.indices)), int((lengths == 0).sum()), int(lengths.max())


model = build_model("lenet_300_100", seed=0)
train(model, data, TrainConfig(iterations=200 if args.quick else 1000, eval_every=100, seed=0), progress=False)
weights = {name: to_numpy(model.parameters()[name]) for name in weight_names(model)}
rates = default_rates("lenet_300_100", model)
sizes = {name: w.size for name, w in weights.items()}
rng = np.random.default_rng(0)
print(f"{'weights':>7}  {'magnitude ms':>12} {'random ms':>10}   1.W: columns read, units with no input, longest row "
      "(magnitude / random)")
for target in [21.1, 14.0, 10.0, 7.0, 3.6, 1.2]:
    masks = magnitude_prune(weights, full_masks(weights), one_shot_rates(rates, sizes, target_percent=target))
    magnitude, shuffled = copy.deepcopy(model), copy.deepcopy(model)
    magnitude.set_masks(masks)
    shuffled.set_masks(random_prune(masks, rng))  # the same count per layer, new positions
    by_magnitude, at_random = SparseModel.from_model(magnitude), SparseModel.from_model(shuffled)
    assert by_magnitude.nnz() == at_random.nnz()
    times = median_ms(by_magnitude.forward, x), median_ms(at_random.forward, x)
    (cm, em, lm), (cr, er, lr) = (structure(s.to_csr_dict()["1.W"]) for s in (by_magnitude, at_random))
    print(f"{sparsity(masks)['percent']:6.1f}%  {times[0]:12.1f} {times[1]:10.1f}   {cm} / {cr} of 784, "
          f"{em} / {er}, {lm} / {lr}")
unread = ~masks["1.W"].any(axis=0)  # (784,) input pixels no kept weight of 1.W reads, at the last level
border = np.ones((28, 28), dtype=bool)
border[4:24, 4:24] = False  # the 4-pixel frame, (almost) always 0 in MNIST
print(f"at {sparsity(masks)['percent']:.1f}%: {int(unread.sum())} input pixels unread by the magnitude mask, "
      f"{int((unread & border.reshape(-1)).sum())} of them in the 4-pixel border")
