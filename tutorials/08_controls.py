"""Tutorial 8: the controls: random reinitialisation and random pruning, side by side with the winning ticket.

Goal: learn why a sparse network that trains well is not yet evidence for the lottery ticket hypothesis, and how
the paper's two controls rule out the other explanations (Frankle & Carbin 2019, Section 2, Figures 3-4).
In every pruning round the winning ticket f(x; m ⊙ θ0) is trained next to
  * "reinit": the same mask m with a fresh random initialisation θ0'. If it did as well, the pruned
    *architecture* would be the whole story; the ticket's particular initial values would not matter.
  * "random_prune": a random mask with the ticket's per-layer counts, started from θ0. If it did as well, any
    sparse network of that size would do; the *structure* magnitude pruning found would not matter.
A winning ticket learns faster and reaches a higher test accuracy than both, and the gap grows with sparsity.

Run (from the repository root, after `pip install -e .`; MNIST is read from $MINILOTTERY_DATA, else downloaded):
    python tutorials/08_controls.py           # about 14 minutes on a 2-core CPU
    python tutorials/08_controls.py --class   # about 45 s (10,000 images, 4 rounds at a 50% rate)
    python tutorials/08_controls.py --quick   # about 10 s (small subset, 3 rounds)
The default is the `lenet-quick` preset (5,000 iterations per training, 12 rounds down to 7.0% of the
weights) with both controls: 37 trainings. --class keeps the preset's protocol but trains 1,500 iterations on
10,000 images and prunes 50% a round (25% of the output layer), so 4 rounds reach 6.3%: 13 trainings. The run
is recorded under figures/08_controls/run-<8 hex digits>/, a folder named by its settings, and resumes when
the script runs again; other settings (another size, or an exercise's change) get a folder of their own.

Prints: one line per round with the three arms' test accuracy at early stop, checks that each control is what
it claims to be (same mask / new weights; same counts / random positions), the results table, and at the
sparsest round how far each control falls behind the ticket.
Draws: figures/08_controls/accuracy_vs_weights.png (test accuracy at early stop vs % of weights, three arms).
Draws: figures/08_controls/early_stop_vs_weights.png (early-stop iteration vs % of weights, three arms).
Draws: figures/08_controls/learning_curves.png (test accuracy during training at several sparsities: ticket, reinit).
Draws: figures/08_controls/sparsest_round.png (validation loss and test accuracy of all three arms, sparsest round).
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from minilottery.data import load_mnist
from minilottery.lab import plots, runs
from minilottery.lab.presets import from_preset
from minilottery.lab.run_folder import run_imp_in_folder
from minilottery.lab.tables import format_table
from minilottery.lab.tutorial import Timer, by_size, heading, parse_args, run_folder, save_figure
from minilottery.prune import sparsity

args = parse_args(__doc__, "08_controls.py")
data = load_mnist()
data = by_size(args, data.subset(3000, 500, 1000), data.subset(10_000, 1000, 2000), data)

# %%
heading("1. three arms per round")
smaller = by_size(args, {"rounds": 3, "iterations": 300, "eval_every": 50},
                  {"rounds": 4, "iterations": 1500, "eval_every": 100, "prune_rate": 0.5}, {})
config = from_preset("lenet-quick", controls=("reinit", "random_prune"), **smaller)  # minilottery/lab/presets.py
print(config)
print("round 0 trains the dense network; every later round trains:")
print("  ticket        the IMP mask m, reset to θ0 (tutorial 7)")
print("  reinit        the same mask m, a new draw θ0' from the same Gaussian Glorot distribution")
print("  random_prune  a random mask with the ticket's count of weights in every layer, reset to θ0")
print("All three see the same minibatches in the same order, so only the mask and the start values differ.")

# %%
heading("2. running it")
run_dir = run_folder(args.figures, config, data)  # named by the settings: a changed exercise gets a new folder
done = len(runs.completed_rounds(run_dir))
if done:
    print(f"{run_dir} already holds {done} finished round(s): they are read back, not trained again.")


def report(rnd):
    """One line per round: each arm's test accuracy at its early-stopping iteration."""
    cells = [f"{arm} {100 * a.metrics['test_accuracy_at_early_stop']:.2f}% (stop {a.metrics['early_stop_iteration']:,})"
             for arm, a in rnd.arms.items()]
    print(f"round {rnd.index:2d}, {rnd.percent_remaining:5.1f}% of the weights: " + "   ".join(cells))


