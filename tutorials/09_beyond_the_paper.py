"""Tutorial 9: beyond the paper: late resetting (rewinding), global pruning, and IMP on a convolutional network.

Goal: use IMPConfig's options to try three ideas that go past the ICLR paper's LeNet experiment:
  a. late resetting: reset the survivors to their values θK at iteration K of the dense training instead of θ0
     (Frankle, Dziugaite, Roy & Carbin 2019, "Stabilizing the Lottery Ticket Hypothesis"; it is what makes IMP
     work on deep networks such as VGG-19 and ResNet-18), compared with reset to θ0 at the same sparsity;
  b. global pruning: one magnitude threshold over all layers pooled (the paper's Section 5) instead of the
     same rate in every layer, and how differently it thins each layer;
  c. Conv-2 on MNIST: the same IMP code on the paper's smallest convolutional network. On this CPU a
     Conv-2 step costs about a quarter of a second (one BLAS thread), so this is a short demonstration
     (one round, 300 iterations); the real
     experiment (20,000 iterations a training, CIFAR-10) belongs on a GPU (tutorial 10).

Run (from the repository root, after `pip install -e .`; MNIST is read from $MINILOTTERY_DATA, else downloaded):
    python tutorials/09_beyond_the_paper.py           # about 7 minutes on a 2-core CPU
    python tutorials/09_beyond_the_paper.py --class   # about 60 s (10,000 images, shorter trainings)
    python tutorials/09_beyond_the_paper.py --quick   # about 15 s (small subset, very short trainings)
The default trains LeNet-300-100 24 times for 2,000 iterations and Conv-2 twice for 300; --class trains
LeNet-300-100 14 times for 1,000 iterations on 10,000 images (3 rounds of global and layer-wise pruning)
and Conv-2 twice for 40. Every run is recorded under figures/09_beyond_the_paper/<experiment>-<8 hex digits>/,
a folder named by its settings, and read back, not retrained, when the script runs again; other settings
(another size, or an exercise's change) get folders of their own.

Prints: (a) the accuracy at 5% of the weights after resetting to θ0 and rewinding to θK at 1% and 5% of
training (θ20 and θ100 by default), with the check that the rewound start really is θK ⊙ m; (b) each layer's %
of weights remaining round by round under layer-wise and global pruning; (c) Conv-2's per-layer pruning (conv
10%, dense 20%, output 10%), its accuracy, and what `minilottery imp --model conv2` (its rounds and iterations,
printed) would cost on this CPU.
Draws: figures/09_beyond_the_paper/rewinding.png (test accuracy during training after each kind of reset).
Draws: figures/09_beyond_the_paper/global_vs_layerwise.png (per-layer weights remaining, and accuracy, both ways).
Draws: figures/09_beyond_the_paper/conv2_kernels.png (Conv-2's first 64 trained 3x3 kernels and their mask).
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from minilottery.backend import to_device
from minilottery.data import load_mnist
from minilottery.imp import IMPConfig
from minilottery.lab import plots, runs
from minilottery.lab.presets import config_from_options
from minilottery.lab.run_folder import run_imp_in_folder
from minilottery.lab.tutorial import Timer, by_size, heading, parse_args, run_folder, save_figure
from minilottery.models import PAPER_TRAINING, build_model, layer_kind
from minilottery.optim import make_optimizer
from minilottery.prune import sparsity
from minilottery.training import TrainConfig, train_step

args = parse_args(__doc__, "09_beyond_the_paper.py")
full = load_mnist()
data = by_size(args, full.subset(3000, 500, 1000), full.subset(10_000, 1000, 2000), full)
lenet_training = TrainConfig(iterations=by_size(args, 300, 1000, 2000), eval_every=by_size(args, 50, 100, 100),
                             seed=0)


# %%
def imp(name, config, data):
    """IMP recorded in the run folder of ``name`` and these settings, without progress bars; returns the result
    and the folder. Finished rounds already there are read back."""
    folder = run_folder(args.figures, config, data, name)
    with Timer() as t:
        result = run_imp_in_folder(config, data, folder, device=args.device, progress=False)
    print(f"  [{name}: {len(result.rounds)} round(s) in {t.seconds:.0f} s, in {folder.name}]")
    return result, folder


def accuracy(rnd, arm="ticket"):
    return rnd.arms[arm].metrics["test_accuracy_at_early_stop"]


# %%
heading("a. late resetting: rewind to θK instead of θ0")
print("Frankle et al. (2019) found that for deep networks trained at standard learning rates, IMP with the reset")
print("to θ0 finds no winning ticket, while resetting to θK, the weights after K iterations (0.1-7% of training),")
print("does. IMPConfig takes reset='rewind:K': round 0 keeps a snapshot at iteration K and every round restarts from")
print("it. To compare the resets at one sparsity, prune the dense network once (one_shot) to 5% of its weights.")
resets = by_size(args, ["init", "rewind:15"], ["init", "rewind:10", "rewind:50"],
                 ["init", "rewind:20", "rewind:100"])  # K: 1% and 5% of training (5% only at --quick)
rewinding, folders = {}, {}
for reset in resets:
    config = IMPConfig(model="lenet_300_100", rounds=1, one_shot=True, target_percent=5.0, reset=reset,
                       train=lenet_training, seed=0)
    rewinding[reset], folders[reset] = imp(f"reset_{reset.replace(':', '_')}", config, data)
theta0 = runs.load_npz(folders["init"] / "theta0.npz")
dense = rewinding["init"].rounds[0]
masks = rewinding["init"].rounds[1].masks
print(f"dense network: test accuracy {100 * accuracy(dense):.2f}% "
      f"(early stop at {dense.arms['ticket'].metrics['early_stop_iteration']:,})")
for reset, result in rewinding.items():
    rnd = result.rounds[1]
    start = rnd.arms["ticket"].init_weights
    if reset == "init":
        expected = {name: theta0[name] * masks[name] for name in masks}
    else:  # the run folder keeps θK as rewind.npz
        theta_k = runs.load_npz(folders[reset] / "rewind.npz")
        expected = {name: theta_k[name] * rnd.masks[name] for name in rnd.masks}
        assert not np.array_equal(start["1.W"], theta0["1.W"] * rnd.masks["1.W"])  # θK is not θ0
    assert all(np.array_equal(start[name], expected[name]) for name in expected)
    same_mask = all(np.array_equal(rnd.masks[name], masks[name]) for name in masks)
    print(f"reset {reset:11s}: {rnd.percent_remaining:.2f}% of the weights (same mask as 'init': {same_mask}), "
          f"start {'θ0' if reset == 'init' else 'θ' + reset.split(':')[1]} ⊙ m: test accuracy "
          f"{100 * accuracy(rnd):.2f}% (early stop at {rnd.arms['ticket'].metrics['early_stop_iteration']:,})")
print("Every run trains the same dense network (same θ0, same batches), so the one-shot masks agree and only the")
print("start values differ. (A rewound ticket starts K iterations 'ahead' but gets the same training budget.)")
gaps = [100 * (accuracy(rewinding[r].rounds[1]) - accuracy(rewinding["init"].rounds[1])) for r in resets[1:]]
print("rewound minus reset-to-θ0 test accuracy:", ", ".join(f"{r} {g:+.2f} points" for r, g in zip(resets[1:], gaps)))
close = all(abs(gap) < 1.0 for gap in gaps)  # within a point: one run's noise at this size
print(f"On LeNet-300-100 the resets {'end' if close else 'are expected to end'} close together: small networks are")
print("'stable at initialisation' (Frankle et al. 2020, Linear Mode Connectivity and the LTH), so θ0 already works;")
print("rewinding is what rescues IMP on VGG-19 and ResNet-18, where the reset to θ0 fails.")
if not close:
    print(f"(Here they differ by more than a point: {lenet_training.iterations:,} iterations on "
          f"{len(data.y_train):,} images are too few for the comparison; run --class or the full size.)")
if not args.quick:
    best_rewind = max(accuracy(rewinding[r].rounds[1]) for r in resets[1:])
    assert best_rewind >= accuracy(rewinding["init"].rounds[1]) - 0.005, "rewinding should not hurt on LeNet"

curves = {"dense network (100%)": dense.arms["ticket"].metrics["history"]}
for reset, result in rewinding.items():
    curves[f"5% ticket, reset to {'θ0' if reset == 'init' else 'θ' + reset.split(':')[1]}"] = \
        result.rounds[1].arms["ticket"].metrics["history"]
fig, ax = plt.subplots(figsize=(7, 4.5))
late = []  # accuracies after the first quarter of training: the y range zooms on them, as the paper's figures do
for i, (label, history) in enumerate(curves.items()):
    iterations, accuracies = np.array(history["iteration"]), 100 * np.array(history["test_accuracy"])
    style = {"color": "0.5", "ls": "--"} if i == 0 else {"color": plots.COLORS[i - 1], "marker": plots.MARKERS[i - 1]}
    ax.plot(iterations, accuracies, lw=2, markevery=max(1, len(iterations) // 8), label=label, **style)
    late.extend(accuracies[iterations >= iterations.max() / 4])
ax.set_ylim(min(late) - 0.5, max(late) + 0.5)
ax.set_xlabel("training iteration (after the reset)")
ax.set_ylabel("test accuracy (%)")
ax.set_title("Reset to θ0 vs rewinding to θK (LeNet-300-100, one-shot to 5%)")
ax.grid(alpha=0.3)
ax.legend(loc="lower right")
save_figure(fig, args, "rewinding",
            look_for="the coloured lines (the 5% tickets, one per reset) end close together: on LeNet-300-100"
                     " rewinding changes little; the grey dashed line is the dense network, for scale"
            if close else "at this size the curves are too short to compare the resets: they end more than a point"
                          " apart (run --class or the full size)")

# %%
heading("b. global vs layer-wise pruning")
print("Layer-wise (the paper's LeNet and Conv-2/4/6): every hidden layer loses 20% of its weights per round, the")
print("output layer 10%. Global (the paper's Section 5, for VGG-19 and ResNet-18): all weights compete in one")
print("ranking by |w|, so a layer loses as many as fall below the one threshold.")
rounds = by_size(args, 2, 3, 8)
pruning = {}
for mode, global_pruning in (("layer-wise", False), ("global", True)):
    config = IMPConfig(model="lenet_300_100", rounds=rounds, prune_rate=0.2, global_pruning=global_pruning,
                       train=lenet_training, seed=0)
    pruning[mode], _ = imp(mode.replace("-", ""), config, data)
names = list(pruning["global"].rounds[0].masks)
print("weights remaining per layer (%), layer-wise | global:")
print("round " + "".join(f"{name:>17s}" for name in names) + f"{'total':>17s}{'test accuracy':>19s}")
percents = {mode: [] for mode in pruning}
for index in range(rounds + 1):
    cells = []
    for name in names + ["total"]:
        values = []
        for result in pruning.values():
            s = sparsity(result.rounds[index].masks)
            values.append(s["percent"] if name == "total" else s["layers"][name]["percent"])
        cells.append(f"{values[0]:7.1f} |{values[1]:6.1f}  ")
    accuracies = [100 * accuracy(result.rounds[index]) for result in pruning.values()]
    print(f"{index:5d} " + "".join(f"{c:>17s}" for c in cells) + f"{accuracies[0]:9.2f} |{accuracies[1]:6.2f}")
for mode, result in pruning.items():
    percents[mode] = {name: [sparsity(r.masks)["layers"][name]["percent"] for r in result.rounds] for name in names}
    percents[mode]["total"] = [sparsity(r.masks)["percent"] for r in result.rounds]
glob, layer = percents["global"], percents["layer-wise"]
print("Global pruning takes most from 1.W: it holds 88% of the weights, and its Glorot initial weights are the")
print("smallest (std sqrt(2 / (784 + 300)) = 0.043, against 0.071 for 3.W and 0.135 for 5.W), and the weights")
print("from MNIST's always-blank border pixels never grow. The output layer, small and large-weighted, is")
print("spared. Global pruning sets each layer's rate from the weights themselves; layer-wise pruning fixes the")
print("rates by hand (20/20/10% here). For VGG-19 and ResNet-18 the paper prunes globally: it finds smaller")
print("winning tickets there, because fixed rates would turn the deep networks' small layers into bottlenecks.")
assert glob["1.W"][-1] < layer["1.W"][-1], "global pruning should thin the big first layer more than 20% a round"
assert glob["5.W"][-1] > glob["1.W"][-1], "global pruning should keep more of the output layer than of 1.W"

fig, (ax_layers, ax_acc) = plt.subplots(1, 2, figsize=(12, 4.5))
for i, name in enumerate(names + ["total"]):
    color = "0.4" if name == "total" else plots.COLORS[i]
    for mode, ls in (("layer-wise", "-"), ("global", "--")):
        ax_layers.plot(range(rounds + 1), percents[mode][name], color=color, ls=ls, marker=plots.MARKERS[i],
                       lw=3 if name == "total" else 2, label=f"{name} {mode}")
ax_layers.set_yscale("log")
ax_layers.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda p, _: f"{p:g}"))  # 100, not 10^2
ax_layers.yaxis.set_minor_formatter(matplotlib.ticker.FuncFormatter(lambda p, _: f"{p:g}"))
ax_layers.set_xticks(range(rounds + 1))
ax_layers.set_xlabel("pruning round")
ax_layers.set_ylabel("weights remaining (%, log scale)")
ax_layers.set_title("Each layer: solid layer-wise, dashed global")
ax_layers.legend(fontsize=8, ncols=2)
for mode, ls, marker in (("layer-wise", "-", "o"), ("global", "--", "s")):
    ax_acc.plot(percents[mode]["total"], [100 * accuracy(r) for r in pruning[mode].rounds], ls=ls, marker=marker,
                lw=2, label=mode)
ax_acc.set_xscale("log")
ax_acc.invert_xaxis()
ax_acc.set_xticks(percents["global"]["total"], [f"{p:.1f}" for p in percents["global"]["total"]])
ax_acc.minorticks_off()
ax_acc.set_xlabel("weights remaining in the whole network (%, log scale)")
ax_acc.set_ylabel("test accuracy at early stop (%)")
ax_acc.set_title("Accuracy of the tickets")
ax_acc.legend()
for ax in (ax_layers, ax_acc):
    ax.grid(alpha=0.3)
fig.tight_layout()
save_figure(fig, args, "global_vs_layerwise",
            look_for="left: each colour is a layer; its dashed (global) line falls below the solid (layer-wise) one"
                     " for 1.W and stays above it for the output layer 5.W; right: the two modes' tickets at the"
                     " same total sparsity")

# %%
heading("c. Conv-2 on MNIST: IMP on a convolutional network")
# The whole training set (only iterations × 60 images are drawn from it), but smaller validation and test sets:
# a Conv-2 forward pass over 15,000 images takes several seconds on this CPU, and we evaluate a few times a training.
conv_data = by_size(args, full.subset(600, 100, 200), full.subset(len(full.y_train), 500, 1000),
                    full.subset(len(full.y_train), 1000, 2000))
# MNIST is easy: LeNet's Adam rate 1.2e-3 gets far in 300 steps (the paper uses 2e-4 for Conv-2 on CIFAR-10).
lr = PAPER_TRAINING["lenet_300_100"]["lr"]
conv_config = IMPConfig(model="conv2", rounds=1, prune_rate=0.2, controls=(),
                        train=TrainConfig(iterations=by_size(args, 10, 40, 300), eval_every=by_size(args, 5, 20, 100),
                                          lr=lr, seed=0), seed=0)
print(conv_data)
print(conv_config)
conv, _ = imp("conv2", conv_config, conv_data)
model = build_model("conv2", (1, 28, 28), seed=0)
ticket = conv.rounds[1]
for name, layer in sparsity(ticket.masks)["layers"].items():
    print(f"{name:4s} ({layer_kind(model, name):6s}) mask {str(ticket.masks[name].shape):17s}: "
          f"{layer['remaining']:9,} of {layer['total']:9,} kept ({layer['percent']:.1f}%)")
    expected = {"conv": 90.0, "dense": 80.0, "output": 90.0}[layer_kind(model, name)]
    assert abs(layer["percent"] - expected) < 0.1
print("Pruning is unstructured: single kernel entries of a conv layer go, not whole kernels or channels.")
for rnd in conv.rounds:
    metrics = rnd.arms["ticket"].metrics
    print(f"round {rnd.index}: {rnd.percent_remaining:5.1f}% of the weights, test accuracy "
          f"{100 * metrics['test_accuracy_at_early_stop']:.2f}% after {conv_config.train.iterations} iterations "
          f"({metrics['seconds']:.0f} s)")
optimizer = make_optimizer("adam", model, lr=lr)
x, y = to_device(conv_data.x_train[:60], args.device), to_device(conv_data.y_train[:60], args.device)
model.to(args.device)
train_step(model, optimizer, x, y)  # warm-up
with Timer() as t:
    for _ in range(3):
        train_step(model, optimizer, x, y)
step = t.seconds / 3
command = "minilottery imp --model conv2 --device gpu --out runs/conv2"
paper_conv = config_from_options(model="conv2")  # the configuration that command runs
trainings = paper_conv.rounds + 1  # the dense network, then one training per round (no controls counted)
hours = step * paper_conv.train.iterations * trainings / 3600  # evaluations not counted
print(f"{1000 * step:.0f} ms per Conv-2 training step on {args.device}. `{command}` runs the paper's")
print(f"Conv-2 settings on {paper_conv.dataset}: {paper_conv.train.iterations:,} iterations for the dense network "
      f"and each of {paper_conv.rounds} rounds,")
print(f"{trainings * paper_conv.train.iterations:,} steps, which would take about {hours:.0f} hours here, even at "
      f"MNIST's image size and without evaluations.")
print("That is GPU work (tutorial 10 compares the step times).")
if not args.quick:  # 10 iterations (--quick) are too few; 40 (--class) reach about 92%
    assert all(accuracy(rnd) > 0.9 for rnd in conv.rounds), \
        f"Conv-2 should pass 90% on MNIST within {conv_config.train.iterations} iterations"

kernels = conv.rounds[0].arms["ticket"].final_weights["0.W"][:, 0]  # (64, 1, 3, 3) -> (64, 3, 3): trained, dense
kept = ticket.masks["0.W"][:, 0]  # (64, 3, 3)
print(f"first conv layer: {int((~kept).sum())} of {kept.size} kernel entries pruned, in "
      f"{int((~kept).any(axis=(1, 2)).sum())} of 64 kernels; the smallest |w| go, wherever they are.")


def mosaic(tiles):
    """(64, 3, 3) -> (31, 31): an 8 x 8 grid of 3 x 3 tiles with a one-pixel gap (NaN) between them."""
    out = np.full((8 * 4 - 1, 8 * 4 - 1), np.nan)
    for k, tile in enumerate(tiles):
        row, col = divmod(k, 8)
        out[4 * row:4 * row + 3, 4 * col:4 * col + 3] = tile
    return out


fig, (ax_w, ax_m) = plt.subplots(1, 2, figsize=(10, 5))
limit = float(np.abs(kernels).max())
image = ax_w.imshow(mosaic(kernels), cmap="RdBu_r", vmin=-limit, vmax=limit)
fig.colorbar(image, ax=ax_w, shrink=0.8)
ax_w.set_title("conv 0.W after training (64 kernels, 3x3)")
two_colours = matplotlib.colors.ListedColormap(["black", "gold"])  # pruned, kept; the NaN gaps stay white
ax_m.imshow(mosaic(kept.astype(float)), cmap=two_colours, vmin=0, vmax=1)
ax_m.set_title(f"its mask after round 1: black = pruned ({int((~kept).sum())} of {kept.size})")
for ax in (ax_w, ax_m):
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle("Conv-2 on MNIST: magnitude pruning removes single kernel entries")
fig.tight_layout()
save_figure(fig, args, "conv2_kernels",
            look_for="each 3x3 tile is one kernel; the black cells on the right sit where the left tile is palest"
                     " (smallest |w|), scattered over many kernels rather than filling whole ones")
