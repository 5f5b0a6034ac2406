"""Verified downloads against a local HTTP server: mirrors that fail, corrupt and interrupted transfers.

The server listens on 127.0.0.1 only, on a port the OS picks, and serves a few in-memory files:

    /good/<name>       the right bytes
    /bad/<name>        gzip bytes of different content (wrong checksum)
    /short/<name>      announces the full length, sends half, closes (an interrupted transfer)
    anything else      404
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import json
import os
from pathlib import Path

import pytest

from minilottery.data import checksums, fetch
from minilottery.data.checksums import DataError, DataFile, verify
from minilottery.data.download import ensure
from minilottery.data.record import SIDECAR_NAME
from tests.helpers import BAD, CONTENT, FILE, GOOD, NAME, SHA, local_server, refused_url, served_by, url_of

pytestmark = pytest.mark.usefixtures("private_cache", "no_data_variable")

class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 -- the name http.server calls
        kind, _, name = self.path.strip("/").partition("/")
        if name != NAME or kind not in ("good", "bad", "short"):
            self.send_error(404)
            return
        body = BAD if kind == "bad" else GOOD
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if kind == "short":
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):  # keep pytest's output clean
        pass


@pytest.fixture(scope="module")
def server():
    """Base URL of a local HTTP server (http://127.0.0.1:PORT)."""
    with local_server(_Handler) as httpd:
        yield url_of(httpd)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != SIDECAR_NAME)


def test_missing_mirrors_then_good_one(server, tmp_path):
    mirrors = [refused_url(), f"{server}/nothing-here/", f"{server}/good/"]
    path = fetch.fetch(served_by(*mirrors), tmp_path, progress=False, timeout=5)
    assert path == tmp_path / NAME
    assert path.read_bytes() == GOOD
    assert _leftovers(tmp_path) == [NAME]  # no temporary files left
    record = json.loads((tmp_path / SIDECAR_NAME).read_text())
    assert record[NAME]["checksum"] == f"sha256-uncompressed:{SHA}"
    assert record[NAME]["size"] == len(GOOD)


def test_corrupt_download_is_not_saved(server, tmp_path):
    with pytest.raises(DataError) as e:
        fetch.fetch(served_by(f"{server}/bad/"), tmp_path, progress=False, timeout=5)
    msg = str(e.value)
    assert "\n" not in msg and SHA in msg and "nothing was saved" in msg
    assert _leftovers(tmp_path) == []


def test_bad_mirror_falls_through_to_good_one(server, tmp_path):
    path = fetch.fetch(served_by(f"{server}/bad/", f"{server}/good/"), tmp_path, progress=False, timeout=5)
    assert path.read_bytes() == GOOD


def test_forced_bad_download_keeps_good_file(server, tmp_path):
    good = fetch.fetch(served_by(f"{server}/good/"), tmp_path, progress=False, timeout=5)
    before = good.stat().st_mtime_ns
    with pytest.raises(DataError, match="is unchanged"):
        fetch.fetch(served_by(f"{server}/bad/"), tmp_path, progress=False, timeout=5, force=True)
    assert good.read_bytes() == GOOD and good.stat().st_mtime_ns == before
    assert _leftovers(tmp_path) == [NAME]
    verify(good, FILE, use_cache=False)  # still good


def test_truncated_transfer_leaves_no_file(server, tmp_path):
    with pytest.raises(DataError, match="could not download"):
        fetch.fetch(served_by(f"{server}/short/"), tmp_path, progress=False, timeout=5)
    assert _leftovers(tmp_path) == []


def test_interrupt_mid_download_leaves_no_file(tmp_path, monkeypatch):
    class Response:  # sends one chunk, then the user presses Ctrl-C
        headers = {"Content-Length": str(len(GOOD))}
        sent = False

        def read(self, n):
            if self.sent:
                raise KeyboardInterrupt
            self.sent = True
            return GOOD[: min(n, 100)]  # like a socket read: never more than asked for

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(fetch, "_open_url", lambda url, timeout: Response())
    with pytest.raises(KeyboardInterrupt):
        fetch.fetch(served_by("http://example.invalid/"), tmp_path, progress=False)
    assert _leftovers(tmp_path) == []


def test_offline_message_lists_mirrors_and_folder(tmp_path):
    mirrors = [refused_url(), refused_url()]
    with pytest.raises(DataError) as e:
        fetch.fetch(served_by(*mirrors), tmp_path / "data", progress=False, timeout=5)
    msg = str(e.value)
    assert "\n" not in msg
    for m in mirrors:
        assert m + NAME in msg
    assert str(tmp_path / "data") in msg and "MINILOTTERY_DATA" in msg


