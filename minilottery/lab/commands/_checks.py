"""Checks the commands share: an output folder usable before any work starts, and a readable run folder.

A command that trains for an hour and only then finds that ``--out`` is a file, or on a read-only disk, has
wasted the hour: ``check_out_dir`` finds out first, in a millisecond.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def check_out_dir(path: str | os.PathLike[str], option: str = "--out") -> Path:
    """Makes sure the folder ``path`` exists (creating it) and that a file can be created in it.

    Raises:
        ValueError, naming ``option``: the path is empty, is (or lies under) a file, or the folder cannot be
        created or written (read-only, no permission, a full disk).
    """
    text = os.fspath(path)
    if not text.strip():
        raise ValueError(f"{option} is empty; give a folder, e.g. {option} runs/my-run")
    folder = Path(text)
    for candidate in (folder, *folder.parents):  # a file at DIR, or at any folder above it
        if candidate.exists():
            if not candidate.is_dir():
                where = "is" if candidate == folder else f"lies under {candidate}, which is"
                raise ValueError(f"{option} {folder} {where} a file, not a folder; choose another {option}")
            break
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):  # the probe: a file created, then removed (nothing is left)
            pass
    except OSError as exc:
        raise ValueError(f"{option} {folder} cannot be written ({exc.strerror or exc}); choose a folder you may "
                         f"write to, on a disk with free space") from None
    return folder


@contextlib.contextmanager
def reading_run(run_dir: str | os.PathLike[str]) -> Iterator[None]:
    """Turns the KeyError/TypeError/... of a run file with the wrong shape into one ValueError naming the folder.

    ``runs.load_summary`` checks the files it reads; this catches what is left, e.g. a round without its
    ``percent_remaining``, as ``report``, ``plot`` and ``check-paper`` read the rounds.
    """
    try:
        yield
    except (KeyError, TypeError, AttributeError, IndexError) as exc:
        raise ValueError(f"{run_dir} holds run files of an unexpected shape ({type(exc).__name__}: {exc}); were "
                         f"they edited by hand? Run `minilottery imp` there again, or check its JSON files") from None
