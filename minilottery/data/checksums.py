"""Trusting a data file: the checksum it must have, read in bounded chunks, and one-line errors when it is wrong.

A ``DataFile`` holds everything known about one file of a data set: its name, its mirrors, its checksum, its
sizes and the command that fixes it. The checksum is one of two kinds, as the data sets publish them:

* ``sha256-uncompressed``: the SHA-256 of the *decompressed* bytes of a ``.gz`` file (of the file itself
  otherwise), robust to how a mirror gzipped it. MNIST publishes these.
* ``md5``: the MD5 of the file exactly as stored. CIFAR-10 publishes this.

Reading is bounded: a ``.gz`` is decompressed ``CHUNK`` (1 MiB) at a time and refused as corrupt at the first
chunk that goes past its known decompressed size, so a gzip bomb costs a few MiB of memory; a file whose sizes
are not given (a test's own files) is bounded by ``UNKNOWN_SIZE_CAP``. A successful check is remembered in the
verification record (``record.py``), so a file is hashed once, not on every load.

Every failure a user can cause (a file missing, unreadable, corrupt, too long once decompressed) raises
``DataError`` with a one-line message that names the file and says how to fix it.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from minilottery.data import record
from minilottery.data.layout import not_a_file

FORCE_HINT = "minilottery data download --force"
CHUNK = 1 << 20  # bytes read, hashed or decompressed per step: the memory a download or a check holds at once
UNKNOWN_SIZE_CAP = 1 << 30  # the bound for a file whose size is not given: 1 GiB, above any data set here


class DataError(Exception):
    """A data file is missing, corrupt or unreadable; the message (one line) says how to fix it."""


class BadContent(Exception):
    """A file (on disk or arriving) has the wrong bytes: too many, not gzip, wrong checksum.

    Internal to ``minilottery.data``: it becomes a ``DataError`` that names the file.
    """


@dataclass(frozen=True)
class DataFile:
    """One file of a data set: its name, where it is served, the checksum that makes it trusted, its sizes.

    Attributes:
        name: the file's name, both on the mirrors and on disk (e.g. ``"train-images-idx3-ubyte.gz"``).
        mirrors: base URLs, tried in order; the URL is ``mirror + name`` (see ``urls``).
        sha256_uncompressed: SHA-256 (hex) of the decompressed bytes (of the file itself if not ``.gz``);
        md5: or the MD5 (hex) of the file as stored. Give exactly one of the two.
        size: the file's size as the mirrors serve it; it bounds a download (``fetch.max_download_size``).
            ``None``: not known, bounded by ``UNKNOWN_SIZE_CAP``.
        size_uncompressed: the content's size (decompressed, for a ``.gz``): decompression stops past it, and
            a longer file is corrupt. ``None``: ``UNKNOWN_SIZE_CAP``.
        fix: the command an error message suggests for a bad copy (the data set's ``download --force``).
    """

    name: str
    mirrors: Sequence[str] = ()
    sha256_uncompressed: str | None = None
    md5: str | None = None
    size: int | None = None
    size_uncompressed: int | None = None
    fix: str = FORCE_HINT

    def __post_init__(self) -> None:
        if (self.sha256_uncompressed is None) == (self.md5 is None):
            raise ValueError(f"{self.name}: give exactly one of sha256_uncompressed= or md5=")

    @property
    def checksum(self) -> str:
        """The checksum as the verification record stores it, e.g. ``"sha256-uncompressed:ba89..."``."""
        if self.sha256_uncompressed is not None:
            return f"sha256-uncompressed:{self.sha256_uncompressed.lower()}"
        return f"md5:{self.md5.lower()}"  # type: ignore[union-attr]

    @property
    def accepts_uncompressed(self) -> bool:
        """Whether a decompressed copy (the name without ``.gz``) will do: only if the checksum is of those bytes."""
        return self.md5 is None

    def urls(self) -> list[str]:
        """The URL on each mirror, in order (a mirror that already ends in the name is the URL itself)."""
        return [m if m.endswith(self.name) else m.rstrip("/") + "/" + self.name for m in self.mirrors]


def download_command(fix: str) -> str:
    """The command that downloads a missing file: ``fix`` (which replaces a bad one) without ``--force``."""
    return fix.replace(" --force", "")


def describe(checksum: str) -> str:
    """``"sha256-uncompressed:ab.."`` -> ``"SHA-256 (of the decompressed bytes) ab.."`` for messages."""
    kind, digest = checksum.split(":", 1)
    return f"SHA-256 (of the decompressed bytes) {digest}" if kind == "sha256-uncompressed" else f"MD5 {digest}"


# ----------------------------------------------------------------------------------------------------------
# Reading a file in bounded chunks
# ----------------------------------------------------------------------------------------------------------


def _chunks(f: BinaryIO) -> Iterator[bytes]:
    """What ``f`` holds, ``CHUNK`` bytes at a time."""
    return iter(lambda: f.read(CHUNK), b"")


def _bounded(chunks: Iterator[bytes], limit: int, too_long: str) -> Iterator[bytes]:
    """``chunks`` as they come, until their total passes ``limit``: then ``BadContent(too_long)``."""
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > limit:
            raise BadContent(too_long)
        yield chunk


def _gunzip_chunks(f: BinaryIO, limit: int) -> Iterator[bytes]:
    """The decompressed content of the gzip stream ``f``, ``CHUNK`` bytes at a time, never past ``limit``.

    ``GzipFile.read(n)`` inflates at most ``n`` bytes per call, so memory stays at a few chunks even for a gzip
    bomb, which is refused as soon as it passes ``limit``. Raises ``BadContent`` for a stream that is not
    gzip, is damaged (CRC, length), stops short, or is too long.
    """
    too_long = f"longer than {limit} bytes once decompressed (the most it can be)"
    try:
        with gzip.GzipFile(fileobj=f, mode="rb") as gz:
            yield from _bounded(_chunks(gz), limit, too_long)
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:  # a truncated stream is EOFError
        raise BadContent(f"not a valid gzip file ({e or type(e).__name__})") from None


def _content_chunks(f: BinaryIO, name: str, size_uncompressed: int | None) -> Iterator[bytes]:
    """The file's content (gunzipped for a ``.gz`` name) in chunks, bounded by ``size_uncompressed``."""
    limit = UNKNOWN_SIZE_CAP if size_uncompressed is None else size_uncompressed
    if name.endswith(".gz"):
        return _gunzip_chunks(f, limit)
    return _bounded(_chunks(f), limit, f"longer than {limit} bytes (the most it can be)")


def hash_stream(f: BinaryIO, name: str, file: DataFile) -> str:
    """The checksum of the stream ``f`` (a copy of ``file`` called ``name``: gunzipped if it ends in ``.gz``),
    of the kind ``file.checksum`` is, in chunks."""
    kind = file.checksum.split(":", 1)[0]
    if kind == "md5":  # of the stored bytes: stream them, the CIFAR-10 archive is 170 MB
        h = hashlib.md5(usedforsecurity=False)
        chunks = _chunks(f)
    else:
        h = hashlib.sha256()
        chunks = _content_chunks(f, name, file.size_uncompressed)
    for chunk in chunks:
        h.update(chunk)
    return f"{kind}:{h.hexdigest()}"


@contextlib.contextmanager
def _reading(path: Path, fix: str) -> Iterator[None]:
    """Turns what can go wrong while reading ``path`` (bad content, an OSError) into a one-line DataError."""
    try:
        yield
    except BadContent as e:
        raise DataError(f"{path} is corrupt: {e}; delete it and run `{fix}`") from None
    except OSError as e:
        raise DataError(f"cannot read {path} ({e.strerror or type(e).__name__}); check its permissions, or "
                        f"delete it and run `{fix}`") from None


def read_bytes(path: str | os.PathLike[str], size_uncompressed: int | None = None, *,
               fix: str = FORCE_HINT) -> bytes:
    """The file's content, gunzipped when its name ends in ``.gz``.

    Args:
        path: the file.
        size_uncompressed: the content's known size; a file whose content is longer is refused as corrupt
            after reading at most one chunk past it. ``None``: ``UNKNOWN_SIZE_CAP``.
        fix: the command the error message suggests.
    """
    path = Path(path)
    with _reading(path, fix), open(path, "rb") as f:
        return b"".join(_content_chunks(f, path.name, size_uncompressed))


# ----------------------------------------------------------------------------------------------------------
# Checking a file on disk
# ----------------------------------------------------------------------------------------------------------


def _actual(path: Path, file: DataFile, content: bytes | None) -> str:
    """The checksum of ``path`` as ``file`` asks for it; ``content``: its decompressed bytes if the caller has them.

    Raises ``BadContent`` (not gzip, too long) or ``OSError`` (unreadable).
    """
    if content is not None and file.md5 is None:
        return f"sha256-uncompressed:{hashlib.sha256(content).hexdigest()}"
    with open(path, "rb") as f:
        return hash_stream(f, path.name, file)


def verify(path: str | os.PathLike[str], file: DataFile, *, content: bytes | None = None,
           use_cache: bool = True) -> Path:
    """Check that ``path`` (a copy of ``file``) has ``file``'s checksum, or raise ``DataError``.

    Args:
        path: the copy on disk: ``file.name``, or its decompressed copy (see ``layout.locate``).
        file: the checksum, the decompressed size and the fixing command.
        content: the file's decompressed bytes, when the caller has already read them (saves a second read).
        use_cache: ``False`` re-hashes even when the verification record says the file is unchanged.

    Returns:
        ``path`` as a ``Path``.
    """
    path = Path(path)
    expected = file.checksum
    if not path.is_file():
        if path.exists() or path.is_symlink():  # there is something under that name, but not a readable file
            raise DataError(f"{path} is not a regular file ({not_a_file(path)}); remove it and run "
                            f"`{download_command(file.fix)}`")
        raise DataError(f"{path} does not exist; run `{download_command(file.fix)}`")
    with _reading(path, file.fix):
        st = path.stat()
        if use_cache and record.lookup(path, st) == expected:
            return path
        actual = _actual(path, file, content)
    if actual != expected:
        raise DataError(f"{path} is corrupt or not the expected file: expected {describe(expected)}, "
                        f"found {actual.split(':', 1)[1]}; run `{file.fix}`")
    record.store(path, st, expected)
    return path
