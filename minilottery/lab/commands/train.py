"""``minilottery train``: train one dense network of Frankle & Carbin (2019), Figure 2, and record its curve.

    minilottery train --model lenet_300_100 --iterations 5000 --out runs/lenet
    minilottery train --model conv2 --dataset cifar10 --device gpu --out runs/conv2

Defaults are the paper's (Adam, batch 60, and each network's learning rate and iterations from Figure 2).
Prints the model summary, trains with a progress bar, prints the early-stopping iteration and test accuracies,
and writes DIR/metrics.json: those numbers, the config and the whole history (one entry per evaluation).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from minilottery import backend
from minilottery.lab import threads
from minilottery.lab.commands._checks import check_out_dir
from minilottery.data import load_cifar10, load_mnist
from minilottery.models import MODELS, PAPER_TRAINING, build_model, summary
from minilottery.optim import OPTIMIZERS
from minilottery.train import TrainConfig, save_metrics, train

DATASETS = ("mnist", "cifar10")


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Adds the ``train`` command to the CLI's subparsers."""
    parser = subparsers.add_parser("train", help="train one network and record its learning curve",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=MODELS, default="lenet_300_100", help="network (default: lenet_300_100)")
    parser.add_argument("--dataset", choices=DATASETS, default=None,
                        help="data set (default: mnist for lenet_300_100, cifar10 for the conv nets)")
    parser.add_argument("--iterations", type=int, default=None,
                        help="training steps (default: the paper's, 50000 for LeNet, 20000-30000 for Conv-2/4/6)")
    parser.add_argument("--batch-size", type=int, default=60, help="examples per step (default: 60)")
    parser.add_argument("--lr", type=float, default=None,
                        help="learning rate (default: the paper's, 1.2e-3 for LeNet, 2e-4 / 3e-4 for the conv nets)")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default="adam", help="optimizer (default: adam)")
    parser.add_argument("--momentum", type=float, default=0.0, help="SGD momentum (default: 0)")
    parser.add_argument("--nesterov", action="store_true", help="Nesterov momentum (SGD with --momentum > 0)")
    parser.add_argument("--weight-decay", type=float, default=0.0, help="L2 weight decay (default: 0)")
    parser.add_argument("--eval-every", type=int, default=100,
                        help="evaluate on validation and test sets every N iterations (default: 100)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the initial weights and the data order")
    parser.add_argument("--device", choices=["cpu", "gpu"], default=None, help="where to compute (default: cpu)")
    parser.add_argument("--data-dir", default=None, metavar="DIR",
                        help="data folder (default: $MINILOTTERY_DATA, else the checkout's data/, else the user cache)")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for metrics.json (created if missing)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    threads.add_argument(parser)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Builds the model, trains it, prints a summary and writes DIR/metrics.json; returns the exit code."""
    paper = PAPER_TRAINING[args.model]
    config = TrainConfig(
        iterations=paper["iterations"] if args.iterations is None else args.iterations,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        lr=paper["lr"] if args.lr is None else args.lr,
        momentum=args.momentum,
        nesterov=args.nesterov,
        weight_decay=args.weight_decay,
        eval_every=args.eval_every,
        seed=args.seed,
    ).validate()  # bad options fail before the data is loaded
    n_threads = threads.resolve(args.threads)
    device = backend.use(args.device).name if args.device else backend.default_device()
    check_out_dir(args.out)  # a file, a read-only or full disk at --out fails now, not after the training
    dataset = args.dataset or paper["dataset"]
    load = load_mnist if dataset == "mnist" else load_cifar10
    data = load(args.data_dir)  # raises DataError (one line) when the files are missing and cannot be fetched
    input_shape = tuple(data.x_train.shape[1:])  # (C, H, W)

    model = build_model(args.model, input_shape, seed=args.seed).to(device)
    print(f"{args.model} on {dataset} ({len(data.y_train)} train / {len(data.y_val)} val / "
          f"{len(data.y_test)} test), device {device}, {n_threads} BLAS thread(s)")
    print(summary(model, input_shape))
    with threads.limit(n_threads):
        blas = threads.describe()  # recorded in metrics.json: results are bit-identical only at the same count
        result = train(model, data, config, device=device, progress=not args.no_progress, desc=args.model)

    print(f"early stopping at iteration {result.early_stop_iteration} (minimum validation loss): "
          f"test accuracy {100 * result.test_accuracy_at_early_stop:.2f}%")
    print(f"after {config.iterations} iterations: test accuracy {100 * result.final_test_accuracy:.2f}% "
          f"({result.seconds:.1f} s, {1000 * result.seconds / config.iterations:.2f} ms per iteration "
          f"including evaluation)")
    path = save_metrics(result, Path(args.out) / "metrics.json", model=args.model, dataset=dataset,
                        device=device, config=config, blas=blas)
    print(f"wrote {path}")
    return 0
