"""Downloads are bounded (in bytes, decompressed bytes, memory, time, and what they leave behind), and their
messages say what is really on disk.

A local HTTP server (127.0.0.1, a port the OS picks, one thread per request) plays the hostile mirrors:

    /bomb/<name>      a small gzip file that decompresses to 32 MiB of zeros (a gzip bomb)
    /endless/<name>   a gzip stream that never ends (stored blocks of zeros, no Content-Length)
    /trickle/<name>   announces 100,000 bytes, then sends one byte every 10 ms
    /silent/<name>    announces 1,000 bytes, then sends nothing
    /huge/<name>      announces a terabyte
    /good/<name>      the right file

Each hostile body stops by itself after a few seconds or 32 MiB (so that even a download with no limits ends),
and at once when the fixture shuts the server down.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import http.server
import os
import struct
import threading
import time
import tracemalloc
import zlib
from pathlib import Path

import pytest

from minilottery.data import DataError, cifar10, load_cifar10, mnist
from minilottery.data.checksums import UNKNOWN_SIZE_CAP, read_bytes, verify
from minilottery.data.download import ensure
from minilottery.data.fetch import DEADLINE, fetch, max_download_size
from minilottery.data.layout import sweep_stale
from minilottery.data.record import SIDECAR_NAME
from tests.helpers import CONTENT, FILE, GOOD, NAME, SHA, local_server, refused_url, run_data_command, served_by, url_of

pytestmark = pytest.mark.usefixtures("private_cache", "no_data_variable")

LABELS = "t10k-labels-idx1-ubyte.gz"  # the smallest MNIST file: 4542 bytes gzipped, 10008 decompressed
IMAGES = "t10k-images-idx3-ubyte.gz"  # 1648877 bytes gzipped, 7840016 decompressed
BOMB_SIZE = 32 << 20  # what the bomb decompresses to
SERVER_LIMIT = 32 << 20  # bytes after which an endless body ends anyway
SERVER_SECONDS = 3.0  # seconds after which a trickling or silent body ends anyway
MiB = 1 << 20


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 -- the name http.server calls
        kind = self.path.strip("/").split("/", 1)[0]
        self.server.sent[self.path] = 0
        done = self.server.done.setdefault(self.path, threading.Event())
        try:
            getattr(self, f"_{kind}", self._missing)()
        except (BrokenPipeError, ConnectionResetError):  # the client hung up: what a bounded download does
            pass
        finally:
            done.set()

    def _write(self, data: bytes) -> None:
        self.wfile.write(data)
        self.wfile.flush()
        self.server.sent[self.path] += len(data)

    def _headers(self, length: int | None) -> None:
        self.send_response(200)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def _missing(self):
        self.send_error(404)

    def _good(self):
        self._headers(len(GOOD))
        self._write(GOOD)

    def _bomb(self):
        self._headers(len(self.server.bomb))
        self._write(self.server.bomb)

    def _huge(self):
        self._headers(10**12)

    def _endless(self):
        self._headers(None)  # HTTP/1.0 without a length: the body ends when the server closes
        deflate = zlib.compressobj(0, zlib.DEFLATED, 31)  # level 0: stored blocks, as big as the zeros they hold
        zeros = bytes(1 << 16)
        while self.server.sent[self.path] < SERVER_LIMIT and not self.server.stopping.is_set():
            self._write(deflate.compress(zeros))

    def _trickle(self):
        self._headers(100_000)
        body = gzip.compress(bytes(100_000), compresslevel=0)  # valid gzip as far as it goes
        end = time.monotonic() + SERVER_SECONDS
        for i in range(100_000):
            if time.monotonic() > end or self.server.stopping.is_set():
                break
            self._write(body[i : i + 1])
            time.sleep(0.01)

    def _silent(self):
        self._headers(1000)
        self.wfile.flush()
        self.server.stopping.wait(SERVER_SECONDS)

    def log_message(self, *args):  # keep pytest's output clean
        pass


class _Server:
    """The hostile mirrors: ``url``, and what the server sent for each request (``sent``)."""

    def __init__(self, httpd: http.server.ThreadingHTTPServer):
        self.httpd = httpd
        self.httpd.sent, self.httpd.done = {}, {}
        self.httpd.stopping = threading.Event()
        self.httpd.bomb = gzip.compress(bytes(BOMB_SIZE), compresslevel=9)  # ~32 KiB
        self.url = url_of(httpd)

    def sent(self, path: str, timeout: float = 5.0) -> int:
        """Bytes the server sent for ``path``, once that request has finished (or ``timeout`` passed)."""
        event = self.httpd.done.get(path)
        assert event is not None and event.wait(timeout), f"the server never finished {path}"
        return self.httpd.sent[path]


@pytest.fixture(scope="module")
def server():
    with local_server(_Handler) as httpd:
        hostile = _Server(httpd)
        try:
            yield hostile
        finally:
            httpd.stopping.set()  # the bodies still being sent end now, so that the shutdown does not wait


@pytest.fixture(scope="module", autouse=True)
def _tqdm_imported():
    """Import the progress bar before any memory is measured: importing is not downloading."""
    import tqdm  # noqa: F401


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _measured(call):
    """(the exception ``call()`` raised, seconds it took, peak bytes Python allocated meanwhile)."""
    tracemalloc.start()
    start = time.monotonic()
    try:
        call()
    except Exception as e:  # noqa: BLE001 -- the caller checks what it was
        error = e
    else:
        error = None
    finally:
        seconds = time.monotonic() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return error, seconds, peak


def _download_from(server, kind: str, name: str, folder: Path, monkeypatch, **options):
    """Download the MNIST file ``name`` (checked against ``SHA``) from the server's ``/<kind>/`` mirror into
    ``folder``; returns ``_measured``'s (error, seconds, peak bytes)."""
    monkeypatch.setattr(mnist, "MIRRORS", (f"{server.url}/{kind}/",))
    return _measured(lambda: mnist.download_files(folder, checksums={name: SHA}, progress=False, **options))


