"""2-D convolution (cross-correlation, as in every deep-learning framework) via im2col."""

from __future__ import annotations

from typing import Any

import numpy as np

from minilottery.backend import get_array_module
from minilottery.layers.base import Layer, as_pair, check_ndim
from minilottery.layers.im2col import col2im, conv_output_size, im2col
from minilottery.layers.init import glorot_normal


class Conv2d(Layer):
    """Convolution over NCHW input with an optional pruning mask on ``W`` (PyTorch's ``nn.Conv2d`` layout).

    Shapes:
        x: (N, C, H, W) -> y: (N, F, OH, OW) with OH = (H + 2*padding - KH) // stride + 1 (same for OW);
        W: (F, C, KH, KW); b: (F,).

    The forward pass is one matrix product ``im2col(x) @ W.transpose(0, 2, 3, 1).reshape(F, -1).T`` (im2col's
    columns are ordered (KH, KW, C)); backward is two more products and a ``col2im``. The output is returned as a (N, F, OH, OW) view of an (N, OH, OW, F) buffer: following
    element-wise layers keep that memory layout, so backward's transpose back to rows costs no copy.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int = 1,
        padding: int = 0,
        *,
        rng: np.random.Generator | None = None,
        dtype=np.float32,
    ) -> None:
        super().__init__()
        name = f"Conv2d({in_channels}, {out_channels}, kernel_size={kernel_size!r}, stride={stride!r}, padding={padding!r})"
        self.kh, self.kw = as_pair(kernel_size, "kernel_size", name)
        if in_channels < 1 or out_channels < 1 or self.kh < 1 or self.kw < 1:
            raise ValueError(f"{name}: channels and kernel_size must be positive")
        if not isinstance(stride, (int, np.integer)) or stride < 1:
            raise ValueError(f"{name}: stride must be a positive int, got {stride!r}")
        if not isinstance(padding, (int, np.integer)) or padding < 0:
            raise ValueError(f"{name}: padding must be a non-negative int, got {padding!r}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.stride, self.padding = int(stride), int(padding)
        rng = np.random.default_rng() if rng is None else rng
        self.params["W"] = glorot_normal(rng, (self.out_channels, self.in_channels, self.kh, self.kw), dtype)
        self.params["b"] = np.zeros(self.out_channels, dtype=dtype)
        self._cache: tuple[Any, ...] | None = None

    def output_shape(self, h: int, w: int) -> tuple[int, int]:
        """(OH, OW) for an (H, W) input."""
        return (
            conv_output_size(h, self.kh, self.stride, self.padding),
            conv_output_size(w, self.kw, self.stride, self.padding),
        )

    def forward(self, x: Any) -> Any:
        check_ndim(self, x, 4, f"(N, {self.in_channels}, H, W)")
        n, c, h, w = x.shape
        if c != self.in_channels:
            raise ValueError(f"{self!r}: expected {self.in_channels} input channels (N, C, H, W), got shape {tuple(x.shape)}")
        if self.kh > h + 2 * self.padding or self.kw > w + 2 * self.padding:
            raise ValueError(
                f"{self!r}: kernel {self.kh}x{self.kw} is larger than the padded input "
                f"{h + 2 * self.padding}x{w + 2 * self.padding} (input {h}x{w}, padding {self.padding})"
            )
        oh, ow = self.output_shape(h, w)
        # (F, C, KH, KW) -> (F, KH, KW, C) -> (F, KH*KW*C), matching im2col's column order
        weight = self.effective("W").transpose(0, 2, 3, 1).reshape(self.out_channels, -1)
        xp = get_array_module(x)
        rows_shape = (n * oh * ow, self.kh * self.kw * c)
        buffer = self.workspace("cols", rows_shape, x.dtype, xp)
        cols = im2col(x, self.kh, self.kw, self.stride, self.padding, out=buffer)  # (N*OH*OW, KH*KW*C)
        out = cols @ weight.T  # (N*OH*OW, KH*KW*C) @ (KH*KW*C, F) -> (N*OH*OW, F)
        out += self.params["b"]
        self._cache = (x.shape, cols, weight) if self.training else None
        return out.reshape(n, oh, ow, self.out_channels).transpose(0, 3, 1, 2)  # -> (N, OH, OW, F) -> (N, F, OH, OW)

    def backward(self, dout: Any, input_grad: bool = True) -> Any:
        """Fills ``grads``; returns dx, or None when ``input_grad`` is False (the network's first layer)."""
        x_shape, cols, weight = self._cache
        rows = dout.transpose(0, 2, 3, 1).reshape(-1, self.out_channels)  # (N, F, OH, OW) -> (N*OH*OW, F)
        self.grads["b"] = rows.sum(axis=0)  # (F,)
        dweight = rows.T @ cols  # (F, N*OH*OW) @ (N*OH*OW, KH*KW*C) -> (F, KH*KW*C)
        dweight = dweight.reshape(self.out_channels, self.kh, self.kw, self.in_channels).transpose(0, 3, 1, 2)
        # (F, KH, KW, C) -> (F, C, KH, KW); the copy makes the gradient contiguous like W
        self.grads["W"] = self.masked_grad("W", get_array_module(dweight).ascontiguousarray(dweight))
        if not input_grad:
            return None
        xp = get_array_module(rows)
        n, c, h, w = x_shape
        if self.stride == 1 and self.kh == self.kw and self.padding < self.kh:
            return self._input_grad_as_convolution(dout, weight, x_shape, xp)
        dcols = self.workspace("dcols", cols.shape, cols.dtype, xp)
        xp.matmul(rows, weight, out=dcols)  # (N*OH*OW, F) @ (F, KH*KW*C) -> (N*OH*OW, KH*KW*C)
        padded = self.workspace("dx", (n, h + 2 * self.padding, w + 2 * self.padding, c), cols.dtype, xp)
        return col2im(dcols, x_shape, self.kh, self.kw, self.stride, self.padding, out=padded)

    def _input_grad_as_convolution(self, dout: Any, weight: Any, x_shape: tuple[int, ...], xp: Any) -> Any:
        """dx for stride 1, computed as a convolution: the same numbers as col2im(rows @ weight), faster.

        With stride 1, each input pixel's gradient sums the upstream gradients of the outputs whose windows
        covered it, weighted by the kernel entry that touched it: that is a correlation of ``dout``, padded by
        ``K - 1 - padding``, with the kernel rotated 180° and its in/out channels swapped. Computing it as
        im2col + one product writes each element once, where col2im's scatter-add reads and writes the image
        KH*KW times (the memory traffic, not the arithmetic, is what costs time on a CPU).
        """
        n, c, h, w = x_shape
        k = self.kh
        # weight: (F, KH*KW*C) -> (F, KH, KW, C) -> rotated 180° -> (KH, KW, F, C) -> (KH*KW*F, C)
        rotated = weight.reshape(self.out_channels, k, k, c)[:, ::-1, ::-1, :].transpose(1, 2, 0, 3)
        rotated = rotated.reshape(k * k * self.out_channels, c)
        dcols = self.workspace("dcols", (n * h * w, k * k * self.out_channels), dout.dtype, xp)
        im2col(dout, k, k, stride=1, padding=k - 1 - self.padding, out=dcols)  # (N*H*W, KH*KW*F)
        dx = dcols @ rotated  # (N*H*W, KH*KW*F) @ (KH*KW*F, C) -> (N*H*W, C)
        return dx.reshape(n, h, w, c).transpose(0, 3, 1, 2)  # -> (N, H, W, C) -> (N, C, H, W)

    def __repr__(self) -> str:
        return (
            f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size=({self.kh}, {self.kw}), "
            f"stride={self.stride}, padding={self.padding})"
        )
