"""Verified downloads: fetch a file from a list of mirrors and trust it only once its checksum matches.

The rules this module keeps, so that a data file on disk is either good or absent:

* A download goes to a temporary file in the destination folder, is checked, flushed to disk (``fsync``) and
  only then renamed over the final name (``os.replace`` is atomic on one file system). An interrupted or
  corrupt download never leaves a file under the final name, and never replaces a good one.
* The checksum is either the SHA-256 of the *decompressed* bytes (for ``.gz`` files: robust to how a mirror
  gzipped them; MNIST publishes these) or the MD5 of the file exactly as stored (what CIFAR-10 publishes).
* Hashing tens of megabytes on every load would be wasted work, so a successful check is remembered in a small
  JSON sidecar, ``.verified.json``, keyed by file name, holding the file's size, ``mtime_ns`` and checksum. A file
  that changed since (other size or time) is checked again. When the data folder is read-only (a shared copy),
  the record goes to the user cache folder instead, keyed by the file's absolute path.

Every failure a user can cause raises ``DataError`` with a one-line message that says what was expected, what
was found and how to fix it.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import json
import os
import stat
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import BinaryIO, Sequence

from minilottery.data.paths import ENV_VAR, data_dir, user_cache_dir

FORCE_HINT = "minilottery data download --force"
SIDECAR_NAME = ".verified.json"
_CHUNK = 1 << 16  # 64 KiB: big enough to be fast, small enough for a smooth progress bar


class DataError(Exception):
    """A data file is missing, corrupt or unreadable; the message (one line) says how to fix it."""


class OfflineError(DataError):
    """No mirror could be reached; ``failures`` holds one "url: reason" line per mirror tried."""

    def __init__(self, message: str, failures: Sequence[str] = ()):
        super().__init__(message)
        self.failures = list(failures)


class _BadContent(Exception):
    """A mirror answered, but not with the expected file (internal: becomes part of a DataError)."""


# ----------------------------------------------------------------------------------------------------------
# Reading and checking a file
# ----------------------------------------------------------------------------------------------------------


def _gunzip(raw: bytes) -> bytes:
    """Decompress gzip bytes; ``ValueError`` when they are not a complete gzip stream."""
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError; a truncated stream is EOFError
        raise ValueError(f"not a valid gzip file ({e or type(e).__name__})") from None


def read_bytes(path: str | os.PathLike[str]) -> bytes:
    """The file's content, gunzipped when its name ends in ``.gz``."""
    raw = Path(path).read_bytes()
    if not str(path).endswith(".gz"):
        return raw
    try:
        return _gunzip(raw)
    except ValueError as e:
        raise DataError(f"{path} is {e}; delete it or run `{FORCE_HINT}`") from None


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


def _actual(path: Path, expected: str, content: bytes | None) -> str:
    """Hash ``path`` the way ``expected`` asks; ``content`` = its decompressed bytes if the caller has them."""
    kind = expected.split(":", 1)[0]
    if kind == "md5":
        h = hashlib.md5(usedforsecurity=False)
        with open(path, "rb") as f:  # stream: the CIFAR-10 archive is 170 MB
            while chunk := f.read(1 << 20):
                h.update(chunk)
        return f"md5:{h.hexdigest()}"
    data = content if content is not None else read_bytes(path)
    return f"sha256-uncompressed:{hashlib.sha256(data).hexdigest()}"


