"""``minilottery sanity RUN --round R --out DIR``: what in a ticket makes it win (its positions, its signs)?

Trains, with the run's settings, round R's ticket beside variants of the same per-layer counts: its masks
shuffled within each layer, θ0's signs with one constant magnitude per layer, a reinitialisation keeping θ0's
signs, and masks chosen by other criteria (smallest, large at init, magnitude increase, movement, Zhou et al.'s
supermask), and measures each untrained too. Writes DIR/sanity.json (a killed run continues when run again) and
DIR/figures/sanity_accuracy.png; see ``minilottery/lab/sanity.py``.
"""

from __future__ import annotations

import argparse

from minilottery import backend
from minilottery.data import LOADERS
from minilottery.lab import threads
from minilottery.lab.commands._checks import check_out_dir
from minilottery.lab.commands._options import add_run_options, comma_list, round_list


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from minilottery.lab.sanity import VARIANTS

    parser = subparsers.add_parser("sanity", help="a ticket beside shuffled, sign-only and other-criterion masks, "
                                                  "trained and untrained", description=__doc__.split("\n\n")[0])
    parser.add_argument("run", metavar="RUN", help="a finished `minilottery imp` run folder")
    parser.add_argument("--round", "--rounds", dest="rounds", type=round_list, required=True, metavar="R[,R...]",
                        help="the run's rounds to check (one network per variant each)")
    parser.add_argument("--variants", type=comma_list(str, f"variants such as {','.join(VARIANTS[:3])}"),
                        default=list(VARIANTS), metavar="V[,V...]",
                        help=f"which variants (default: all: {','.join(VARIANTS)})")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for sanity.json and the figure")
    add_run_options(parser)
    threads.add_argument(parser)
    parser.set_defaults(func=run, resumes=True)  # killed sanity checks continue: cli.main says so
    return parser


def run(args: argparse.Namespace) -> int:
    from minilottery.lab import runs
    from minilottery.lab.instability import check_round
    from minilottery.lab.sanity import check_variants, format_sanity, plot_sanity, run_sanity
    from minilottery.lab.transfer import SourceRun

    n_threads = threads.resolve(args.threads)  # options first, then the folders they name
    check_variants(args.variants)
    source = SourceRun.read(args.run)  # a folder that is not a run: one line, before any data loads
    for index in args.rounds:
        check_round(source, index)
    device = backend.use(args.device).name if args.device else backend.default_device()
    out = check_out_dir(args.out)
    data = LOADERS[source.config.dataset](args.data_dir)
    print(f"sanity: {source.config.model} on {source.config.dataset}, rounds {','.join(map(str, args.rounds))} of "
          f"{source.path}, {len(args.variants)} variants of {source.config.train.iterations} iterations each, "
          f"device {device}, {n_threads} BLAS thread(s); writing {out}", flush=True)
    with threads.limit(n_threads):
        record = run_sanity(source.path, data, out, args.rounds, args.variants, device=device,
                            progress=not args.no_progress)
    print(format_sanity(record))
    for path in plot_sanity(record, runs.check_real_folder(out / runs.FIGURES_FOLDER, out)):
        if path.suffix == ".png":
            print(f"figure: {path}")
    return 0
