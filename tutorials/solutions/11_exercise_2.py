"""Solution to exercise 11.2: tutorial 11's sanity checks at round 3 (12.6% of the weights) and round 5 (3.2%).

Run (from the repository root): python tutorials/solutions/11_exercise_2.py [--rounds 3] [--quick]
Reads tutorial 11's IMP run (tutorials/figures/11_why_tickets_win/run-<hash>; trained first if missing: 6 trainings) and
trains the shuffled, signed_constant and reinit_signs variants of each round's ticket with the run's settings
(2,000 iterations, seed 0): 3 trainings a round, about 1 minute a round on one core. Prints each variant's test
accuracy at early stop and its difference from the ticket.
"""

import argparse
from pathlib import Path

from minilottery.data import load_mnist
from minilottery.imp import IMPConfig, train_arm
from minilottery.lab import threads
from minilottery.lab.run_folder import run_imp_in_folder
from minilottery.lab.sanity import variant_networks
from minilottery.lab.transfer import SourceRun
from minilottery.lab.tutorial import run_folder
from minilottery.training import TrainConfig

tutorials = Path(__file__).resolve().parents[1]


def tutorial_run(tutorial, config, data, name="run"):
    """The folder where that tutorial keeps this run: figures/<tutorial>/<name>-<hash of the settings>/."""
    return run_folder(tutorials / "figures" / tutorial, config, data, name)


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--rounds", default="3", help="tutorial 11 itself measures round 5")
parser.add_argument("--quick", action="store_true", help="tutorial 11's --quick run (rounds 1 and 2)")
args = parser.parse_args()
threads.apply(1)
data = load_mnist()
if args.quick:
    data = data.subset(3000, 500, 1000)
training = TrainConfig(iterations=100 if args.quick else 2000, eval_every=50 if args.quick else 100, seed=0)
config = IMPConfig(model="lenet_300_100", rounds=2 if args.quick else 5, prune_rate=0.5, controls=(), train=training,
                   seed=0)  # tutorial 11's
run_dir = tutorial_run("11_why_tickets_win", config, data)
result = run_imp_in_folder(config, data, run_dir, progress=False)
source = SourceRun.read(run_dir)
dense_final = result.rounds[0].arms["ticket"].final_weights
chosen = [1, 2] if args.quick else [int(r) for r in args.rounds.split(",")]
for r in chosen:
    variants = variant_networks(source, r, source.masks(r), dense_final)
    ticket = result.rounds[r].arms["ticket"].metrics["test_accuracy_at_early_stop"]
    print(f"round {r}, {result.rounds[r].percent_remaining:.1f}% of the weights: ticket {100 * ticket:.2f}%")
    for variant in ("shuffled", "signed_constant", "reinit_signs"):
        start, masks = variants[variant]
        metrics = train_arm(config, data, start, masks, "cpu", False, variant)[0].metrics
        accuracy = metrics["test_accuracy_at_early_stop"]
        print(f"  {variant:16s} {100 * accuracy:.2f}% ({100 * (accuracy - ticket):+.2f} points; early stop "
              f"{metrics['early_stop_iteration']:,})")