def verify(
    path: str | os.PathLike[str],
    sha256_uncompressed: str | None = None,
    *,
    md5: str | None = None,
    content: bytes | None = None,
    use_cache: bool = True,
    fix: str = FORCE_HINT,
) -> Path:
    """Check that ``path`` has the expected checksum, or raise ``DataError``.

    Args:
        path: the file.
        sha256_uncompressed: SHA-256 (hex) of the file's decompressed bytes (the file itself if not ``.gz``).
        md5: MD5 (hex) of the file as stored. Give exactly one of the two.
        content: the file's decompressed bytes, when the caller has already read them (saves a second read).
        use_cache: ``False`` re-hashes even when the verification record says the file is unchanged.
        fix: the command the error message suggests (the data set's ``download --force``).

    Returns:
        ``path`` as a ``Path``.
    """
    path = Path(path)
    expected = _expected(sha256_uncompressed, md5)
    if not path.is_file():
        raise DataError(f"{path} does not exist; run `{fix.replace(' --force', '')}`")
    st = path.stat()
    if use_cache and _cache_lookup(path, st) == expected:
        return path
    actual = _actual(path, expected, content)
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
        record.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(record, json.dumps(data, indent=1, sort_keys=True).encode())
    except OSError:
        pass  # the record is an optimisation; failing to write it must not fail a load


# ----------------------------------------------------------------------------------------------------------
# Writing atomically
# ----------------------------------------------------------------------------------------------------------


def _temp_file(directory: Path, name: str) -> tuple[BinaryIO, Path]:
    """An open temporary file in ``directory`` (same file system, so ``os.replace`` is atomic)."""
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".part")
    return os.fdopen(fd, "wb"), Path(tmp)


def _commit(f: BinaryIO, tmp: Path, final: Path) -> None:
    """Flush ``f`` to disk and rename ``tmp`` to ``final``; the folder is synced so the rename survives a crash."""
    f.flush()
    os.fsync(f.fileno())
    f.close()
    os.replace(tmp, final)
    try:
        dir_fd = os.open(final.parent, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open a folder; the rename is still atomic there
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def _atomic_write(final: Path, data: bytes) -> None:
    f, tmp = _temp_file(final.parent, final.name)
    try:
        f.write(data)
        _commit(f, tmp, final)
    finally:
        f.close()
        tmp.unlink(missing_ok=True)


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
        return f"HTTP {e.code} {e.reason}"
    if isinstance(e, urllib.error.URLError):
        return str(e.reason)
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


def _download_to(url: str, f: BinaryIO, desc: str, progress: bool, timeout: float) -> None:
    """Stream ``url`` into ``f``, with a progress bar; raise if the transfer stops short."""
    from tqdm import tqdm  # imported here: only downloads need it, loading files already on disk does not

    with _open_url(url, timeout) as response:
        length = response.headers.get("Content-Length") if hasattr(response, "headers") else None
        total = int(length) if length and length.isdigit() else None
        received = 0
        with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc,
                  disable=not progress, leave=False) as bar:
            while chunk := response.read(_CHUNK):
                f.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    # urllib does not always notice a connection closed early; a short body is a failed download
    if total is not None and received != total:
        raise http.client.IncompleteRead(b"", total - received)


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
    force: bool = False,
    timeout: float = 30.0,
    fix: str = FORCE_HINT,
) -> Path:
    """Download ``filename`` into ``dest_dir`` from the first mirror that serves a file with the right checksum.

    Args:
        filename: the file's name, both on the mirrors and on disk (e.g. ``"train-images-idx3-ubyte.gz"``).
        mirrors: base URLs, tried in order; the URL is ``mirror + filename``.
        sha256_uncompressed: SHA-256 (hex) of the decompressed bytes; or give ``md5=`` of the stored file.
        dest_dir: the folder to write to; ``None`` means ``data_dir()``.
        progress: show a progress bar (on stderr).
        force: download even when a good copy is present (a bad download still never replaces it).
        timeout: seconds to wait on a silent connection before trying the next mirror.
        fix: the command an error message suggests for a corrupt file already there.

    Returns:
        The path of the verified file.

    Raises:
        DataError: a file already there is corrupt (and ``force`` is false), or no mirror served a good copy.
    """
    dest = data_dir(dest_dir)
    final = dest / filename
    expected = _expected(sha256_uncompressed, md5)
    kw = {"md5": md5} if md5 is not None else {"sha256_uncompressed": sha256_uncompressed}
    if final.exists() and not force:
        return verify(final, **kw, fix=fix)  # a corrupt file raises here and is left for the user to --force
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create the data folder {dest} ({e}); pass --data-dir or set {ENV_VAR}") from None
    if not _writable(dest):
        raise DataError(f"the data folder {dest} is read-only; pass --data-dir or set {ENV_VAR} to a writable folder")

    failures: list[str] = []
    bad_content = False  # some mirror answered, but with the wrong bytes
    urls = _urls(filename, mirrors)
    for url in urls:
        f, tmp = _temp_file(dest, filename)
        try:
            _download_to(url, f, filename, progress, timeout)
            f.flush()
            # the temp file's name does not end in .gz, so decompress here rather than in read_bytes
            content = _gunzip(tmp.read_bytes()) if filename.endswith(".gz") and md5 is None else None
            actual = _actual(tmp, expected, content)
            if actual != expected:
                raise _BadContent(f"wrong checksum {actual.split(':', 1)[1]}")
            _commit(f, tmp, final)
            _cache_store(final, final.stat(), expected)  # so the next load does not hash it again
            return final
        except (_BadContent, ValueError) as e:
            bad_content = True
            failures.append(f"{url}: {e}")
        except (OSError, http.client.HTTPException) as e:  # URLError and timeouts are OSErrors
            failures.append(f"{url}: {_reason(e)}")
        finally:
            f.close()
            tmp.unlink(missing_ok=True)  # a failed or interrupted (even Ctrl-C) download leaves nothing behind

    tried = "; ".join(failures)
    if bad_content:
        raise DataError(
            f"no mirror served a good {filename} (expected {_describe(expected)}; {tried}); nothing was saved"
            + (f", the existing {final} is unchanged" if final.exists() else "")
        )
    raise OfflineError(
        f"could not download {filename} ({tried}); if offline, fetch it from {' or '.join(urls)} "
        f"and put it in {dest} (or set {ENV_VAR} to a folder that has it)",
        failures,
    )


