"""Inverted dropout (Srivastava et al. 2014), as used in the paper's Section 4 dropout experiments."""

from __future__ import annotations

from typing import Any

import numpy as np

from minilottery.backend import device_of, to_device
from minilottery.layers.base import Layer


class Dropout(Layer):
    """Zeroes each input with probability ``p`` while training and scales survivors by 1 / (1 - p).

    Scaling at training time ("inverted" dropout) keeps the expected activation unchanged, so evaluation is the
    identity. The keep mask is drawn on the host from ``rng`` (a ``numpy.random.Generator``, seeded for
    reproducibility) and moved to the input's device, so CPU and GPU runs drop the same units.

    Shapes: any; y has x's shape and dtype.
    """

    def __init__(self, p: float = 0.5, *, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        if not 0.0 <= float(p) < 1.0:
            raise ValueError(f"Dropout(p={p!r}): p must be in [0, 1)")
        self.p = float(p)
        self.rng = np.random.default_rng() if rng is None else rng
        self._scale: Any = None

    def forward(self, x: Any) -> Any:
        if not self.training or self.p == 0.0:
            self._scale = None
            return x
        keep = self.rng.random(x.shape) >= self.p  # host bools, (same shape as x)
        scale = (keep / (1.0 - self.p)).astype(x.dtype)
        self._scale = to_device(scale, device_of(x))
        return x * self._scale

    def backward(self, dout: Any) -> Any:
        return dout if self._scale is None else dout * self._scale

    def __repr__(self) -> str:
        return f"Dropout(p={self.p})"
