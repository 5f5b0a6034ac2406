"""Weight initialisation on the host, from a seeded generator (then moved to the device).

Drawing every weight with NumPy on the host means a CPU run and a GPU run with the same seed start from
identical θ0, which the lottery ticket experiment resets to (Frankle & Carbin 2019, Section 2).
"""

from __future__ import annotations

import numpy as np


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight in PyTorch's layout: (out, in) or (out, in, kh, kw)."""
    receptive_field = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive_field, shape[0] * receptive_field


def glorot_normal(rng: np.random.Generator, shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
    """Gaussian Glorot (Xavier) initialisation, the paper's: N(0, 2 / (fan_in + fan_out)), on the host."""
    fan_in, fan_out = fans(shape)
    std = np.sqrt(2.0 / (fan_in + fan_out))
    return (rng.standard_normal(shape) * std).astype(dtype)
