"""Solution to exercise 12.3: SynFlow in one round against its 100 rounds, at 0.5% and 0.1% of the weights.

Run (from the repository root): python tutorials/solutions/12_exercise_3.py [--no-train] [--quick]
Uses θ0 of tutorial 12's IMP run (trained first if missing). For each percent, prints each layer's kept count
under synflow_rounds=1 and 100, then trains each mask from θ0 with the run's settings (2,000 iterations, seed 0;
4 trainings, about 1 minute on one core; --no-train skips them).
"""

import argparse
from pathlib import Path

from minilottery.data import load_mnist
from minilottery.imp import IMPConfig, train_arm
from minilottery.lab import threads
from minilottery.lab.prune_at_init import Scorer, targets_from_percents
from minilottery.lab.run_folder import run_imp_in_folder
from minilottery.lab.transfer import SourceRun
from minilottery.lab.tutorial import run_folder
from minilottery.models import build_model
from minilottery.training import TrainConfig

tutorials = Path(__file__).resolve().parents[1]


def tutorial_run(tutorial, config, data, name="run"):
    """The folder where that tutorial keeps this run: figures/<tutorial>/<name>-<hash of the settings>/."""
    return run_folder(tutorials / "figures" / tutorial, config, data, name)


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--no-train", action="store_true", help="only the masks' per-layer counts")
parser.add_argument("--quick", action="store_true", help="tutorial 12's --quick run")
args = parser.parse_args()
threads.apply(1)
data = load_mnist()
if args.quick:
    data = data.subset(3000, 500, 1000)
training = TrainConfig(iterations=100 if args.quick else 2000, eval_every=50 if args.quick else 100, seed=0)
config = IMPConfig(model="lenet_300_100", rounds=2 if args.quick else 5, prune_rate=0.5, controls=(), train=training,
                   seed=0)  # tutorial 12's
run_dir = tutorial_run("12_tickets_without_training", config, data)
run_imp_in_folder(config, data, run_dir, progress=False)
source = SourceRun.read(run_dir)
targets = targets_from_percents(config, build_model(config.model, seed=config.seed), [0.5, 0.1])
sizes = {name: source.start[name].size for name in targets[0].counts}
for target in targets:
    print(f"{target.percent}% of the weights: {target.remaining:,} kept of {sum(sizes.values()):,}")
    for rounds in (1, 100):
        masks = Scorer(config, source.input_shape, source.start, data, synflow_rounds=rounds).masks("synflow", target)
        kept = {name: int(mask.sum()) for name, mask in masks.items()}
        line = "  ".join(f"{name} {kept[name]:6,} ({100 * kept[name] / sizes[name]:.2f}%)" for name in kept)
        if not args.no_train:
            metrics = train_arm(config, data, source.start, masks, "cpu", False, f"synflow {rounds}")[0].metrics
            line += f"; trained: test accuracy {100 * metrics['test_accuracy_at_early_stop']:.2f}%"
        print(f"  synflow_rounds={rounds:3d}: {line}")
