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
from minilottery.data import LOADERS
from minilottery.lab import threads
from minilottery.lab.commands._checks import check_out_dir
from minilottery.lab.commands._options import (
    TRAINING_OPTIONS,
    add_kernels_option,
    add_run_options,
    add_training_options,
)
from minilottery.lab.sparse_training import SparseKernels
from minilottery.models import DEFAULT_MODEL, PAPER_TRAINING, build_model, summary
from minilottery.training import TrainConfig, save_metrics, train


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Adds the ``train`` command to the CLI's subparsers."""
    parser = subparsers.add_parser("train", help="train one network and record its learning curve",
                                   description=__doc__.split("\n\n")[0])
    add_training_options(parser, seed_help="seed of the initial weights and the data order")
    defaults = TrainConfig()
    parser.add_argument("--momentum", type=float, default=None, help=f"SGD momentum (default: {defaults.momentum:g})")
    parser.add_argument("--nesterov", action="store_true", help="Nesterov momentum (SGD with --momentum > 0)")
    parser.add_argument("--weight-decay", type=float, default=None,
                        help=f"L2 weight decay (default: {defaults.weight_decay:g})")
    add_run_options(parser)
    add_kernels_option(parser)
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for metrics.json (created if missing)")
    threads.add_argument(parser)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Builds the model, trains it, prints a summary and writes DIR/metrics.json; returns the exit code."""
    model_name = args.model or DEFAULT_MODEL
    options = {name: getattr(args, name) for name in TRAINING_OPTIONS if name not in ("model", "dataset")}
    config = TrainConfig.paper(model_name, momentum=args.momentum, nesterov=args.nesterov or None,
                               weight_decay=args.weight_decay, **options,
    ).validate()  # bad options fail before the data is loaded
    n_threads = threads.resolve(args.threads)
    device = backend.use(args.device).name if args.device else backend.default_device()
    check_out_dir(args.out)  # a file, a read-only or full disk at --out fails now, not after the training
    dataset = args.dataset or PAPER_TRAINING[model_name]["dataset"]
    data = LOADERS[dataset](args.data_dir)  # a DataError (one line) when the files are missing and cannot be fetched
    input_shape = tuple(data.x_train.shape[1:])  # (C, H, W)

    model = build_model(model_name, input_shape, seed=config.seed).to(device)
    print(f"{model_name} on {dataset} ({len(data.y_train)} train / {len(data.y_val)} val / "
          f"{len(data.y_test)} test), device {device}, {n_threads} BLAS thread(s)")
    print(summary(model, input_shape))
    with threads.limit(n_threads):
        blas = threads.describe()  # recorded in metrics.json: results are bit-identical only at the same count
        result = train(model, data, config, device=device, progress=not args.no_progress, desc=model_name,
                       kernels=SparseKernels(args.sparse_kernels))

    print(f"early stopping at iteration {result.early_stop_iteration} (minimum validation loss): "
          f"test accuracy {100 * result.test_accuracy_at_early_stop:.2f}%")
    print(f"after {config.iterations} iterations: test accuracy {100 * result.final_test_accuracy:.2f}% "
          f"({result.seconds:.1f} s, {1000 * result.seconds / config.iterations:.2f} ms per iteration "
          f"including evaluation)")
    path = save_metrics(result, Path(args.out) / "metrics.json", model=model_name, dataset=dataset,
                        device=device, config=config, blas=blas)
    print(f"wrote {path}")
    return 0
