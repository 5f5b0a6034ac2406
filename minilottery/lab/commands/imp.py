"""``minilottery imp``: find a winning ticket by iterative magnitude pruning (Frankle & Carbin 2019, Section 2).

    minilottery imp --preset lenet-quick --out runs/lenet-quick            # a few minutes on a CPU
    minilottery imp --preset lenet-paper --device gpu --out runs/lenet     # the paper's LeNet experiment
    minilottery imp --model lenet_300_100 --rounds 5 --iterations 1000 --reset rewind:100 --out runs/rw

Explicit options override the preset's values; without ``--preset`` the network's training settings are the
paper's (Figure 2) and there are 12 rounds. The run is written to ``--out DIR`` as it goes (see
``minilottery/lab/runs.py``); running the same command again after an interruption, even ``kill -9``, continues
after the last completed round. At the end it prints the results table and draws the figures into DIR/figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from minilottery import backend
from minilottery.lab import threads
from minilottery.lab.commands._checks import check_out_dir
from minilottery.lab.commands.report import format_table
from minilottery.imp import CONTROLS, DATASETS, PRESETS, IMPConfig, RoundResult, run_imp
from minilottery.models import MODELS, PAPER_TRAINING
from minilottery.optim import OPTIMIZERS


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Adds the ``imp`` command to the CLI's subparsers."""
    parser = subparsers.add_parser("imp", help="find a winning ticket by iterative magnitude pruning",
                                   description=__doc__.split("\n\n")[0])
    add_experiment_arguments(parser)
    threads.add_argument(parser)
    parser.set_defaults(func=run)
    return parser


