"""Tutorial 11: why do tickets win? Instability, sanity checks and supermasks on a LeNet-300-100 ticket.

Goal: take one winning ticket m ⊙ θ0 and ask what makes it win, with three analyses from the papers that followed
Frankle & Carbin (2019):
  a. instability (Frankle, Dziugaite, Roy & Carbin, ICML 2020, "Linear mode connectivity and the lottery ticket
     hypothesis"): train two copies of the ticket from θ0 with two data orders and walk the straight line between
     the two results. Does the test error rise in the middle? The same for the reinit control (m ⊙ θ0').
  b. sanity checks (Frankle et al., ICLR 2021, Section 5; Zhou, Lan, Liu & Yosinski, NeurIPS 2019, Section 4):
     keep the ticket's per-layer counts and change one thing: the positions (mask shuffled within each layer),
     the magnitudes (θ0's signs times one constant per layer), or the magnitudes drawn afresh (θ0' with θ0's
     signs). Which change hurts?
  c. supermasks (Zhou et al., Section 5): how accurate is θ0 ⊙ m with no training at all, for the ticket's mask,
     a random mask and the "large final, same sign" mask?
The library owns the analyses (minilottery/lab/instability.py and minilottery/lab/sanity.py); this script calls
their pieces one at a time and prints the few lines of each that matter.

Run (from the repository root, after `pip install -e .`; MNIST is read from $MINILOTTERY_DATA, else downloaded):
    python tutorials/11_why_tickets_win.py           # about 4 minutes on one CPU core (--threads 1)
    python tutorials/11_why_tickets_win.py --class   # about 25 s (10,000 images, 1,000 iterations)
    python tutorials/11_why_tickets_win.py --quick   # about 10 s (small subset, very short trainings)
The default finds a ticket with 5 rounds of IMP at a 50% rate (2,000 iterations a training, 3.2% of the weights
left), then trains 7 more networks: 4 for part a, 3 for part b; --class stops at 3 rounds (12.6% of the
weights) and trains 1,000 iterations on 10,000 images. The IMP run is recorded under
figures/11_why_tickets_win/run-<8 hex digits>/, a folder named by its settings, and read back when the script
runs again with the same settings; other settings (another size, or an exercise's change) get a folder of
their own.

Prints: (a) the test error at 11 points along each path and the instability of the ticket and of the reinit
control, with the checks that the ends are the trained networks and that a network's path to itself is flat;
(b) each sanity-check variant's construction checks and its test accuracy at early stop; (c) the untrained test
accuracy of θ0 alone and of θ0 ⊙ m for three masks.
Draws: figures/11_why_tickets_win/error_vs_alpha.png (test error along the path between two trained copies).
Draws: figures/11_why_tickets_win/sanity_and_supermasks.png (accuracy of each variant trained, and untrained).
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from minilottery.backend import to_device
from minilottery.data import load_mnist
from minilottery.imp import IMPConfig, train_arm
from minilottery.lab.instability import alphas, instability, interpolate, network, path_errors, spawn
from minilottery.lab.plots import ARM_STYLE
from minilottery.lab.run_folder import run_imp_in_folder
from minilottery.lab.sanity import criterion_masks, overlap, variant_networks
from minilottery.lab.transfer import SourceRun, arm_start_and_masks
from minilottery.lab.tutorial import Timer, by_size, heading, parse_args, run_folder, save_figure
from minilottery.prune import sparsity
from minilottery.training import TrainConfig, evaluate

args = parse_args(__doc__, "11_why_tickets_win.py")
data = load_mnist()
data = by_size(args, data.subset(3000, 500, 1000), data.subset(10_000, 1000, 2000), data)

# %%
heading("1. a ticket to study")
# A 50% rate (25% for the output layer) reaches 3.2% of the weights in 5 rounds; the paper's 20% needs 15.
training = TrainConfig(iterations=by_size(args, 100, 1000, 2000), eval_every=by_size(args, 50, 100, 100), seed=0)
config = IMPConfig(model="lenet_300_100", rounds=by_size(args, 2, 3, 5), prune_rate=0.5, controls=(),
                   train=training, seed=0)
run_dir = run_folder(args.figures, config, data)  # named by the settings: an exercise's change gets a folder of its own
with Timer() as t:
    result = run_imp_in_folder(config, data, run_dir, device=args.device, progress=False)
for rnd in result.rounds:
    metrics = rnd.arms["ticket"].metrics
    print(f"round {rnd.index}: {rnd.percent_remaining:5.1f}% of the weights, test accuracy "
          f"{100 * metrics['test_accuracy_at_early_stop']:.2f}% (early stop {metrics['early_stop_iteration']:,})")
print(f"[{len(result.rounds)} trainings in {t.seconds:.0f} s]")
source = SourceRun.read(run_dir)  # what the analyses read from a run folder: config, θ0, every round's masks
r = len(result.rounds) - 1  # the sparsest round: its ticket is the one we study
masks = source.masks(r)
ticket = result.rounds[r].arms["ticket"]
theta0 = source.start
x_test, y_test = to_device(data.x_test, args.device), to_device(data.y_test, args.device)
one_example = 1 / len(data.y_test)  # the smallest change of a test error


# %%
heading("2a. instability: do two copies of the ticket end in one valley?")
print("Two children start from the same weights (θ0 ⊙ m: k = 0) and see the data in two different orders")
print("(data seeds 1 and 2; the parent run used 0). Between their trained weights θ_A and θ_B lies the line")
print("    θ(α) = (1 - α) θ_A + α θ_B,   α from 0 to 1")
print("and the instability is the height of the error barrier on it:")
print("    instability = max over α of error(θ(α))  -  (error(θ_A) + error(θ_B)) / 2")
print("0: the two copies are linearly connected, SGD's noise did not matter (the network is 'stable').")
points = alphas(11)  # 0.0, 0.1, ..., 1.0
reinit_start, _ = arm_start_and_masks(source, "reinit", r, masks)  # IMP's reinit control: a fresh θ0'
starts = {"ticket": theta0, "reinit": reinit_start}
paths = {}
with Timer() as t:
    for arm, start in starts.items():
        child_a, child_b = spawn(config, data, start, masks, [0], args.device, progress=False, desc=arm)[0]
        a, b = child_a.final_weights, child_b.final_weights
        model = network(config, source.input_shape, start, masks, args.device)
        errors = path_errors(model, a, b, x_test, y_test, points, config.train.eval_batch_size)
        paths[arm] = errors
        # the ends of the line are the two trained networks, exactly, and evaluate to their own final errors
        assert all(np.array_equal(interpolate(a, b, 0.0)[n], a[n]) for n in a)
        assert all(np.array_equal(interpolate(a, b, 1.0)[n], b[n]) for n in b)
        for end, child in ((errors[0], child_a), (errors[-1], child_b)):
            assert abs(end - (1 - child.metrics["history"]["test_accuracy"][-1])) < 1e-12
        # a pruned weight is 0 at both ends, so it is 0 everywhere on the line: the path stays in the sparse net
        middle = interpolate(a, b, 0.5)
        assert all(np.all(middle[n][~masks[n]] == 0) for n in masks)
        # a network's line to itself is flat: its instability is 0 (up to float32 rounding of (1 - α)a + αa)
        flat = instability(path_errors(model, a, a, x_test, y_test, alphas(5), config.train.eval_batch_size))
        assert 0 <= flat <= 2 * one_example, flat
        assert instability(errors) >= 0
        print(f"{arm:6s} test error (%) along the path: " + " ".join(f"{100 * e:.2f}" for e in errors))
        print(f"{'':6s} instability {100 * instability(errors):.2f} points (the path from A to A itself: "
              f"{100 * flat:.2f})")
print(f"[4 trainings in {t.seconds:.0f} s]")
worse = min(e_reinit - e_ticket for e_reinit, e_ticket in zip(paths["reinit"], paths["ticket"]))
stable = instability(paths["ticket"]) < 0.005  # half a point or less
if stable:
    print(f"The ticket's path is nearly flat: trained from k = 0, its instability is "
          f"{100 * instability(paths['ticket']):.2f} points and the reinit")
    print(f"control's {100 * instability(paths['reinit']):.2f} (one test example is {100 * one_example:.2f}). "
          f"Frankle et al. (2020) found LeNet stable from k = 0; it is")
    print("deeper networks (VGG-16, ResNet-20) whose tickets need rewinding to k > 0 before they become stable.")
else:
    print(f"The ticket's instability is {100 * instability(paths['ticket']):.2f} points: after "
          f"{config.train.iterations:,} iterations the two copies have not")
    print("settled into one valley yet, so this size cannot test stability; run --class or the full size.")
if worse > 0:
    print(f"Stability alone does not make a ticket: the reinit control's path is at least {100 * worse:.2f} points")
    print("worse than the ticket's at every α. Its copies also agree with each other; they agree on a worse valley.")
else:
    print("Here the reinit control's path is not worse than the ticket's everywhere: at this size the two are too")
    print("close to tell apart; run --class or the full size.")
if not args.quick:  # --quick's 100 iterations are too few for either
    assert stable, "the LeNet ticket should be stable from k = 0 (half a point or less)"
    assert worse > 0, "the reinit control should have a higher test error than the ticket all along the path"

fig, ax = plt.subplots(figsize=(7, 4.5))
for arm, errors in paths.items():
    style = ARM_STYLE[arm]
    ax.plot(points, [100 * e for e in errors], color=style["color"], ls=style["linestyle"], marker=style["marker"],
            lw=2, label=f"{style['label']}: instability {100 * instability(errors):.2f} points")
ax.set_xlabel("α   (θ(α) = (1 - α) θ_A + α θ_B)")
ax.set_ylabel("test error (%)")
ax.set_title(f"Between two trained copies, {result.rounds[r].percent_remaining:.1f}% of LeNet-300-100's weights")
ax.grid(alpha=0.3)
ax.legend()
fig.tight_layout()
save_figure(fig, args, "error_vs_alpha",
            look_for="a flat line means the two trained copies lie in one valley (stable); a bump in the middle is"
                     " the instability barrier; the reinit line should run above the ticket's at every α"
            if stable and worse > 0 else "at this size the lines mean little: the copies are barely trained"
                                         " (run --class or the full size)")

# %%
heading("2b. sanity checks: positions, signs or magnitudes?")
dense_final = result.rounds[0].arms["ticket"].final_weights  # wf: the trained dense network (for part c)
variants = variant_networks(source, r, masks, dense_final)  # variant -> (start weights, masks)
print("Each variant keeps the ticket's count in every layer and changes one thing:")
print("  shuffled         m shuffled within each layer, ⊙ θ0        (IMP's random-pruning control of the round)")
print("  signed_constant  m ⊙ sign(θ0) σ_l, σ_l = std of layer l's θ0 (one magnitude a layer, θ0's signs)")
print("  reinit_signs     m ⊙ sign(θ0) |θ0'|, θ0' a fresh draw       (new magnitudes, θ0's signs)")
checks = ("shuffled", "signed_constant", "reinit_signs")
for name in masks:
    m = masks[name]
    shuffled = variants["shuffled"][1][name]
    assert shuffled.sum() == m.sum() and not np.array_equal(shuffled, m)  # same count, other positions
    constant = variants["signed_constant"][0][name]
    assert np.allclose(np.abs(constant), theta0[name].std()) and np.array_equal(np.sign(constant),
                                                                                np.sign(theta0[name]))
    signs = variants["reinit_signs"][0][name]
    assert np.array_equal(np.sign(signs), np.sign(theta0[name])) and np.array_equal(np.abs(signs),
                                                                                    np.abs(reinit_start[name]))
    print(f"{name}: {int(m.sum()):6,} kept; shuffled shares {100 * (shuffled & m).sum() / m.sum():.1f}% of the "
          f"positions; signed constant |w| = {theta0[name].std():.4f}")
trained = {"ticket": ticket.metrics}  # the ticket itself was trained in section 1, with these same settings
with Timer() as t:
    for variant in checks:
        start, variant_masks = variants[variant]
        trained[variant] = train_arm(config, data, start, variant_masks, args.device, False, variant)[0].metrics
print(f"[{len(checks)} trainings in {t.seconds:.0f} s]")
accuracy = {v: metrics["test_accuracy_at_early_stop"] for v, metrics in trained.items()}
for variant, metrics in trained.items():
    print(f"{variant:16s} test accuracy {100 * accuracy[variant]:.2f}% (early stop "
          f"{metrics['early_stop_iteration']:,}), {100 * (accuracy[variant] - accuracy['ticket']):+.2f} points")
positions_matter = accuracy["ticket"] > accuracy["shuffled"]
signs_carry = min(accuracy["signed_constant"], accuracy["reinit_signs"]) > accuracy["shuffled"]
if positions_matter and signs_carry:
    print("Shuffling the positions costs the most: the mask's structure matters. Keeping θ0's signs keeps much")
    print("of the ticket's advantage even with other magnitudes (Zhou et al. 2019): the signs carry information.")
else:
    print("Here shuffling the positions did not cost the most: at this size the variants are too close to rank;")
    print("run --class or the full size.")
if not args.quick:
    assert positions_matter, "the ticket should beat its shuffled masks"
    assert signs_carry, "keeping the mask and θ0's signs should beat keeping θ0 on shuffled positions"

# %%
heading("2c. supermasks: accuracy with no training at all")
print("Zhou et al. (2019) found masks that make θ0 ⊙ m far better than chance untrained. Their best criterion,")
print("'large final, same sign', keeps the weights of largest |wf| among those whose sign did not change:")
print("    score = |wf| where sign(wf) = sign(w0), else -inf;   keep the ticket's count of highest scores")
counts = {name: int(m.sum()) for name, m in masks.items()}
same_sign = criterion_masks("large_final_same_sign", theta0, dense_final, counts)
supermasks = {"dense (θ0 alone)": {name: np.ones_like(m) for name, m in masks.items()},
              "ticket m": masks, "random (shuffled m)": variants["shuffled"][1],
              "large_final_same_sign": same_sign}
for name, m in same_sign.items():
    assert m.sum() <= counts[name]  # at most the ticket's count: fewer where too few weights kept their sign
    assert np.all(np.sign(dense_final[name][m]) == np.sign(theta0[name][m]))
untrained = {}
for label, m in supermasks.items():
    model = network(config, source.input_shape, theta0, m, args.device)
    untrained[label] = evaluate(model, x_test, y_test, config.train.eval_batch_size)[1]
    print(f"{label:22s} {sparsity(m)['percent']:6.2f}% of the weights, overlap with the ticket "
          f"{100 * overlap(m, masks):5.1f}%: untrained test accuracy {100 * untrained[label]:.2f}%")
baseline = max(untrained["random (shuffled m)"], untrained["dense (θ0 alone)"])
supermask = {label: untrained[label] > baseline + 0.2 for label in ("ticket m", "large_final_same_sign")}
if all(supermask.values()):
    print("A mask chosen from trained weights makes θ0 classify with no training at all, while a random mask of")
    print("the same counts stays near chance: which weights survive (and with which sign) is a large part of what")
    print("training finds. The ticket's own mask, found by iterating large_final, is such a supermask as well.")
else:
    print("Here the masks chosen from trained weights are not yet far above a random mask: the network trained too")
    print("briefly to choose them well; run --class or the full size.")
if not args.quick:
    for label, far_better in supermask.items():
        assert far_better, f"the {label} mask should make θ0 far better than a random mask and θ0 alone, untrained"

fig, (ax_t, ax_u) = plt.subplots(1, 2, figsize=(12, 4.5))
x = np.arange(len(trained))
ax_t.bar(x, [100 * a for a in accuracy.values()], color=ARM_STYLE["ticket"]["color"])
ax_t.set_xticks(x, list(accuracy), rotation=20)
low = min(accuracy.values())
ax_t.set_ylim(max(0, 100 * low - 5), 100)
ax_t.set_ylabel("test accuracy at early stop (%)")
ax_t.set_title("b. trained: the ticket and its sanity checks")
x = np.arange(len(untrained))
ax_u.bar(x, [100 * a for a in untrained.values()], color=ARM_STYLE["reinit"]["color"])
ax_u.axhline(10.0, color="0.35", ls="--", lw=1.5, label="chance (10 classes)")
ax_u.set_xticks(x, list(untrained), rotation=20)
ax_u.set_ylim(0, 100)
ax_u.set_ylabel("test accuracy untrained (%)")
ax_u.set_title("c. untrained: θ0 ⊙ m for several masks")
ax_u.legend()
for ax in (ax_t, ax_u):
    ax.grid(alpha=0.3, axis="y")
fig.suptitle(f"{result.rounds[r].percent_remaining:.1f}% of LeNet-300-100's weights")
fig.tight_layout()
save_figure(fig, args, "sanity_and_supermasks",
            look_for="left: the shuffled bar is the shortest (positions matter) and the sign-keeping ones stay near"
                     " the ticket; right: the ticket's and large_final_same_sign's masks stand far above the dashed"
                     " chance line while θ0 alone and a random mask stay near it"
            if positions_matter and signs_carry and all(supermask.values())
            else "at this size the bars are too close to rank: the networks trained too briefly (run --class or the"
                 " full size)")
