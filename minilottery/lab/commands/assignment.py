"""``minilottery assignment DIR``: write the assignments a student completes (``minilottery grade DIR`` scores them).

    minilottery assignment homework/               # one .py file per lesson, and README.md listing the items
    minilottery assignment homework/ --notebooks   # the same as Jupyter notebooks (.ipynb)

Each file is a copy of a minilottery module whose lessons (the regions between ``### BEGIN SOLUTION`` and
``### END SOLUTION``: backward passes, the loss gradient, Adam, pruning, the IMP loop and its controls) are
replaced by ``# YOUR CODE HERE``. The items: ``minilottery/lab/assignments.py``; the checks:
``minilottery/lab/grading.py``.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("assignment", help="write the assignments a student completes and grade scores",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", metavar="DIR", help="the folder to write (new, or empty)")
    parser.add_argument("--notebooks", action="store_true",
                        help="write Jupyter notebooks (.ipynb) instead of .py files (default: off)")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into a folder that is not empty, replacing its assignment files (default: off)")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from minilottery.lab.assignments import ITEMS, write_assignment

    written = write_assignment(args.folder, notebooks=args.notebooks, overwrite=args.overwrite)
    points = sum(item.points for item in ITEMS)
    print(f"wrote {len(written)} files to {args.folder}: {len(ITEMS)} items, {points} points (see "
          f"{args.folder}/README.md); complete each '# YOUR CODE HERE', then run: minilottery grade {args.folder}")
    return 0
