"""Fashion-MNIST (Xiao, Rasul & Vollgraf, 2017): 70,000 grey 28 x 28 images of clothing in MNIST's format.

Zalando Research made it a drop-in replacement for MNIST: the same four IDX file names, shapes and 60,000 /
10,000 split, ten classes (0 T-shirt/top, 1 Trouser, 2 Pullover, 3 Dress, 4 Coat, 5 Sandal, 6 Shirt, 7 Sneaker,
8 Bag, 9 Ankle boot). It is harder: a dense LeNet-300-100 reaches 88% instead of 98%, so tickets have room
to gain. The files are read, checked and split 55,000 / 5,000 / 10,000 exactly as MNIST's (``mnist.py``); only
the checksums, the mirror and the folder differ. Because the names are MNIST's, the files always live in their
own folder, ``<data root>/fashion-mnist/`` (see ``paths.py``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from minilottery.data import download as dl
from minilottery.data import mnist
from minilottery.data.dataset import VALIDATION_SIZE, Dataset
from minilottery.data.fetch import DEADLINE
from minilottery.data.paths import dataset_dir

NAME = "fashion-mnist"
MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)  # the publisher's
FORCE_HINT = "minilottery data download --dataset fashion-mnist --force"

# file name -> SHA-256 of the decompressed file (the publisher's archives, decompressed)
SHA256 = {
    "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}

# file name -> (size of the .gz as the publisher serves it, size decompressed: MNIST's, the same shapes).
# A copy gzipped again differs by a few bytes (the gzip header names the file or not); downloads allow a margin.
SIZES = {
    "train-images-idx3-ubyte.gz": (26421880, mnist.SIZES["train-images-idx3-ubyte.gz"][1]),
    "train-labels-idx1-ubyte.gz": (29515, mnist.SIZES["train-labels-idx1-ubyte.gz"][1]),
    "t10k-images-idx3-ubyte.gz": (4422102, mnist.SIZES["t10k-images-idx3-ubyte.gz"][1]),
    "t10k-labels-idx1-ubyte.gz": (5148, mnist.SIZES["t10k-labels-idx1-ubyte.gz"][1]),
}


def data_files(checksums: Mapping[str, str] | None = None) -> list:
    """The four files as ``DataFile``s (see ``mnist.data_files``), checked against ``checksums`` (default
    ``SHA256``)."""
    return mnist.data_files(SHA256 if checksums is None else checksums, mirrors=MIRRORS, sizes=SIZES,
                            fix=FORCE_HINT)


def folder(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Fashion-MNIST's folder: ``paths.dataset_dir("fashion-mnist", data_dir)`` (never the data root itself)."""
    return dataset_dir(NAME, data_dir)


def download_files(data_dir: str | os.PathLike[str] | None = None, *, force: bool = False, progress: bool = True,
                   checksums: Mapping[str, str] | None = None, deadline: float = DEADLINE) -> list[Path]:
    """Make sure the four files are in the Fashion-MNIST folder, verified; download what is missing."""
    return dl.download_files(data_files(checksums), folder(data_dir), force=force, progress=progress, deadline=deadline)


def load_fashion_mnist(data_dir: str | os.PathLike[str] | None = None, download: bool = True,
                       validation_size: int = VALIDATION_SIZE, seed: int = 0, *,
                       checksums: Mapping[str, str] | None = None, recheck: bool = False) -> Dataset:
    """Load Fashion-MNIST as float32 images in [0, 1], with 5,000 training examples held out for validation.

    Args:
        data_dir: the data root (with a ``fashion-mnist/`` folder) or the folder with the four files; ``None``:
            ``paths.dataset_dir("fashion-mnist")`` (``$MINILOTTERY_DATA/fashion-mnist``, ...).
        download, validation_size, seed, checksums, recheck: as for ``mnist.load_mnist``.

    Returns:
        Dataset named "fashion-mnist" with MNIST's shapes: x_train (55000, 1, 28, 28), x_val (5000, 1, 28, 28),
        x_test (10000, 1, 28, 28); images float32 in [0, 1], labels int64 in 0..9.
    """
    return mnist.load_idx_files(NAME, data_files(checksums), folder(data_dir), download, validation_size, seed, recheck)
