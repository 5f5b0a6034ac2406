"""CIFAR-10 on a small archive written here in the real format (no download, ever).

The archive has the official layout, ``cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}``, each
a pickled dict with b"data" uint8 (n, 3072) and b"labels", but only a few examples per batch; its own MD5 is
passed to the loader in place of the published one.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from minilottery.data import DataError, cifar10, load_cifar10
from tests.helpers import assert_small_data_set, assert_split_is_seeded

pytestmark = pytest.mark.usefixtures("private_cache")

PER_BATCH = 4


def _batch(rng: np.random.Generator, start: int, n: int = PER_BATCH, numpy1_names: bool = False) -> bytes:
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    data[:, 0] = np.arange(start, start + n)  # the first red pixel says which example this is
    payload = pickle.dumps({b"batch_label": b"test", b"data": data, b"labels": [i % 10 for i in
                                                                               range(start, start + n)]},
                           protocol=2)
    if numpy1_names:  # as the official archive was written, by NumPy 1.x
        payload = payload.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    return payload


def write_archive(folder: Path, members: dict[str, bytes] | None = None) -> str:
    """Write ``cifar-10-python.tar.gz`` into ``folder``; returns its MD5."""
    rng = np.random.default_rng(0)
    if members is None:
        members = {f"data_batch_{i}": _batch(rng, (i - 1) * PER_BATCH, numpy1_names=i % 2 == 1)
                   for i in range(1, 6)}
        members["test_batch"] = _batch(rng, 100)
        members["batches.meta"] = pickle.dumps({b"label_names": [b"airplane"]}, protocol=2)
    path = folder / cifar10.ARCHIVE
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_load_small_archive(tmp_path):
    data = load_cifar10(tmp_path, download=False, validation_size=5, md5=write_archive(tmp_path))
    assert_small_data_set(data, (15, 3, 32, 32), (5, 3, 32, 32), (4, 3, 32, 32))
    assert data.name == "cifar10"


def test_pixel_layout_is_rgb_planes(tmp_path):
    md5 = write_archive(tmp_path)
    data = load_cifar10(tmp_path, download=False, validation_size=1, md5=md5)
    rng = np.random.default_rng(0)  # regenerate data_batch_1 exactly as write_archive did
    raw = rng.integers(0, 256, (PER_BATCH, 3072), dtype=np.uint8)
    raw[:, 0] = np.arange(PER_BATCH)
    x = np.concatenate([data.x_train, data.x_val])
    first = x[np.rint(x[:, 0, 0, 0] * 255).astype(int) == 0][0]  # example 0 of data_batch_1
    c, h, w = 2, 5, 7  # blue plane, row 5, column 7 -> flat index 2*1024 + 5*32 + 7
    assert first[c, h, w] == np.float32(raw[0, c * 1024 + h * 32 + w]) / np.float32(255)


def test_reads_numpy1_and_numpy2_pickles():
    old = _batch(np.random.default_rng(0), 0, numpy1_names=True)
    assert b"cnumpy.core.multiarray\n" in old  # the name the official archive uses
    x_old, y_old = cifar10.parse_batch(old)
    x_new, y_new = cifar10.parse_batch(_batch(np.random.default_rng(0), 0))
    np.testing.assert_array_equal(x_old, x_new)
    assert x_old.shape == (PER_BATCH, 3, 32, 32) and y_old.tolist() == [0, 1, 2, 3]


def test_split_is_seeded(tmp_path):
    md5 = write_archive(tmp_path)
    assert_split_is_seeded(
        lambda seed: load_cifar10(tmp_path, download=False, validation_size=5, seed=seed, md5=md5), 3)


def test_wrong_md5_is_refused(tmp_path):
    write_archive(tmp_path)
    with pytest.raises(DataError) as e:
        load_cifar10(tmp_path, download=False)  # the published MD5 cannot match the small archive
    msg = str(e.value)
    assert cifar10.ARCHIVE_MD5 in msg and "--dataset cifar10 --force" in msg and "\n" not in msg


def test_missing_batch(tmp_path):
    rng = np.random.default_rng(0)
    md5 = write_archive(tmp_path, {"data_batch_1": _batch(rng, 0), "test_batch": _batch(rng, 100)})
    with pytest.raises(DataError, match="lacks the batches data_batch_2, data_batch_3"):
        load_cifar10(tmp_path, download=False, md5=md5, validation_size=1)


def test_malicious_pickle_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    rng = np.random.default_rng(0)
    members = {f"data_batch_{i}": _batch(rng, i * PER_BATCH) for i in range(1, 6)}
    members["test_batch"] = pickle.dumps(Evil(), protocol=2)
    md5 = write_archive(tmp_path, members)
    with pytest.raises(DataError, match="refusing to load (posix|nt|os).system"):
        load_cifar10(tmp_path, download=False, md5=md5, validation_size=1)


def test_bad_batch_shape(tmp_path):
    rng = np.random.default_rng(0)
    members = {f"data_batch_{i}": _batch(rng, i * PER_BATCH) for i in range(1, 6)}
    members["test_batch"] = pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, protocol=2)
    md5 = write_archive(tmp_path, members)
    with pytest.raises(DataError, match=r"expected b'data' uint8 of shape \(N, 3072\)"):
        load_cifar10(tmp_path, download=False, md5=md5, validation_size=1)


def test_not_an_archive(tmp_path):
    path = tmp_path / cifar10.ARCHIVE
    path.write_bytes(b"<html>moved</html>")
    with pytest.raises(DataError, match="not a readable tar.gz"):
        load_cifar10(tmp_path, download=False, md5=hashlib.md5(path.read_bytes()).hexdigest())


def test_missing_archive_message(tmp_path):
    with pytest.raises(DataError) as e:
        load_cifar10(tmp_path, download=False)
    msg = str(e.value)
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in msg and str(tmp_path) in msg
