"""Verified, bounded downloads: fetch a file from a list of mirrors and trust it only once its checksum matches.

The rules this module keeps, so that a data file on disk is either good or absent, and a bad mirror can cost
neither unbounded memory, disk nor time:

* **One writer.** A download is written through ``minilottery.files.atomic_open``: a fresh temporary file beside
  the target, checked while it streams in, ``fsync``-ed, then renamed over the final name (``os.replace``). An
  interrupted (even Ctrl-C) or corrupt download never leaves a file under the final name, never replaces a good
  one, and its temporary file is removed. The ``.verified.json`` record is written the same way.
* **Bounded size.** The data sets' tables give each file's size as the mirrors serve it and, for ``.gz`` files,
  its decompressed size. A download stops as soon as it has read more than ``max_download_size(size)``: the size
  plus ``max(1 MiB, size / 8)`` (a mirror that recompressed MNIST with ``gzip -1`` serves an 11 % bigger
  train-images file; the margin keeps such a copy, whose decompressed checksum is still right, while a runaway
  body is cut off). Decompression streams, ``CHUNK`` (1 MiB) at a time, and stops at the first chunk that
  goes past the decompressed size: a gzip bomb is refused as corrupt after that many bytes, in a few MiB.
  Reading a ``.gz`` already on disk (``read_bytes``, ``verify``) is bounded the same way. A file whose sizes
  are not given (a test's own files) is bounded by ``UNKNOWN_SIZE_CAP``, more than any data set here.
* **Bounded time.** Each ``fetch`` (all its mirrors together) has an overall ``deadline`` (``DEADLINE``, 10
  minutes), checked before every socket read, so a mirror that trickles a byte at a time cannot hold it
  forever. Each connection also has a socket ``timeout`` (``TIMEOUT``) for a mirror that goes silent, clipped
  to the time left, so a fetch ends at most one socket timeout after its deadline.
* **No litter.** A killed process cannot run its clean-up, so before downloading, the temporary files that
  earlier downloads of the same files left (``.<name>.*.tmp``, and ``.<name>.*.part`` from older versions) are
  deleted if untouched for longer than the deadline (``sweep_stale``). A running download gives up at its
  deadline, so its temporary file is younger than that: a concurrent download is not disturbed.
* **Checksums.** Either the SHA-256 of the *decompressed* bytes (for ``.gz`` files: robust to how a mirror
  gzipped them; MNIST publishes these) or the MD5 of the file exactly as stored (what CIFAR-10 publishes).
* **Checked once.** Hashing tens of megabytes on every load would be wasted work, so a successful check is
  remembered in a small JSON sidecar, ``.verified.json``, keyed by file name, holding the file's size,
  ``mtime_ns`` and checksum. A file that changed since (other size or time) is checked again. When the data
  folder is read-only (a shared copy), the record goes to the user cache folder instead, keyed by the file's
  absolute path.

Every failure a user can cause (a file missing, corrupt, too big, too long once decompressed, unreachable, too
slow) raises ``DataError`` with a one-line message that names the file and says how to fix it.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import json
import os
import stat
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import BinaryIO, Iterator, Sequence

from minilottery.data.paths import ENV_VAR, data_dir, user_cache_dir
from minilottery.files import atomic_open, atomic_write_bytes, stale_temporaries

FORCE_HINT = "minilottery data download --force"
SIDECAR_NAME = ".verified.json"
CHUNK = 1 << 20  # bytes read, hashed or decompressed per step: the memory a download or a check holds at once
TIMEOUT = 30.0  # seconds a mirror may stay silent before the next one is tried
DEADLINE = 600.0  # seconds one fetch may take, all mirrors together: the 170 MB CIFAR-10 archive needs ~2.3 Mbit/s
SIZE_MARGIN = 1 << 20  # the least a download may exceed its known size by (see max_download_size)
UNKNOWN_SIZE_CAP = 1 << 30  # the bound for a file whose size is not given: 1 GiB, above any data set here
_LEGACY_SUFFIX = ".part"  # what temporary downloads were called before minilottery.files existed


class DataError(Exception):
    """A data file is missing, corrupt or unreadable; the message (one line) says how to fix it."""


class OfflineError(DataError):
    """No mirror could be reached; ``failures`` holds one "url: reason" line per mirror tried."""

    def __init__(self, message: str, failures: Sequence[str] = ()):
        super().__init__(message)
        self.failures = list(failures)


class _BadContent(Exception):
    """A mirror (or a file on disk) has the wrong bytes: too many, not gzip, wrong checksum (internal)."""


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


# ----------------------------------------------------------------------------------------------------------
# Reading and checking a file
# ----------------------------------------------------------------------------------------------------------


def _gunzip_chunks(f: BinaryIO, limit: int) -> Iterator[bytes]:
    """The decompressed content of the gzip stream ``f``, ``CHUNK`` bytes at a time, never past ``limit``.

    ``GzipFile.read(n)`` inflates at most ``n`` bytes per call, so memory stays at a few chunks even for a gzip
    bomb, which is refused as soon as it passes ``limit``. Raises ``_BadContent`` for a stream that is not
    gzip, is damaged (CRC, length), stops short, or is too long.
    """
    total = 0
    try:
        with gzip.GzipFile(fileobj=f, mode="rb") as gz:
            while chunk := gz.read(CHUNK):
                total += len(chunk)
                if total > limit:
                    raise _BadContent(f"longer than {limit} bytes once decompressed (the most it can be)")
                yield chunk
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:  # a truncated stream is EOFError
        raise _BadContent(f"not a valid gzip file ({e or type(e).__name__})") from None


def _raw_chunks(f: BinaryIO, limit: int) -> Iterator[bytes]:
    """The content of an uncompressed stream ``f``, ``CHUNK`` bytes at a time, never past ``limit``."""
    total = 0
    while chunk := f.read(CHUNK):
        total += len(chunk)
        if total > limit:
            raise _BadContent(f"longer than {limit} bytes (the most it can be)")
        yield chunk


def _content_chunks(f: BinaryIO, name: str, size_uncompressed: int | None) -> Iterator[bytes]:
    """The file's content (gunzipped for a ``.gz`` name) in chunks, bounded by ``size_uncompressed``."""
    limit = UNKNOWN_SIZE_CAP if size_uncompressed is None else size_uncompressed
    return _gunzip_chunks(f, limit) if name.endswith(".gz") else _raw_chunks(f, limit)


