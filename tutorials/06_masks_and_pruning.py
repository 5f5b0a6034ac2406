"""Tutorial 6: masks and pruning: one-shot magnitude pruning, and what "mask-aware" training means.

Goal: prune a trained LeNet-300-100 by weight magnitude (Frankle & Carbin 2019, Section 2: remove the p% of
each layer's weights with the smallest |w|), see how accuracy holds up as more is removed, and see why a pruned
weight must be *masked* rather than merely set to zero: zeroed weights still get gradients, and Adam's momentum
brings them back. With a mask, minilottery's optimizers keep them exactly 0.0, with exactly-zero Adam state.

Run (from the repository root, after `pip install -e .`; MNIST is read from $MINILOTTERY_DATA, else downloaded):
    python tutorials/06_masks_and_pruning.py           # about 25 s on a 2-core CPU
    python tutorials/06_masks_and_pruning.py --class   # about 7 s (20,000 training images, 2,000 iterations)
    python tutorials/06_masks_and_pruning.py --quick   # a few seconds

Prints: a pruned layer's mask counts computed by hand and by `minilottery.prune`, test accuracy after one-shot
pruning to several sparsities (no retraining), and how many pruned weights come back to life without a mask.
Draws: figures/06_masks_and_pruning/one_shot.png (accuracy vs weights remaining, before any retraining).
"""

import copy

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from minilottery.backend import to_numpy
from minilottery.data import load_mnist
from minilottery.lab.tutorial import by_size, heading, parse_args, save_figure
from minilottery.loss import softmax_cross_entropy
from minilottery.models import build_model
from minilottery.optim import make_optimizer
from minilottery.prune import default_rates, full_masks, magnitude_prune, one_shot_rates, sparsity
from minilottery.training import TrainConfig, evaluate, train, train_step

args = parse_args(__doc__, "06_masks_and_pruning.py")
data = load_mnist()
data = by_size(args, data.subset(2000, 500, 1000), data.subset(20_000, 2000, 5000), data)

# %%
heading("1. a trained network to prune")
model = build_model("lenet_300_100", seed=0)
result = train(model, data, TrainConfig(iterations=by_size(args, 300, 2000, 5000), eval_every=100),
               device=args.device, progress=True, desc="LeNet-300-100")
_, dense_accuracy = evaluate(model, data.x_test, data.y_test)
print(f"dense test accuracy: {100 * dense_accuracy:.2f}%")

# %%
heading("2. magnitude pruning of one layer, by hand")
W = to_numpy(model.parameters()["1.W"])  # (300, 784): the first hidden layer
p = 0.2
count = round(p * W.size)  # exactly round(p × alive) weights go
order = np.argsort(np.abs(W).ravel(), kind="stable")  # smallest |w| first; ties broken by position
mask_by_hand = np.ones(W.size, dtype=bool)
mask_by_hand[order[:count]] = False
mask_by_hand = mask_by_hand.reshape(W.shape)  # (235200,) -> (300, 784)
threshold = np.abs(W).ravel()[order[count]]
print(f"removing {count:,} of {W.size:,} weights: every |w| < {threshold:.4f} goes")
library = magnitude_prune({"1.W": W}, {"1.W": np.ones(W.shape, dtype=bool)}, {"1.W": p})["1.W"]
print("minilottery.prune.magnitude_prune gives the same mask:", np.array_equal(library, mask_by_hand))
assert np.array_equal(library, mask_by_hand)

# %%
heading("3. one-shot pruning of the whole network, without retraining")
weights = {name: to_numpy(w) for name, w in model.parameters().items() if name.endswith(".W")}
rates = default_rates("lenet_300_100", model)  # hidden layers 20% per round, the output layer 10%
print("per-round rates (the paper's):", rates)
sizes = {name: w.size for name, w in weights.items()}
targets = [80, 51.3, 21.1, 7.0, 3.6, 1.9]
percents, accuracies = [100.0], [dense_accuracy]
for target in targets:
    masks = magnitude_prune(weights, full_masks(weights), one_shot_rates(rates, sizes, target_percent=target))
    pruned = copy.deepcopy(model)
    pruned.set_masks(masks)  # the forward pass now uses W * mask
    _, accuracy = evaluate(pruned, data.x_test, data.y_test)
    report = sparsity(masks)
    percents.append(report["percent"])
    accuracies.append(accuracy)
    layers = ", ".join(f"{name} {layer['percent']:.1f}%" for name, layer in report["layers"].items())
    print(f"{report['percent']:5.1f}% of weights left ({layers}): test accuracy {100 * accuracy:.2f}%")
