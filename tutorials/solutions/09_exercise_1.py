"""Solution to exercise 9.1: sweep the rewind point K at 5% of the weights (one-shot), LeNet-300-100.

Run (from the repository root): python tutorials/solutions/09_exercise_1.py [--ks 0,20,100,500,1000] [--quick]
Tutorial 9's part a for each K (reset="init" for K = 0, "rewind:K" otherwise; 2,000 iterations a training, seed 0),
each run in tutorials/figures/solutions/09_exercise_1/run/. Tutorial 9's runs of K = 0, 20 and 100 are copied
from its run folder when there (same settings: read back); each new K trains twice (about 30 s on one core).
Prints the test accuracy at early stop and the early-stop iteration for each K, then trains the K = 0 ticket (θ0 ⊙ m)
for 2,000 + the largest K iterations: the same budget since θ0 as the most rewound ticket (one more training).
Draws: tutorials/figures/solutions/09_exercise_1/accuracy_vs_k.png.
"""

import argparse
import dataclasses
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from minilottery.data import load_mnist
from minilottery.imp import IMPConfig, train_arm
from minilottery.lab import threads
from minilottery.lab.run_folder import run_imp_in_folder
from minilottery.lab.tutorial import run_folder
from minilottery.training import TrainConfig

tutorials = Path(__file__).resolve().parents[1]


def tutorial_run(tutorial, config, data, name="run"):
    """The folder where that tutorial keeps this run: figures/<tutorial>/<name>-<hash of the settings>/."""
    return run_folder(tutorials / "figures" / tutorial, config, data, name)


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--ks", default="0,20,100,500,1000")
parser.add_argument("--quick", action="store_true", help="tutorial 9's --quick settings (K up to 299)")
args = parser.parse_args()
threads.apply(1)
full = load_mnist()
data = full.subset(3000, 500, 1000) if args.quick else full
folder = "run_quick" if args.quick else "run"
training = TrainConfig(iterations=300 if args.quick else 2000, eval_every=50 if args.quick else 100, seed=0)
ks = [int(k) for k in args.ks.split(",")]
if args.quick:
    ks = [k for k in ks if k < training.iterations]
rows = []
for k in ks:
    reset = "init" if k == 0 else f"rewind:{k}"
    name = f"reset_{reset.replace(':', '_')}"  # tutorial 9's folder names
    run_dir = tutorials / "figures" / "solutions" / "09_exercise_1" / folder / name
    config = IMPConfig(model="lenet_300_100", rounds=1, one_shot=True, target_percent=5.0, reset=reset,
                       train=training, seed=0)
    source = tutorial_run("09_beyond_the_paper", config, data, name)
    if source.is_dir() and not run_dir.exists():
        shutil.copytree(source, run_dir)  # tutorial 9's run of this K: read back, not trained again
    result = run_imp_in_folder(config, data, run_dir, progress=False)
    metrics = result.rounds[1].arms["ticket"].metrics
    rows.append((k, 100 * metrics["test_accuracy_at_early_stop"], metrics["early_stop_iteration"]))
    print(f"K = {k:5d}: {result.rounds[1].percent_remaining:.2f}% of the weights, test accuracy "
          f"{rows[-1][1]:.2f}% (early stop {rows[-1][2]:,}; {k + rows[-1][2]:,} iterations since θ0, "
          f"{k + training.iterations:,} in all)")
dense = result.rounds[0].arms["ticket"].metrics
# A budget-matched reset to θ0: the K = 0 run's mask, trained from θ0 for as many iterations as the largest K's
# ticket has had since θ0 (K of dense training, then its own).
if ks[0] == 0 and ks[-1] > 0:
    first = run_imp_in_folder(IMPConfig(model="lenet_300_100", rounds=1, one_shot=True, target_percent=5.0,
                                        reset="init", train=training, seed=0), data,
                              tutorials / "figures" / "solutions" / "09_exercise_1" / folder / "reset_init",
                              progress=False)  # the K = 0 run above, read back
    budget = dataclasses.replace(training, iterations=training.iterations + ks[-1])
    longer = dataclasses.replace(first.config, train=budget)
    metrics = train_arm(longer, data, first.rounds[0].arms["ticket"].init_weights, first.rounds[1].masks, "cpu", False,
                        "budget")[0].metrics
    print(f"reset to θ0, trained {longer.train.iterations:,} iterations (K = {ks[-1]}'s total): test accuracy "
          f"{100 * metrics['test_accuracy_at_early_stop']:.2f}% (early stop {metrics['early_stop_iteration']:,})")
print(f"dense network: test accuracy {100 * dense['test_accuracy_at_early_stop']:.2f}% "
      f"(early stop {dense['early_stop_iteration']:,})")

out = tutorials / "figures" / "solutions" / "09_exercise_1"
out.mkdir(parents=True, exist_ok=True)
fig, ax = plt.subplots(figsize=(6, 4))
ax.plot([r[0] for r in rows], [r[1] for r in rows], "o-", lw=2)
ax.set_xscale("symlog", linthresh=20)
ax.set_xlabel("rewind point K (iterations; 0 = reset to θ0)")
ax.set_ylabel("test accuracy at early stop (%)")
ax.set_title("LeNet-300-100, one-shot to 5% of the weights")
ax.grid(alpha=0.3)
fig.savefig(out / "accuracy_vs_k.png", dpi=120, bbox_inches="tight")