with Timer() as t:
    result = run_imp_in_folder(config, data, run_dir, device=args.device, progress=False, on_round=report)
rounds = result.rounds
print(f"{sum(len(r.arms) for r in rounds)} trainings in {t.seconds:.0f} s")

# %%
heading("3. each control is what it claims to be")
last = rounds[-1]
ticket, reinit, random_prune = (last.arms[arm] for arm in ("ticket", "reinit", "random_prune"))
theta0 = runs.load_npz(run_dir / "theta0.npz")
for name in last.masks:
    m, r = last.masks[name], random_prune.masks[name]
    assert np.array_equal(reinit.masks[name], m)  # reinit: the ticket's own mask ...
    assert np.all(reinit.init_weights[name][~m] == 0.0)
    assert not np.array_equal(reinit.init_weights[name][m], theta0[name][m])  # ... with other start values
    assert r.sum() == m.sum() and not np.array_equal(r, m)  # random_prune: same count, other positions ...
    assert np.array_equal(random_prune.init_weights[name], theta0[name] * r)  # ... started from θ0
    overlap = (r & m).sum() / m.sum()
    print(f"{name}: {int(m.sum()):7,} weights kept in every arm; start std at the ticket's positions: reinit "
          f"{reinit.init_weights[name][m].std():.4f}, θ0 {theta0[name][m].std():.4f}; the random mask shares "
          f"{100 * overlap:.1f}% of them")
density = sparsity(last.masks)["percent"]
print(f"A random mask keeping p of a layer shares about p of the ticket's positions ({density:.1f}% overall here):")
print("it is a different sub-network of the same size. Note that the survivors' θ0 values are larger than")
print("θ0 on average (std above): magnitude pruning keeps weights that end large, and those often started large.")

# %%
heading("4. the results")
summary = plots.load_summary(run_dir)
print(format_table(summary))  # the table `minilottery report DIR` prints
sparsest = summary["rounds"][-1]
arms = sparsest["arms"]
acc = {arm: arms[arm]["test_accuracy_at_early_stop"] for arm in arms}
print(f"\nat {sparsest['percent_remaining']:.1f}% of the weights: ticket {100 * acc['ticket']:.2f}%, "
      f"reinit {100 * acc['reinit']:.2f}% ({100 * (acc['reinit'] - acc['ticket']):+.2f} points), "
      f"random pruning {100 * acc['random_prune']:.2f}% ({100 * (acc['random_prune'] - acc['ticket']):+.2f} points)")
behind = {arm: acc[arm] < acc["ticket"] for arm in ("reinit", "random_prune")}
if behind["reinit"]:
    print("reinit rules out 'the pruned architecture alone explains it': same connections, worse without θ0.")
if behind["random_prune"]:
    print("random_prune rules out 'any sparse network of this size would do': same θ0 values, worse on other "
          "connections.")
if all(behind.values()):
    print("Only the combination, this mask on these initial values, is the winning ticket.")
else:
    print(f"Here {' and '.join(arm for arm, b in behind.items() if not b)} did not fall behind the ticket: with "
          f"{config.train.iterations:,} iterations on {len(data.y_train):,} images")
    print("at this sparsity the arms are too close to tell apart; run --class or the full size to see the gap.")
if not args.quick:  # --quick's 3 rounds stop at 51% of the weights, after 300 iterations: too early for a gap
    assert acc["ticket"] > acc["reinit"], "at the sparsest round the winning ticket should beat random reinit"
    assert acc["ticket"] > acc["random_prune"], "at the sparsest round the winning ticket should beat random pruning"

last_evaluation = config.train.iterations
stopped_early = any(arm["early_stop_iteration"] < last_evaluation for info in summary["rounds"]
                    for arm in info["arms"].values())
