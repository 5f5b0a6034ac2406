"""Getting a data set's files: the verified local copies, downloading the missing ones from public mirrors.

A data file on disk is either good or absent, and a bad mirror can cost neither unbounded memory, disk nor time.
Each rule has one module:

* ``checksums.py``: a file is trusted only once its checksum matches (a ``DataFile`` says which); reading it is
  bounded by its known size, so a gzip bomb is refused in a few MiB.
* ``record.py``: a passed check is remembered in ``.verified.json``, so a file is hashed once, not every load.
* ``fetch.py``: a download goes to a temporary file, renamed into place only once its checksum matches, bounded
  in size (the known size plus a margin) and in time (a deadline over all mirrors).
* ``layout.py``: a ``.gz`` may be present decompressed; what stands under a file's name instead is named; the
  temporary files of killed downloads are swept.

This module puts them together for the loaders (``mnist.py``, ``cifar10.py``) and ``minilottery data``:
``ensure`` gives one file, ``download_files`` gets many (``data download``), ``load_files`` gives the copies a
loader reads. Every failure a user can cause raises ``DataError`` with a one-line message that names the file(s)
and says how to fix it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from minilottery.data.checksums import DataError, DataFile, download_command, verify
from minilottery.data.fetch import DEADLINE, OfflineError, check_deadline, fetch
from minilottery.data.layout import found_instead, locate, sweep_stale
from minilottery.data.paths import ENV_VAR, data_dir
from minilottery.data.record import SIDECAR_NAME


def ensure(file: DataFile, dest_dir: str | os.PathLike[str] | None = None, *, download: bool = True,
           progress: bool = True, recheck: bool = False, verify_existing: bool = True,
           deadline: float = DEADLINE) -> Path:
    """The verified local copy of ``file``, downloaded first when it is missing and ``download`` is true.

    A ``.gz`` file whose checksum is of its decompressed bytes may also be present decompressed (the name
    without ``.gz``); either is accepted.

    Args:
        recheck: re-hash even when the verification record says the file is unchanged (``data check``).
        verify_existing: ``False`` returns a file already on disk unchecked, for a caller that verifies it
            while reading it anyway (``verify(..., content=...)``), so a cold load reads each file once.
        The rest as for ``fetch.fetch``; a downloaded file is always verified.
    """
    dest = data_dir(dest_dir)
    path = locate(file.name, dest, file.accepts_uncompressed)
    if path is not None:
        return verify(path, file, use_cache=not recheck) if verify_existing else path
    if download:
        return fetch(file, dest, progress=progress, deadline=deadline)
    raise missing_error([file], dest)


def download_files(files: Sequence[DataFile], dest_dir: str | os.PathLike[str] | None = None, *,
                   force: bool = False, progress: bool = True, deadline: float = DEADLINE) -> list[Path]:
    """Make sure ``files`` are in ``dest_dir``, verified; download what is missing (or all of them, ``force``).

    What killed downloads left behind is swept first, even when nothing is to be downloaded. When the mirrors
    cannot be reached, the error names every file still missing (or, for a forced download of a file that is
    there, says that it is kept).

    Returns:
        The verified paths, in the order of ``files``.
    """
    folder = data_dir(dest_dir)
    sweep_stale(folder, [*(f.name for f in files), SIDECAR_NAME], older_than=check_deadline(deadline))
    paths = []
    for file in files:
        try:
            if force:
                paths.append(fetch(file, folder, progress=progress, force=True, deadline=deadline))
            else:
                paths.append(ensure(file, folder, progress=progress, deadline=deadline))
        except OfflineError as e:
            missing = _missing(files, folder)
            if file not in missing:  # a forced download of a file that is there: its own message says it is kept
                raise
            raise missing_error(missing, folder, e.failures) from None
    return paths


def load_files(files: Sequence[DataFile], dest_dir: str | os.PathLike[str] | None = None, *, download: bool = True,
               recheck: bool = False, verify_existing: bool = True) -> list[Path]:
    """The local copies of ``files`` for a loader: the missing ones downloaded first (``download``), else named.

    Missing files are reported together, in one ``DataError``, not one per retry. ``recheck`` and
    ``verify_existing`` as for ``ensure``.
    """
    folder = data_dir(dest_dir)
    missing = _missing(files, folder)
    if missing and not download:
        raise missing_error(missing, folder)
    if missing:
        download_files(missing, folder)
    return [ensure(f, folder, download=False, recheck=recheck, verify_existing=verify_existing) for f in files]


def _missing(files: Sequence[DataFile], folder: Path) -> list[DataFile]:
    return [f for f in files if locate(f.name, folder, f.accepts_uncompressed) is None]


def missing_error(files: Sequence[DataFile], dest_dir: str | os.PathLike[str],
                  failures: Sequence[str] | None = None) -> DataError:
    """The one-line error for files that ``locate`` does not find: where to get them, where to put them.

    ``failures``: the reasons a download just failed (``OfflineError.failures``), which lead the message;
    without them the message suggests the download command. Something unusable under a file's name (a broken
    link, a folder) is named, so the message is not contradicted by ``ls``.
    """
    dest_dir = Path(dest_dir)
    notes = [n for f in files for n in found_instead(f.name, dest_dir, f.accepts_uncompressed)]
    found = f" ({'; '.join(notes)})" if notes else ""
    first = (f"could not download ({'; '.join(failures)}): " if failures is not None
             else f"run `{download_command(files[0].fix)}`, or ")
    elsewhere = f"or set {ENV_VAR} to the data root that has {{}} in the data set's folder"
    if len(files) == 1:
        return DataError(f"{files[0].name} is not in {dest_dir}{found}; {first}fetch it from "
                         f"{' or '.join(files[0].urls())} and put it there ({elsewhere.format('it')})")
    return DataError(f"{', '.join(f.name for f in files)} are not in {dest_dir}{found}; {first}fetch them from "
                     f"{' or '.join(files[0].mirrors)} and put them there ({elsewhere.format('them')})")
