"""Solution to exercise 1.2: the float32 matrix size at which products reach 80% of their best speed.

Run (from the repository root): python tutorials/solutions/01_exercise_2.py [--quick] [--threads N]
Prints: GFLOP/s of an n x n float32 product for n from 16 to 2048 (the best of 3 timings each), and the smallest n
at 80% of the best. Timings: they change from machine to machine and from run to run on a busy one.
"""

import argparse
import time

import numpy as np

from minilottery.lab import threads

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="sizes up to 512 only")
threads.add_argument(parser)
args = parser.parse_args()
print(f"BLAS threads: {threads.apply(args.threads)}")

rng = np.random.default_rng(0)
sizes = [16, 32, 64, 128, 256, 512] + ([] if args.quick else [768, 1024, 1536, 2048])
speeds = []
for n in sizes:
    a = rng.standard_normal((n, n)).astype(np.float32)
    a @ a  # warm-up
    repeats = max(3, int(2e8 / n**3))  # about 0.4 GFLOP per timing, so that small sizes are not one clock tick
    best = float("inf")
    for _ in range(3):  # the best of 3: the least disturbed by other processes
        start = time.perf_counter()
        for _ in range(repeats):
            a @ a
        best = min(best, (time.perf_counter() - start) / repeats)
    speeds.append(2 * n**3 / best / 1e9)  # 2n³ FLOPs per product
    print(f"n = {n:5d}: {speeds[-1]:7.1f} GFLOP/s")
peak = max(speeds)
knee = next(n for n, s in zip(sizes, speeds) if s >= 0.8 * peak)
print(f"best {peak:.1f} GFLOP/s; 80% of it from n = {knee}")
