"""Small conveniences shared by the scripts in ``tutorials/`` (kept in the package: no ``sys.path`` hacks).

Every tutorial accepts ``--quick`` (a small data subset and few iterations, finishing in seconds; the test
suite runs each one that way), ``--device cpu|gpu``, and writes its figures to
``tutorials/figures/<script name>/`` (or ``--figures DIR``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from minilottery import backend
from minilottery.files import atomic_savefig


def parse_args(doc: str, script: str, extra: "callable | None" = None) -> argparse.Namespace:
    """Parses the common tutorial flags; ``doc`` is the script's docstring (its first line is the title).

    Also selects the device (``backend.use``) and creates the figure folder, stored as ``args.figures``.
    """
    parser = argparse.ArgumentParser(description=doc.strip().splitlines()[0], epilog="See the top of the script for more.")
    parser.add_argument("--quick", action="store_true", help="tiny data and few iterations: finishes in seconds")
    parser.add_argument("--device", choices=["cpu", "gpu"], default=None, help="where to compute (default: cpu)")
    parser.add_argument("--figures", type=Path, default=None, help="folder for the figures")
    if extra is not None:
        extra(parser)
    args = parser.parse_args()
    if args.device:
        backend.use(args.device)
    args.device = backend.default_device()
    stem = Path(script).stem
    args.figures = args.figures or Path(script).resolve().parent / "figures" / stem
    args.figures.mkdir(parents=True, exist_ok=True)
    return args


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

    def __enter__(self) -> "Timer":
        backend.synchronize()
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        backend.synchronize()
        self.seconds = time.perf_counter() - self.start
