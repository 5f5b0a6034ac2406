"""Solution to exercise 5.1: SGD with momentum against Adam, 10,000 iterations, both seeds fixed.

Run (from the repository root): python tutorials/solutions/05_exercise_1.py [--quick]
Prints: the early-stopping iteration and the test accuracy there (and at the end) for Adam 1.2e-3 and for SGD
lr 0.1, momentum 0.9, from the same θ0 (build_model seed 0) and the same data order (TrainConfig seed 0).
About 2 minutes on one core (--quick: a few seconds on a small subset).
"""

import argparse

from minilottery.data import load_mnist
from minilottery.lab import threads
from minilottery.models import build_model
from minilottery.training import TrainConfig, train

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="a small subset and 300 iterations")
args = parser.parse_args()
threads.apply(1)  # one BLAS thread: the numbers in tutorials/solutions/05_train_lenet.md
data = load_mnist()
if args.quick:
    data = data.subset(2000, 500, 1000)
iterations, eval_every = (300, 50) if args.quick else (10_000, 100)
for label, settings in (("Adam lr 1.2e-3", {"optimizer": "adam", "lr": 1.2e-3}),
                        ("SGD lr 0.1, momentum 0.9", {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9})):
    model = build_model("lenet_300_100", seed=0)  # θ0: the same for both
    config = TrainConfig(iterations=iterations, eval_every=eval_every, seed=0, **settings)  # the same data order
    result = train(model, data, config, progress=False)
    print(f"{label:25s}: early stop at iteration {result.early_stop_iteration:6,}, test accuracy there "
          f"{100 * result.test_accuracy_at_early_stop:.2f}% (at the end {100 * result.final_test_accuracy:.2f}%; "
          f"minimum validation loss {min(result.history['val_loss']):.4f})")
