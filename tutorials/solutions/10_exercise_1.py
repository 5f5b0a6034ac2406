"""Solution to exercise 10.1: LeNet-300-100's and Conv-2's training step with one and with two BLAS threads.

Run (from the repository root): python tutorials/solutions/10_exercise_1.py [--steps N]
Prints ms per training step (batch 60, Adam; the median of 5 timings) of each model at 1 and 2 BLAS threads, and
the speed-up from the second thread. Timings: they depend on the machine and on what else runs on it.
"""

import argparse
import time

import numpy as np

from minilottery.lab import threads
from minilottery.models import build_model
from minilottery.optim import make_optimizer
from minilottery.training import train_step

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--steps", type=int, default=None, help="steps per timing (default: 100 LeNet, 5 Conv-2)")
args = parser.parse_args()
rng = np.random.default_rng(0)
x = rng.random((60, 1, 28, 28)).astype(np.float32)  # tutorial 10's batch
y = rng.integers(0, 10, 60)
times = {}
for name, steps in (("lenet_300_100", args.steps or 100), ("conv2", args.steps or 5)):
    for n in (1, 2):
        with threads.limit(n):
            model = build_model(name, (1, 28, 28), seed=0)
            optimizer = make_optimizer("adam", model, lr=1.2e-3)
            for _ in range(3):
                train_step(model, optimizer, x, y)  # warm-up
            timings = []
            for _ in range(5):
                start = time.perf_counter()
                for _ in range(steps):
                    train_step(model, optimizer, x, y)
                timings.append((time.perf_counter() - start) / steps)
        times[name, n] = 1e3 * float(np.median(timings))
        print(f"{name:14s} {n} thread(s): {times[name, n]:8.2f} ms per step")
    print(f"{name:14s} speed-up from the second thread: {times[name, 1] / times[name, 2]:.2f}x")