save_figure(plots.plot_accuracy_vs_weights(summary), args, "accuracy_vs_weights",
            look_for="pruning proceeds to the right: the ticket's line stays near the dashed dense network while"
                     " both controls fall below it, further the sparser the network"
            if all(behind.values()) else "at this size the three lines are not yet apart: the controls have not"
                                         " fallen behind the ticket (run --class or the full size)")
save_figure(plots.plot_early_stop_vs_weights(summary), args, "early_stop_vs_weights",
            look_for="a lower point learned faster: the ticket's line should run below both controls' (one run's"
                     " points jump by an evaluation or two; a point at the last iteration had not stopped improving)"
            if stopped_early else "every point sits at the last iteration: no network's validation loss had a"
                                  " minimum yet, so this size shows no learning speed (run --class or the full size)")
histories = plots.load_histories(run_dir, rounds=plots.select_rounds(summary))  # rounds near 100, 51, 21, 7, 3.6%
save_figure(plots.plot_learning_curves(summary, histories), args, "learning_curves",
            look_for="each colour is one sparsity: its solid line (the ticket) should rise faster and end higher"
                     " than its dashed line (reinit), the more so the sparser the network"
            if behind["reinit"] else "each colour is one sparsity, solid the ticket and dashed reinit: at this size"
                                     " they are too close to tell apart (run --class or the full size)")

# %%
heading("5. learning speed at the sparsest round")
curves = {arm: last.arms[arm].metrics["history"] for arm in config.arms}
middle = len(curves["ticket"]["iteration"]) // 2  # an evaluation halfway through training
for arm, h in curves.items():
    print(f"{arm:13s}: validation loss {h['val_loss'][middle]:.4f} at iteration {h['iteration'][middle]:,}, "
          f"minimum {min(h['val_loss']):.4f} at iteration {last.arms[arm].metrics['early_stop_iteration']:,}")
print("The paper measures learning speed by the early-stopping iteration: the ticket's validation loss falls")
print(f"faster. Training is short here ({config.train.iterations:,} iterations, 50,000 in the paper), and an arm")
print("whose validation loss still falls at the last evaluation 'stops' there, however fast it learns:")
at_the_end = [arm for arm in curves if last.arms[arm].metrics["early_stop_iteration"] >= last_evaluation]
if at_the_end:
    print(f"{', '.join(at_the_end)} stopped at the last evaluation, so compare the curves rather than the iterations.")
else:
    print("every arm reached its minimum before the end, so their early-stop iterations compare learning speed.")

fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(12, 4.5))
for arm, h in curves.items():
    style = plots.ARM_STYLE[arm]
    kwargs = {"color": style["color"], "linestyle": style["linestyle"], "marker": style["marker"],
              "markevery": max(1, len(h["iteration"]) // 8), "lw": 2, "label": style["label"]}
    ax_loss.plot(h["iteration"], h["val_loss"], **kwargs)
    ax_acc.plot(h["iteration"], 100 * np.array(h["test_accuracy"]), **kwargs)
    ax_loss.axvline(last.arms[arm].metrics["early_stop_iteration"], color=style["color"], ls=":", lw=1)
ax_loss.set_ylabel("validation loss (dotted: early stop)")
ax_acc.set_ylabel("test accuracy (%)")
final = [100 * h["test_accuracy"][-1] for h in curves.values()]
ax_acc.set_ylim(min(final) - 3, max(final) + 1)
for ax in (ax_loss, ax_acc):
    ax.set_xlabel("training iteration")
    ax.grid(alpha=0.3)
    ax.legend()
fig.suptitle(f"Round {last.index}: {last.percent_remaining:.1f}% of LeNet-300-100's weights")
fig.tight_layout()
save_figure(fig, args, "sparsest_round",
            look_for="left: the ticket's validation loss should fall fastest and lowest (dotted lines: each arm's"
                     " early stop); right: its test accuracy should stay above both controls' for the whole training"
            if all(behind.values()) else "the three arms' curves at the sparsest round: at this size they are too"
                                         " close to rank (run --class or the full size)")