def _unreadable(path: Path, e: OSError, fix: str) -> DataError:
    reason = e.strerror or type(e).__name__
    return DataError(f"cannot read {path} ({reason}); check its permissions, or delete it and run `{fix}`")


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
    try:
        with open(path, "rb") as f:
            return b"".join(_content_chunks(f, path.name, size_uncompressed))
    except _BadContent as e:
        raise DataError(f"{path} is corrupt: {e}; delete it and run `{fix}`") from None
    except OSError as e:
        raise _unreadable(path, e, fix) from None


def _expected(sha256_uncompressed: str | None, md5: str | None) -> str:
    """The checksum as stored in the verification record, e.g. ``"sha256-uncompressed:ba89..."``."""
    if (sha256_uncompressed is None) == (md5 is None):
        raise ValueError("give exactly one of sha256_uncompressed= or md5=")
    if sha256_uncompressed is not None:
        return f"sha256-uncompressed:{sha256_uncompressed.lower()}"
    return f"md5:{md5.lower()}"  # type: ignore[union-attr]


def _describe(expected: str) -> str:
    """``"sha256-uncompressed:ab.."`` -> ``"SHA-256 (of the decompressed bytes) ab.."`` for messages."""
    kind, digest = expected.split(":", 1)
    return f"SHA-256 (of the decompressed bytes) {digest}" if kind == "sha256-uncompressed" else f"MD5 {digest}"


