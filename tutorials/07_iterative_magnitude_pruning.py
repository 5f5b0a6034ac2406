"""Tutorial 7: iterative magnitude pruning: find a winning ticket in LeNet-300-100 (the paper's Section 2).

Goal: run the lottery ticket experiment itself. Train a dense network from θ0, prune the smallest-magnitude
20% of each hidden layer's weights (10% of the output layer's), reset the survivors to their values in θ0,
and train again: round after round the mask shrinks, and the sparse network f(x; m ⊙ θ0) still trains to the
dense network's accuracy, in fewer iterations (Frankle & Carbin 2019, Section 2 and Figures 3-4). First write
the loop out by hand in a dozen lines and check that the library's run_imp does exactly that; then run the
experiment and check the two properties the algorithm rests on: the masks are nested, and the reset restores
θ0 exactly.

Run (from the repository root, after `pip install -e .`; MNIST is read from $MINILOTTERY_DATA, else downloaded):
    python tutorials/07_iterative_magnitude_pruning.py           # about 6 minutes on a 2-core CPU
    python tutorials/07_iterative_magnitude_pruning.py --class   # about 45 s (10,000 images, 12 rounds)
    python tutorials/07_iterative_magnitude_pruning.py --quick   # about 11 s (small subset, 3 rounds)
The default is 16 trainings of 5,000 iterations (rounds 0-15, down to 3.6% of the weights), after the small
loop of sections 2-3 (4 trainings of 100 iterations, once by hand and once with run_imp); --class trains
13 times for 1,500 iterations on 10,000 training images (rounds 0-12, down to 6.9% of the weights). The run is
recorded under figures/07_iterative_magnitude_pruning/run-<8 hex digits>/, a folder named by its settings:
run the script again and it reads the finished rounds back instead of training them, while other settings
(another size, or an exercise's change) get a folder of their own.

Prints: the per-layer pruning rates; the loop by hand on a small setting, one line per round, and the check
that run_imp gives the same masks and accuracies bit for bit; then for the experiment one line per round
(weights remaining per layer and in total, as exact counts, the early-stop iteration and the test accuracy
there), the checks that the masks are nested and that each round starts from θ0 ⊙ m, and which input pixels
the first layer keeps.
Draws: figures/07_iterative_magnitude_pruning/accuracy_vs_weights.png (test accuracy at early stop vs % weights left).
Draws: figures/07_iterative_magnitude_pruning/early_stop_vs_weights.png (early-stop iteration vs % weights left).
Draws: figures/07_iterative_magnitude_pruning/first_layer_mask.png (connections each input pixel keeps in layer 1.W).
"""

import numpy as np

from minilottery.data import load_mnist
from minilottery.imp import IMPConfig, run_imp
from minilottery.lab import plots, runs
from minilottery.lab.run_folder import run_imp_in_folder
from minilottery.lab.tutorial import Timer, by_size, heading, parse_args, run_folder, save_figure
from minilottery.models import build_model
from minilottery.prune import check_nested, default_rates, magnitude_prune, masked_weights, prune_count, sparsity
from minilottery.training import TrainConfig, train

args = parse_args(__doc__, "07_iterative_magnitude_pruning.py")
data = load_mnist()
data = by_size(args, data.subset(3000, 500, 1000), data.subset(10_000, 1000, 2000), data)

# %%
heading("1. the algorithm (Section 2)")
print("1. Randomly initialise a network f(x; θ0).")
print("2. Train it for j iterations, arriving at θj.")
print("3. Prune p% of the remaining weights of each layer, those of smallest |w| in θj: a mask m.")
print("4. Reset the survivors to their values in θ0: the candidate ticket f(x; m ⊙ θ0).")
print("5. Repeat 2-4 from the ticket: each round prunes p% of what is left (iterative pruning).")

# %%
heading("2. the loop, written out (a small setting: 3,000 training images, 100 iterations a training)")
small_data = data.subset(3000, 500, 1000)
small = IMPConfig(model="lenet_300_100", rounds=3, prune_rate=0.2, reset="init", controls=(),
                  train=TrainConfig(iterations=100, eval_every=50, seed=0), seed=0)
