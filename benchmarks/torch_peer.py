"""A PyTorch peer of one network of ``minilottery demo``, written as a PyTorch user would write it.

    ~/torchvenv/bin/python benchmarks/torch_peer.py --data data/mnist --iterations 5000
    minilottery bench --vs-torch-script --torch-python ~/torchvenv/bin/python   # this and minilottery, A B A B

PyTorch is never a dependency of minilottery. This script needs only ``torch`` and ``numpy``; install them in an
environment of their own: ``python -m venv ~/torchvenv && ~/torchvenv/bin/pip install torch numpy``.

It computes what one network of the demo computes (``minilottery/lab/bench_torch.py``, run as
``python -m minilottery.lab.bench_torch``, is minilottery's side, with the same options):

* MNIST from its four IDX files (gzip and NumPy, no torchvision), pixels scaled to [0, 1], split 55,000 / 5,000 /
  10,000 as minilottery splits it: the validation set is the first 5,000 of ``np.random.default_rng(0)``'s
  permutation of the 60,000 training images, the training set the rest, in that order.
* LeNet-300-100 (784-300-100-10, ReLU) as ``nn.Sequential``.
* ``torch.nn.utils.prune.custom_from_mask`` on every Linear weight: the hidden layers keep the ``--density``
  largest-magnitude initial weights, the output layer ``density ** (log 0.9 / log 0.8)`` of its own (pruned at half
  the rate, as the paper's rounds leave it). ``--density 1`` keeps every weight but still runs the masked
  forward, as round 0 of the demo does (its masks are all ones).
* Adam, learning rate 1.2e-3, batches of 60 in a new random order every epoch (the last partial batch is dropped),
  for ``--iterations`` steps. The data set is one tensor in memory, as in minilottery: batches are slices of it
  (a ``DataLoader`` would only add per-batch work to this side).
* Every ``--eval-every`` iterations, and after the last one: the loss and accuracy on the whole validation and
  test sets. At the end it prints the early-stop iteration (the evaluation with the lowest validation loss) and
  the test accuracy there.

The random numbers (initial weights, batch order) are PyTorch's: the two sides compute the same amount of the
same thing, not the same numbers.
"""

from __future__ import annotations

import argparse
import gzip
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune

VALIDATION_SIZE = 5000
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
OUTPUT_EXPONENT = math.log(0.9) / math.log(0.8)  # after r rounds: hidden layers keep 0.8**r, the output 0.9**r


def read_idx(folder: Path, name: str) -> np.ndarray:
    """One IDX file (``name.gz`` or ``name``) as uint8: images (N, 28, 28), labels (N,)."""
    path = folder / f"{name}.gz"
    data = gzip.decompress(path.read_bytes()) if path.exists() else (folder / name).read_bytes()
    ndim = data[3]  # the magic number's last byte: 3 for images, 1 for labels
    shape = np.frombuffer(data, dtype=">u4", count=ndim, offset=4)  # big-endian sizes after the magic
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_mnist(root: Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """"train", "val", "test" -> (images (N, 784) float32 in [0, 1], labels (N,) int64)."""
    folder = root / "mnist" if (root / "mnist").is_dir() else root
    train_x, train_y, test_x, test_y = (read_idx(folder, name) for name in FILES)
    order = np.random.default_rng(0).permutation(len(train_y))  # minilottery's validation split (seed 0)
    val, train = order[:VALIDATION_SIZE], order[VALIDATION_SIZE:]

    def tensors(x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        images = torch.from_numpy(x.reshape(len(x), -1).astype(np.float32) / 255.0)  # (N, 28, 28) -> (N, 784)
        return images, torch.from_numpy(y.astype(np.int64))

    return {"train": tensors(train_x[train], train_y[train]), "val": tensors(train_x[val], train_y[val]),
            "test": tensors(test_x, test_y)}


def lenet_300_100() -> nn.Sequential:
    return nn.Sequential(nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10))


def magnitude_mask(weight: torch.Tensor, density: float) -> torch.Tensor:
    """1 for the ``round(density * size)`` largest |w|, 0 for the others."""
    keep = round(density * weight.numel())
    mask = torch.zeros(weight.numel())
    mask[weight.abs().flatten().argsort(descending=True)[:keep]] = 1.0
    return mask.reshape(weight.shape)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) on the whole set, in one forward pass."""
    model.eval()
    logits = model(x)
    model.train()
    return nn.functional.cross_entropy(logits, y).item(), (logits.argmax(dim=1) == y).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data"),
                        help="folder with the four MNIST IDX files, or a folder holding mnist/ (default: data)")
    parser.add_argument("--iterations", type=int, default=5000, help="training steps (default: 5000, the demo's)")
    parser.add_argument("--eval-every", type=int, default=100, help="evaluate every N iterations (default: 100)")
    parser.add_argument("--density", type=float, default=1.0,
                        help="fraction of the hidden layers' weights kept (default: 1, every weight)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and the batch order (default: 0)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default: 1)")
    args = parser.parse_args()
    if not 0 < args.density <= 1:
        parser.error(f"--density must be in (0, 1], got {args.density}")

    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    data = load_mnist(args.data)
    x_train, y_train = data["train"]
    model = lenet_300_100()
    linears = [module for module in model if isinstance(module, nn.Linear)]
    for i, linear in enumerate(linears):
        density = args.density ** OUTPUT_EXPONENT if i == len(linears) - 1 else args.density
        prune.custom_from_mask(linear, "weight", magnitude_mask(linear.weight, density))
    optimizer = torch.optim.Adam(model.parameters(), lr=1.2e-3)
    loss_fn = nn.CrossEntropyLoss()
    order_generator = torch.Generator().manual_seed(args.seed)
    batches_per_epoch = len(y_train) // 60

    history = []  # (iteration, mean training loss since the last evaluation, val loss, val acc, test loss, test acc)
    train_loss, steps = torch.zeros(()), 0
    for iteration in range(1, args.iterations + 1):
        step = (iteration - 1) % batches_per_epoch
        if step == 0:
            order = torch.randperm(len(y_train), generator=order_generator)
        index = order[step * 60:(step + 1) * 60]
        loss = loss_fn(model(x_train[index]), y_train[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        train_loss, steps = train_loss + loss.detach(), steps + 1
        if iteration % args.eval_every == 0 or iteration == args.iterations:
            history.append((iteration, train_loss.item() / steps, *evaluate(model, *data["val"]),
                            *evaluate(model, *data["test"])))
            train_loss, steps = torch.zeros(()), 0

    best = min(history, key=lambda row: row[2])  # the first lowest validation loss
    print(f"early stopping at iteration {best[0]} (minimum validation loss): test accuracy {100 * best[5]:.2f}%")
    print(f"after {args.iterations} iterations: test accuracy {100 * history[-1][5]:.2f}% "
          f"({time.perf_counter() - started:.1f} s, torch {torch.__version__}, {torch.get_num_threads()} thread(s))")


if __name__ == "__main__":
    main()
