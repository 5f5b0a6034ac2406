"""The in-memory data set every loader returns, and the held-out validation split.

Frankle & Carbin (2019) hold out 5,000 randomly chosen training examples as a fixed validation set: early
stopping (the "iteration of early stopping" the paper reports) is judged on it, and the test set is used only
to report accuracy. ``split_validation`` draws that set from a seeded generator, so seed 0 gives every run, on every
machine, the same split.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

VALIDATION_SIZE = 5000  # training examples held out for validation, as in the paper


@dataclass(frozen=True)
class Dataset:
    """Images scaled to [0, 1] and integer labels, split into train / validation / test.

    Attributes:
        x_train: (N_train, C, H, W) float32 in [0, 1]. MNIST: (55000, 1, 28, 28); CIFAR-10: (45000, 3, 32, 32).
        y_train: (N_train,) int64 class indices in 0..9.
        x_val:   (N_val, C, H, W) float32, held out from the official training set (5,000 by default).
        y_val:   (N_val,) int64.
        x_test:  (N_test, C, H, W) float32, the official test set (10,000 for both).
        y_test:  (N_test,) int64.
        name:    "mnist", "cifar10", or a test's own name.

    The training examples are in the order of the seeded permutation, so the first ``n`` of them are a random
    sample; ``subset`` relies on that.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    name: str = ""

    @property
    def num_classes(self) -> int:
        return 10

    def subset(self, n_train: int, n_val: int | None = None, n_test: int | None = None) -> Dataset:
        """A smaller data set (the first examples of each split), for quick tutorials and tests.

        ``None`` keeps a split whole. Raises ``ValueError`` when asking for more examples than a split has.
        """
        sizes = {"n_train": (n_train, len(self.y_train)), "n_val": (n_val, len(self.y_val)),
                 "n_test": (n_test, len(self.y_test))}
        for arg, (n, have) in sizes.items():
            if n is not None and not 0 <= n <= have:
                raise ValueError(f"{arg} must be between 0 and {have} (the split's size), got {n}")
        n_val = len(self.y_val) if n_val is None else n_val
        n_test = len(self.y_test) if n_test is None else n_test
        # copies, so the small set does not keep the full arrays alive
        return Dataset(
            self.x_train[:n_train].copy(), self.y_train[:n_train].copy(),
            self.x_val[:n_val].copy(), self.y_val[:n_val].copy(),
            self.x_test[:n_test].copy(), self.y_test[:n_test].copy(),
            name=self.name,
        )

    def __repr__(self) -> str:  # the default would print the arrays
        return (f"Dataset({self.name!r}, train={self.x_train.shape}, val={self.x_val.shape}, "
                f"test={self.x_test.shape}, dtype={self.x_train.dtype})")


def to_unit_float(images: np.ndarray) -> np.ndarray:
    """uint8 pixels 0..255 -> float32 in [0, 1] (same shape), a new array; ``images`` is left as it was."""
    scaled = images.astype(np.float32)  # a new array, so dividing it in place changes nothing of the caller's
    # in place: ``scaled / 255`` would be a second array of the whole set's size, fresh memory the OS maps in page
    # by page (MNIST's training images are 172 MB as float32; fresh, they took as long as the division itself)
    scaled /= np.float32(255.0)
    return scaled


def split_validation(
    x: np.ndarray, y: np.ndarray, validation_size: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hold out ``validation_size`` random examples of the training set.

    Args:
        x: (N, ...) training images (any dtype; splitting the uint8 array is cheaper than the float one).
        y: (N,) labels.
        validation_size: how many to hold out, 0 <= validation_size < N.
        seed: the split is ``np.random.default_rng(seed).permutation(N)``: the first ``validation_size``
            indices are validation, the rest training (kept in permuted order).

    Returns:
        x_train (N - V, ...), y_train (N - V,), x_val (V, ...), y_val (V,).
    """
    n = len(y)
    if not 0 <= validation_size < n:
        raise ValueError(f"validation_size must be between 0 and {n - 1} (the training set has {n}), "
                         f"got {validation_size}")
    order = np.random.default_rng(seed).permutation(n)
    val, train = order[:validation_size], order[validation_size:]
    return x[train], y[train], x[val], y[val]


def split_and_scale(name: str, train_images: np.ndarray, train_labels: np.ndarray, test_images: np.ndarray,
                    test_labels: np.ndarray, validation_size: int, seed: int) -> Dataset:
    """The ``Dataset`` a loader returns: a validation set held out (``split_validation``), images in [0, 1].

    Args:
        name: the data set's name, e.g. "mnist".
        train_images: (N, C, H, W) uint8; train_labels: (N,) int64.
        test_images: (M, C, H, W) uint8; test_labels: (M,) int64.
        validation_size, seed: as for ``split_validation``.

    Returns:
        Dataset with x_train (N - V, C, H, W), x_val (V, C, H, W), x_test (M, C, H, W) float32 in [0, 1].
    """
    x_train, y_train, x_val, y_val = split_validation(train_images, train_labels, validation_size, seed)
    return Dataset(
        x_train=to_unit_float(x_train), y_train=y_train,
        x_val=to_unit_float(x_val), y_val=y_val,
        x_test=to_unit_float(test_images), y_test=test_labels,
        name=name,
    )