model = build_model(small.model, seed=small.seed)  # step 1: a random network ...
theta0 = model.state_dict()  # ... and its initial weights θ0, kept for every round
rates = default_rates(small.model, model, small.prune_rate)  # weight name -> fraction pruned per round
print("rates per round:", rates, "(the output layer at half the hidden rate, as in the paper)")
masks = {name: np.ones(theta0[name].shape, dtype=bool) for name in rates}  # round 0: nothing pruned yet
by_hand = []  # per round: (masks, test accuracy at early stop)
for index in range(small.rounds + 1):
    model = build_model(small.model, seed=small.seed)  # the architecture (its fresh weights are replaced next)
    model.load_state_dict(masked_weights(theta0, masks))  # step 4: survivors back to θ0, pruned weights 0
    model.set_masks(masks)  # a pruned weight gets no update: it stays 0 through training
    model.to(args.device)
    trained = train(model, small_data, small.train, device=args.device, progress=False)  # step 2: θ0 -> θj
    by_hand.append((masks, trained.test_accuracy_at_early_stop))
    print(f"round {index}: {sparsity(masks)['percent']:5.1f}% of the weights, test accuracy at early stop "
          f"{100 * trained.test_accuracy_at_early_stop:.2f}%")
    masks = magnitude_prune(model.state_dict(), masks, rates)  # step 3: prune p% of the survivors by |θj|
print("Every training uses the same data order (TrainConfig.seed), so rounds differ only in mask and start.")

# %%
heading("3. run_imp is that loop")
result = run_imp(small, small_data, device=args.device, progress=False)  # the same config, the same seeds
for (masks, accuracy), rnd in zip(by_hand, result.rounds, strict=True):
    assert all(np.array_equal(masks[name], rnd.masks[name]) for name in masks), f"round {rnd.index}: masks differ"
    assert accuracy == rnd.arms["ticket"].metrics["test_accuracy_at_early_stop"], f"round {rnd.index}: accuracy"
print(f"run_imp gives the same {len(result.rounds)} rounds: the same masks and the same accuracies, bit for bit.")
print("What it adds: the controls (tutorial 8), rewinding and other pruning schedules (tutorial 9), and, with a")
print("store, a record of every round from which an interrupted run continues (below).")

# %%
heading("4. the experiment: run_imp_in_folder, one line per round")
config = IMPConfig(
    model="lenet_300_100", rounds=by_size(args, 3, 12, 15), prune_rate=0.2, reset="init", controls=(),
    train=TrainConfig(iterations=by_size(args, 300, 1500, 5000), eval_every=by_size(args, 50, 100, 100), seed=0),
    seed=0,
)
print(config)
rates = default_rates(config.model, build_model(config.model, seed=config.seed), config.prune_rate)
print(f"After n rounds a layer keeps (1 - rate)^n of its weights: {config.rounds} rounds leave "
      f"{100 * (1 - rates['1.W']) ** config.rounds:.1f}% of the hidden weights and "
      f"{100 * (1 - rates['5.W']) ** config.rounds:.1f}% of the output's.")
run_dir = run_folder(args.figures, config, data)  # θ0, masks, start and trained weights, metrics


def report(rnd):
    """run_imp_in_folder calls this as each round finishes: the round's sparsity and how the ticket trained."""
    s = sparsity(rnd.masks)  # exact counts of kept weights, per layer and in total
    layers = "  ".join(f"{name} {layer['percent']:5.1f}%" for name, layer in s["layers"].items())
    stop, accuracy = (rnd.arms["ticket"].metrics[k] for k in ("early_stop_iteration", "test_accuracy_at_early_stop"))
    print(f"round {rnd.index:2d}: {s['percent']:5.1f}% left ({s['remaining']:7,} of {s['total']:,})  [{layers}]  "
          f"early stop {stop:5,}  test accuracy {100 * accuracy:.2f}%")


done = len(runs.completed_rounds(run_dir))
if done:
    print(f"{run_dir} already holds {done} finished round(s): they are read back instead of trained again")
    print("(that is how an interrupted run resumes; other settings get a folder of their own).")
with Timer() as t:
    result = run_imp_in_folder(config, data, run_dir, device=args.device, progress=False, on_round=report)
rounds = result.rounds
print(f"{len(rounds)} rounds in {t.seconds:.0f} s; the whole record is in {run_dir}")

# %%
heading("5. the masks are nested: a pruned weight never comes back")
for previous, rnd in zip(rounds, rounds[1:]):
    assert check_nested(rnd.masks, previous.masks), f"round {rnd.index} revived a pruned weight"
    for name, rate in rates.items():  # exactly round(rate × alive) of the alive weights go, per layer
        alive = int(previous.masks[name].sum())
        assert int(rnd.masks[name].sum()) == alive - prune_count(rate, alive)
