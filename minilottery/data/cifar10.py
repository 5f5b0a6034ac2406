"""CIFAR-10: the official python archive, checked, read without unpacking, split 45,000 / 5,000 / 10,000.

The archive ``cifar-10-python.tar.gz`` (Krizhevsky, 2009) holds six pickled batches under
``cifar-10-batches-py/``: ``data_batch_1`` .. ``data_batch_5`` (training) and ``test_batch``. Each is a dict with

    b"data":   uint8 array (10000, 3072): one image per row, the 1024 red, then green, then blue pixels,
               each plane row-major 32 x 32 -- so a reshape to (N, 3, 32, 32) gives NCHW directly
    b"labels": list of 10000 ints in 0..9

The archive's published MD5 is checked before it is trusted, and its known size caps a download (see
``checksums.py`` and ``fetch.py``). Unpickling can run arbitrary code, so on top of that the batches are read
with an unpickler that only builds dicts, lists, bytes and NumPy arrays; anything else is refused.
"""

from __future__ import annotations

import codecs
import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np

from minilottery.data import download as dl
from minilottery.data.checksums import DataError, DataFile
from minilottery.data.dataset import VALIDATION_SIZE, Dataset, split_and_scale
from minilottery.data.fetch import DEADLINE
from minilottery.data.paths import dataset_dir

MIRRORS = ("https://www.cs.toronto.edu/~kriz/",)
ARCHIVE = "cifar-10-python.tar.gz"
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"  # as published on the data set's page
ARCHIVE_SIZE = 170498071  # bytes: caps a download (plus a margin, see fetch.max_download_size)
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
FORCE_HINT = "minilottery data download --dataset cifar10 --force"
_FIX = f"run `{FORCE_HINT}`"


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Resolves only the few globals a batch needs (NumPy's array rebuilder, ``codecs.encode``)."""

    # ndarray.__reduce__ names NumPy's private _reconstruct function, wherever this NumPy version keeps it
    _reconstruct = np.ndarray((0,)).__reduce__()[0]
    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,  # NumPy 1.x pickles, as in the real archive
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,  # NumPy 2.x pickles
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,  # protocol-2 pickles of bytes use it
    }

    def find_class(self, module: str, name: str):
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}") from None


def parse_batch(data: bytes, source: str = "<batch>") -> tuple[np.ndarray, np.ndarray]:
    """One pickled batch -> (images (N, 3, 32, 32) uint8, labels (N,) int64)."""
    try:
        batch = _ArraysOnlyUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as e:  # noqa: BLE001 -- any unpickling failure means a bad batch, reported in one line
        raise DataError(f"{source} is not a CIFAR-10 batch ({type(e).__name__}: {e}); {_FIX}") from None
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise DataError(f"{source} is not a CIFAR-10 batch (expected a dict with b'data' and b'labels'); {_FIX}")
    images = np.asarray(batch[b"data"])
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    if images.dtype != np.uint8 or images.ndim != 2 or images.shape[1] != 3 * 32 * 32:
        raise DataError(f"{source}: expected b'data' uint8 of shape (N, 3072), got {images.dtype} "
                        f"{images.shape}; {_FIX}")
    if labels.shape != (images.shape[0],):
        raise DataError(f"{source}: {images.shape[0]} images but {labels.size} labels; {_FIX}")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{source}: labels must be in 0..9, found {labels.min()}..{labels.max()}; {_FIX}")
    return images.reshape(-1, 3, 32, 32), labels  # (N, 3072) -> (N, 3, 32, 32): R, G, B planes, row-major


def read_archive(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read the six batches straight from the tar.gz, in one pass, without unpacking it to disk.

    Returns:
        train images (50000, 3, 32, 32) uint8, train labels (50000,) int64, test images (10000, 3, 32, 32)
        uint8, test labels (10000,) int64 (fewer for a test's small archive).
    """
    wanted = set(TRAIN_BATCHES) | {TEST_BATCH}
    found: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    try:
        # iterate in archive order: a gzip stream cannot seek, so looking members up by name would re-read it
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                name = member.name.rsplit("/", 1)[-1]
                if member.isfile() and name in wanted:
                    found[name] = parse_batch(tar.extractfile(member).read(), source=f"{path}:{member.name}")
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"{path} is not a readable tar.gz archive ({e}); {_FIX}") from None
    missing = sorted(wanted - set(found))
    if missing:
        raise DataError(f"{path} lacks the batches {', '.join(missing)}; {_FIX}")
    train = [found[b] for b in TRAIN_BATCHES]
    x_train = np.concatenate([x for x, _ in train])  # 5 x (10000, 3, 32, 32) -> (50000, 3, 32, 32)
    y_train = np.concatenate([y for _, y in train])
    return x_train, y_train, *found[TEST_BATCH]


def archive_file(md5: str = ARCHIVE_MD5) -> DataFile:
    """The archive as a ``DataFile``: its name, ``MIRRORS``, ``md5`` (of the file as stored) and known size."""
    return DataFile(ARCHIVE, MIRRORS, md5=md5, size=ARCHIVE_SIZE, fix=FORCE_HINT)


def folder(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """CIFAR-10's folder: ``paths.dataset_dir("cifar10", data_dir)``, which also accepts an older data root that
    holds the archive directly."""
    return dataset_dir("cifar10", data_dir, (ARCHIVE,))


def download(data_dir: str | os.PathLike[str] | None = None, *, force: bool = False, progress: bool = True,
             md5: str = ARCHIVE_MD5, deadline: float = DEADLINE) -> list[Path]:
    """Make sure the archive is in ``data_dir``, verified; download it if missing (or again, with ``force``).

    Args:
        deadline: seconds the download may take (all mirrors together); see ``fetch.fetch``.
    """
    return dl.download_files([archive_file(md5)], folder(data_dir), force=force, progress=progress, deadline=deadline)


def load_cifar10(data_dir: str | os.PathLike[str] | None = None, download: bool = True,
                 validation_size: int = VALIDATION_SIZE, seed: int = 0, *, md5: str = ARCHIVE_MD5,
                 recheck: bool = False) -> Dataset:
    """Load CIFAR-10 as float32 images in [0, 1], with 5,000 training examples held out for validation.

    Args:
        data_dir: the data root (with a ``cifar-10/`` folder) or the folder with ``cifar-10-python.tar.gz``;
            ``None``: ``paths.dataset_dir("cifar10")`` (``$MINILOTTERY_DATA/cifar-10``, ...).
        download: fetch the archive (about 170 MB) if it is missing; ``False`` raises ``DataError`` instead.
        md5: the archive's expected MD5; defaults to the published one (tests pass their small archive's).
        validation_size, seed, recheck: as for ``mnist.load_mnist``.

    Returns:
        Dataset with x_train (45000, 3, 32, 32), y_train (45000,), x_val (5000, 3, 32, 32), y_val (5000,),
        x_test (10000, 3, 32, 32), y_test (10000,); images float32 in [0, 1], labels int64 in 0..9.
    """
    (path,) = dl.load_files([archive_file(md5)], folder(data_dir), download=download, recheck=recheck)
    train_x, train_y, test_x, test_y = read_archive(path)
    return split_and_scale("cifar10", train_x, train_y, test_x, test_y, validation_size, seed)