def test_missing_without_download_says_where_to_put_it(tmp_path):
    with pytest.raises(DataError) as e:
        ensure(served_by("https://a.example/", "https://b.example/"), tmp_path, download=False)
    msg = str(e.value)
    assert "https://a.example/" + NAME in msg and "https://b.example/" + NAME in msg and str(tmp_path) in msg


def test_corrupt_file_on_disk_names_checksum_and_fix(tmp_path):
    (tmp_path / NAME).write_bytes(BAD)
    with pytest.raises(DataError) as e:
        ensure(served_by("https://a.example/"), tmp_path)  # must not download over it
    msg = str(e.value)
    assert str(tmp_path / NAME) in msg and SHA in msg and "minilottery data download --force" in msg
    assert (tmp_path / NAME).read_bytes() == BAD


def test_not_gzip_and_truncated_gzip(tmp_path):
    (tmp_path / NAME).write_bytes(b"<html>not found</html>")
    with pytest.raises(DataError, match="not a valid gzip file"):
        verify(tmp_path / NAME, FILE)
    (tmp_path / NAME).write_bytes(GOOD[:-20])
    with pytest.raises(DataError, match="not a valid gzip file"):
        verify(tmp_path / NAME, FILE)


def test_uncompressed_copy_is_accepted(tmp_path):
    (tmp_path / NAME.removesuffix(".gz")).write_bytes(CONTENT)
    path = ensure(FILE, tmp_path, download=False)
    assert path.name == NAME.removesuffix(".gz")


def test_verification_is_cached_and_invalidated_by_changes(tmp_path, monkeypatch):
    path = tmp_path / NAME
    path.write_bytes(GOOD)
    verify(path, FILE)
    calls = []
    real = checksums._actual
    monkeypatch.setattr(checksums, "_actual", lambda *a: calls.append(a) or real(*a))
    verify(path, FILE)
    assert calls == []  # unchanged file: answered from .verified.json
    path.write_bytes(BAD)  # other content (and size): checked again, and refused
    with pytest.raises(DataError):
        verify(path, FILE)
    assert len(calls) == 1


def test_md5_of_stored_file(tmp_path):
    path = tmp_path / "archive.tar.gz"
    path.write_bytes(GOOD)
    verify(path, DataFile(path.name, md5=hashlib.md5(GOOD).hexdigest()))
    with pytest.raises(DataError, match="MD5"):
        verify(path, DataFile(path.name, md5="0" * 32), use_cache=False)
    with pytest.raises(ValueError, match="exactly one of"):
        DataFile(path.name, sha256_uncompressed=SHA, md5="0" * 32)


def test_read_only_folder_records_in_user_cache(tmp_path):
    folder = tmp_path / "shared"
    folder.mkdir()
    (folder / NAME).write_bytes(GOOD)
    folder.chmod(0o555)  # as shared/ is laid out; root could still write, but must not
    try:
        verify(folder / NAME, FILE)
        assert not (folder / SIDECAR_NAME).exists()
        record = json.loads((tmp_path / "xdg" / "minilottery" / "verified.json").read_text())
        assert str((folder / NAME).resolve()) in record
        with pytest.raises(DataError, match="read-only"):
            fetch.fetch(dataclasses.replace(FILE, name="other.gz"), folder, progress=False)
    finally:
        folder.chmod(0o755)


def test_data_dir_precedence(tmp_path, monkeypatch):
    from minilottery.data import paths

    monkeypatch.setenv("MINILOTTERY_DATA", str(tmp_path / "env"))
    assert paths.data_dir(tmp_path / "explicit") == tmp_path / "explicit"
    assert paths.data_dir() == tmp_path / "env"
    monkeypatch.delenv("MINILOTTERY_DATA")
    monkeypatch.setattr(paths, "_SOURCE_ROOT", tmp_path / "not-a-checkout")
    assert paths.data_dir() == tmp_path / "xdg" / "minilottery"
    checkout = tmp_path / "checkout"
    (checkout / "data").mkdir(parents=True)
    (checkout / "pyproject.toml").write_text("")
    monkeypatch.setattr(paths, "_SOURCE_ROOT", checkout)
    assert paths.data_dir() == checkout / "data"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setattr(paths, "_SOURCE_ROOT", tmp_path / "not-a-checkout")
    assert paths.data_dir() == Path.home() / ".cache" / "minilottery"
    assert not os.path.exists(tmp_path / "env")  # asking never creates a folder
