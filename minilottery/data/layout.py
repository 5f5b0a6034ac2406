"""What lies in the data folder under a data set's file names: the file, its decompressed copy, what stands there
instead, and the temporary files that killed downloads left behind.

* A ``.gz`` file whose checksum is of its decompressed bytes may also be present decompressed (the name without
  ``.gz``): ``locate`` accepts either.
* Something unusable under a file's name (a broken link, a folder, the unpacked copy of an archive that is read
  packed) is named by ``found_instead``, so that an error message is not contradicted by ``ls``.
* A killed process cannot run its clean-up, so the temporary files of earlier downloads (``.<name>.*.tmp``, and
  ``.<name>.*.part`` from older versions) are deleted once untouched for longer than a download's deadline
  (``sweep_stale``). A running download gives up at its deadline, so its temporary file is younger than that:
  a concurrent download is not disturbed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

from minilottery.files import stale_temporaries

_LEGACY_SUFFIX = ".part"  # what temporary downloads were called before minilottery.files existed


def _unpacked_name(filename: str) -> str:
    """``"x.gz"`` -> ``"x"``: the name a decompressed copy has."""
    return filename[: -len(".gz")]


def locate(filename: str, dest_dir: str | os.PathLike[str], accept_uncompressed: bool = True) -> Path | None:
    """``dest_dir/filename`` if it exists, else (for a ``.gz`` name) the decompressed copy if it exists."""
    candidates = [Path(dest_dir) / filename]
    if accept_uncompressed and filename.endswith(".gz"):
        candidates.append(Path(dest_dir) / _unpacked_name(filename))
    return next((p for p in candidates if p.is_file()), None)


def not_a_file(path: Path) -> str:
    """What is at ``path`` instead of a regular file, in a few words."""
    if path.is_symlink() and not path.exists():
        return f"a broken link to {os.readlink(path)}"
    return "a folder" if path.is_dir() else "not a regular file"


def found_instead(filename: str, dest_dir: Path, accept_uncompressed: bool) -> list[str]:
    """Notes on what is in ``dest_dir`` under ``filename``'s name that ``locate`` cannot use."""
    notes = []
    path = dest_dir / filename
    if path.exists() or path.is_symlink():  # locate found no file, so this is a link to nowhere or a folder
        notes.append(f"{path} is {not_a_file(path)}")
    if not accept_uncompressed and filename.endswith(".gz"):
        unpacked = dest_dir / _unpacked_name(filename)
        if unpacked.exists():  # e.g. a browser that gunzipped the download: the checksum is of the .gz
            notes.append(f"{unpacked} is there, but only the original {filename} is read")
    return notes


def sweep_stale(folder: str | os.PathLike[str], names: Sequence[str], older_than: float) -> list[Path]:
    """Delete the temporary files of ``names`` in ``folder`` that nobody has written to for ``older_than`` seconds.

    Temporary names are ``.<name>.<random>.tmp`` (``minilottery.files``) or ``.<name>.<random>.part`` (older
    versions); another program's temporary files, or another data set's, are never touched.

    Returns:
        The files deleted.
    """
    folder = Path(folder)
    legacy = [p for p in folder.glob(f".*{_LEGACY_SUFFIX}") if p.is_file() and not p.is_symlink()]
    prefixes = tuple(f".{name}." for name in names)
    now = time.time()
    removed = []
    for path in stale_temporaries(folder) + legacy:
        if not path.name.startswith(prefixes):
            continue
        try:
            if now - path.lstat().st_mtime > older_than:
                path.unlink()
                removed.append(path)
        except OSError:  # swept by another process first, or a read-only folder: this is only housekeeping
            pass
    return removed