def _one_line_naming(error, name: str) -> str:
    assert isinstance(error, DataError), f"expected DataError, got {error!r}"
    msg = str(error)
    assert "\n" not in msg and name in msg
    return msg


# --------------------------------------------------------------------------------------------------------
# (a) a gzip bomb: decompression stops at the known size, memory stays small, nothing is saved
# --------------------------------------------------------------------------------------------------------


def test_gzip_bomb_download_is_refused_in_bounded_memory(server, tmp_path, monkeypatch):
    folder = tmp_path / "data"
    error, seconds, peak = _download_from(server, "bomb", LABELS, folder, monkeypatch)
    assert peak < 8 * MiB, f"peak {peak / MiB:.1f} MiB while refusing a {BOMB_SIZE / MiB:.0f} MiB bomb"
    assert seconds < 5
    msg = _one_line_naming(error, LABELS)
    assert "longer than 10008 bytes once decompressed" in msg and "nothing was saved" in msg
    assert _leftovers(folder) == []


def test_local_gzip_bomb_is_corrupt_and_read_in_bounded_memory(server, tmp_path):
    path = tmp_path / LABELS
    path.write_bytes(server.httpd.bomb)
    error, seconds, peak = _measured(lambda: mnist.read_idx(path, mnist.LABELS_MAGIC))
    assert peak < 8 * MiB, f"peak {peak / MiB:.1f} MiB while refusing a {BOMB_SIZE / MiB:.0f} MiB bomb"
    assert seconds < 5
    msg = _one_line_naming(error, str(path))
    assert "is corrupt: longer than 10008 bytes once decompressed" in msg and "--force" in msg
    # the same through the loader, which checks each file on the bytes it reads: good images, bomb labels
    images = struct.pack(">IIII", mnist.IMAGES_MAGIC, 1, 28, 28) + bytes(28 * 28)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(images))
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(server.httpd.bomb)
    (tmp_path / IMAGES).write_bytes(b"never read")
    checksums = {n: SHA for n in mnist.SHA256} | {"train-images-idx3-ubyte.gz": hashlib.sha256(images).hexdigest()}
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz is corrupt: longer than 60008 bytes"):
        mnist.load_mnist(tmp_path, download=False, checksums=checksums)


def test_read_bytes_and_verify_stop_at_the_given_size(tmp_path):
    path = tmp_path / NAME
    path.write_bytes(GOOD)
    assert read_bytes(path, size_uncompressed=len(CONTENT)) == CONTENT
    with pytest.raises(DataError, match=f"{NAME} is corrupt: longer than 100 bytes once decompressed"):
        read_bytes(path, size_uncompressed=100)
    with pytest.raises(DataError, match="longer than 100 bytes once decompressed"):
        verify(path, dataclasses.replace(FILE, size_uncompressed=100))
    raw = tmp_path / "plain.idx"  # an uncompressed file is bounded by the same size
    raw.write_bytes(CONTENT)
    with pytest.raises(DataError, match=r"plain.idx is corrupt: longer than 100 bytes \(the most it can be\)"):
        read_bytes(raw, size_uncompressed=100)