if accuracies[-1] < dense_accuracy - 0.01:
    print(f"Pruning alone costs accuracy at high sparsity ({100 * (accuracies[-1] - dense_accuracy):+.2f} points at "
          f"{percents[-1]:.1f}%):")
else:  # not seen at any size so far; said rather than claimed
    print("Here pruning alone cost little even at the sparsest level; in general it costs accuracy at high sparsity:")
print("the lottery ticket experiment therefore *retrains* the pruned network, from its original initialisation")
print("(tutorial 7).")

# %%
heading("4. why masks: momentum brings pruned weights back")


def textbook_adam_step(model, state, lr=1.2e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    """Adam as in Kingma & Ba (2015), knowing nothing about masks (state: name -> {"m", "v", "t"})."""
    grads = model.gradients()
    for name, param in model.parameters().items():
        s = state.setdefault(name, {"m": 0 * param, "v": 0 * param, "t": 0})
        s["t"] += 1
        s["m"] = beta1 * s["m"] + (1 - beta1) * grads[name]
        s["v"] = beta2 * s["v"] + (1 - beta2) * grads[name] ** 2
        m_hat, v_hat = s["m"] / (1 - beta1 ** s["t"]), s["v"] / (1 - beta2 ** s["t"])
        param -= lr * m_hat / (v_hat ** 0.5 + eps)  # in place: the model's own array


def one_step(model, x, y, step):
    """Forward, loss, backward (which multiplies pruned weights' gradients by 0), then ``step``."""
    _, dlogits = softmax_cross_entropy(model.forward(x), y)
    model.backward(dlogits)
    step()


masks = magnitude_prune(weights, full_masks(weights), rates)  # one round: 20% of the hidden weights
pruned_total = sum(int((~m).sum()) for m in masks.values())
steps = by_size(args, 20, 100, 100)
batches = [(data.x_train[i:i + 60], data.y_train[i:i + 60]) for i in range(0, 60 * steps, 60)]

naive = copy.deepcopy(model).to(args.device)
state = {}
for x, y in batches[: steps // 2]:  # keep training the dense network a little: Adam builds momentum
    one_step(naive, x, y, lambda: textbook_adam_step(naive, state))
naive.set_masks(masks)  # prune: from now on backward gives pruned weights a gradient of exactly 0 ...
for name, mask in masks.items():
    naive.set_parameter(name, to_numpy(naive.parameters()[name]) * mask)  # ... and they start at 0
for x, y in batches:
    one_step(naive, x, y, lambda: textbook_adam_step(naive, state))
revived = sum(int(np.count_nonzero(to_numpy(naive.parameters()[n])[~m])) for n, m in masks.items())
print(f"textbook Adam: after {steps} steps with zero gradients, {revived:,} of {pruned_total:,} pruned weights are")
print("non-zero again: the momentum m built up before pruning keeps pushing them. The forward pass hides it")
print("(it uses W * mask), but the stored weights are no longer a ticket: export or reset them and they leak in.")
print("(Most of the rest connect to MNIST's border pixels, which are always 0: they never had a gradient.)")
assert revived > 0.5 * pruned_total

aware = copy.deepcopy(model).to(args.device)
aware.set_masks(masks)
optimizer = make_optimizer("adam", aware, lr=1.2e-3)  # minilottery's Adam reads the masks at every step
for x, y in batches:
    train_step(aware, optimizer, x, y)
still_zero = all(np.all(to_numpy(aware.parameters()[n])[~m] == 0.0) for n, m in masks.items())
state_zero = all(np.all(to_numpy(optimizer.state[n][k])[~m] == 0.0) for n, m in masks.items() for k in ("m", "v"))
print(f"mask-aware Adam: pruned weights exactly 0.0 after {steps} steps: {still_zero}; "
      f"their moments m and v exactly 0.0: {state_zero}")
assert still_zero and state_zero
print("Mask-aware means: backward multiplies a pruned weight's gradient by 0, the optimizer multiplies what it")
print("feeds its state by the mask too (so momentum cannot build up), and re-zeroes the weight after every step.")

# %%
fig, ax = plt.subplots(figsize=(6.5, 4))
ax.plot(percents, 100 * np.array(accuracies), "o-", lw=2)
ax.set_xscale("log")
ax.invert_xaxis()
ax.set_xticks(percents, [f"{p:.1f}" for p in percents])
ax.minorticks_off()
ax.set_xlabel("percent of weights remaining (log scale)")
ax.set_ylabel("test accuracy (%)")
ax.set_title("One-shot magnitude pruning of a trained LeNet-300-100, no retraining")
ax.grid(alpha=0.3)
save_figure(fig, args, "one_shot",
            look_for="read from left (the dense network) to right: accuracy holds while the first, smallest weights"
                     " go, then falls ever faster as pruning reaches weights the trained network uses")
