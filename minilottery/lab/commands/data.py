"""``minilottery data``: download the data sets, or check the copies already on disk.

    minilottery data download [--dataset mnist|fashion-mnist|cifar10] [--force] [--deadline SECONDS] [--data-dir DIR]
    minilottery data check    [--dataset mnist|fashion-mnist|cifar10] [--data-dir DIR]

``download`` fetches what is missing (``--force``: everything again; a bad download never replaces a good
file), each file within ``--deadline`` seconds, and deletes what killed downloads left behind. ``check``
re-hashes every file, ignoring the record of earlier checks, and parses it. Both exit 0 on success and 1 with
a one-line error (no traceback) when a file is missing, bad, too big, unreachable or too slow to arrive.
"""

from __future__ import annotations

import argparse
import sys

from minilottery.data import DATASETS, DOWNLOADERS, FOLDER_OF, LOADERS, DataError
from minilottery.data.fetch import DEADLINE, check_deadline
from minilottery.data.paths import ENV_VAR, FOLDERS


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``data`` command (with its ``download`` and ``check`` actions) to the CLI's subparsers."""
    parser = subparsers.add_parser("data", help="download or check the data sets",
                                   description="Download the data sets, or check the copies already on disk.")
    actions = parser.add_subparsers(dest="data_action", metavar="{download,check}", required=True)
    download = actions.add_parser("download", help="download missing data files (verified)")
    download.add_argument("--force", action="store_true", help="download again even if a good copy exists")
    download.add_argument("--deadline", type=_seconds, default=DEADLINE, metavar="SECONDS",
                          help=f"give up on a file after this long, all mirrors together (default: {DEADLINE:g})")
    check = actions.add_parser("check", help="re-verify the checksums and formats of the files on disk")
    for p in (download, check):
        p.add_argument("--dataset", choices=DATASETS, default="mnist", help="which data set (default: mnist)")
        p.add_argument("--data-dir", default=None, metavar="DIR",
                       help=f"the data root, or the data set's own folder (default: the data root ${ENV_VAR}, "
                            f"else the checkout's data/, else the user cache; each data set in its folder: "
                            f"{', '.join(f'{f}/' for f in FOLDERS.values())})")
    parser.set_defaults(func=run)
    return parser


def _seconds(text: str) -> float:
    """``--deadline``'s type: a positive number of seconds, or argparse's one-line usage error."""
    try:
        return check_deadline(float(text))
    except ValueError:  # not a number, or not a finite one > 0
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}") from None


def run(args: argparse.Namespace) -> int:
    """Carry out ``args.data_action``; returns the exit code."""
    folder = FOLDER_OF[args.dataset](args.data_dir)
    try:
        if args.data_action == "download":
            for path in DOWNLOADERS[args.dataset](folder, force=args.force, deadline=args.deadline):
                print(f"ok  {path}")
        else:
            data = LOADERS[args.dataset](folder, download=False, recheck=True)
            print(f"ok  {args.dataset} in {folder}: train {data.x_train.shape}, val {data.x_val.shape}, "
                  f"test {data.x_test.shape}")
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0