def _hash_stream(f: BinaryIO, name: str, expected: str, size_uncompressed: int | None) -> str:
    """Hash the stream ``f`` (a file called ``name``) the way ``expected`` asks, in chunks."""
    kind = expected.split(":", 1)[0]
    if kind == "md5":  # of the stored bytes: stream them, the CIFAR-10 archive is 170 MB
        h = hashlib.md5(usedforsecurity=False)
        chunks: Iterator[bytes] = iter(lambda: f.read(CHUNK), b"")
    else:
        h = hashlib.sha256()
        chunks = _content_chunks(f, name, size_uncompressed)
    for chunk in chunks:
        h.update(chunk)
    return f"{kind}:{h.hexdigest()}"


def _actual(path: Path, expected: str, content: bytes | None, size_uncompressed: int | None = None) -> str:
    """Hash ``path`` the way ``expected`` asks; ``content`` = its decompressed bytes if the caller has them.

    Raises ``_BadContent`` (not gzip, too long) or ``OSError`` (unreadable).
    """
    if content is not None and not expected.startswith("md5:"):
        return f"sha256-uncompressed:{hashlib.sha256(content).hexdigest()}"
    with open(path, "rb") as f:
        return _hash_stream(f, path.name, expected, size_uncompressed)


def verify(
    path: str | os.PathLike[str],
    sha256_uncompressed: str | None = None,
    *,
    md5: str | None = None,
    content: bytes | None = None,
    use_cache: bool = True,
    fix: str = FORCE_HINT,
    size_uncompressed: int | None = None,
) -> Path:
    """Check that ``path`` has the expected checksum, or raise ``DataError``.

    Args:
        path: the file.
        sha256_uncompressed: SHA-256 (hex) of the file's decompressed bytes (the file itself if not ``.gz``).
        md5: MD5 (hex) of the file as stored. Give exactly one of the two.
        content: the file's decompressed bytes, when the caller has already read them (saves a second read).
        use_cache: ``False`` re-hashes even when the verification record says the file is unchanged.
        fix: the command the error message suggests (the data set's ``download --force``).
        size_uncompressed: the content's known size: a longer file is corrupt (and is not decompressed past it).

    Returns:
        ``path`` as a ``Path``.
    """
    path = Path(path)
    expected = _expected(sha256_uncompressed, md5)
    if not path.is_file():
        if path.exists() or path.is_symlink():  # there is something under that name, but not a readable file
            raise DataError(f"{path} is not a regular file ({_not_a_file(path)}); remove it and run "
                            f"`{fix.replace(' --force', '')}`")
        raise DataError(f"{path} does not exist; run `{fix.replace(' --force', '')}`")
    try:
        st = path.stat()
        if use_cache and _cache_lookup(path, st) == expected:
            return path
        actual = _actual(path, expected, content, size_uncompressed)
    except _BadContent as e:
        raise DataError(f"{path} is corrupt: {e}; delete it and run `{fix}`") from None
    except OSError as e:
        raise _unreadable(path, e, fix) from None
    if actual != expected:
        raise DataError(
            f"{path} is corrupt or not the expected file: expected {_describe(expected)}, "
            f"found {actual.split(':', 1)[1]}; run `{fix}`"
        )
    _cache_store(path, st, expected)
    return path


# ----------------------------------------------------------------------------------------------------------
# The verification record (.verified.json)
# ----------------------------------------------------------------------------------------------------------


def _writable(directory: Path) -> bool:
    """True when we may write into ``directory``.

    ``os.access`` alone is not enough: as root it says yes even for a folder whose mode has no write bits, which
    is how a shared read-only copy of the data says "don't write here".
    """
    try:
        mode = directory.stat().st_mode
    except OSError:
        return False
    return os.access(directory, os.W_OK) and bool(mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _cache_location(path: Path) -> tuple[Path, str]:
    """(record file, key) for ``path``: the sidecar beside it, else the user cache keyed by absolute path."""
    directory = path.parent
    if _writable(directory):
        return directory / SIDECAR_NAME, path.name
    return user_cache_dir() / "verified.json", str(path.resolve())


def _cache_read(record: Path) -> dict:
    try:
        data = json.loads(record.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):  # missing or damaged record: it only saves time, so start afresh
        return {}


def _cache_lookup(path: Path, st: os.stat_result) -> str | None:
    """The checksum recorded for ``path`` if the file is unchanged since it was checked, else ``None``."""
    record, key = _cache_location(path)
    entry = _cache_read(record).get(key)
    if isinstance(entry, dict) and entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns:
        return entry.get("checksum")
    return None


def _cache_store(path: Path, st: os.stat_result, expected: str) -> None:
    record, key = _cache_location(path)
    data = _cache_read(record)
    data[key] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "checksum": expected}
    try:
        atomic_write_bytes(record, json.dumps(data, indent=1, sort_keys=True).encode())
    except OSError:
        pass  # the record is an optimisation; failing to write it must not fail a load