def ensure(
    filename: str,
    mirrors: Sequence[str],
    sha256_uncompressed: str | None = None,
    dest_dir: str | os.PathLike[str] | None = None,
    *,
    md5: str | None = None,
    download: bool = True,
    progress: bool = True,
    recheck: bool = False,
    verify_existing: bool = True,
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
        return verify(path, **kw, use_cache=not recheck, fix=fix) if verify_existing else path
    if download:
        return fetch(filename, mirrors, dest_dir=dest, progress=progress, fix=fix, **kw)
    raise missing_error([filename], mirrors, dest, fix)


def locate(filename: str, dest_dir: str | os.PathLike[str], accept_uncompressed: bool = True) -> Path | None:
    """``dest_dir/filename`` if it exists, else (for a ``.gz`` name) the decompressed copy if it exists."""
    candidates = [Path(dest_dir) / filename]
    if accept_uncompressed and filename.endswith(".gz"):
        candidates.append(Path(dest_dir) / filename[: -len(".gz")])
    return next((p for p in candidates if p.is_file()), None)


def missing_error(filenames: Sequence[str], mirrors: Sequence[str], dest_dir: str | os.PathLike[str],
                  fix: str = FORCE_HINT, offline: OfflineError | None = None) -> DataError:
    """The one-line error for absent files: where to get them, where to put them.

    ``offline``: the download that just failed, whose reasons lead the message; otherwise the message
    suggests the download command.
    """
    command = fix.replace(" --force", "")
    first = (f"could not download ({'; '.join(offline.failures)}): " if offline is not None
             else f"run `{command}`, or ")
    if len(filenames) == 1:
        where = " or ".join(_urls(filenames[0], mirrors))
        return DataError(f"{filenames[0]} is not in {dest_dir}; {first}fetch it from {where} and put "
                         f"it there (or set {ENV_VAR} to a folder that has it)")
    return DataError(f"{', '.join(filenames)} are not in {dest_dir}; {first}fetch them from "
                     f"{' or '.join(mirrors)} and put them there (or set {ENV_VAR} to a folder that has them)")
