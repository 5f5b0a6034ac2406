"""Bounded downloads: fetch a data file from its mirrors, and keep it only once its checksum matches.

The rules, so that a data file on disk is either good or absent, and a bad mirror can cost neither unbounded
memory, disk nor time:

* **One writer.** A download is written through ``minilottery.files.atomic_open``: a fresh temporary file beside
  the target, checked while it streams in, ``fsync``-ed, then renamed over the final name (``os.replace``). An
  interrupted (even Ctrl-C) or corrupt download never leaves a file under the final name, never replaces a good
  one, and its temporary file is removed. The verification record is written the same way.
* **Bounded size.** The data sets give each file's size as the mirrors serve it and, for ``.gz`` files, its
  decompressed size. A download stops as soon as it has read more than ``max_download_size(size)``: the size
  plus ``max(1 MiB, size / 8)`` (a mirror that recompressed MNIST with ``gzip -1`` serves an 11 % bigger
  train-images file; the margin keeps such a copy, whose decompressed checksum is still right, while a runaway
  body is cut off). Decompression streams and stops past the decompressed size (see ``checksums.py``).
* **Bounded time.** Each ``fetch`` (all its mirrors together) has an overall ``deadline`` (``DEADLINE``, 10
  minutes), checked before every socket read, so a mirror that trickles a byte at a time cannot hold it
  forever. Each connection also has a socket ``timeout`` (``TIMEOUT``) for a mirror that goes silent, clipped
  to the time left, so a fetch ends at most one socket timeout after its deadline.
* **No litter.** Before downloading, the temporary files that killed downloads of the same file left are swept
  (``layout.sweep_stale``, with the deadline as their age limit).

A failure raises ``DataError`` (``OfflineError`` when no mirror could be reached) with a one-line message that
names the file, what each mirror did, and how to fix it.
"""

from __future__ import annotations

import http.client
import os
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from minilottery.checks import check_real
from minilottery.data import record
from minilottery.data.checksums import (
    CHUNK,
    UNKNOWN_SIZE_CAP,
    BadContent,
    DataError,
    DataFile,
    describe,
    download_command,
    hash_stream,
    verify,
)
from minilottery.data.layout import sweep_stale
from minilottery.data.paths import ENV_VAR, data_dir
from minilottery.files import atomic_open

TIMEOUT = 30.0  # seconds a mirror may stay silent before the next one is tried
DEADLINE = 600.0  # seconds one fetch may take, all mirrors together: 170 MB (CIFAR-10) in 600 s is 2.3 Mbit/s
SIZE_MARGIN = 1 << 20  # the least a download may exceed its known size by (see max_download_size)


class OfflineError(DataError):
    """No mirror could be reached; ``failures`` holds one "url: reason" line per mirror tried."""

    def __init__(self, message: str, failures: Sequence[str] = ()):
        super().__init__(message)
        self.failures = list(failures)


class _TransferFailed(Exception):
    """The connection failed: refused, HTTP error, silent too long, closed early (internal)."""


class _DeadlinePassed(Exception):
    """The fetch ran out of time (internal: becomes a DataError naming the deadline)."""