def add_experiment_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of one IMP experiment (shared by ``imp`` and ``trials``)."""
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None,
                        help="start from a preset experiment (explicit options override it)")
    parser.add_argument("--model", choices=MODELS, default=None, help="network (default: lenet_300_100)")
    parser.add_argument("--dataset", choices=DATASETS, default=None,
                        help="data set (default: mnist for lenet_300_100, cifar10 for the conv nets)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="pruning rounds after the dense round 0 (default: 12; with --target-percent: at most)")
    parser.add_argument("--target-percent", type=float, default=None, metavar="X",
                        help="stop once at most X%% of the weights remain (with --one-shot: prune straight to X%%)")
    parser.add_argument("--prune-rate", type=float, default=None, metavar="P",
                        help="fraction of the remaining dense weights pruned per round (default: 0.2; the output "
                             "layer at half of it)")
    parser.add_argument("--conv-rate", type=float, default=None, metavar="P",
                        help="fraction of the remaining conv weights pruned per round (default: 0.1, conv6 0.15)")
    parser.add_argument("--output-rate", type=float, default=None, metavar="P",
                        help="fraction of the remaining output weights pruned per round (default: --prune-rate / 2)")
    parser.add_argument("--global", dest="global_pruning", action="store_true", default=None,
                        help="one magnitude threshold over all layers pooled instead of per layer")
    parser.add_argument("--one-shot", action="store_true", default=None,
                        help="prune the trained dense network once, to --target-percent (or to where --rounds "
                             "rounds would get)")
    parser.add_argument("--reset", default=None, metavar="init|rewind:K",
                        help="reset survivors to θ0 (init, the paper) or to the weights at iteration K of the dense "
                             "run (rewind:K)")
    parser.add_argument("--controls", default=None, metavar="LIST",
                        help=f"comma-separated control arms from {','.join(CONTROLS)}; 'none' for none")
    parser.add_argument("--iterations", type=int, default=None, help="training steps per network")
    parser.add_argument("--lr", type=float, default=None, help="learning rate")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default=None, help="optimizer (default: adam)")
    parser.add_argument("--batch-size", type=int, default=None, help="examples per step (default: 60)")
    parser.add_argument("--eval-every", type=int, default=None,
                        help="evaluate every N iterations (default: 100)")
    parser.add_argument("--seed", type=int, default=None, help="seed of θ0, the controls and the data order")
    parser.add_argument("--device", choices=["cpu", "gpu"], default=None, help="where to compute (default: cpu)")
    parser.add_argument("--data-dir", default=None, metavar="DIR",
                        help="data folder (default: $MINILOTTERY_DATA, else the checkout's data/, else the user cache)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="run folder: created if new, continued if it holds this run")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a run in DIR made with a different config (only the run's own files)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def config_from_args(args: argparse.Namespace) -> IMPConfig:
    """The validated IMPConfig: the preset (or the model's paper settings), then every explicit option."""
    options: dict[str, Any] = {
        name: getattr(args, name)
        for name in ("model", "rounds", "target_percent", "prune_rate", "conv_rate", "output_rate",
                     "global_pruning", "one_shot", "reset", "iterations", "lr", "optimizer", "batch_size",
                     "eval_every", "seed")
    }
    if args.controls is not None:
        if not args.controls.replace(",", "").strip():  # "" could mean none or the default: make the user say
            raise ValueError(f"--controls is empty ({args.controls!r}); give comma-separated arms from "
                             f"{','.join(CONTROLS)}, or 'none' for no control arm")
        options["controls"] = () if args.controls.strip().lower() == "none" else args.controls
    if args.preset is None:  # the paper's settings for the network (Figure 2), unless given
        model = options["model"] or "lenet_300_100"
        paper = PAPER_TRAINING[model]
        options["model"] = model
        options["dataset"] = paper["dataset"]
        for key in ("iterations", "lr"):
            if options[key] is None:
                options[key] = paper[key]
    elif options["model"] is not None and options["model"] != PRESETS[args.preset]["model"]:
        options["dataset"] = PAPER_TRAINING[options["model"]]["dataset"]
    if args.dataset is not None:
        options["dataset"] = args.dataset
    config = IMPConfig.from_options(preset=args.preset, **options)
    if args.target_percent is not None and args.rounds is None:  # a target alone: as many rounds as it needs
        config = dataclasses.replace(config, rounds=None)
    return config.validate()


def load_data(dataset: str, data_dir: str | None) -> Any:
    """The data set for the run (a function of its own so that tests can substitute a small one)."""
    from minilottery.data import load_cifar10, load_mnist

    return (load_mnist if dataset == "mnist" else load_cifar10)(data_dir)


def _print_round(rnd: RoundResult) -> None:
    parts = [f"{arm} {100 * r['test_accuracy_at_early_stop']:.2f}% (stop {r['early_stop_iteration']})"
             for arm, r in rnd.info["arms"].items()]
    print(f"round {rnd.index}: {rnd.percent_remaining:.1f}% of weights remain; test accuracy at early stop: "
          + ", ".join(parts), flush=True)


def run(args: argparse.Namespace) -> int:
    """Runs (or continues) the experiment, prints the table and draws the figures; returns the exit code."""
    from minilottery.data import DataError

    config = config_from_args(args)  # bad options fail before any data is loaded or DIR is touched
    n_threads = threads.resolve(args.threads)
    device = backend.use(args.device).name if args.device else backend.default_device()
    check_out_dir(args.out)  # a file, a read-only or full disk at --out fails now, before the data loads
    try:
        data = load_data(config.dataset, args.data_dir)
    except DataError as exc:
        from minilottery.lab.cli import one_line

        print(f"minilottery {getattr(args, 'command', 'imp')}: error: {one_line(exc)}", file=sys.stderr)  # or demo
        return 1
    print(f"IMP: {config.model} on {config.dataset}, {config.train.iterations} iterations per training, "
          f"reset {config.reset}, arms {', '.join(config.arms)}, device {device}, {n_threads} BLAS thread(s); "
          f"writing {args.out}", flush=True)
    with threads.limit(n_threads):
        result = run_imp(config, data, out_dir=args.out, device=device, progress=not args.no_progress,
                         on_round=_print_round, overwrite=args.overwrite)
    print()
    print(format_table(result.summary()))
    from minilottery.lab.plots import plot_run  # matplotlib loads only when figures are drawn

    print("figures:")
    for path in plot_run(args.out):
        print(f"  {path}")
    return 0