# --------------------------------------------------------------------------------------------------------
# (b) an endless body: the download stops at the known size plus the margin
# --------------------------------------------------------------------------------------------------------


def test_endless_body_stops_at_the_cap(server, tmp_path, monkeypatch):
    folder = tmp_path / "data"
    error, seconds, _ = _download_from(server, "endless", IMAGES, folder, monkeypatch)
    # the client hung up at the cap (known size + 1 MiB); what else the server got out sat in socket buffers
    cap = 1648877 + MiB
    assert server.sent(f"/endless/{IMAGES}") < cap + 8 * MiB < SERVER_LIMIT
    assert seconds < 5
    msg = _one_line_naming(error, IMAGES)
    assert f"more than {cap} bytes" in msg and "nothing was saved" in msg
    assert _leftovers(folder) == []


def test_announced_length_past_the_cap_is_refused_before_reading(server, tmp_path):
    with pytest.raises(DataError) as e:
        fetch(served_by(f"{server.url}/huge/", size=len(GOOD)), tmp_path, progress=False, timeout=5)
    msg = _one_line_naming(e.value, NAME)
    assert f"announces {10**12} bytes, more than the {max_download_size(len(GOOD))}" in msg
    assert _leftovers(tmp_path) == []


def test_known_sizes():
    # the decompressed sizes follow from the IDX headers; the .gz sizes are the mirrors'
    assert mnist.SIZES == {
        "train-images-idx3-ubyte.gz": (9912422, 16 + 60000 * 28 * 28),
        "train-labels-idx1-ubyte.gz": (28881, 8 + 60000),
        "t10k-images-idx3-ubyte.gz": (1648877, 16 + 10000 * 28 * 28),
        "t10k-labels-idx1-ubyte.gz": (4542, 8 + 10000),
    }
    assert set(mnist.SIZES) == set(mnist.SHA256)
    assert cifar10.ARCHIVE_SIZE == 170498071


def test_margin_keeps_a_differently_gzipped_copy():
    # gzip -1 makes MNIST's train-images 10979562 bytes, 11 % more than the mirrors' 9912422
    assert max_download_size(9912422) > 10979562
    assert max_download_size(4542) == 4542 + MiB
    assert max_download_size(None) == UNKNOWN_SIZE_CAP


# --------------------------------------------------------------------------------------------------------
# (c) an overall deadline: a trickle, or a silent mirror, cannot hold a download past it
# --------------------------------------------------------------------------------------------------------


def test_trickle_passes_the_deadline(server, tmp_path, monkeypatch):
    folder = tmp_path / "data"
    error, seconds, _ = _download_from(server, "trickle", LABELS, folder, monkeypatch, deadline=0.5)
    msg = _one_line_naming(error, LABELS)
    assert "took longer than its deadline of 0.5 s" in msg and "--deadline SECONDS" in msg
    assert "of 100000 bytes" in msg and "nothing was saved" in msg
    assert 0.5 <= seconds < 2.5
    assert _leftovers(folder) == []


def test_silent_mirror_is_cut_at_the_deadline_not_the_socket_timeout(server, tmp_path):
    start = time.monotonic()
    with pytest.raises(DataError, match="took longer than its deadline of 0.5 s"):
        fetch(served_by(f"{server.url}/silent/", f"{server.url}/good/"), tmp_path, progress=False, timeout=30,
              deadline=0.5)
    assert time.monotonic() - start < 2.5  # the 30 s socket timeout was clipped to the time left
    assert _leftovers(tmp_path) == []


def test_deadline_must_be_positive(tmp_path):
    for deadline in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=r"^--deadline must be a real number in \(0, inf\), got"):
            fetch(FILE, tmp_path, progress=False, deadline=deadline)
        with pytest.raises(ValueError, match=r"^--deadline must be"):  # before anything is swept
            mnist.download_files(tmp_path, progress=False, deadline=deadline)


def test_cli_refuses_a_bad_deadline(capsys):
    with pytest.raises(SystemExit):
        run_data_command(["data", "download", "--deadline", "-1"])
    assert "expected a positive number of seconds, got '-1'" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------------
# (d) temporary files of killed downloads are swept; a running download's are not
# --------------------------------------------------------------------------------------------------------


def _temporaries(folder: Path, name: str, age: float) -> list[Path]:
    """A temporary file of each naming (.part: older versions, .tmp: files.atomic_open), ``age`` seconds old."""
    paths = [folder / f".{name}.{age:.0f}a{suffix}" for suffix in (".part", ".tmp")]
    for p in paths:
        p.write_bytes(b"half a download")
        os.utime(p, (time.time() - age, time.time() - age))
    return paths