# ----------------------------------------------------------------------------------------------------------
# Temporary files that killed downloads left behind
# ----------------------------------------------------------------------------------------------------------


def sweep_stale(folder: str | os.PathLike[str], names: Sequence[str], older_than: float = DEADLINE) -> list[Path]:
    """Delete the temporary files of ``names`` in ``folder`` that nobody has written to for ``older_than`` seconds.

    Temporary names are ``.<name>.<random>.tmp`` (``minilottery.files``) or ``.<name>.<random>.part`` (older
    versions). A download in progress gives up at its deadline, so a file untouched (by modification time) for
    longer than the deadline belongs to a process that was killed.

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
            continue  # not one of ours: another program's temporary file, or another data set's
        try:
            if now - path.lstat().st_mtime > older_than:
                path.unlink()
                removed.append(path)
        except OSError:  # swept by another process first, or a read-only folder: this is only housekeeping
            pass
    return removed


# ----------------------------------------------------------------------------------------------------------
# Downloading
# ----------------------------------------------------------------------------------------------------------


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
            raise _BadContent(f"more than {self.cap} bytes, the most this file can be")
        self.sink.write(chunk)
        self.bar.update(len(chunk))
        return chunk


def _download(url: str, sink: BinaryIO, name: str, expected: str, size: int | None,
              size_uncompressed: int | None, timeout: float, stop: float, progress: bool) -> str:
    """Stream ``url`` into ``sink``, hashing it on the way (see ``_Body``); returns its checksum as ``expected``."""
    from tqdm import tqdm  # imported here: only downloads need it, loading files already on disk does not

    try:
        response = _open_url(url, timeout)
    except (OSError, http.client.HTTPException) as e:
        raise _TransferFailed(_reason(e)) from None
    cap = max_download_size(size)
    with response:
        header = response.headers.get("Content-Length") if hasattr(response, "headers") else None
        length = int(header) if header and header.isdigit() else None
        if length is not None and length > cap:  # refuse before reading a byte
            raise _BadContent(f"announces {length} bytes, more than the {cap} this file can be")
        with tqdm(total=length, unit="B", unit_scale=True, unit_divisor=1024, desc=name,
                  disable=not progress, leave=False) as bar:
            body = _Body(response, sink, cap, length, stop, bar)
            actual = _hash_stream(body, name, expected, size_uncompressed)
            while body.read(CHUNK):  # the rest of the body, e.g. after the end of the gzip stream
                pass
    return actual


def _urls(filename: str, mirrors: Sequence[str]) -> list[str]:
    return [m if m.endswith(filename) else m.rstrip("/") + "/" + filename for m in mirrors]


def fetch(
    filename: str,
    mirrors: Sequence[str],
    sha256_uncompressed: str | None = None,
    dest_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    *,
    md5: str | None = None,
    size: int | None = None,
    size_uncompressed: int | None = None,
    force: bool = False,
    timeout: float = TIMEOUT,
    deadline: float = DEADLINE,
    fix: str = FORCE_HINT,
) -> Path:
    """Download ``filename`` into ``dest_dir`` from the first mirror that serves a file with the right checksum.

    Args:
        filename: the file's name, both on the mirrors and on disk (e.g. ``"train-images-idx3-ubyte.gz"``).
        mirrors: base URLs, tried in order; the URL is ``mirror + filename``.
        sha256_uncompressed: SHA-256 (hex) of the decompressed bytes; or give ``md5=`` of the stored file.
        dest_dir: the folder to write to; ``None`` means ``data_dir()``.
        progress: show a progress bar (on stderr).
        size: the file's size as the mirrors serve it; a mirror sending more than ``max_download_size(size)``
            bytes is cut off. ``None``: ``UNKNOWN_SIZE_CAP``.
        size_uncompressed: the decompressed size (of a ``.gz``): decompression stops past it.
        force: download even when a good copy is present (a bad download still never replaces it).
        timeout: seconds to wait on a silent connection before trying the next mirror.
        deadline: seconds the whole fetch (all mirrors) may take; temporary files of ``filename`` untouched for
            this long are swept before it starts.
        fix: the command an error message suggests for a corrupt file already there.

    Returns:
        The path of the verified file.

    Raises:
        DataError: a file already there is corrupt (and ``force`` is false), no mirror served a good copy, or the
            deadline passed. ``OfflineError`` (a ``DataError``) when no mirror could be reached.
    """
    if not deadline > 0:
        raise ValueError(f"deadline must be a positive number of seconds, got {deadline}")
    stop = time.monotonic() + deadline
    dest = data_dir(dest_dir)
    final = dest / filename
    expected = _expected(sha256_uncompressed, md5)
    kw = {"md5": md5} if md5 is not None else {"sha256_uncompressed": sha256_uncompressed}
    if final.exists() and not force:
        # a corrupt file raises here and is left for the user to --force
        return verify(final, **kw, fix=fix, size_uncompressed=size_uncompressed)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create the data folder {dest} ({e}); pass --data-dir or set {ENV_VAR}") from None
    if not _writable(dest):
        raise DataError(f"the data folder {dest} is read-only; pass --data-dir or set {ENV_VAR} to a writable folder")
    sweep_stale(dest, [filename, SIDECAR_NAME], older_than=deadline)

    urls = _urls(filename, mirrors)
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
                actual = _download(url, f, filename, expected, size, size_uncompressed, min(timeout, left), stop,
                                   progress)
                if actual != expected:
                    raise _BadContent(f"wrong checksum {actual.split(':', 1)[1]}")
            _cache_store(final, final.stat(), expected)  # so the next load does not hash it again
            return final
        except _BadContent as e:
            bad_content = True
            failures.append(f"{url}: {e}")
        except (_TransferFailed, _DeadlinePassed) as e:
            failures.append(f"{url}: {e}")
            # a socket timeout is clipped to the time left, so one at the end is the deadline, not a dead mirror
            if isinstance(e, _DeadlinePassed) or time.monotonic() >= stop:
                raise _deadline_error(filename, deadline, failures, kept, fix, elsewhere) from None
        except OSError as e:  # network errors are _TransferFailed by now: this one is writing to disk
            raise DataError(f"cannot write {filename} in {dest} ({_reason(e)}){kept}; free some space, or pass "
                            f"--data-dir or set {ENV_VAR} to another folder") from None

    tried = "; ".join(failures)
    if bad_content:
        raise DataError(
            f"no mirror served a good {filename} (expected {_describe(expected)}; {tried}); nothing was saved"
            f"{kept}; try again later, or {elsewhere}"
        )
    raise OfflineError(f"could not download {filename} ({tried}){kept}; if offline, {elsewhere}", failures)


def _deadline_error(filename: str, deadline: float, failures: Sequence[str], kept: str, fix: str,
                    elsewhere: str) -> DataError:
    command = fix.replace(" --force", "")
    return DataError(f"downloading {filename} took longer than its deadline of {deadline:g} s "
                     f"({'; '.join(failures)}); nothing was saved{kept}; retry on a faster connection, allow more "
                     f"time (`{command} --deadline SECONDS`), or {elsewhere}")


def ensure(
    filename: str,
    mirrors: Sequence[str],
    sha256_uncompressed: str | None = None,
    dest_dir: str | os.PathLike[str] | None = None,
    *,
    md5: str | None = None,
    size: int | None = None,
    size_uncompressed: int | None = None,
    download: bool = True,
    progress: bool = True,
    recheck: bool = False,
    verify_existing: bool = True,
    deadline: float = DEADLINE,
    fix: str = FORCE_HINT,
) -> Path:
    """The verified local copy of ``filename``, downloading it when it is missing and ``download`` is true.

    A ``.gz`` file may also be present decompressed (``filename`` without ``.gz``); the SHA-256 of the
    decompressed bytes is the same, so either is accepted.

    Args:
        recheck: re-hash even when the verification record says the file is unchanged (``data check``).
        verify_existing: ``False`` returns a file already on disk unchecked, for a caller that verifies it
            while reading it anyway (``verify(..., content=...)``), so a cold load reads each file once.
        The rest as for ``fetch``; a downloaded file is always verified.
    """
    dest = data_dir(dest_dir)
    kw = {"md5": md5} if md5 is not None else {"sha256_uncompressed": sha256_uncompressed}
    path = locate(filename, dest, accept_uncompressed=md5 is None)
    if path is not None:
        if not verify_existing:
            return path
        return verify(path, **kw, use_cache=not recheck, fix=fix, size_uncompressed=size_uncompressed)
    if download:
        return fetch(filename, mirrors, dest_dir=dest, progress=progress, size=size,
                     size_uncompressed=size_uncompressed, deadline=deadline, fix=fix, **kw)
    raise missing_error([filename], mirrors, dest, fix, accept_uncompressed=md5 is None)


def locate(filename: str, dest_dir: str | os.PathLike[str], accept_uncompressed: bool = True) -> Path | None:
    """``dest_dir/filename`` if it exists, else (for a ``.gz`` name) the decompressed copy if it exists."""
    candidates = [Path(dest_dir) / filename]
    if accept_uncompressed and filename.endswith(".gz"):
        candidates.append(Path(dest_dir) / filename[: -len(".gz")])
    return next((p for p in candidates if p.is_file()), None)


def _not_a_file(path: Path) -> str:
    """What is at ``path`` instead of a regular file, in a few words."""
    if path.is_symlink() and not path.exists():
        return f"a broken link to {os.readlink(path)}"
    return "a folder" if path.is_dir() else "not a regular file"


def _found_instead(filename: str, dest_dir: Path, accept_uncompressed: bool) -> list[str]:
    """Notes on what is in ``dest_dir`` under ``filename``'s name that ``locate`` cannot use."""
    notes = []
    path = dest_dir / filename
    if path.exists() or path.is_symlink():  # locate found no file, so this is a link to nowhere or a folder
        notes.append(f"{path} is {_not_a_file(path)}")
    if not accept_uncompressed and filename.endswith(".gz"):
        unpacked = dest_dir / filename[: -len(".gz")]
        if unpacked.exists():  # e.g. a browser that gunzipped the download: the checksum is of the .gz
            notes.append(f"{unpacked} is there, but only the original {filename} is read")
    return notes


