"""``minilottery demo``: the README's first command: find a winning ticket in LeNet-300-100 on MNIST.

It is ``minilottery imp --preset lenet-quick --out runs/lenet-quick``: iterative magnitude pruning with the
random-reinitialisation and random-pruning controls, a few minutes on a laptop CPU, each round's arms trained at
the same time on up to three cores (``--workers``). It prints one line per round, then the table,
and draws the figures into ``runs/lenet-quick/figures``. Interrupted? Run it again: it continues.
"""

from __future__ import annotations

import argparse
import os

from minilottery.lab import threads
from minilottery.lab.commands import imp
from minilottery.lab.commands._options import add_run_options, add_workers_option
from minilottery.lab.presets import DEMO_PRESET as PRESET
from minilottery.lab.presets import config_from_options

# The demo trains each round's arms (three) at the same time, on as many cores as there are: the numbers are
# those of one process, bit for bit, only sooner
DEMO_WORKERS = max(1, min(os.cpu_count() or 1, len(config_from_options(PRESET).arms)))


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("demo", help="find a winning ticket in a few minutes (the main demo)",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=f"runs/{PRESET}", metavar="DIR",
                        help=f"run folder (default: runs/{PRESET})")
    add_run_options(parser)
    add_workers_option(parser, default=DEMO_WORKERS)
    threads.add_argument(parser)
    parser.set_defaults(func=run, resumes=True)  # an interrupted demo continues: cli.main says so
    return parser


def run(args: argparse.Namespace) -> int:
    argv = ["imp", "--preset", PRESET, "--out", args.out]
    if args.device:
        argv += ["--device", args.device]
    if args.data_dir:
        argv += ["--data-dir", args.data_dir]
    if args.no_progress:
        argv.append("--no-progress")
    if args.threads is not None:
        argv += ["--threads", str(args.threads)]
    argv += ["--workers", str(args.workers)]
    parser = argparse.ArgumentParser(prog="minilottery")
    imp.register(parser.add_subparsers())
    return imp.run(parser.parse_args(argv, argparse.Namespace(command="demo")))  # errors say "minilottery demo"
