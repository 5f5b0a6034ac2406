"""The verification record: a file that passed its checksum is remembered, so it is hashed once, not on every load.

Hashing tens of megabytes on every load would be wasted work, so a successful check is written to a small JSON
sidecar, ``.verified.json``, beside the files, keyed by file name, holding the file's size, ``mtime_ns`` and
checksum::

    {"train-images-idx3-ubyte.gz": {"checksum": "sha256-uncompressed:ba89...", "mtime_ns": ..., "size": 9912422}}

A file that changed since (other size or time) is checked again. When the data folder is read-only (a shared
copy), the record goes to the user cache folder instead, keyed by the file's absolute path. The record only
saves time: a missing or damaged one is started afresh, and failing to write one fails nothing. It is written
through ``minilottery.files`` like every other file, so it is whole or absent.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from minilottery.data.paths import user_cache_dir
from minilottery.files import atomic_write_bytes

SIDECAR_NAME = ".verified.json"


def writable(directory: Path) -> bool:
    """True when we may write into ``directory``.

    ``os.access`` alone is not enough: as root it says yes even for a folder whose mode has no write bits, which
    is how a shared read-only copy of the data says "don't write here".
    """
    try:
        mode = directory.stat().st_mode
    except OSError:
        return False
    return os.access(directory, os.W_OK) and bool(mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _location(path: Path) -> tuple[Path, str]:
    """(record file, key) for ``path``: the sidecar beside it, else the user cache keyed by absolute path."""
    directory = path.parent
    if writable(directory):
        return directory / SIDECAR_NAME, path.name
    return user_cache_dir() / "verified.json", str(path.resolve())


def _read(record: Path) -> dict:
    try:
        data = json.loads(record.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):  # missing or damaged record: it only saves time, so start afresh
        return {}


def lookup(path: Path, st: os.stat_result) -> str | None:
    """The checksum recorded for ``path`` if the file is unchanged (``st``) since it was checked, else ``None``."""
    record, key = _location(path)
    entry = _read(record).get(key)
    if isinstance(entry, dict) and entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns:
        return entry.get("checksum")
    return None


def store(path: Path, st: os.stat_result, checksum: str) -> None:
    """Record that ``path``, as ``st`` describes it, has ``checksum``."""
    record, key = _location(path)
    data = _read(record)
    data[key] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "checksum": checksum}
    try:
        atomic_write_bytes(record, json.dumps(data, indent=1, sort_keys=True).encode())
    except OSError:
        pass  # the record is an optimisation; failing to write it must not fail a load
