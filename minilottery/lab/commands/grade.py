"""``minilottery grade DIR``: score a student's assignments (written by ``minilottery assignment DIR``), item by item.

    minilottery grade homework/                          # every item
    minilottery grade homework/ --item dense_backward    # one item (repeat --item for more)
    minilottery grade --reference                        # minilottery's own code: full marks

Prints one line per item, its points and, when it fails, the first failing check (a gradient check, a comparison
with minilottery's own code on the same inputs, or an invariant of pruning), then the total. Exits 0 when every
item passes, 1 when one fails. No PyTorch is needed; the whole grading takes seconds.
"""

from __future__ import annotations

import argparse

from minilottery.lab.assignments import ITEM_NAMES


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("grade", help="score a student's assignments, item by item",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", metavar="DIR", nargs="?", default=None,
                        help="the student's folder (.py files, or .ipynb notebooks of the same names)")
    parser.add_argument("--reference", action="store_true",
                        help="grade minilottery's own files instead of a folder (default: off)")
    parser.add_argument("--item", action="append", choices=ITEM_NAMES, default=None, metavar="NAME",
                        help=f"grade only this item; repeat for more (default: every item: {', '.join(ITEM_NAMES)})")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from minilottery.lab.grading import grade, report

    if (args.folder is None) == (not args.reference):
        raise ValueError("give the student's folder DIR, or --reference to grade minilottery's own files (not both)")
    scores = grade(args.folder, args.item)
    print(report(scores))
    return 0 if all(score.passed for score in scores) else 1
