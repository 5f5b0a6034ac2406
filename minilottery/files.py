"""The one way minilottery writes a file: a fresh temporary file beside the target, then an atomic rename.

Every file the program writes (JSON, npz, CSV, PNG, PDF, a downloaded data file) goes through ``atomic_write``:

1. ``tempfile.mkstemp`` creates a new file in the target's folder with ``O_CREAT | O_EXCL`` and an
   unpredictable name: it never opens a path that already exists, so a symlink planted at the temporary name
   cannot redirect the write, and two writers never share a temporary file;
2. the content is written, flushed and ``fsync``-ed, so the bytes are on disk before any name points at them,
   and the file gets the permissions ``open`` would have given it (``0o666`` less the umask: ``mkstemp`` makes
   it private, which would hide run folders and ticket files from the colleagues they are meant for);
3. ``os.replace`` renames the temporary file over the target. The rename replaces whatever is at the target,
   a symlink included, rather than writing through it, and is atomic on POSIX and Windows: a reader (or a run
   resumed after ``kill -9``, or a full disk) sees the old file or the new one, never a torn one;
4. the folder is synced so that the rename itself survives a power cut.

On any failure (a full disk, an exception in ``write``, Ctrl-C) the temporary file is removed and the target
is left as it was. Temporary names start with ``.`` and end in ``TMP_SUFFIX``; ``stale_temporaries`` finds the
ones a killed process left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

TMP_SUFFIX = ".tmp"


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], binary: bool = True) -> Iterator[IO[Any]]:
    """``with atomic_open(path) as f: f.write(...)``: ``path`` gets the content only if the block succeeds.

    The parent folder is created if missing. On success the file is fsync-ed and renamed over ``path``;
    on an exception nothing at ``path`` changes and the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    tmp = Path(tmp_name)
    try:
        if os.chmod in os.supports_fd:  # by descriptor: nothing can swap the file in between
            os.chmod(fd, 0o666 & ~_umask())
        with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="")) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())  # the bytes are on disk before the name points at them
        os.replace(tmp, path)  # replaces a symlink at ``path``, never follows it
        _sync_folder(path.parent)
    finally:
        tmp.unlink(missing_ok=True)  # only still there when something failed


def _umask() -> int:
    """The process's umask (reading it means setting it: it is set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[Any]], Any], binary: bool = True) -> Path:
    """Calls ``write(f)`` on a fresh temporary file and renames it over ``path`` (see the module doc)."""
    with atomic_open(path, binary) as f:
        write(f)
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Writes ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Writes ``text`` (UTF-8, newlines as given) to ``path`` atomically."""
    return atomic_write(path, lambda f: f.write(text), binary=False)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Writes ``obj`` as indented JSON to ``path`` atomically; NumPy scalars and arrays become numbers/lists."""
    return atomic_write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def atomic_savez(path: str | os.PathLike[str], **arrays: Any) -> Path:
    """Saves named host arrays to an ``.npz`` file atomically (``np.savez``; names like "1.W" are fine)."""
    return atomic_write(path, lambda f: np.savez(f, **arrays))


def atomic_savefig(fig: Any, path: str | os.PathLike[str], **savefig_kwargs: Any) -> Path:
    """Saves a matplotlib figure atomically; the format comes from ``path``'s suffix (png, pdf, ...)."""
    fmt = Path(path).suffix.lstrip(".") or None
    return atomic_write(path, lambda f: fig.savefig(f, format=fmt, **savefig_kwargs))


def stale_temporaries(folder: str | os.PathLike[str]) -> list[Path]:
    """The temporary files a killed writer left in ``folder`` (hidden names ending in ``TMP_SUFFIX``)."""
    return [p for p in Path(folder).glob(f".*{TMP_SUFFIX}") if p.is_file() and not p.is_symlink()]


def _sync_folder(folder: Path) -> None:
    """fsync a folder so a rename in it survives a crash (a no-op where folders cannot be opened: Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


__all__ = ["TMP_SUFFIX", "atomic_open", "atomic_write", "atomic_write_bytes", "atomic_write_text",
           "atomic_write_json", "atomic_savez", "atomic_savefig", "stale_temporaries"]
