"""Solution to exercise 11.3: Zhou et al.'s mask criteria as supermasks (θ0 ⊙ m, untrained).

Run (from the repository root): python tutorials/solutions/11_exercise_3.py [--quick]
Reads tutorial 11's IMP run (trained first if missing) and, for rounds 3 and 5, builds each criterion's mask with
the ticket's per-layer counts from θ0 (w0) and the trained dense network (wf), and evaluates θ0 ⊙ m on the test
set without training. A few seconds (no training). Prints each mask's untrained test accuracy and its overlap with
the ticket.
"""

import argparse
from pathlib import Path

import numpy as np

from minilottery.data import load_mnist
from minilottery.imp import IMPConfig
from minilottery.lab import threads
from minilottery.lab.instability import network
from minilottery.lab.run_folder import run_imp_in_folder
from minilottery.lab.sanity import CRITERIA, criterion_masks, overlap
from minilottery.lab.transfer import SourceRun
from minilottery.lab.tutorial import run_folder
from minilottery.training import TrainConfig, evaluate

tutorials = Path(__file__).resolve().parents[1]


def tutorial_run(tutorial, config, data, name="run"):
    """The folder where that tutorial keeps this run: figures/<tutorial>/<name>-<hash of the settings>/."""
    return run_folder(tutorials / "figures" / tutorial, config, data, name)


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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
theta0, dense_final = source.start, result.rounds[0].arms["ticket"].final_weights
dense = network(config, source.input_shape, theta0, {n: np.ones_like(m) for n, m in source.masks(0).items()}, "cpu")
print(f"θ0 alone, untrained: {100 * evaluate(dense, data.x_test, data.y_test)[1]:.2f}%")
for r in ([1, 2] if args.quick else [3, 5]):
    ticket = source.masks(r)
    counts = {name: int(mask.sum()) for name, mask in ticket.items()}
    print(f"round {r} ({result.rounds[r].percent_remaining:.1f}% of the weights), untrained test accuracy of θ0 ⊙ m:")
    for label, masks in [("ticket", ticket)] + [(c, criterion_masks(c, theta0, dense_final, counts)) for c in CRITERIA]:
        model = network(config, source.input_shape, theta0, masks, "cpu")
        accuracy = evaluate(model, data.x_test, data.y_test)[1]
        print(f"  {label:22s} {100 * accuracy:6.2f}%  (overlap with the ticket {100 * overlap(masks, ticket):5.1f}%)")
