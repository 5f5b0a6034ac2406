"""Small conveniences shared by the scripts in ``tutorials/`` (kept in the package: no ``sys.path`` hacks).

Every tutorial accepts ``--quick`` (a small data subset and few iterations, finishing in seconds; the test
suite runs each one that way), ``--device cpu|gpu``, ``--threads N`` (BLAS threads, see
``minilottery/lab/threads.py``), and writes its figures to ``tutorials/figures/<script name>/`` (or ``--figures DIR``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from minilottery import backend
from minilottery.backend import DeviceError
from minilottery.data import DataError
from minilottery.files import atomic_savefig
from minilottery.lab import threads
from minilottery.lab.cli import one_line


def parse_args(doc: str, script: str,
               extra: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.Namespace:
    """Parses the common tutorial flags; ``doc`` is the script's docstring (its first line is the title).

    Also selects the device (``backend.use``), limits BLAS to ``args.threads`` threads for the rest of the
    script (``threads.apply``), and creates the figure folder, stored as ``args.figures``. From here on an
    error the user can fix (missing data, no GPU, a bad value, an unwritable folder) ends the script in one
    line (see ``end_in_one_line``).
    """
    end_in_one_line(Path(script).name)
    parser = argparse.ArgumentParser(description=doc.strip().splitlines()[0],
                                     epilog="See the top of the script for more.")
    parser.add_argument("--quick", action="store_true", help="tiny data and few iterations: finishes in seconds")
    parser.add_argument("--device", choices=["cpu", "gpu"], default=None, help="where to compute (default: cpu)")
    parser.add_argument("--figures", type=Path, default=None, help="folder for the figures")
    threads.add_argument(parser)
    if extra is not None:
        extra(parser)
    args = parser.parse_args()
    if args.device:
        backend.use(args.device)
    args.device = backend.default_device()
    try:
        args.threads = threads.apply(args.threads)
    except ValueError as exc:  # a bad $MINILOTTERY_THREADS: argparse's one-line usage error
        parser.error(str(exc))
    stem = Path(script).stem
    args.figures = args.figures or Path(script).resolve().parent / "figures" / stem
    args.figures.mkdir(parents=True, exist_ok=True)
    return args


USER_ERRORS = (DataError, DeviceError, ValueError, OSError)


def end_in_one_line(script: str) -> None:
    """Makes the errors a user can fix end the script with ``<script>: error: <message>`` and exit code 1.

    The tutorials run top to bottom without a ``main()`` to wrap, so this sets ``sys.excepthook``, which
    Python calls with any exception nobody caught: USER_ERRORS (e.g. MNIST missing: the message says how
    to get it) and Ctrl-C print one line; any other exception is a bug and keeps its traceback.
    """
    def hook(kind, exc, tb) -> None:
        if issubclass(kind, USER_ERRORS):
            print(f"{script}: error: {one_line(exc)}", file=sys.stderr)
        elif issubclass(kind, KeyboardInterrupt):
            print(f"{script}: interrupted", file=sys.stderr)
        else:
            sys.__excepthook__(kind, exc, tb)

    sys.excepthook = hook


def heading(text: str) -> None:
    """Prints a section heading, so the output reads like the lesson it follows."""
    print(f"\n== {text} ==")


def save_figure(fig, args: argparse.Namespace, name: str) -> Path:
    """Saves ``fig`` as PNG under the tutorial's figure folder and prints where."""
    path = args.figures / f"{name}.png"
    atomic_savefig(fig, path, dpi=120, bbox_inches="tight")
    print(f"figure: {path}")
    return path


class Timer:
    """``with Timer() as t: ...`` then ``t.seconds``; synchronises the device before reading the clock."""

    def __enter__(self) -> Timer:
        backend.synchronize()
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        backend.synchronize()
        self.seconds = time.perf_counter() - self.start