def max_download_size(size: int | None) -> int:
    """The most bytes a download of a file of ``size`` bytes may read: ``size + max(1 MiB, size // 8)``.

    ``None`` (size not known) gives ``UNKNOWN_SIZE_CAP``. See the module docstring for why the margin.
    """
    if size is None:
        return UNKNOWN_SIZE_CAP
    return size + max(SIZE_MARGIN, size // 8)


def check_deadline(deadline: float) -> float:
    """``deadline`` as a float number of seconds > 0, or a one-line ValueError naming ``--deadline``."""
    return check_real("--deadline", deadline, low=0, low_open=True,
                      hint=f"give the seconds one file's download may take, e.g. {DEADLINE:g}")


def _open_url(url: str, timeout: float):
    """Open ``url`` for reading (a seam the tests replace to simulate an interrupted transfer)."""
    request = urllib.request.Request(url, headers={"User-Agent": "minilottery"})
    return urllib.request.urlopen(request, timeout=timeout)


def _reason(e: BaseException) -> str:
    """A short, one-line reason for a failed request."""
    if isinstance(e, urllib.error.HTTPError):
        text = f"HTTP {e.code} {e.reason}"
    elif isinstance(e, urllib.error.URLError):
        text = str(e.reason)
    else:
        text = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    return " ".join(text.split())  # a server's reason phrase may hold newlines; messages are one line


class _Body:
    """The body of one HTTP response as a file to read from, copying every byte read into ``sink``.

    It reads the socket with ``read1`` (whatever has arrived, at most the size asked for), checking the fetch's
    deadline before each socket read, so a mirror that trickles a byte at a time cannot hold it past the
    deadline. More than ``cap`` bytes are refused as the wrong file. Network errors become ``_TransferFailed``
    so that callers can tell them from a bad gzip stream (both are OSErrors).
    """

    def __init__(self, response, sink: BinaryIO, cap: int, length: int | None, stop: float, bar):
        self._read1 = getattr(response, "read1", response.read)
        self.sink, self.cap, self.length, self.stop, self.bar = sink, cap, length, stop, bar
        self.received = 0

    def read(self, n: int = CHUNK) -> bytes:
        """``n`` bytes, fewer only at the end of the body: gzip's header parser relies on full reads."""
        parts = []
        while n > 0 and (part := self._read_some(n)):
            parts.append(part)
            n -= len(part)
        return b"".join(parts)

    def _read_some(self, n: int) -> bytes:
        """What one socket read gives, at most ``n`` bytes; ``b""`` at the end of the body."""
        if time.monotonic() >= self.stop:
            raise _DeadlinePassed(f"received {self.received} of {self.length or 'unknown'} bytes")
        try:
            chunk = self._read1(n)
        except (OSError, http.client.HTTPException) as e:  # URLError and socket timeouts are OSErrors
            raise _TransferFailed(_reason(e)) from None
        if not chunk:  # urllib does not always notice a connection closed early; a short body is a failed download
            if self.length is not None and self.received != self.length:
                raise _TransferFailed(f"the connection closed after {self.received} of {self.length} bytes")
            return b""
        self.received += len(chunk)
        if self.received > self.cap:
            raise BadContent(f"more than {self.cap} bytes, the most this file can be")
        self.sink.write(chunk)
        self.bar.update(len(chunk))
        return chunk


def _download(url: str, sink: BinaryIO, file: DataFile, timeout: float, stop: float, progress: bool) -> str:
    """Stream ``url`` into ``sink``, hashing it on the way (see ``_Body``); returns its checksum."""
    from tqdm import tqdm  # imported here: only downloads need it, loading files already on disk does not

    try:
        response = _open_url(url, timeout)
    except (OSError, http.client.HTTPException) as e:
        raise _TransferFailed(_reason(e)) from None
    cap = max_download_size(file.size)
    with response:
        header = response.headers.get("Content-Length") if hasattr(response, "headers") else None
        length = int(header) if header and header.isdigit() else None
        if length is not None and length > cap:  # refuse before reading a byte
            raise BadContent(f"announces {length} bytes, more than the {cap} this file can be")
        with tqdm(total=length, unit="B", unit_scale=True, unit_divisor=1024, desc=file.name,
                  disable=not progress, leave=False) as bar:
            body = _Body(response, sink, cap, length, stop, bar)
            actual = hash_stream(body, file.name, file)
            while body.read(CHUNK):  # the rest of the body, e.g. after the end of the gzip stream
                pass
    return actual


def fetch(file: DataFile, dest_dir: str | os.PathLike[str] | None = None, *, progress: bool = True,
          force: bool = False, timeout: float = TIMEOUT, deadline: float = DEADLINE) -> Path:
    """Download ``file`` into ``dest_dir`` from the first of its mirrors that serves it with the right checksum.

    Args:
        file: the name, mirrors, checksum and sizes (``size`` bounds the download, ``size_uncompressed`` the
            decompression).
        dest_dir: the folder to write to; ``None`` means ``data_dir()``.
        progress: show a progress bar (on stderr).
        force: download even when a good copy is present (a bad download still never replaces it).
        timeout: seconds to wait on a silent connection before trying the next mirror.
        deadline: seconds the whole fetch (all mirrors) may take; temporary files of ``file`` untouched for
            this long are swept before it starts.

    Returns:
        The path of the verified file.

    Raises:
        DataError: a file already there is corrupt (and ``force`` is false), no mirror served a good copy, or the
            deadline passed. ``OfflineError`` (a ``DataError``) when no mirror could be reached.
    """
    stop = time.monotonic() + check_deadline(deadline)
    dest = data_dir(dest_dir)
    final = dest / file.name
    if final.exists() and not force:
        return verify(final, file)  # a corrupt file raises here and is left for the user to --force
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create the data folder {dest} ({e}); pass --data-dir or set {ENV_VAR}") from None
    if not record.writable(dest):
        raise DataError(f"the data folder {dest} is read-only; pass --data-dir or set {ENV_VAR} to a writable folder")
    sweep_stale(dest, [file.name, record.SIDECAR_NAME], older_than=deadline)

    urls = file.urls()
    elsewhere = f"fetch it from {' or '.join(urls)} and put it in {dest} (or set {ENV_VAR} to a folder that has it)"
    kept = f"; the existing {final} is unchanged" if final.exists() else ""
    failures: list[str] = []
    bad_content = False  # some mirror answered, but with the wrong bytes
    for url in urls:
        try:
            left = stop - time.monotonic()
            if left <= 0:
                raise _DeadlinePassed("not tried")
            with atomic_open(final) as f:  # renamed over ``final`` only if the block succeeds
                # the socket timeout is clipped to the time left, so a silent mirror cannot outlast the deadline
                actual = _download(url, f, file, min(timeout, left), stop, progress)
                if actual != file.checksum:
                    raise BadContent(f"wrong checksum {actual.split(':', 1)[1]}")
            record.store(final, final.stat(), file.checksum)  # so the next load does not hash it again
            return final
        except BadContent as e:
            bad_content = True
            failures.append(f"{url}: {e}")
        except (_TransferFailed, _DeadlinePassed) as e:
            failures.append(f"{url}: {e}")
            # a socket timeout is clipped to the time left, so one at the end is the deadline, not a dead mirror
            if isinstance(e, _DeadlinePassed) or time.monotonic() >= stop:
                raise DataError(
                    f"downloading {file.name} took longer than its deadline of {deadline:g} s "
                    f"({'; '.join(failures)}); nothing was saved{kept}; retry on a faster connection, allow more "
                    f"time (`{download_command(file.fix)} --deadline SECONDS`), or {elsewhere}") from None
        except OSError as e:  # network errors are _TransferFailed by now: this one is writing to disk
            raise DataError(f"cannot write {file.name} in {dest} ({_reason(e)}){kept}; free some space, or pass "
                            f"--data-dir or set {ENV_VAR} to another folder") from None

    tried = "; ".join(failures)
    if bad_content:
        raise DataError(f"no mirror served a good {file.name} (expected {describe(file.checksum)}; {tried}); "
                        f"nothing was saved{kept}; try again later, or {elsewhere}")
    raise OfflineError(f"could not download {file.name} ({tried}){kept}; if offline, {elsewhere}", failures)
