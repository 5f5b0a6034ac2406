"""Tutorial 12: can we find tickets without training? SNIP, GraSP, SynFlow and random masks at θ0 beside IMP.

Goal: IMP finds a ticket by training, pruning and resetting, round after round. Three well-known methods instead
score every weight at θ0, before any training, and keep the highest scores over all layers pooled:
  * SNIP (Lee, Ajanthan & Torr, ICLR 2019): how much the loss on a batch depends on each connection;
  * GraSP (Wang, Zhang & Grosse, ICLR 2020): which weights the gradient flow needs least;
  * SynFlow (Tanaka, Kunin, Yamins & Ganguli, NeurIPS 2020): no data at all, only the paths through |θ0|.
Compute their masks at the sparsities of two IMP rounds, see how each spreads its weights over the layers, and
train each beside the IMP ticket of the same size and a random mask with the ticket's per-layer counts
(Frankle, Dziugaite, Roy & Carbin, ICLR 2021, "Pruning neural networks at initialization: why are we missing the
mark?", asked the same question). The library owns the methods (minilottery/lab/prune_at_init.py); this script
calls them one at a time and checks two of the scores by hand.

Run (from the repository root, after `pip install -e .`; MNIST is read from $MINILOTTERY_DATA, else downloaded):
    python tutorials/12_tickets_without_training.py           # about 4 minutes on one CPU core (--threads 1)
    python tutorials/12_tickets_without_training.py --class   # about 35 s (10,000 images, 4 rounds)
    python tutorials/12_tickets_without_training.py --quick   # about 30 s (small subset, very short trainings)
The default finds tickets with 5 rounds of IMP at a 50% rate (2,000 iterations a training), then trains the four
methods' masks at the sparsities of rounds 3 and 5 (12.6% and 3.2% of the weights): 14 trainings in all; --class
trains 1,000 iterations on 10,000 images and compares at rounds 2 and 4 (25% and 6.3%). The IMP run is recorded
under figures/12_tickets_without_training/run-<8 hex digits>/, a folder named by its settings, and read back
when the script runs again with the same settings; other settings (another size, or an exercise's change) get
a folder of their own.

Prints: each score's formula, SNIP's and SynFlow's first scores recomputed by hand, each method's per-layer
percent of weights kept at both sparsities (beside the ticket's), the check that every method keeps exactly the
ticket's number of weights, and each mask's test accuracy at early stop after training, beside the ticket's.
Draws: figures/12_tickets_without_training/accuracy_vs_weights.png (test accuracy vs % of weights, every method).
Draws: figures/12_tickets_without_training/layer_allocation.png (percent of each layer kept, by method).
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from minilottery.backend import to_numpy
from minilottery.data import load_mnist
from minilottery.imp import IMPConfig, train_arm
from minilottery.lab.plots import ARM_STYLE
from minilottery.lab.prune_at_init import (
    DEFAULT_METHODS,
    GRASP_TEMPERATURE,
    METHOD_STYLE,
    Scorer,
    loss_gradients,
    synflow_scores,
    targets_from_run,
)
from minilottery.lab.run_folder import run_imp_in_folder
from minilottery.lab.transfer import SourceRun
from minilottery.lab.tutorial import Timer, by_size, heading, parse_args, run_folder, save_figure
from minilottery.prune import full_masks, sparsity
from minilottery.training import TrainConfig

args = parse_args(__doc__, "12_tickets_without_training.py")
data = load_mnist()
data = by_size(args, data.subset(3000, 500, 1000), data.subset(10_000, 1000, 2000), data)

# %%
heading("1. IMP's tickets, to compare with")
# A 50% rate (25% for the output layer) reaches 3.2% of the weights in 5 rounds; the paper's 20% needs 15.
training = TrainConfig(iterations=by_size(args, 100, 1000, 2000), eval_every=by_size(args, 50, 100, 100), seed=0)
config = IMPConfig(model="lenet_300_100", rounds=by_size(args, 2, 4, 5), prune_rate=0.5, controls=(),
                   train=training, seed=0)
run_dir = run_folder(args.figures, config, data)  # named by the settings: an exercise's change gets a folder of its own
with Timer() as t:
    result = run_imp_in_folder(config, data, run_dir, device=args.device, progress=False)
for rnd in result.rounds:
    metrics = rnd.arms["ticket"].metrics
    print(f"round {rnd.index}: {rnd.percent_remaining:5.1f}% of the weights, test accuracy "
          f"{100 * metrics['test_accuracy_at_early_stop']:.2f}% (early stop {metrics['early_stop_iteration']:,})")
print(f"[{len(result.rounds)} trainings in {t.seconds:.0f} s]")
source = SourceRun.read(run_dir)  # the run's config, θ0 and every round's masks
chosen = by_size(args, [1, 2], [2, 4], [3, 5])  # the rounds whose sparsities the methods prune to
targets = [target for target in targets_from_run(source, None) if target.round in chosen]  # per-layer counts
theta0 = source.start
names = list(targets[0].counts)

# %%
heading("2. four ways to score a weight at θ0")
print("snip     s = |g ⊙ θ0|, g = ∂L/∂θ on 100 training examples: how much the loss depends on each connection;")
print("         keep the highest (Lee et al. 2019, Eq. 6).")
print(f"grasp    s = -θ0 ⊙ Hg, H the Hessian of the loss (logits / T, T = {GRASP_TEMPERATURE:g}), Hg by central")
print("         differences of two gradients; removing a weight of high s shrinks the gradient flow ‖g‖² least,")
print("         so GraSP removes the highest and keeps the lowest (Wang et al. 2020, Eq. 8).")
print("synflow  s = |θ ⊙ ∂R/∂θ|, R = 1ᵀ|W5||W3||W1|1 the output of the network with |θ| and no biases on an")
print("         all-ones input: no data. Pruned in 100 rounds to ρ^(k/100) (Tanaka et al. 2020, Algorithm 1).")
print("random   the ticket's count in every layer, at random positions (IMP's random-pruning control).")
print("The first three keep the highest scores over all layers pooled (prune.keep_highest_global): each method")
print("decides itself how much of every layer to keep. Random keeps the ticket's per-layer counts.")
scorer = Scorer(config, source.input_shape, theta0, data, device=args.device)

# SNIP by hand: one forward and backward pass on the scoring batch, then |g ⊙ θ0|.
model = scorer.model()  # float64, θ0
g = loss_gradients(model, *scorer.batch())
snip_by_hand = {name: np.abs(to_numpy(g[name]) * theta0[name]) for name in names}
assert all(np.allclose(snip_by_hand[name], scorer.scores("snip")[name], rtol=1e-6, atol=0) for name in names)
# SynFlow by hand, first round (nothing pruned yet): with y = x Wᵀ, R = 1ᵀ|W5||W3||W1|1, so
# ∂R/∂|W1|[i, j] = (1ᵀ|W5||W3|)[i] for every input j, and the score of W1[i, j] is |W1[i, j]| (1ᵀ|W5||W3|)[i].
w1, w3, w5 = (np.abs(theta0[name].astype(np.float64)) for name in names)
upstream = np.ones(10) @ w5 @ w3  # (300,): the paths from each hidden unit of layer 1 to the outputs
synflow_first = synflow_scores(scorer.model(), theta0, full_masks({n: theta0[n] for n in names}),
                               source.input_shape)
assert np.allclose(synflow_first["1.W"], w1 * upstream[:, None], rtol=1e-9, atol=0)
print(f"checked by hand: SNIP's scores, and SynFlow's first-round scores of 1.W "
      f"(R = {np.ones(10) @ w5 @ w3 @ w1 @ np.ones(784):.4g})")

# %%
heading("3. how each method spreads its weights over the layers")
masks = {}  # (round, method) -> masks
with Timer() as t:
    for target in targets:
        for method in DEFAULT_METHODS:
            masks[target.round, method] = scorer.masks(method, target)
print(f"[the masks in {t.seconds:.1f} s]")
layer_percent = {}  # (round, method or "ticket") -> name -> % of the layer kept
for target in targets:
    ticket_layers = sparsity(target.ticket)["layers"]
    layer_percent[target.round, "ticket"] = {n: layer["percent"] for n, layer in ticket_layers.items()}
    print(f"round {target.round}: {target.remaining:,} weights of {sum(theta0[n].size for n in names):,} "
          f"({sparsity(target.ticket)['percent']:.2f}%); percent of each layer kept:")
    print(f"  {'':8s}" + "".join(f"{name:>9s}" for name in names))
    print(f"  {'ticket':8s}" + "".join(f"{layer_percent[target.round, 'ticket'][n]:8.2f}%" for n in names))
    for method in DEFAULT_METHODS:
        kept = sparsity(masks[target.round, method])
        assert kept["remaining"] == target.remaining, (method, kept["remaining"])  # every method: the same count
        layer_percent[target.round, method] = {n: layer["percent"] for n, layer in kept["layers"].items()}
        print(f"  {method:8s}" + "".join(f"{layer_percent[target.round, method][n]:8.2f}%" for n in names))
    for name in names:  # random keeps the ticket's count layer by layer
        assert masks[target.round, "random"][name].sum() == target.ticket[name].sum()
print("IMP's rates are fixed by hand (50/50/25% a round here); the global methods choose their own.")
thinner = all(layer_percent[targets[-1].round, method]["1.W"] < layer_percent[targets[-1].round, "ticket"]["1.W"]
              for method in ("snip", "grasp", "synflow"))
if thinner:
    print("All three thin the big first layer more than IMP does and keep far more of the small layers; SynFlow,")
    print("which counts the paths through each weight, keeps almost the whole output layer: each weight of a small")
    print("layer lies on many paths. (SynFlow re-scores after each of its 100 small steps so that no layer is cut")
    print("off whole; a one-shot score has no such guard.)")
else:
    print("Here not every method thins the first layer more than IMP: at this sparsity the layers are barely")
    print("pruned yet; run --class or the full size.")
if not args.quick:
    assert thinner, "the global methods should thin 1.W more than IMP"

# %%
heading("4. training every mask from θ0")
metrics = {}  # (round, method) -> ARM_METRICS
with Timer() as t:
    for (index, method), method_masks in masks.items():
        metrics[index, method] = train_arm(config, data, theta0, method_masks, args.device, False, method)[0].metrics
print(f"[{len(metrics)} trainings in {t.seconds:.0f} s]")
accuracy = {key: m["test_accuracy_at_early_stop"] for key, m in metrics.items()}
for target in targets:
    accuracy[target.round, "ticket"] = result.rounds[target.round].arms["ticket"].metrics["test_accuracy_at_early_stop"]
    row = f"{sparsity(target.ticket)['percent']:5.2f}% of the weights:"
    for method in ("ticket", *DEFAULT_METHODS):
        row += f"  {method} {100 * accuracy[target.round, method]:.2f}%"
    print(row)
sparsest = targets[-1].round
dense = result.rounds[0].arms["ticket"].metrics["test_accuracy_at_early_stop"]
print(f"dense network: {100 * dense:.2f}%")
best = max(DEFAULT_METHODS, key=lambda method: accuracy[sparsest, method])
imp_wins = all(accuracy[sparsest, "ticket"] > accuracy[sparsest, method] for method in DEFAULT_METHODS)
if imp_wins:
    print(f"At the sparsest point the best method without training is {best}, "
          f"{100 * (accuracy[sparsest, 'ticket'] - accuracy[sparsest, best]):.2f} points behind IMP's ticket.")
    print("Frankle et al. (2021) found the same at high sparsity: the methods at θ0 fall short of IMP, and they")
    print("are not much better than random masks with their own per-layer proportions (shuffle a method's mask")
    print("within each layer and train it: exercise 2).")
else:
    print(f"Here {best} matched or beat IMP's ticket at the sparsest point: with {config.train.iterations:,} "
          f"iterations on {len(data.y_train):,} images")
    print("the trainings are too short to separate them; run --class or the full size.")
if not args.quick:
    assert imp_wins, "at the sparsest point IMP's ticket should beat every mask chosen without training"

fig, ax = plt.subplots(figsize=(7.5, 5))
percents = [sparsity(target.ticket)["percent"] for target in targets]
style = ARM_STYLE["ticket"]
ax.plot(percents, [100 * accuracy[t.round, "ticket"] for t in targets], color=style["color"],
        ls=style["linestyle"], marker=style["marker"], lw=2, label="IMP ticket (trained, pruned, reset)")
for method in DEFAULT_METHODS:
    ax.plot(percents, [100 * accuracy[t.round, method] for t in targets], **METHOD_STYLE[method], lw=2)
ax.axhline(100 * dense, color="0.35", ls=(0, (6, 4)), lw=1.5, label="dense network")
ax.set_xscale("log")
ax.invert_xaxis()
ax.set_xticks(percents, [f"{p:.1f}" for p in percents])
ax.minorticks_off()
ax.set_xlabel("weights remaining (%, log scale)")
ax.set_ylabel("test accuracy at early stop (%)")
ax.set_title("Masks chosen at θ0 beside IMP's tickets (LeNet-300-100, MNIST)")
ax.grid(alpha=0.3)
ax.legend()
fig.tight_layout()
save_figure(fig, args, "accuracy_vs_weights",
            look_for="pruning proceeds to the right: the IMP ticket's line should end above every method's at the"
                     " sparsest point, the methods' lines falling further below the dashed dense network"
            if imp_wins else "at this size the lines are too close to rank: the trainings are too short (run --class"
                             " or the full size)")

fig, axes = plt.subplots(1, len(targets), figsize=(6 * len(targets), 4.5), squeeze=False)
for ax, target in zip(axes[0], targets):
    kinds = ["ticket", *DEFAULT_METHODS]
    width = 0.8 / len(kinds)
    for i, kind in enumerate(kinds):
        color = ARM_STYLE["ticket"]["color"] if kind == "ticket" else METHOD_STYLE[kind]["color"]
        ax.bar(np.arange(len(names)) + (i - (len(kinds) - 1) / 2) * width,
               [layer_percent[target.round, kind][n] for n in names], width, color=color, label=kind)
    ax.set_xticks(np.arange(len(names)), names)
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda p, _: f"{p:g}"))  # 100, not 10^2
    ax.yaxis.set_minor_formatter(matplotlib.ticker.FuncFormatter(lambda p, _: f"{p:g}"))
    ax.set_ylabel("percent of the layer kept (log scale)")
    ax.set_title(f"{sparsity(target.ticket)['percent']:.1f}% of all weights")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
fig.tight_layout()
save_figure(fig, args, "layer_allocation",
            look_for="one group of bars per layer, one bar per method: the global methods' 1.W bars sit below the"
                     " ticket's and their 3.W and 5.W bars above it; random's bars equal the ticket's by construction"
            if thinner else "one group of bars per layer, one bar per method: compare each method's bars with the"
                            " ticket's (random's equal them by construction); at this size the layers are barely"
                            " pruned, so the methods differ little")
