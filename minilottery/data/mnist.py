"""MNIST: the four IDX files, checked, parsed and split 55,000 / 5,000 / 10,000.

IDX is a tiny format (LeCun et al.): a big-endian header, then the raw uint8 payload in row-major order.

    images: magic 0x00000803 (= uint8, 3 dimensions), count, rows, cols   -> 16-byte header
    labels: magic 0x00000801 (= uint8, 1 dimension),  count               ->  8-byte header

The files may be gzip-compressed (``.gz``, as the mirrors serve them) or not. Each is checked against the
SHA-256 of its decompressed bytes before it is trusted (see ``download.py``), and the header is checked against
the payload size, so a wrong or truncated file fails with a one-line ``DataError`` instead of odd shapes. Their
known sizes (``SIZES``) bound every download and every decompression: a file that is longer is corrupt.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import numpy as np

from minilottery.data import download as dl
from minilottery.data.dataset import Dataset, split_validation, to_unit_float
from minilottery.data.paths import data_dir as resolve_data_dir

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
_FIX = f"run `{dl.FORCE_HINT}`"


def parse_idx(data: bytes, magic: int, source: str = "<bytes>") -> np.ndarray:
    """Parse an uncompressed IDX file of uint8 values.

    Args:
        data: the file's (decompressed) bytes.
        magic: the expected magic number, ``IMAGES_MAGIC`` (3 dimensions) or ``LABELS_MAGIC`` (1 dimension).
        source: the file's name, for error messages.

    Returns:
        uint8 array of shape (count, rows, cols) for images or (count,) for labels: a read-only view of ``data``
        (no copy; the loaders copy when they split and convert).
    """
    ndim = magic & 0xFF  # the magic's last byte is the number of dimensions, the one before it the type
    header_size = 4 + 4 * ndim  # magic, then one uint32 per dimension
    kind = "image" if magic == IMAGES_MAGIC else "label"
    if len(data) < header_size:
        raise dl.DataError(f"{source} is too short for an IDX {kind} file ({len(data)} bytes, the header alone "
                           f"is {header_size}); {_FIX}")
    header = np.frombuffer(data, dtype=">u4", count=1 + ndim)  # big-endian uint32s
    if int(header[0]) != magic:
        raise dl.DataError(f"{source} is not an IDX {kind} file: expected magic 0x{magic:08x}, found "
                           f"0x{int(header[0]):08x}; {_FIX}")
    shape = tuple(int(d) for d in header[1:])
    expected = int(np.prod(shape, dtype=np.int64))
    payload = len(data) - header_size
    if payload != expected:
        raise dl.DataError(f"{source}: the header says {' x '.join(map(str, shape))} = {expected} bytes of "
                           f"data, the file has {payload} (truncated or wrong file?); {_FIX}")
    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(shape)  # (count,) or (count, rows, cols)


def _size_uncompressed(path: str | os.PathLike[str]) -> int | None:
    """The known decompressed size of an MNIST file (``.gz`` or its decompressed copy), else ``None``."""
    name = Path(path).name
    return SIZES.get(name if name.endswith(".gz") else name + ".gz", (None, None))[1]


def read_idx(path: str | os.PathLike[str], magic: int) -> np.ndarray:
    """Read an IDX file from disk, ``.gz`` or not; see ``parse_idx``.

    An MNIST file longer than its known size (``SIZES``) is refused as corrupt, without decompressing past it.
    """
    return parse_idx(dl.read_bytes(path, _size_uncompressed(path)), magic, source=str(path))


def _read_pair(images_path: Path, labels_path: Path, images_sha: str, labels_sha: str,
               recheck: bool) -> tuple[np.ndarray, np.ndarray]:
    """Verified (N, 28, 28) uint8 images and (N,) int64 labels."""
    arrays = []
    for path, sha, magic in ((images_path, images_sha, IMAGES_MAGIC), (labels_path, labels_sha, LABELS_MAGIC)):
        content = dl.read_bytes(path, _size_uncompressed(path))  # read once: verify hashes these if needed
        dl.verify(path, sha, content=content, use_cache=not recheck)
        arrays.append(parse_idx(content, magic, source=str(path)))
    images, labels = arrays
    if images.shape[0] != labels.shape[0]:
        raise dl.DataError(f"{images_path} has {images.shape[0]} images but {labels_path} has "
                           f"{labels.shape[0]} labels; {_FIX}")
    if images.ndim != 3:
        raise dl.DataError(f"{images_path}: expected (N, rows, cols) images, got shape {images.shape}; {_FIX}")
    if labels.size and labels.max() > 9:
        raise dl.DataError(f"{labels_path}: labels must be digits 0..9, found {int(labels.max())}; {_FIX}")
    return images, labels.astype(np.int64)


def download_files(data_dir: str | os.PathLike[str] | None = None, *, force: bool = False, progress: bool = True,
                   checksums: Mapping[str, str] | None = None, deadline: float = dl.DEADLINE) -> list[Path]:
    """Make sure the four MNIST files are in ``data_dir``, verified; download what is missing (or all, ``force``).

    Args:
        deadline: seconds each file's download may take (all mirrors together); see ``download.fetch``.
    """
    checksums = SHA256 if checksums is None else checksums
    folder = resolve_data_dir(data_dir)
    # what killed downloads left behind goes even when nothing is downloaded now (all files already there)
    dl.sweep_stale(folder, [*checksums, dl.SIDECAR_NAME], older_than=deadline)
    paths = []
    for name, sha in checksums.items():
        size, size_uncompressed = SIZES.get(name, (None, None))
        try:
            if force:
                paths.append(dl.fetch(name, MIRRORS, sha, folder, progress, size=size,
                                      size_uncompressed=size_uncompressed, force=True, deadline=deadline))
            else:
                paths.append(dl.ensure(name, MIRRORS, sha, folder, size=size, size_uncompressed=size_uncompressed,
                                       progress=progress, deadline=deadline))
        except dl.OfflineError as e:
            missing = [n for n in checksums if dl.locate(n, folder) is None]
            if name not in missing:  # a forced download of a file that is there: its own message says it is kept
                raise
            raise dl.missing_error(missing, MIRRORS, folder, offline=e) from None  # every file still missing
    return paths


download = download_files  # `mnist.download(...)`; load_mnist's `download` flag shadows the name inside it


def load_mnist(
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    validation_size: int = 5000,
    seed: int = 0,
    *,
    checksums: Mapping[str, str] | None = None,
    recheck: bool = False,
) -> Dataset:
    """Load MNIST as float32 images in [0, 1], with 5,000 training examples held out for validation.

    Args:
        data_dir: the folder with the four files; ``None`` asks ``paths.data_dir()`` (``MINILOTTERY_DATA``, ...).
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
    checksums = SHA256 if checksums is None else checksums
    names = list(checksums)  # train-images, train-labels, t10k-images, t10k-labels
    if len(names) != 4:
        raise ValueError(f"checksums must name the 4 MNIST files (train images, train labels, test images, "
                         f"test labels), got {names}")
    folder = resolve_data_dir(data_dir)
    missing = [name for name in names if dl.locate(name, folder) is None]
    if missing and not download:
        raise dl.missing_error(missing, MIRRORS, folder)  # one message for all of them, not one per retry
    if missing:
        download_files(folder, checksums={n: checksums[n] for n in missing})
    # verify_existing=False: _read_pair checks each file on the bytes it reads anyway (one read, not two)
    paths = [dl.ensure(name, MIRRORS, checksums[name], folder, download=False, verify_existing=False)
             for name in names]
    train_x, train_y = _read_pair(paths[0], paths[1], checksums[names[0]], checksums[names[1]], recheck)
    test_x, test_y = _read_pair(paths[2], paths[3], checksums[names[2]], checksums[names[3]], recheck)
    x_train, y_train, x_val, y_val = split_validation(train_x, train_y, validation_size, seed)
    # (N, 28, 28) uint8 -> (N, 1, 28, 28) float32: one channel, as the conv layers expect NCHW
    return Dataset(
        x_train=to_unit_float(x_train)[:, None], y_train=y_train,
        x_val=to_unit_float(x_val)[:, None], y_val=y_val,
        x_test=to_unit_float(test_x)[:, None], y_test=test_y,
        name="mnist",
    )