last = rounds[-1]
s = sparsity(last.masks)
print(f"check_nested(round r, round r-1) holds for r = 1..{last.index}, and every layer lost exactly "
      f"round(rate × alive) weights per round.")
for name, layer in s["layers"].items():
    print(f"  {name}: {layer['remaining']:7,} of {layer['total']:7,} kept ({layer['percent']:.2f}%; "
          f"(1 - {rates[name]})^{last.index} = {100 * (1 - rates[name]) ** last.index:.2f}%)")
print("The rounding of each round's count makes the kept fraction differ from (1 - rate)^n in the last digits.")

# %%
heading("6. the reset restores θ0 on the survivors")
theta0 = runs.load_npz(run_dir / "theta0.npz")  # run_imp_in_folder keeps θ0 in the run folder
fresh = build_model(config.model, seed=config.seed).state_dict()  # ... and it is the seed's θ0
assert all(np.array_equal(theta0[name], fresh[name]) for name in fresh)
for rnd in rounds:
    start = rnd.arms["ticket"].init_weights  # the weights this round's training started from
    for name, value in theta0.items():
        expected = value * rnd.masks[name] if name in rnd.masks else value  # biases: never pruned, reset too
        assert np.array_equal(start[name], expected), f"round {rnd.index}: {name} did not start from θ0 ⊙ m"
print("In every round, init_weights == θ0 ⊙ m exactly (pruned weights 0.0, survivors bit-for-bit θ0).")
trained = rounds[0].arms["ticket"].final_weights["1.W"].reshape(-1)  # θj of the dense round, flattened
moved = np.abs(trained - theta0["1.W"].reshape(-1)) * rounds[1].masks["1.W"].reshape(-1)
kept = np.argsort(moved)[-3:]  # the three survivors of round 1 that training moved the most
print("three survivors of 1.W, the ones training moved most:")
print("  θ0:                 ", np.round(theta0["1.W"].reshape(-1)[kept], 4))
print("  trained in round 0: ", np.round(trained[kept], 4))
print("  start of round 1:   ", np.round(rounds[1].arms["ticket"].init_weights["1.W"].reshape(-1)[kept], 4))
pruned_stay_zero = all(np.all(r.arms["ticket"].final_weights[n][~r.masks[n]] == 0.0) for r in rounds for n in rates)
print("pruned weights are still exactly 0.0 after every round's training:", pruned_stay_zero)
assert pruned_stay_zero

# %%
heading("7. the winning ticket: accuracy and learning speed as the network shrinks")
summary = plots.load_summary(run_dir)  # the run's summary.json: what `minilottery report` prints
dense = summary["rounds"][0]["arms"]["ticket"]
print(f"dense network: early stop at iteration {dense['early_stop_iteration']:,}, "
      f"test accuracy {100 * dense['test_accuracy_at_early_stop']:.2f}%")
for info in summary["rounds"][1:]:
    ticket = info["arms"]["ticket"]
    gap = 100 * (ticket["test_accuracy_at_early_stop"] - dense["test_accuracy_at_early_stop"])
    print(f"{info['percent_remaining']:5.1f}% of the weights: early stop {ticket['early_stop_iteration']:5,}, "
          f"test accuracy {100 * ticket['test_accuracy_at_early_stop']:.2f}% ({gap:+.2f} points vs dense)")
middle = [r for r in summary["rounds"] if 6.9 <= r["percent_remaining"] <= 52]  # 51.3% down to 7.0%
# The early-stop iteration measures learning speed only when the validation loss has a minimum before the end of
# training: a network whose loss still falls at the last evaluation "stops" there, however fast it learns.
last_evaluation = config.train.iterations
speed_shows = dense["early_stop_iteration"] < last_evaluation and bool(middle)
if speed_shows:
    fastest = min(middle, key=lambda r: r["arms"]["ticket"]["early_stop_iteration"])
    print(f"fastest learner between 51% and 7%: {fastest['percent_remaining']:.1f}% of the weights, early stop at "
          f"{fastest['arms']['ticket']['early_stop_iteration']:,} against the dense network's "
          f"{dense['early_stop_iteration']:,}")
