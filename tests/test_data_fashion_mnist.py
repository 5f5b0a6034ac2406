"""Fashion-MNIST: the real files (checksums, split, classes), a corrupted or mistaken copy refused, and the one
scheme for where every data set lives (a data root with ``mnist/``, ``fashion-mnist/``, ``cifar-10/``).

The real-data tests use the ``fashion_mnist_data`` fixture (``$MINILOTTERY_DATA/fashion-mnist``, never
downloaded): skipped without the files, a failure under CI.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from minilottery.data import DATASETS, DataError, fashion_mnist, load_fashion_mnist, load_mnist, mnist
from minilottery.data.paths import dataset_dir
from tests.helpers import run_data_command, serving_folder, write_mnist

pytestmark = pytest.mark.usefixtures("private_cache")

LABELS = "train-labels-idx1-ubyte.gz"


def real_folder() -> Path:
    return fashion_mnist.folder()


# -- the real files ---------------------------------------------------------------------------------------------


@pytest.mark.fashion_mnist
def test_real_fashion_mnist_shapes_classes_and_split(fashion_mnist_data):
    d = fashion_mnist_data
    assert d.name == "fashion-mnist"
    assert (d.x_train.shape, d.x_val.shape, d.x_test.shape) == ((55000, 1, 28, 28), (5000, 1, 28, 28),
                                                               (10000, 1, 28, 28))
    assert all(x.dtype == np.float32 and x.min() == 0.0 and x.max() == 1.0 for x in (d.x_train, d.x_val, d.x_test))
    # 6,000 training and 1,000 test images of each of the ten classes
    assert np.bincount(np.concatenate([d.y_train, d.y_val]), minlength=10).tolist() == [6000] * 10
    assert np.bincount(d.y_test, minlength=10).tolist() == [1000] * 10
    # the validation set is MNIST's: the first 5,000 indices of default_rng(0).permutation(60000)
    raw = mnist.read_idx(real_folder() / LABELS, mnist.LABELS_MAGIC)
    order = np.random.default_rng(0).permutation(60000)
    np.testing.assert_array_equal(d.y_val, raw[order[:5000]])
    np.testing.assert_array_equal(d.y_train, raw[order[5000:]])


@pytest.mark.fashion_mnist
def test_real_fashion_mnist_checksums_by_the_data_command(fashion_mnist_data, capsys):
    assert run_data_command(["data", "check", "--dataset", "fashion-mnist"]) == 0  # re-hashes every file
    assert capsys.readouterr().out == (f"ok  fashion-mnist in {real_folder()}: train (55000, 1, 28, 28), "
                                       "val (5000, 1, 28, 28), test (10000, 1, 28, 28)\n")


@pytest.mark.fashion_mnist
def test_a_corrupted_copy_is_refused_naming_the_file(fashion_mnist_data, tmp_path):
    for path in real_folder().glob("*-ubyte.gz"):
        shutil.copyfile(path, tmp_path / path.name)
    labels = bytearray(gzip.decompress((tmp_path / LABELS).read_bytes()))
    labels[100] = (labels[100] + 1) % 10  # one label changed: still a valid IDX file, not the published one
    (tmp_path / LABELS).write_bytes(gzip.compress(bytes(labels)))
    with pytest.raises(DataError) as refused:
        load_fashion_mnist(tmp_path, download=False)
    message = str(refused.value)
    assert str(tmp_path / LABELS) in message and "SHA-256" in message and "\n" not in message
    assert "minilottery data download --dataset fashion-mnist --force" in message


@pytest.mark.mnist
def test_mnist_files_are_not_taken_for_fashion_mnist(mnist_data, tmp_path):
    for path in mnist.folder().glob("*-ubyte*"):
        shutil.copyfile(path, tmp_path / path.name)
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.*SHA-256"):
        load_fashion_mnist(tmp_path, download=False)


# -- where each data set lives ----------------------------------------------------------------------------------


def test_a_data_root_has_one_folder_per_data_set(tmp_path, monkeypatch):
    for folder in ("mnist", "fashion-mnist", "cifar-10"):
        (tmp_path / folder).mkdir()
    monkeypatch.setenv("MINILOTTERY_DATA", str(tmp_path))
    assert [dataset_dir(name) for name in ("mnist", "fashion-mnist", "cifar10")] == [
        tmp_path / "mnist", tmp_path / "fashion-mnist", tmp_path / "cifar-10"]
    assert fashion_mnist.folder(tmp_path) == tmp_path / "fashion-mnist"  # --data-dir ROOT
    assert fashion_mnist.folder(tmp_path / "fashion-mnist") == tmp_path / "fashion-mnist"  # --data-dir FOLDER
    assert set(DATASETS) == {"mnist", "fashion-mnist", "cifar10"}


def test_an_empty_root_downloads_into_the_data_sets_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("MINILOTTERY_DATA", str(tmp_path))
    assert [dataset_dir(name) for name in ("mnist", "fashion-mnist", "cifar10")] == [
        tmp_path / "mnist", tmp_path / "fashion-mnist", tmp_path / "cifar-10"]


def test_minilottery_data_pointing_straight_at_mnist_files_keeps_working(tmp_path, monkeypatch):
    checksums = write_mnist(tmp_path)  # the four MNIST names directly in the folder, as before data roots
    monkeypatch.setenv("MINILOTTERY_DATA", str(tmp_path))
    assert mnist.folder() == tmp_path
    assert load_mnist(download=False, validation_size=10, checksums=checksums).x_train.shape == (50, 1, 28, 28)
    # the same names are never read as Fashion-MNIST: that data set has its own folder
    assert fashion_mnist.folder() == tmp_path / "fashion-mnist"
    with pytest.raises(DataError, match="fashion-mnist"):
        load_fashion_mnist(download=False)


def test_minilottery_data_pointing_straight_at_the_fashion_folder(tmp_path, monkeypatch):
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    checksums = write_mnist(folder)
    monkeypatch.setenv("MINILOTTERY_DATA", str(folder))
    assert fashion_mnist.folder() == folder
    data = load_fashion_mnist(download=False, validation_size=10, checksums=checksums)
    assert data.name == "fashion-mnist" and data.x_train.shape == (50, 1, 28, 28)


def test_download_from_the_mirror_into_the_fashion_folder(tmp_path, monkeypatch):
    served = tmp_path / "mirror"
    served.mkdir()
    checksums = write_mnist(served)
    monkeypatch.setenv("MINILOTTERY_DATA", str(tmp_path / "root"))
    with serving_folder(served) as url:
        monkeypatch.setattr(fashion_mnist, "MIRRORS", (url,))
        data = load_fashion_mnist(validation_size=10, checksums=checksums)
    assert data.x_train.shape == (50, 1, 28, 28)
    assert sorted(p.name for p in (tmp_path / "root" / "fashion-mnist").iterdir()) == sorted(
        [".verified.json", *checksums])
    assert not (tmp_path / "root" / "mnist").exists()


def test_a_truncated_fashion_file_names_fashion_mnists_fix(tmp_path):
    checksums = write_mnist(tmp_path)
    labels = gzip.decompress((tmp_path / LABELS).read_bytes())[:-1]  # one label short of its header
    (tmp_path / LABELS).write_bytes(gzip.compress(labels))
    checksums[LABELS] = hashlib.sha256(labels).hexdigest()  # a copy that passes its checksum, then its parse
    with pytest.raises(DataError, match="truncated or wrong file.*--dataset fashion-mnist --force"):
        load_fashion_mnist(tmp_path, download=False, validation_size=10, checksums=checksums)
