"""Small conveniences shared by the scripts in ``tutorials/`` (kept in the package: no ``sys.path`` hacks).

Every tutorial runs at one of three sizes, ``args.size``: ``--quick`` (a small data subset and few iterations,
finishing in seconds: for checking that it runs; its numbers mean little), ``--class`` (big enough that early
stopping and the ticket-vs-control comparisons mean something, about a minute on a laptop: for a class meeting),
or the default, full size (the numbers the README quotes). The test suite runs each one at the first two. Every
tutorial also accepts ``--device cpu|gpu``, ``--threads N`` (BLAS threads, see
``minilottery/lab/threads.py``), and writes its figures to ``tutorials/figures/<script name>/`` (or ``--figures DIR``).

Each tutorial is also a notebook (``tutorials/NN_name.ipynb``, made from the script by
``python -m minilottery.lab.notebooks``). A notebook takes no flags: inside a Jupyter kernel ``sys.argv`` holds
the kernel's own arguments, so ``parse_args`` parses none and reads the environment instead:
``MINILOTTERY_QUICK=1`` for quick mode and ``MINILOTTERY_CLASS=1`` for the class size (scripts read them too),
``MINILOTTERY_DEVICE`` and ``MINILOTTERY_THREADS`` as everywhere else. Its figures go to
``figures/<script name>/`` in the kernel's working folder (Jupyter starts it in the notebook's folder, so that
is ``tutorials/figures/<script name>/`` again), and each is shown below the cell that saved it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from minilottery import backend
from minilottery.backend import DeviceError
from minilottery.data import DataError
from minilottery.files import atomic_savefig
from minilottery.lab import threads
from minilottery.lab.cli import one_line
from minilottery.lab.run_folder import run_record

QUICK_ENV = "MINILOTTERY_QUICK"  # "1": quick mode, as --quick (the only way to ask for it in a notebook)
CLASS_ENV = "MINILOTTERY_CLASS"  # "1": class size, as --class
SIZES = ("quick", "class", "full")  # args.size, smallest first


def parse_args(doc: str, script: str,
               extra: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.Namespace:
    """Parses the common tutorial flags; ``doc`` is the script's docstring (its first line is the title).

    ``script`` is the tutorial's file name, e.g. ``"05_train_lenet.py"``: each tutorial names itself, because a
    notebook has no ``__file__``. In a notebook no flags are parsed (see the module docstring): every option
    keeps its default, and ``$MINILOTTERY_QUICK`` or ``$MINILOTTERY_CLASS`` picks the size.

    Also selects the device (``backend.use``), limits BLAS to ``args.threads`` threads for the rest of the
    script (``threads.apply``), and creates the figure folder, stored as ``args.figures``. From here on an
    error the user can fix (missing data, no GPU, a bad value, an unwritable folder) ends the script in one
    line (see ``end_in_one_line``).
    """
    notebook = in_notebook()
    end_in_one_line(Path(script).name)
    parser = argparse.ArgumentParser(description=doc.strip().splitlines()[0],
                                     epilog="See the top of the script for more.")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true",
                      help=f"tiny data and few iterations: finishes in seconds (also ${QUICK_ENV}=1)")
    size.add_argument("--class", dest="class_size", action="store_true",
                      help=f"class size: meaningful numbers in about a minute on a laptop (also ${CLASS_ENV}=1)")
    parser.add_argument("--device", choices=["cpu", "gpu"], default=None, help="where to compute (default: cpu)")
    parser.add_argument("--figures", type=Path, default=None, help="folder for the figures")
    threads.add_argument(parser)
    if extra is not None:
        extra(parser)
    args = parser.parse_args([] if notebook else None)  # a kernel's sys.argv is its own: -f kernel-....json
    if args.device:
        backend.use(args.device)
    args.device = backend.default_device()
    try:
        args.size = size_from(args.quick, args.class_size)
        args.quick = args.size == "quick"  # the common case, spelled short
        args.threads = threads.apply(args.threads)
    except ValueError as exc:  # a bad $MINILOTTERY_THREADS or $MINILOTTERY_QUICK
        if notebook:
            raise
        parser.error(str(exc))  # argparse's one-line usage error
    args.figures = args.figures or figure_folder(script)
    args.figures.mkdir(parents=True, exist_ok=True)
    return args


def quick_from_environment() -> bool:
    """Whether ``$MINILOTTERY_QUICK`` asks for quick mode: "1" yes; "0" or unset no; anything else a ValueError."""
    return _flag_from_environment(QUICK_ENV, "quick mode")


def class_from_environment() -> bool:
    """Whether ``$MINILOTTERY_CLASS`` asks for the class size: "1" yes; "0" or unset no; else a ValueError."""
    return _flag_from_environment(CLASS_ENV, "class size")


def _flag_from_environment(name: str, meaning: str) -> bool:
    text = os.environ.get(name, "").strip()
    if text not in ("", "0", "1"):
        raise ValueError(f"{name} must be 1 ({meaning}) or 0, got {text!r}; set it to 1, or unset it")
    return text == "1"


def size_from(quick_flag: bool, class_flag: bool) -> str:
    """The size a tutorial runs at (one of SIZES) from its flags, else the environment; both sizes: a ValueError."""
    quick = quick_flag or (not class_flag and quick_from_environment())
    classroom = class_flag or (not quick_flag and class_from_environment())
    if quick and classroom:
        raise ValueError(f"{QUICK_ENV}=1 and {CLASS_ENV}=1 ask for two sizes; unset one of them")
    return "quick" if quick else "class" if classroom else "full"


def by_size(args: argparse.Namespace, quick: Any, class_size: Any, full: Any) -> Any:
    """The value for the size the tutorial runs at: ``by_size(args, 300, 2000, 10_000)`` iterations, say."""
    return {"quick": quick, "class": class_size, "full": full}[args.size]


def run_folder(figures: Path, config: Any, data: Any, name: str = "run") -> Path:
    """``<figures>/<name>-<8 hex digits>/``: a run folder named by everything that defines the run.

    ``figures`` is the tutorial's figure folder (``args.figures``); a solution script that reads a tutorial's
    run passes that tutorial's folder.

    The digits hash ``run_folder.run_record(config, data)`` (the configuration and the data's description), so
    a run started with other settings, at another size or after an exercise's change, gets a folder of its own
    and never meets the refusal a run folder gives a changed configuration; running the script again with the
    same settings finds the finished rounds and reads them back.
    """
    record = json.dumps(run_record(config, data), sort_keys=True, default=str)
    return Path(figures) / f"{name}-{hashlib.sha256(record.encode()).hexdigest()[:8]}"


def in_notebook() -> bool:
    """True inside a Jupyter kernel (Jupyter, Colab, nbclient), False in a script, even one run by IPython.

    Only a kernel's shell has a ``kernel``; IPython is not imported here unless it is already running.
    """
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "kernel", None) is not None


def figure_folder(script: str) -> Path:
    """``figures/<script name>/`` beside the running script, or in a notebook under the kernel's working folder."""
    here = Path.cwd() if in_notebook() else Path(sys.argv[0]).resolve().parent
    return here / "figures" / Path(script).stem


USER_ERRORS = (DataError, DeviceError, ValueError, OSError)


def end_in_one_line(script: str) -> None:
    """Makes the errors a user can fix end the script with ``<script>: error: <message>`` and exit code 1.

    The tutorials run top to bottom without a ``main()`` to wrap, so this sets ``sys.excepthook``, which
    Python calls with any exception nobody caught: USER_ERRORS (e.g. MNIST missing: the message says how
    to get it) and Ctrl-C print one line; any other exception is a bug and keeps its traceback.
    In a notebook this does nothing: IPython shows a cell's exception itself (a traceback whose last line is
    the same message), never through ``sys.excepthook``, which it keeps as its own.
    """
    if in_notebook():
        return

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


def save_figure(fig, args: argparse.Namespace, name: str, *, look_for: str) -> None:
    """Saves ``fig`` as PNG under the tutorial's figure folder and prints where; a notebook also shows it.

    ``look_for`` (required: every figure says how to read it) is printed after the path as ``what to look
    for: ...``: one sentence on what the figure shows and how to read it, at this size: pass another sentence
    where the figure means less (at ``--quick``, say, or when the run's data do not show the effect).

    The notebook shows the saved file rather than ``fig``: the tutorials draw with the Agg backend, which
    shows nothing by itself, so each figure appears once, exactly as saved. Nothing is returned, so a cell
    that ends with ``save_figure(...)`` shows no ``Out[...]`` line.
    """
    path = args.figures / f"{name}.png"
    atomic_savefig(fig, path, dpi=120, bbox_inches="tight")
    print(f"figure: {path}")
    print(f"what to look for: {look_for}")
    if in_notebook():
        from IPython.display import Image, display

        display(Image(filename=str(path)))


class Timer:
    """``with Timer() as t: ...`` then ``t.seconds``; synchronises the device before reading the clock."""

    def __enter__(self) -> Timer:
        backend.synchronize()
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        backend.synchronize()
        self.seconds = time.perf_counter() - self.start