elif not middle:
    print(f"No round reaches 51% of the weights at this size ({config.rounds} rounds): run --class or the full size")
    print("to compare how fast the tickets learn.")
else:
    print(f"The dense network's validation loss was still falling at its last evaluation (iteration "
          f"{last_evaluation:,}): its early stop is")
    print("the end of training, so this size cannot compare learning speed; run --class or the full size.")
print("The paper's finding (Figures 3-4): down to a few percent of the weights, the ticket reset to θ0 trains to")
print("the dense network's accuracy (within a few tenths of a point in a single run; the paper averages five) and")
print("reaches its minimum validation loss sooner; at the sparsest levels learning slows down again.")
print("Tutorial 8 shows that the same masks with a *new* random initialisation do not: the ticket's θ0 matters.")
if not args.quick:  # --quick's 300 iterations on 3,000 images are too few for either claim
    sparse = [r["arms"]["ticket"]["test_accuracy_at_early_stop"] for r in summary["rounds"]
              if r["percent_remaining"] <= 21.1]
    assert max(sparse) >= dense["test_accuracy_at_early_stop"] - 0.003, \
        "a ticket with <= 21% of the weights should match the dense network's accuracy"
    assert speed_shows, "the dense network's validation loss should reach its minimum before the end of training"
    assert fastest["arms"]["ticket"]["early_stop_iteration"] < dense["early_stop_iteration"], \
        "tickets between 51% and 7% of the weights should reach their minimum validation loss before the dense one"
accuracy_look_for = ("pruning proceeds to the right: the ticket's line stays on or above the dashed dense network"
                     " down to a small fraction of the weights (differences of a few tenths are one run's noise)")
if last.percent_remaining > 21.2:
    accuracy_look_for += (f"; this run stops at {last.percent_remaining:.0f}% of the weights, so run --class or the"
                          " full size to see the sparse end")
save_figure(plots.plot_accuracy_vs_weights(summary), args, "accuracy_vs_weights", look_for=accuracy_look_for)
speed_look_for = ("the ticket's early-stop iteration sits below the dashed dense network's over the middle of the"
                  " axis: those tickets reach their minimum validation loss sooner, i.e. learn faster")
if not speed_shows:
    speed_look_for = ("at this size the points sit at the last evaluation: the validation loss was still falling,"
                      " so the plot shows no learning speed (run --class or the full size)")
save_figure(plots.plot_early_stop_vs_weights(summary), args, "early_stop_vs_weights", look_for=speed_look_for)

# %%
heading("8. which inputs the first layer keeps")
mask = last.masks["1.W"]  # (300, 784): hidden unit x input pixel
per_pixel = mask.sum(axis=0).reshape(28, 28)  # (784,) -> (28, 28): connections each pixel keeps
border = np.ones((28, 28), dtype=bool)
border[4:24, 4:24] = False  # the 4-pixel frame, which is (almost) always 0 in MNIST
print(f"round {last.index}: a border pixel keeps {per_pixel[border].mean():.1f} of 300 connections on average, "
      f"a central pixel {per_pixel[~border].mean():.1f}")
print("Border pixels are 0 in (almost) every image, so their weights get no gradient and keep their initial")
print("values, while training makes the weights of informative pixels larger.")
drawn = per_pixel[border].mean() < 0.8 * per_pixel[~border].mean()  # the border clearly thinner than the centre
if drawn:
    print("Round after round, magnitude pruning removes the border first and the mask draws the region where")
    print("digits are.")
else:
    print("Here training has barely moved the weights and few rounds have pruned them, so the border is not yet")
    print("clearly thinner and the picture is still mostly noise; run --class or the full size to see the region.")
if not args.quick:
    assert drawn, "after a real run the border pixels should keep clearly fewer connections than the central ones"
shown = plots.mask_rounds([r.index for r in rounds])  # up to 4 rounds, the last included
fig = plots.plot_first_layer_mask(plots.load_masks(run_dir, "1.W", rounds=shown), summary, "1.W")
save_figure(fig, args, "first_layer_mask",
            look_for="each panel is a 28 x 28 image of the input: bright pixels keep many connections; round after"
                     " round a dark frame (the always-blank border) appears and spreads inward, leaving the brighter"
                     " central region where the digits are"
            if drawn else "at this size the panels are still mostly noise: the frame of blank border pixels has"
                          " not yet darkened (run --class or the full size)")
