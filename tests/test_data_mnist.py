"""MNIST: IDX parsing of small files written here, header errors, the validation split, and the real data.

The real-data tests use the ``mnist`` fixture: MNIST from ``MINILOTTERY_DATA`` (or the default data folder),
never downloaded. Without the files they are skipped, except under CI (env ``CI`` set), where they fail.
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest

from minilottery.data import DataError, load_mnist, mnist
from minilottery.data.dataset import split_validation, to_unit_float
from tests.helpers import (
    assert_small_data_set,
    assert_split_is_seeded,
    idx_bytes,
    refused_url,
    run_data_command,
    serving_folder,
    write_mnist,
)

pytestmark = pytest.mark.usefixtures("private_cache")

# digit counts of the official files (all 60,000 training and 10,000 test labels)
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


# --------------------------------------------------------------------------------------------------------
# Small IDX files written by the tests
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_gz_and_raw(tmp_path, compress):
    images = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    raw = idx_bytes(images)
    path = tmp_path / ("x.idx.gz" if compress else "x.idx")
    path.write_bytes(gzip.compress(raw) if compress else raw)
    out = mnist.read_idx(path, mnist.IMAGES_MAGIC)
    assert out.shape == (3, 4, 5) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, images)
    labels = mnist.parse_idx(idx_bytes(np.array([7, 0, 9], np.uint8)), mnist.LABELS_MAGIC)
    np.testing.assert_array_equal(labels, [7, 0, 9])


def test_idx_header_errors():
    images = idx_bytes(np.zeros((2, 3, 3), np.uint8))
    with pytest.raises(DataError, match="expected magic 0x00000801, found 0x00000803"):
        mnist.parse_idx(images, mnist.LABELS_MAGIC, "f")
    with pytest.raises(DataError, match="too short"):
        mnist.parse_idx(images[:10], mnist.IMAGES_MAGIC, "f")
    with pytest.raises(DataError, match="18 bytes of data, the file has 17"):
        mnist.parse_idx(images[:-1], mnist.IMAGES_MAGIC, "f")
    with pytest.raises(DataError, match="the file has 19"):
        mnist.parse_idx(images + b"\0", mnist.IMAGES_MAGIC, "f")
    with pytest.raises(DataError, match="expected magic"):
        mnist.parse_idx(b"<!DOCTYPE html><html>...</html>", mnist.IMAGES_MAGIC, "f")


def test_load_small_files(tmp_path):
    data = load_mnist(tmp_path, download=False, validation_size=10, checksums=write_mnist(tmp_path))
    assert_small_data_set(data, (50, 1, 28, 28), (10, 1, 28, 28), (20, 1, 28, 28))


def test_split_is_deterministic_and_seeded(tmp_path):
    checksums = write_mnist(tmp_path)
    assert_split_is_seeded(
        lambda seed: load_mnist(tmp_path, download=False, validation_size=10, seed=seed, checksums=checksums), 1)


def test_to_unit_float_scales_every_pixel_and_leaves_the_images_alone():
    images = np.arange(256, dtype=np.uint8).reshape(4, 1, 8, 8)
    before = images.copy()
    scaled = to_unit_float(images)
    assert scaled.dtype == np.float32 and scaled.shape == images.shape
    np.testing.assert_array_equal(scaled, images.astype(np.float32) / np.float32(255.0))  # bit for bit
    assert scaled.min() == 0.0 and scaled.max() == 1.0
    np.testing.assert_array_equal(images, before)


def test_split_validation_checks_size():
    x, y = np.zeros((5, 2)), np.arange(5)
    assert split_validation(x, y, 0, 0)[2].shape == (0, 2)
    with pytest.raises(ValueError, match="validation_size must be between 0 and 4"):
        split_validation(x, y, 5, 0)


def test_uncompressed_files_load(tmp_path):
    checksums = write_mnist(tmp_path, compress=False)
    data = load_mnist(tmp_path, download=False, validation_size=10, checksums=checksums)
    assert data.x_train.shape == (50, 1, 28, 28)


@pytest.mark.parametrize("labels, message", [
    (np.full(60, 10, np.uint8), "labels must be classes 0..9, found 10"),
    (np.zeros(59, np.uint8), "60 images but .* 59 labels"),
], ids=["out-of-range", "count-mismatch"])
def test_bad_training_labels(tmp_path, labels, message):
    checksums = write_mnist(tmp_path)
    raw = idx_bytes(labels)  # in place of the training labels, with a checksum that matches
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(raw))
    checksums["train-labels-idx1-ubyte.gz"] = hashlib.sha256(raw).hexdigest()
    with pytest.raises(DataError, match=message):
        load_mnist(tmp_path, download=False, validation_size=10, checksums=checksums)


def test_wrong_file_fails_checksum(tmp_path):
    write_mnist(tmp_path)  # the real checksums cannot match random images
    with pytest.raises(DataError) as e:
        load_mnist(tmp_path, download=False)
    msg = str(e.value)
    assert "train-images-idx3-ubyte.gz" in msg and mnist.SHA256["train-images-idx3-ubyte.gz"] in msg
    assert "minilottery data download --force" in msg and "\n" not in msg


def test_missing_files_message(tmp_path):
    with pytest.raises(DataError) as e:
        load_mnist(tmp_path, download=False)
    msg = str(e.value)
    assert all(m in msg for m in mnist.MIRRORS) and str(tmp_path) in msg
    assert all(name in msg for name in mnist.SHA256)


def test_subset(tmp_path):
    data = load_mnist(tmp_path, download=False, validation_size=10, checksums=write_mnist(tmp_path))
    small = data.subset(5, 3, 2)
    assert (len(small.y_train), len(small.y_val), len(small.y_test)) == (5, 3, 2)
    np.testing.assert_array_equal(small.x_train, data.x_train[:5])
    assert data.subset(5).x_val.shape == data.x_val.shape  # None keeps a split whole
    with pytest.raises(ValueError, match="n_train must be between 0 and 50"):
        data.subset(51)


def test_cli_check_reports_one_line_error(tmp_path, capsys):
    write_mnist(tmp_path)
    assert run_data_command(["data", "check", "--data-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


# --------------------------------------------------------------------------------------------------------
# The real data
# --------------------------------------------------------------------------------------------------------


@pytest.mark.mnist
def test_real_mnist_shapes_and_values(mnist_data):
    d = mnist_data
    assert d.x_train.shape == (55000, 1, 28, 28) and d.y_train.shape == (55000,)
    assert d.x_val.shape == (5000, 1, 28, 28) and d.y_val.shape == (5000,)
    assert d.x_test.shape == (10000, 1, 28, 28) and d.y_test.shape == (10000,)
    for x in (d.x_train, d.x_val, d.x_test):
        assert x.dtype == np.float32 and x.min() == 0.0 and x.max() == 1.0
    for y in (d.y_train, d.y_val, d.y_test):
        assert y.dtype == np.int64 and y.min() == 0 and y.max() == 9


@pytest.mark.mnist
def test_real_mnist_label_counts(mnist_data):
    d = mnist_data
    train_and_val = np.bincount(np.concatenate([d.y_train, d.y_val]), minlength=10)
    assert train_and_val.tolist() == TRAIN_COUNTS and sum(TRAIN_COUNTS) == 60000
    assert np.bincount(d.y_test, minlength=10).tolist() == TEST_COUNTS and sum(TEST_COUNTS) == 10000
    assert np.bincount(d.y_val, minlength=10).min() > 400  # a random 5,000 has every digit, roughly 500 each


@pytest.mark.mnist
def test_real_mnist_split_matches_seed(mnist_data):
    # validation = the training examples at the first 5,000 indices of default_rng(0).permutation(60000)
    raw = mnist.read_idx(Path(_real_dir()) / _real_name("train-labels-idx1-ubyte.gz"), mnist.LABELS_MAGIC)
    order = np.random.default_rng(0).permutation(60000)
    np.testing.assert_array_equal(mnist_data.y_val, raw[order[:5000]])
    np.testing.assert_array_equal(mnist_data.y_train, raw[order[5000:]])


@pytest.mark.mnist
def test_real_mnist_cli_check(mnist_data, capsys):
    assert run_data_command(["data", "check", "--data-dir", _real_dir()]) == 0
    assert "ok  mnist" in capsys.readouterr().out


def _real_dir() -> str:
    return str(mnist.folder())


def _real_name(name: str) -> str:
    from minilottery.data.layout import locate

    return locate(name, _real_dir()).name


def test_download_from_local_mirror_then_load(tmp_path, monkeypatch):
    """End to end: a missing file is fetched from a mirror (a local HTTP server), verified, then loaded."""
    served = tmp_path / "mirror"
    served.mkdir()
    checksums = write_mnist(served)
    with serving_folder(served) as url:
        monkeypatch.setattr(mnist, "MIRRORS", (url,))
        local = tmp_path / "data"
        data = load_mnist(local, validation_size=10, checksums=checksums)
        assert data.x_train.shape == (50, 1, 28, 28)
        assert sorted(p.name for p in local.iterdir()) == sorted([".verified.json", *checksums])


def test_offline_download_names_every_missing_file(tmp_path, monkeypatch):
    refused = refused_url()
    monkeypatch.setattr(mnist, "MIRRORS", (refused,))
    with pytest.raises(DataError) as e:
        load_mnist(tmp_path / "data")
    msg = str(e.value)
    assert all(name in msg for name in mnist.SHA256) and refused in msg and str(tmp_path / "data") in msg
    assert "\n" not in msg
