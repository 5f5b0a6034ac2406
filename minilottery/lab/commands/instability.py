"""``minilottery instability RUN --round R --k 0,100,500 --out DIR``: is a ticket stable to the noise of SGD?

From the weights at iteration k (the start weights for k = 0), two copies of the dense network, of round R's
ticket and of its reinit control train with two other data orders, and the test error is measured along the
straight line between the two results (Frankle, Dziugaite, Roy & Carbin, ICML 2020). Writes DIR/instability.json
(a killed analysis continues when run again) and two figures in DIR/figures; see
``minilottery/lab/instability.py``.
"""

from __future__ import annotations

import argparse

from minilottery import backend
from minilottery.data import LOADERS
from minilottery.lab import threads
from minilottery.lab.commands._checks import check_out_dir
from minilottery.lab.commands._options import add_run_options, comma_list


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from minilottery.lab.instability import ARMS, DEFAULT_KS, DEFAULT_POINTS

    parser = subparsers.add_parser("instability", help="error along the line between two copies of a ticket "
                                                       "trained with other data orders",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("run", metavar="RUN", help="a finished `minilottery imp` run folder")
    parser.add_argument("--round", type=int, required=True, metavar="R",
                        help="the run's round whose ticket and reinit control to analyse (the dense network too)")
    parser.add_argument("--k", type=comma_list(int, "iterations such as 0,100,500"), default=list(DEFAULT_KS),
                        metavar="K[,K...]", help=f"iterations to start the two copies from (default: "
                                                 f"{','.join(map(str, DEFAULT_KS))}); 0 is the start weights")
    parser.add_argument("--points", type=int, default=DEFAULT_POINTS,
                        help=f"values of α on each path, both ends included (default: {DEFAULT_POINTS})")
    parser.add_argument("--arms", type=comma_list(str, f"arms such as {','.join(ARMS)}"), default=list(ARMS),
                        metavar="ARM[,ARM...]", help=f"which networks (default: {','.join(ARMS)})")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for instability.json and the figures")
    add_run_options(parser)
    threads.add_argument(parser)
    parser.set_defaults(func=run, resumes=True)  # a killed analysis continues: cli.main says so
    return parser


def run(args: argparse.Namespace) -> int:
    from minilottery.lab import runs
    from minilottery.lab.instability import (
        alphas,
        check_arms,
        check_ks,
        check_round,
        format_instability,
        plot_instability,
        run_instability,
    )
    from minilottery.lab.transfer import SourceRun

    n_threads = threads.resolve(args.threads)  # options first, then the folders they name
    alphas(args.points)
    check_arms(args.arms)
    source = SourceRun.read(args.run)  # a folder that is not a run: one line, before any data loads
    check_round(source, args.round)
    ks = check_ks(args.k, source.config.train.iterations)
    device = backend.use(args.device).name if args.device else backend.default_device()
    out = check_out_dir(args.out)
    data = LOADERS[source.config.dataset](args.data_dir)
    print(f"instability: {source.config.model} on {source.config.dataset}, round {args.round} of {source.path}, "
          f"k = {','.join(map(str, ks))}, arms {','.join(args.arms)}; two children of "
          f"{source.config.train.iterations} - k iterations per (arm, k), device {device}, {n_threads} BLAS "
          f"thread(s); writing {out}", flush=True)
    with threads.limit(n_threads):
        record = run_instability(source.path, data, out, args.round, ks, args.points, args.arms, device=device,
                                 progress=not args.no_progress)
    print(format_instability(record))
    for path in plot_instability(record, runs.check_real_folder(out / runs.FIGURES_FOLDER, out)):
        if path.suffix == ".png":
            print(f"figure: {path}")
    return 0
