"""The ``minilottery`` command: one subcommand per module in ``minilottery/lab/commands``.

Each command module exposes ``register(subparsers)``, which adds its parser and sets ``func`` to a
``run(args) -> int``. Errors a user can cause (bad options, missing data, no GPU, a training that diverged, a
full disk or a read-only folder) end in one line on stderr and a non-zero exit code, never a traceback:
2 for bad options and data, 1 for a failed run, 130 for Ctrl-C, 143 for kill (SIGTERM); imp, trials, demo and
transfer then say how to continue. Warnings are one line too.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import os
import signal
import sys
import threading
import warnings
from pathlib import Path

from minilottery import __version__
from minilottery.backend import DeviceError
from minilottery.data import DataError
from minilottery.files import TMP_SUFFIX
from minilottery.training import NonFiniteLossError

# Order here is the order of ``minilottery --help``.
COMMANDS = ["demo", "train", "imp", "trials", "report", "plot", "check-paper", "transfer", "instability", "sanity",
            "prune-at-init", "export", "assignment", "grade", "data", "bench", "doctor"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minilottery",
        description="Find lottery tickets (Frankle & Carbin, ICLR 2019) with a NumPy/CuPy network written by hand.",
    )
    parser.add_argument("--version", action="version", version=f"minilottery {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:  # every command has its module; an error importing one is a bug, shown as a traceback
        importlib.import_module(f"minilottery.lab.commands.{name.replace('-', '_')}").register(subparsers)
    for command in subparsers.choices.values():  # descriptions come from docstrings: drop reST's ``quotes``
        command.description = (command.description or "").replace("``", "")
    return parser


def one_line(exc: BaseException) -> str:
    """The exception's text on one line (its lines joined with "; "), or its type's name when it has none."""
    text = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return text or type(exc).__name__


# What to do about an OSError, by errno (the rest get OS_HINT).
OS_HINTS = {
    errno.ENOSPC: "free some disk space or choose an --out on another disk",
    errno.EDQUOT: "free some space under your disk quota or choose an --out on another disk",
    errno.EROFS: "the file system is read-only: choose a writable folder (--out)",
    errno.EACCES: "check its permissions, or choose a folder you may write to (--out)",
    errno.EPERM: "check its permissions, or choose a folder you may write to (--out)",
    errno.ENOTDIR: "a file stands where a folder is needed: choose another path",
    errno.EEXIST: "a file stands where a folder is needed: choose another path",
    errno.EISDIR: "a folder stands where a file is needed: choose another path",
    errno.ENOENT: "check that the path exists",
}
OS_HINT = "check the path, its permissions and the free disk space"


def os_error_line(exc: OSError, args: argparse.Namespace | None = None) -> str:
    """``<path>: <strerror>; <hint>`` for an OSError (a write into a temporary file names its folder)."""
    path = exc.filename
    if path is not None:
        path = Path(os.fsdecode(path))
        if path.name.startswith(".") and path.name.endswith(TMP_SUFFIX):  # files.atomic_open's temporary file
            path = path.parent
    elif getattr(args, "out", None):  # e.g. ENOSPC in the middle of a write names no file: say where it went
        path = f"--out {args.out}"
    where = f"{path}: " if path is not None else ""
    return f"{where}{exc.strerror or one_line(exc)}; {OS_HINTS.get(exc.errno, OS_HINT)}"


def warn_in_one_line(command: str):
    """A ``warnings.showwarning`` that prints ``minilottery <command>: warning: <message>`` on stderr."""
    def show(message, category, filename, lineno, file=None, line=None) -> None:
        print(f"minilottery {command}: warning: {one_line(message)}", file=file or sys.stderr, flush=True)
    return show


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill PID``) turned into an interrupt, so that a run stops as on Ctrl-C, saying how to continue."""


@contextlib.contextmanager
def sigterm_interrupts():
    """Inside the block, SIGTERM raises ``Terminated`` in the main thread (elsewhere signals cannot be caught);
    the previous handler comes back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # usage errors: argparse prints them and exits with 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    error = f"minilottery {args.command}: error:"
    try:
        with warnings.catch_warnings(), sigterm_interrupts():  # both restore what they change afterwards
            warnings.showwarning = warn_in_one_line(args.command)
            return int(args.func(args) or 0)
    except (DeviceError, DataError, ValueError) as exc:  # bad options, missing data, no GPU, a bad run folder
        print(f"{error} {one_line(exc)}", file=sys.stderr)
        return 2
    except NonFiniteLossError as exc:  # the message names the iteration and the --lr to lower
        print(f"{error} {one_line(exc)}", file=sys.stderr)
        return 1
    except OSError as exc:  # a read-only folder, a full disk, a file where a folder should be
        print(f"{error} {os_error_line(exc, args)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:  # Ctrl-C, or kill (SIGTERM): a run folder keeps every completed round
        again = (f" (what is done is kept in {args.out}); run the same command again to continue"
                 if getattr(args, "resumes", False) else "")
        print(f"minilottery {args.command}: interrupted{again}", file=sys.stderr)
        return 128 + signal.SIGTERM if isinstance(exc, Terminated) else 130


if __name__ == "__main__":
    sys.exit(main())
