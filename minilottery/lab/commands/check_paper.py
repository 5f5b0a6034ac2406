"""``minilottery check-paper DIR``: compare a LeNet run (``imp`` or ``trials``) with the paper's claims.

For each quantitative claim of Frankle & Carbin (2019), Section 2 (kept as data in ``minilottery/lab/paper.py``
with its section and figure), it prints the paper's number, ours (mean [min, max] over the trials), whether
ours agrees in direction and in size (and in how many trials), and whether the paper's number lies inside our
trials' [min, max] (a gap our noise explains) or outside it. ``--json`` prints the same as JSON.
"""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("check-paper", help="compare a LeNet run with the paper's claims",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", metavar="DIR", help="folder written by `minilottery imp` or `minilottery trials`")
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON")
    parser.set_defaults(func=run)
    return parser


def load_trials(run_dir: str) -> list[dict]:
    """One summary per trial: the trials of a ``trials`` folder, or the single run of an ``imp`` folder."""
    from minilottery.lab.plot_data import load_summary
    from minilottery.lab.trials import is_trials_dir, load_trial_summaries

    if is_trials_dir(run_dir):
        return list(load_trial_summaries(run_dir).values())
    return [load_summary(run_dir)]  # ValueError, one line, when DIR is not a run


def run(args: argparse.Namespace) -> int:
    from minilottery.lab.commands._checks import reading_run
    from minilottery.lab.paper import check, format_check

    with reading_run(args.run_dir):  # run files of the wrong shape: one line, not a traceback
        summaries = load_trials(args.run_dir)
        rows = check(summaries)
    if args.json:
        print(json.dumps({"trials": len(summaries), "claims": rows}, indent=2))
    else:
        print(format_check(rows, len(summaries)))
    return 0
