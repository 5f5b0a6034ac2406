"""Solution to exercise 10.2: LeNet-300-100's training throughput (images per second) by batch size, on the CPU.

Run (from the repository root): python tutorials/solutions/10_exercise_2.py [--threads N]
Prints ms per training step and images per second for batches of 16 to 16,384 (the best of 3 timings). Timings:
they depend on the machine and on what else runs on it.
"""

import argparse
import time

import numpy as np

from minilottery.lab import threads
from minilottery.models import build_model
from minilottery.optim import make_optimizer
from minilottery.training import train_step

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
threads.add_argument(parser)
args = parser.parse_args()
print(f"BLAS threads: {threads.apply(args.threads)}")
rng = np.random.default_rng(0)
for batch in (16, 60, 256, 1024, 4096, 16384):
    x = rng.random((batch, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, batch)
    model = build_model("lenet_300_100", seed=0)
    optimizer = make_optimizer("adam", model, lr=1.2e-3)
    train_step(model, optimizer, x, y)  # warm-up
    steps = max(3, 20_000 // batch)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(steps):
            train_step(model, optimizer, x, y)
        best = min(best, (time.perf_counter() - start) / steps)
    print(f"batch {batch:6,}: {1e3 * best:8.2f} ms per step, {batch / best:10,.0f} images per second")
