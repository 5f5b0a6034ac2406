"""``minilottery plot DIR``: redraw the figures of an IMP run (PNG and PDF) and print where they are.

The figures go to DIR/figures/ unless ``--out`` names another folder; see ``minilottery/lab/plots.py`` for what
each one shows.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("plot", help="draw the figures of an IMP run", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", metavar="DIR", help="run directory written by `minilottery imp`")
    parser.add_argument("--out", metavar="FIGDIR", default=None,
                        help="where to write the figures (default: DIR/figures)")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    # Imported here so that `minilottery --help` does not pay for importing matplotlib.
    from minilottery.lab.commands._checks import check_out_dir, reading_run
    from minilottery.lab.plots import plot_run

    if args.out is not None:
        check_out_dir(args.out)
    with reading_run(args.run_dir):  # a summary of the wrong shape: one line, not a traceback
        paths = plot_run(args.run_dir, args.out)
    for path in paths:
        print(path)
    return 0
