"""MNIST: the four IDX files, checked, parsed and split 55,000 / 5,000 / 10,000.

Fashion-MNIST (``fashion_mnist.py``) has the same format, names and shapes: it reuses the functions here with its
own checksums, mirrors and sizes.

IDX is a tiny format (LeCun et al.): a big-endian header, then the raw uint8 payload in row-major order.

    images: magic 0x00000803 (= uint8, 3 dimensions), count, rows, cols   -> 16-byte header
    labels: magic 0x00000801 (= uint8, 1 dimension),  count               ->  8-byte header

The files may be gzip-compressed (``.gz``, as the mirrors serve them) or not. Each is checked against the
SHA-256 of its decompressed bytes before it is trusted (see ``checksums.py``), and the header is checked against
the payload size, so a wrong or truncated file fails with a one-line ``DataError`` instead of odd shapes. Their
known sizes (``SIZES``) bound every download and every decompression: a file that is longer is corrupt.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from minilottery.data import download as dl
from minilottery.data.checksums import FORCE_HINT, DataError, DataFile, read_bytes, verify
from minilottery.data.dataset import VALIDATION_SIZE, Dataset, split_and_scale
from minilottery.data.fetch import DEADLINE
from minilottery.data.paths import dataset_dir

MNIST = Dataset  # the type load_mnist returns; CIFAR-10 shares it

MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

# file name -> SHA-256 of the decompressed file (the published checksums of the original IDX files)
SHA256 = {
    "train-images-idx3-ubyte.gz": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte.gz": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte.gz": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

# file name -> (size of the .gz as the mirrors serve it, size decompressed). The decompressed sizes follow from
# the headers (16 + 60000*28*28, 8 + 60000, ...) and are exact; the .gz sizes are the mirrors' (a copy gzipped
# differently has another size, e.g. 9719438 for a recompressed train-images), so downloads allow a margin.
SIZES = {
    "train-images-idx3-ubyte.gz": (9912422, 47040016),
    "train-labels-idx1-ubyte.gz": (28881, 60008),
    "t10k-images-idx3-ubyte.gz": (1648877, 7840016),
    "t10k-labels-idx1-ubyte.gz": (4542, 10008),
}

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801


def folder(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """MNIST's folder: ``paths.dataset_dir("mnist", data_dir)``, which also accepts an older data root that holds
    the four files (or their decompressed copies) directly."""
    return dataset_dir("mnist", data_dir, (*SIZES, *(name.removesuffix(".gz") for name in SIZES)))


def parse_idx(data: bytes, magic: int, source: str = "<bytes>", fix: str = FORCE_HINT) -> np.ndarray:
    """Parse an uncompressed IDX file of uint8 values.

    Args:
        data: the file's (decompressed) bytes.
        magic: the expected magic number, ``IMAGES_MAGIC`` (3 dimensions) or ``LABELS_MAGIC`` (1 dimension).
        source: the file's name, for error messages.
        fix: the command an error message suggests (the data set's ``download --force``).

    Returns:
        uint8 array of shape (count, rows, cols) for images or (count,) for labels: a read-only view of ``data``
        (no copy; the loaders copy when they split and convert).
    """
    ndim = magic & 0xFF  # the magic's last byte is the number of dimensions, the one before it the type
    header_size = 4 + 4 * ndim  # magic, then one uint32 per dimension
    kind = "image" if magic == IMAGES_MAGIC else "label"
    if len(data) < header_size:
        raise DataError(f"{source} is too short for an IDX {kind} file ({len(data)} bytes, the header alone "
                        f"is {header_size}); run `{fix}`")
    header = np.frombuffer(data, dtype=">u4", count=1 + ndim)  # big-endian uint32s
    if int(header[0]) != magic:
        raise DataError(f"{source} is not an IDX {kind} file: expected magic 0x{magic:08x}, found "
                        f"0x{int(header[0]):08x}; run `{fix}`")
    shape = tuple(int(d) for d in header[1:])
    expected = int(np.prod(shape, dtype=np.int64))
    payload = len(data) - header_size
    if payload != expected:
        raise DataError(f"{source}: the header says {' x '.join(map(str, shape))} = {expected} bytes of "
                        f"data, the file has {payload} (truncated or wrong file?); run `{fix}`")
    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(shape)  # (count,) or (count, rows, cols)


def _size_uncompressed(path: str | os.PathLike[str]) -> int | None:
    """The known decompressed size of an MNIST-format file (``.gz`` or its decompressed copy), else ``None``.

    Fashion-MNIST's files have MNIST's names and shapes, so the same sizes.
    """
    name = Path(path).name
    return SIZES.get(name if name.endswith(".gz") else name + ".gz", (None, None))[1]


def read_idx(path: str | os.PathLike[str], magic: int) -> np.ndarray:
    """Read an IDX file from disk, ``.gz`` or not; see ``parse_idx``.

    An MNIST file longer than its known size (``SIZES``) is refused as corrupt, without decompressing past it.
    """
    return parse_idx(read_bytes(path, _size_uncompressed(path)), magic, source=str(path))


def data_files(checksums: Mapping[str, str] | None = None, *, mirrors: tuple[str, ...] | None = None,
               sizes: Mapping[str, tuple[int, int]] | None = None, fix: str = FORCE_HINT) -> list[DataFile]:
    """The ``DataFile`` of each file ``checksums`` names (file name -> SHA-256 of its decompressed bytes; default
    ``SHA256``), served by ``mirrors`` (default ``MIRRORS``), with its ``sizes`` (default ``SIZES``; ``None`` for
    a name they do not know); ``fix`` is the command an error suggests."""
    checksums = SHA256 if checksums is None else checksums
    mirrors = MIRRORS if mirrors is None else mirrors
    sizes = SIZES if sizes is None else sizes
    known = {name: sizes.get(name, (None, None)) for name in checksums}
    return [DataFile(name, mirrors, sha256_uncompressed=sha, size=known[name][0], size_uncompressed=known[name][1],
                     fix=fix) for name, sha in checksums.items()]


def _read_pair(images_path: Path, labels_path: Path, images_file: DataFile, labels_file: DataFile,
               recheck: bool) -> tuple[np.ndarray, np.ndarray]:
    """Verified (N, 28, 28) uint8 images and (N,) int64 labels."""
    arrays = []
    for path, file, magic in ((images_path, images_file, IMAGES_MAGIC), (labels_path, labels_file, LABELS_MAGIC)):
        content = read_bytes(path, _size_uncompressed(path))  # read once: verify hashes these if needed
        verify(path, file, content=content, use_cache=not recheck)
        arrays.append(parse_idx(content, magic, source=str(path), fix=file.fix))
    images, labels = arrays
    fix = f"run `{images_file.fix}`"
    if images.shape[0] != labels.shape[0]:
        raise DataError(f"{images_path} has {images.shape[0]} images but {labels_path} has "
                        f"{labels.shape[0]} labels; {fix}")
    if images.ndim != 3:
        raise DataError(f"{images_path}: expected (N, rows, cols) images, got shape {images.shape}; {fix}")
    if labels.size and labels.max() > 9:
        raise DataError(f"{labels_path}: labels must be classes 0..9, found {int(labels.max())}; {fix}")
    return images, labels.astype(np.int64)


def download_files(data_dir: str | os.PathLike[str] | None = None, *, force: bool = False, progress: bool = True,
                   checksums: Mapping[str, str] | None = None, deadline: float = DEADLINE) -> list[Path]:
    """Make sure the four MNIST files are in ``data_dir``, verified; download what is missing (or all, ``force``).

    Args:
        deadline: seconds each file's download may take (all mirrors together); see ``fetch.fetch``.
    """
    return dl.download_files(data_files(checksums), folder(data_dir), force=force, progress=progress, deadline=deadline)


download = download_files  # `mnist.download(...)`; load_mnist's `download` flag shadows the name inside it


def load_mnist(data_dir: str | os.PathLike[str] | None = None, download: bool = True,
               validation_size: int = VALIDATION_SIZE, seed: int = 0, *,
               checksums: Mapping[str, str] | None = None, recheck: bool = False) -> Dataset:
    """Load MNIST as float32 images in [0, 1], with 5,000 training examples held out for validation.

    Args:
        data_dir: the data root or the folder with the four files; ``None``: ``paths.dataset_dir("mnist")``
            (``$MINILOTTERY_DATA/mnist``, ...).
        download: fetch missing files from the mirrors; ``False`` raises ``DataError`` instead.
        validation_size: training examples held out as the validation set (the paper's 5,000).
        seed: seed of the permutation that picks them (see ``dataset.split_validation``).
        checksums: file name -> SHA-256 of its decompressed bytes; defaults to the published ones. Tests pass
            their own to load small files they wrote.
        recheck: re-hash every file even if it was verified before (``minilottery data check``).

    Returns:
        Dataset with x_train (55000, 1, 28, 28), y_train (55000,), x_val (5000, 1, 28, 28), y_val (5000,),
        x_test (10000, 1, 28, 28), y_test (10000,); images float32 in [0, 1], labels int64 in 0..9.
    """
    return load_idx_files("mnist", data_files(checksums), folder(data_dir), download, validation_size, seed, recheck)


def load_idx_files(name: str, files: list[DataFile], dest_dir: Path, download: bool, validation_size: int, seed: int,
                   recheck: bool) -> Dataset:
    """The data set ``name`` from its four IDX ``files`` (train images, train labels, test images, test labels)
    in ``dest_dir``: what ``load_mnist`` and ``fashion_mnist.load_fashion_mnist`` share."""
    if len(files) != 4:
        raise ValueError(f"checksums must name the 4 {name} files (train images, train labels, test images, "
                         f"test labels), got {[f.name for f in files]}")
    # verify_existing=False: _read_pair checks each file on the bytes it reads anyway (one read, not two)
    paths = dl.load_files(files, dest_dir, download=download, verify_existing=False)
    train_x, train_y = _read_pair(paths[0], paths[1], files[0], files[1], recheck)
    test_x, test_y = _read_pair(paths[2], paths[3], files[2], files[3], recheck)
    # (N, 28, 28) -> (N, 1, 28, 28): one channel, as the conv layers expect NCHW
    return split_and_scale(name, train_x[:, None], train_y, test_x[:, None], test_y, validation_size, seed)
