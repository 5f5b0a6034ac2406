"""Max pooling over NCHW input, vectorised over the batch, channels and pixels."""

from __future__ import annotations

from typing import Any

from minilottery.backend import get_array_module
from minilottery.layers.base import Layer, as_pair, check_ndim
from minilottery.layers.im2col import conv_output_size


class MaxPool2d(Layer):
    """Max pooling; ``stride`` defaults to ``kernel_size`` (non-overlapping windows, the paper's 2×2 pools).

    Shapes: x: (N, C, H, W) -> y: (N, C, OH, OW) with OH = (H - KH) // stride + 1.

    Forward loops over the KH × KW offsets of the window only, keeping a running maximum and the index of the
    offset that produced it (the first maximum wins a tie). Backward routes each upstream gradient to that
    one input, so only the small index array is cached, not the input.
    """

    def __init__(self, kernel_size: int | tuple[int, int], stride: int | tuple[int, int] | None = None) -> None:
        super().__init__()
        name = f"MaxPool2d(kernel_size={kernel_size!r}, stride={stride!r})"
        self.kh, self.kw = as_pair(kernel_size, "kernel_size", name)
        self.sh, self.sw = (self.kh, self.kw) if stride is None else as_pair(stride, "stride", name)
        if min(self.kh, self.kw) < 1:
            raise ValueError(f"{name}: kernel_size must be positive")
        if min(self.sh, self.sw) < 1:
            raise ValueError(f"{name}: stride must be positive, got {stride!r}")
        self._cache: tuple[Any, ...] | None = None

    def _windows(self, h: int, w: int):
        oh = conv_output_size(h, self.kh, self.sh, 0)
        ow = conv_output_size(w, self.kw, self.sw, 0)
        for i in range(self.kh):
            for j in range(self.kw):
                yield i * self.kw + j, (slice(i, i + self.sh * oh, self.sh), slice(j, j + self.sw * ow, self.sw))

    def forward(self, x: Any) -> Any:
        check_ndim(self, x, 4, "(N, C, H, W)")
        h, w = x.shape[2:]
        if self.kh > h or self.kw > w:
            raise ValueError(f"{self!r}: kernel {self.kh}x{self.kw} is larger than the input {h}x{w}")
        xp = get_array_module(x)
        out = argmax = None
        for k, (rows, cols) in self._windows(h, w):
            window = x[:, :, rows, cols]  # (N, C, OH, OW): the k-th element of every pooling window
            if out is None:
                out = window.copy(order="K")  # keeps x's memory layout (channels-last after a Conv2d)
                argmax = xp.zeros_like(out, dtype=xp.int8 if self.kh * self.kw < 128 else xp.int32)
            else:
                better = window > out  # strict ">": the first maximum wins a tie
                argmax += better * (k - argmax)  # argmax = k where better (arithmetic beats masked writes)
                xp.maximum(out, window, out=out)
        # dx takes x's memory layout too, so element-wise layers below never mix layouts (slow strided loops)
        channels_last = x.strides[1] < x.strides[3]
        self._cache = (x.shape, channels_last, argmax)
        return out

    def backward(self, dout: Any) -> Any:
        (n, c, h, w), channels_last, argmax = self._cache
        xp = get_array_module(dout)
        if channels_last:
            dx = xp.zeros((n, h, w, c), dtype=dout.dtype).transpose(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W)
            # dout usually arrives NCHW (from Flatten); one copy of this small array to channels-last memory
            dout = xp.ascontiguousarray(dout.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
        else:
            dx = xp.zeros((n, c, h, w), dtype=dout.dtype)
        for k, (rows, cols) in self._windows(h, w):
            # overlapping windows (stride < kernel) may route several gradients to one pixel: accumulate
            dx[:, :, rows, cols] += dout * (argmax == k)
        return dx

    def __repr__(self) -> str:
        return f"MaxPool2d(kernel_size=({self.kh}, {self.kw}), stride=({self.sh}, {self.sw}))"
