"""Solution to exercise 6.3: how many pruned weights textbook Adam revives, by steps of momentum before pruning,
and how far they travel after it.

Run (from the repository root): python tutorials/solutions/06_exercise_3.py [--quick]
Trains tutorial 6's dense network (seed 0, 5,000 iterations; the first of 6.1-6.3 to run keeps it in
tutorials/figures/solutions/06_dense.npz for the others; about 30 s on one core), then repeats section 4 with
0, 1, 10 and 50 textbook-Adam steps before pruning and 100 after it. Prints the revived count each time, and for 50
steps before pruning the largest |w| among the pruned weights after chosen steps, beside the prediction from m
and v at the moment of pruning.
"""

import argparse
import copy
from pathlib import Path

import numpy as np

from minilottery.data import load_mnist
from minilottery.lab import threads
from minilottery.loss import softmax_cross_entropy
from minilottery.models import build_model
from minilottery.prune import default_rates, full_masks, magnitude_prune
from minilottery.training import TrainConfig, train

LR, BETA1, BETA2, EPS = 1.2e-3, 0.9, 0.999, 1e-8


def textbook_adam_step(model, state):
    """Tutorial 6's Adam, which knows nothing about masks."""
    grads = model.gradients()
    for name, param in model.parameters().items():
        s = state.setdefault(name, {"m": 0 * param, "v": 0 * param, "t": 0})
        s["t"] += 1
        s["m"] = BETA1 * s["m"] + (1 - BETA1) * grads[name]
        s["v"] = BETA2 * s["v"] + (1 - BETA2) * grads[name] ** 2
        m_hat, v_hat = s["m"] / (1 - BETA1 ** s["t"]), s["v"] / (1 - BETA2 ** s["t"])
        param -= LR * m_hat / (v_hat ** 0.5 + EPS)


def one_step(model, x, y, state):
    _, dlogits = softmax_cross_entropy(model.forward(x), y)
    model.backward(dlogits)
    textbook_adam_step(model, state)


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="6,000 training images and 300 iterations")
args = parser.parse_args()
threads.apply(1)
data = load_mnist()
if args.quick:
    data = data.subset(6000, 500, 1000)  # the 100 steps after pruning read 6,000 images
model = build_model("lenet_300_100", seed=0)
dense_file = Path(__file__).resolve().parents[1] / "figures" / "solutions" / \
    ("06_dense_quick.npz" if args.quick else "06_dense.npz")
if dense_file.is_file():  # the dense network 6.1-6.3 share, kept by the first of them to run
    model.load_state_dict(dict(np.load(dense_file)))
else:
    train(model, data, TrainConfig(iterations=300 if args.quick else 5000, eval_every=100), progress=False)
    dense_file.parent.mkdir(parents=True, exist_ok=True)
    np.savez(dense_file, **model.state_dict())
weights = {name: w for name, w in model.state_dict().items() if name.endswith(".W")}
masks = magnitude_prune(weights, full_masks(weights), default_rates("lenet_300_100", model))
pruned_total = sum(int((~m).sum()) for m in masks.values())
after = 100  # steps after pruning, as in the tutorial (not --quick)
batches = [(data.x_train[i:i + 60], data.y_train[i:i + 60]) for i in range(0, 60 * after, 60)]
for before in (0, 1, 10, 50):
    naive, state = copy.deepcopy(model), {}
    for x, y in batches[:before]:
        one_step(naive, x, y, state)
    naive.set_masks(masks)
    for name, mask in masks.items():
        naive.set_parameter(name, naive.parameters()[name] * mask)
    at_pruning = {name: (state[name]["m"].copy(), state[name]["v"].copy(), state[name]["t"]) for name in masks} \
        if state else {}
    largest = []
    for x, y in batches:
        one_step(naive, x, y, state)
        largest.append(max(float(np.abs(naive.parameters()[n][~m]).max()) for n, m in masks.items()))
    revived = sum(int(np.count_nonzero(naive.parameters()[n][~m])) for n, m in masks.items())
    print(f"{before:2d} steps before pruning: {revived:7,} of {pruned_total:,} pruned weights non-zero after "
          f"{after} steps; largest |w| among them {largest[-1]:.4f}")
    if before == 50:
        # With zero gradient, k steps after pruning: m = beta1^k m0, v = beta2^k v0, t = t0 + k. Predict each
        # pruned weight's position as the sum of its steps, and compare with the weight that moved most.
        name = max(masks, key=lambda n: float(np.abs(naive.parameters()[n][~masks[n]]).max()))
        m0, v0, t0 = at_pruning[name]
        position = np.zeros_like(m0)
        predicted = []
        for k in range(1, after + 1):
            m_hat = BETA1 ** k * m0 / (1 - BETA1 ** (t0 + k))
            v_hat = BETA2 ** k * v0 / (1 - BETA2 ** (t0 + k))
            position -= LR * m_hat / (np.sqrt(v_hat) + EPS)
            predicted.append(float(np.abs(position[~masks[name]]).max()))
        print(f"   largest |w| of a pruned weight after k steps (measured over all layers | predicted for {name}):")
        for k in (1, 2, 5, 10, 20, 30, 50, 100):
            print(f"   k = {k:3d}: {largest[k - 1]:.5f} | {predicted[k - 1]:.5f}")
        ratio = BETA1 / np.sqrt(BETA2)
        print(f"   each step is {ratio:.4f} times the one before (beta1 / sqrt(beta2)), so the steps add up to a "
              f"limit of about {1 / (1 - ratio):.1f} first steps")
