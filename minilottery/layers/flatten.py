"""Flatten: the bridge from convolutional feature maps to dense layers."""

from __future__ import annotations

from typing import Any

from minilottery.layers.base import Layer


class Flatten(Layer):
    """(N, d1, d2, ...) -> (N, d1*d2*...), in C order (as ``torch.nn.Flatten``); backward restores the shape."""

    def __init__(self) -> None:
        super().__init__()
        self._shape: tuple[int, ...] | None = None

    def forward(self, x: Any) -> Any:
        if getattr(x, "ndim", 0) < 2:
            raise ValueError(f"Flatten(): expected an input of shape (N, ...) with at least 2 dims, "
                             f"got {getattr(x, 'shape', None)}")
        self._shape = tuple(x.shape)
        return x.reshape(x.shape[0], -1)  # (N, C, H, W) -> (N, C*H*W)

    def backward(self, dout: Any) -> Any:
        return dout.reshape(self._shape)  # (N, C*H*W) -> (N, C, H, W)

    def __repr__(self) -> str:
        return "Flatten()"