def missing_error(filenames: Sequence[str], mirrors: Sequence[str], dest_dir: str | os.PathLike[str],
                  fix: str = FORCE_HINT, offline: OfflineError | None = None,
                  accept_uncompressed: bool = True) -> DataError:
    """The one-line error for files that ``locate`` does not find: where to get them, where to put them.

    ``offline``: the download that just failed, whose reasons lead the message; otherwise the message
    suggests the download command. Something unusable under a file's name (a broken link, a folder) is named,
    so the message is not contradicted by ``ls``.
    """
    dest_dir = Path(dest_dir)
    command = fix.replace(" --force", "")
    notes = [n for name in filenames for n in _found_instead(name, dest_dir, accept_uncompressed)]
    found = f" ({'; '.join(notes)})" if notes else ""
    first = (f"could not download ({'; '.join(offline.failures)}): " if offline is not None
             else f"run `{command}`, or ")
    if len(filenames) == 1:
        where = " or ".join(_urls(filenames[0], mirrors))
        return DataError(f"{filenames[0]} is not in {dest_dir}{found}; {first}fetch it from {where} and put "
                         f"it there (or set {ENV_VAR} to a folder that has it)")
    return DataError(f"{', '.join(filenames)} are not in {dest_dir}{found}; {first}fetch them from "
                     f"{' or '.join(mirrors)} and put them there (or set {ENV_VAR} to a folder that has them)")
