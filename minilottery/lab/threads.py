"""BLAS threads: how many threads the matrix products use, chosen in one place and recorded with every run.

NumPy hands every matrix product to a BLAS library (OpenBLAS in NumPy's wheels), which by default starts one
thread per core. Two things follow, and both are why every computing command takes ``--threads N``:

* Speed. OpenBLAS's threads wait for each other inside every product, so on a busy machine a thread whose
  core another process holds stalls the whole step, which can make it many times slower.
  ``DEFAULT`` is one thread per process; the README's "Threads and reproducibility" section gives the
  measurements behind it (``python benchmarks/threads.py``).
* Results. A product split over more threads adds its pieces in another order, so the float32 result differs
  in the last bits, and training amplifies that into different weights and accuracies. Results are
  bit-identical for the same seed, thread count, BLAS library and kind of machine; so each trial of
  ``trials --workers W --threads N`` equals ``imp`` with its seed and ``--threads N``, whatever W.

The count comes from ``--threads N``, else the environment variable ``MINILOTTERY_THREADS``, else
``DEFAULT`` (``resolve``), and is applied with threadpoolctl (``limit``, or ``apply`` for a whole script).
``describe`` says what is in effect, for a run's metadata. On the GPU the count only affects host-side
work.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator
from typing import Any

from minilottery.checks import check_int

ENV = "MINILOTTERY_THREADS"
DEFAULT = 1  # threads per process; measured in the README (python benchmarks/threads.py)
_HINT = "BLAS threads per process, e.g. 1"  # what a thread count counts, for the error messages


def check(value: Any, option: str = "--threads") -> int:
    """``value`` as a thread count (an integer >= 1); a one-line ValueError naming ``option`` otherwise."""
    return check_int(option, value, hint=_HINT)


def resolve(threads: int | None = None) -> int:
    """The thread count to use: ``threads`` if given, else ``$MINILOTTERY_THREADS``, else ``DEFAULT``.

    Raises:
        ValueError: (one line) ``threads`` or the environment variable is not a positive integer.
    """
    if threads is not None:
        return check(threads)
    text = os.environ.get(ENV, "").strip()
    if not text:
        return DEFAULT
    try:
        return check(int(text), ENV)
    except ValueError:  # not an integer, or one below 1
        raise ValueError(f"{ENV} must be an integer >= 1 (BLAS threads per process), got {text!r}; "
                         f"set it to e.g. 1, or unset it for the default ({DEFAULT})") from None


@contextlib.contextmanager
def limit(threads: int | None = None) -> Iterator[int]:
    """``with limit(n) as n: ...``: BLAS uses ``resolve(n)`` threads inside the block, its old count after.

    Only BLAS libraries already loaded are limited (NumPy's is, once ``numpy`` is imported).
    """
    from threadpoolctl import threadpool_limits

    n = resolve(threads)
    with threadpool_limits(limits=n, user_api="blas"):
        yield n


def apply(threads: int | None = None) -> int:
    """Limits BLAS to ``resolve(threads)`` threads from now on, for the rest of the process (scripts, tutorials)."""
    from threadpoolctl import threadpool_limits

    n = resolve(threads)
    threadpool_limits(limits=n, user_api="blas")  # not restored: threadpoolctl resets only on exit of a ``with``
    return n


def describe() -> dict[str, Any]:
    """What is in effect now, for a run's metadata: ``{"threads": 1, "blas": "openblas 0.3.27 (pthreads)", ...}``.

    Read back from the BLAS library NumPy uses (so inside ``limit(n)``, ``threads`` is n): ``blas`` is its
    name, version and threading layer; ``architecture`` the CPU kernel set OpenBLAS chose (None if unknown).
    """
    from threadpoolctl import threadpool_info

    blas = [info for info in threadpool_info() if info.get("user_api") == "blas"]
    numpy_blas = [info for info in blas if "numpy" in info.get("filepath", "")] or blas  # not SciPy's own copy
    if not numpy_blas:
        return {"threads": None, "blas": "none found", "architecture": None}
    info = numpy_blas[0]
    return {"threads": max(i["num_threads"] for i in numpy_blas),
            "blas": f"{info.get('internal_api')} {info.get('version') or '?'} ({info.get('threading_layer') or '?'})",
            "architecture": info.get("architecture")}


def difference(recorded: dict[str, Any] | None, current: dict[str, Any]) -> str | None:
    """A one-line warning when a run recorded with ``recorded`` (``describe()``) is continued under ``current``.

    None when the thread count and BLAS library are the same (or nothing was recorded).
    """
    if not recorded:
        return None
    changed = [f"{key} {recorded.get(key)!r} now {current.get(key)!r}" for key in ("threads", "blas")
               if key in recorded and recorded.get(key) != current.get(key)]
    if not changed:
        return None
    fix = (f"; continue with --threads {recorded['threads']} to match it"
           if recorded.get("threads") != current.get("threads")
           and isinstance(recorded.get("threads"), int) else "")
    return (f"this run was started with other BLAS settings ({'; '.join(changed)}): the rounds from here on will "
            f"differ from an uninterrupted run's{fix}")


def add_argument(parser: argparse.ArgumentParser, help: str | None = None,
                 hidden_aliases: tuple[str, ...] = ()) -> None:
    """Adds ``--threads N`` (default None: ``$MINILOTTERY_THREADS``, else ``DEFAULT``) to ``parser``.

    ``hidden_aliases``: old spellings (e.g. ``--blas-threads``), still accepted but not shown in ``--help``.
    """
    parser.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                        help=help or f"BLAS threads (default: ${ENV}, else {DEFAULT}); results are bit-identical "
                                     f"only at the same N")
    for alias in hidden_aliases:
        parser.add_argument(alias, dest="threads", type=_positive_int, default=None, help=argparse.SUPPRESS)


def _positive_int(text: str) -> int:
    """argparse ``type`` for ``--threads``: an integer >= 1, or argparse's one-line usage error."""
    try:
        return check(int(text))
    except ValueError:  # not an integer, or one below 1
        raise argparse.ArgumentTypeError(f"must be an integer >= 1 ({_HINT}), got {text!r}") from None


__all__ = ["DEFAULT", "ENV", "add_argument", "apply", "check", "describe", "difference", "limit", "resolve"]