def test_stale_temporaries_swept_before_a_download_fresh_ones_kept(server, tmp_path):
    day = 24 * 3600.0
    stale = _temporaries(tmp_path, NAME, day) + _temporaries(tmp_path, SIDECAR_NAME, day)
    fresh = _temporaries(tmp_path, NAME, 1.0)  # a concurrent download of the same file, still writing
    other = _temporaries(tmp_path, "notes.txt", day)  # not ours: never touched
    fetch(served_by(f"{server.url}/good/"), tmp_path, progress=False, timeout=5)
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in fresh + other)
    assert (tmp_path / NAME).read_bytes() == GOOD


def test_data_download_sweeps_even_when_nothing_is_missing(tmp_path):
    checksums = {}
    for name in mnist.SHA256:  # four small files that stand for MNIST (their own checksums)
        raw = name.encode()
        (tmp_path / name).write_bytes(gzip.compress(raw))
        checksums[name] = hashlib.sha256(raw).hexdigest()
    stale = _temporaries(tmp_path, IMAGES, 2 * DEADLINE)
    fresh = _temporaries(tmp_path, IMAGES, DEADLINE / 2)
    mnist.download_files(tmp_path, checksums=checksums, progress=False)
    assert not any(p.exists() for p in stale) and all(p.exists() for p in fresh)

    archive_stale = _temporaries(tmp_path, cifar10.ARCHIVE, 2 * DEADLINE)
    (tmp_path / cifar10.ARCHIVE).write_bytes(b"an archive")
    cifar10.download(tmp_path, md5=hashlib.md5(b"an archive").hexdigest(), progress=False)
    assert not any(p.exists() for p in archive_stale)


def test_sweep_only_removes_what_is_older_than_given(tmp_path):
    old = _temporaries(tmp_path, NAME, 100.0)
    removed = sweep_stale(tmp_path, [NAME], older_than=50.0)
    assert sorted(removed) == sorted(old)
    assert sweep_stale(tmp_path / "absent", [NAME], older_than=DEADLINE) == []  # no folder yet: nothing to do


# --------------------------------------------------------------------------------------------------------
# (e) messages say what is really there
# --------------------------------------------------------------------------------------------------------


def test_forced_offline_download_does_not_say_present_files_are_missing(tmp_path, monkeypatch):
    for name in mnist.SHA256:
        (tmp_path / name).write_bytes(b"a copy already there")
    monkeypatch.setattr(mnist, "MIRRORS", (refused_url(),))
    with pytest.raises(DataError) as e:
        mnist.download_files(tmp_path, force=True, progress=False)
    msg = _one_line_naming(e.value, "train-images-idx3-ubyte.gz")
    assert "is not in" not in msg
    assert f"the existing {tmp_path / 'train-images-idx3-ubyte.gz'} is unchanged" in msg
    assert "refused" in msg


def test_cli_forced_offline_download_says_the_file_is_kept(tmp_path, monkeypatch, capsys):
    for name in mnist.SHA256:
        (tmp_path / name).write_bytes(b"a copy already there")
    monkeypatch.setattr(mnist, "MIRRORS", (refused_url(),))
    assert run_data_command(["data", "download", "--force", "--data-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "is not in" not in err and "could not download train-images-idx3-ubyte.gz" in err
    assert "is unchanged" in err


def test_broken_link_is_named_not_called_missing(tmp_path):
    (tmp_path / NAME).symlink_to(tmp_path / "moved-away" / NAME)
    with pytest.raises(DataError) as e:
        ensure(served_by("https://a.example/"), tmp_path, download=False)
    msg = _one_line_naming(e.value, NAME)
    assert f"{tmp_path / NAME} is a broken link to {tmp_path / 'moved-away' / NAME}" in msg
    with pytest.raises(DataError, match="is not a regular file \\(a broken link to"):
        verify(tmp_path / NAME, FILE)


def test_unpacked_cifar_archive_is_named(tmp_path):
    (tmp_path / "cifar-10-python.tar").write_bytes(b"what a browser makes of the .tar.gz")
    with pytest.raises(DataError) as e:
        load_cifar10(tmp_path, download=False)
    msg = _one_line_naming(e.value, cifar10.ARCHIVE)
    assert f"{tmp_path / 'cifar-10-python.tar'} is there, but only the original {cifar10.ARCHIVE} is read" in msg
