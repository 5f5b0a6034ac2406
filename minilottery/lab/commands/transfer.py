"""``minilottery transfer SOURCE_RUN --dataset NAME``: train a run's tickets on another data set.

    minilottery transfer runs/lenet-quick --dataset fashion-mnist --rounds 7,12 --out runs/transfer-to-fashion
    minilottery transfer runs/lenet-fashion-quick --target-run runs/lenet-quick --rounds 7,12 --out runs/back

For each chosen round of SOURCE_RUN, its ticket (masks and start weights exactly as found) trains on the target
data set beside a random reinitialisation of the same masks, random pruning to the same per-layer counts and the
dense network, all with the source's training settings; ``--target-run`` adds the target's own ticket of the same
round (read from that run). Writes DIR/transfer.json (a killed transfer continues when run again) and
DIR/figures/transfer_accuracy_vs_weights.png; see ``minilottery/lab/transfer.py``.
"""

from __future__ import annotations

import argparse

from minilottery import backend
from minilottery.data import DATASETS, LOADERS
from minilottery.lab import threads
from minilottery.lab.commands._checks import check_out_dir
from minilottery.lab.commands._options import add_run_options, round_list


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("transfer", help="train a run's tickets on another data set",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("source_run", metavar="SOURCE_RUN", help="a finished `minilottery imp` run folder")
    parser.add_argument("--dataset", choices=DATASETS, default=None,
                        help="the target data set (default: --target-run's)")
    parser.add_argument("--target-run", default=None, metavar="RUN",
                        help="a run on the target data set with the same model and training: its own tickets "
                             "join the comparison (default: none)")
    parser.add_argument("--rounds", "--round", type=round_list, default=None, metavar="R[,R...]",
                        help="the source's rounds to transfer (default: every pruned round; 3 networks each, and the "
                             "dense one once)")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for transfer.json and the figure")
    add_run_options(parser)
    threads.add_argument(parser)
    parser.set_defaults(func=run, resumes=True)  # a killed transfer continues: cli.main says so
    return parser


def run(args: argparse.Namespace) -> int:
    from minilottery.lab import runs
    from minilottery.lab.transfer import SourceRun, format_transfer, plot_transfer, run_transfer

    n_threads = threads.resolve(args.threads)  # options first, then the folders they name
    source = SourceRun.read(args.source_run)  # a folder that is not a run: one line, before any data loads
    dataset = args.dataset
    if args.target_run is not None:
        target_dataset = SourceRun.read(args.target_run).config.dataset
        if dataset not in (None, target_dataset):
            raise ValueError(f"--dataset {dataset} but --target-run {args.target_run} is on {target_dataset}")
        dataset = target_dataset
    if dataset is None:
        raise ValueError("give the target data set: --dataset NAME or --target-run RUN")
    device = backend.use(args.device).name if args.device else backend.default_device()
    out = check_out_dir(args.out)
    data = LOADERS[dataset](args.data_dir)
    print(f"transfer: {source.config.model} tickets of {source.path} ({source.config.dataset}) trained on {dataset}, "
          f"{source.config.train.iterations} iterations each, device {device}, {n_threads} BLAS thread(s); "
          f"writing {out}", flush=True)
    with threads.limit(n_threads):
        record = run_transfer(source.path, data, out, args.rounds, target_run=args.target_run, device=device,
                              progress=not args.no_progress)
    print(format_transfer(record))
    for path in plot_transfer(record, runs.check_real_folder(out / runs.FIGURES_FOLDER, out)):
        if path.suffix == ".png":
            print(f"figure: {path}")
    return 0
