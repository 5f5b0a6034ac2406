"""``minilottery report DIR``: the results of an IMP run as a table, one row per pruning round.

For each round: the percent of weights remaining and, per arm (winning ticket, random reinit, random pruning),
the early-stop iteration (minimum validation loss), the test accuracy there and the final test accuracy. For a
``minilottery trials`` folder each cell is the mean over the trials with [min, max] beside it.
``--csv`` prints the same numbers as CSV (the columns of DIR/summary.csv), ``--json`` the whole summary.
The text itself is made by ``minilottery/lab/tables.py``.
"""

from __future__ import annotations

import argparse
import json

from minilottery.lab.tables import format_csv, format_table


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("report", help="print the results table of an IMP run",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", metavar="DIR", help="run directory written by `minilottery imp`")
    fmt = parser.add_mutually_exclusive_group()
    fmt.add_argument("--csv", action="store_true", help="print CSV (accuracies as fractions) instead of a table")
    fmt.add_argument("--json", action="store_true", help="print the run's summary as JSON")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from minilottery.lab.commands._checks import reading_run
    from minilottery.lab.plot_data import load_summary  # ValueError, one line, when DIR is not a run directory

    with reading_run(args.run_dir):  # a summary of the wrong shape: one line, not a traceback
        summary = load_summary(args.run_dir)
        if args.json:
            text = json.dumps(summary, indent=2) + "\n"
        elif args.csv:
            text = format_csv(summary)  # a trials folder: mean, min and max per metric
        else:
            text = format_table(summary) + "\n"
    print(text, end="")
    return 0
