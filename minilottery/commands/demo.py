"""``minilottery demo``: the README's first command.

For now a short tour of the engine: it builds a small masked conv + dense network on the chosen device and
proves its gradients by finite differences. (The lottery-ticket experiment replaces it once IMP lands.)
"""

from __future__ import annotations

import argparse

import numpy as np

from minilottery import backend
from minilottery.gradcheck import check_model
from minilottery.layers import Conv2d, Dense, Flatten, MaxPool2d, ReLU, Sequential


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("demo", help="run the main demo", description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "gpu"], default=None, help="where to compute (default: cpu)")
    parser.add_argument("--seed", type=int, default=0, help="seed for weights, masks and data")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    device = backend.use(args.device).name if args.device else backend.default_device()
    rng = np.random.default_rng(args.seed)
    model = Sequential(
        Conv2d(1, 4, 3, padding=1, rng=rng), ReLU(), MaxPool2d(2), Flatten(), Dense(4 * 4 * 4, 10, rng=rng)
    )
    model.set_masks({"0.W": rng.random((4, 1, 3, 3)) > 0.2, "4.W": rng.random((10, 64)) > 0.8})
    x = backend.to_device(rng.standard_normal((3, 1, 8, 8)), device)
    y = backend.to_device(rng.integers(0, 10, 3), device)
    errors = check_model(model.to(device), x, y)
    print(f"gradient check on {device} (relative error, float64 central differences):")
    for name, err in errors.items():
        print(f"  {name:5s} {err:.2e}")
    ok = max(errors.values()) < 1e-6
    print("all gradients agree to < 1e-6" if ok else "GRADIENT CHECK FAILED")
    return 0 if ok else 1
