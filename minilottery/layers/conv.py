"""2-D convolution (cross-correlation, as in every deep-learning framework) via im2col."""

from __future__ import annotations

from typing import Any

import numpy as np

from minilottery.backend import get_array_module
from minilottery.layers.base import Layer, as_pair, check_ndim
from minilottery.layers.im2col import col2im, conv_output_size, im2col_transposed
from minilottery.layers.init import glorot_normal


class Conv2d(Layer):
    """Convolution over NCHW input with an optional pruning mask on ``W`` (PyTorch's ``nn.Conv2d`` layout).

    Shapes:
        x: (N, C, H, W) -> y: (N, F, OH, OW) with OH = (H + 2*padding - KH) // stride + 1 (same for OW);
        W: (F, C, KH, KW); b: (F,).

    The forward pass is one matrix product ``W.transpose(0, 2, 3, 1).reshape(F, -1) @ im2col(x).T`` (im2col's
    columns are ordered (KH, KW, C); ``im2col_transposed`` builds the transposed matrix directly, the faster
    orientation); backward is two more products and an im2col (stride 1) or a ``col2im``. The output is
    returned as a (N, F, OH, OW) view of an (F, N, OH, OW) buffer: following element-wise layers keep that
    memory layout, so the next convolution's im2col and backward's reshape of ``dout`` cost no transposing copy.
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
        xp = get_array_module(x)
        # (F, C, KH, KW) -> (F, KH, KW, C) -> (F, KH*KW*C), matching im2col's row order (KH, KW, C)
        weight = self.effective("W").transpose(0, 2, 3, 1).reshape(self.out_channels, -1)
        buffer = self.workspace("cols_t", (self.kh * self.kw * c, n * oh * ow), x.dtype, xp)
        cols_t = im2col_transposed(x, self.kh, self.kw, self.stride, self.padding, out=buffer)  # (KH*KW*C, N*OH*OW)
        out = weight @ cols_t  # (F, KH*KW*C) @ (KH*KW*C, N*OH*OW) -> (F, N*OH*OW)
        out += self.params["b"][:, None]  # (F,) -> (F, 1): one bias per row, broadcast over the pixels
        self._cache = (x.shape, cols_t, weight) if self.training else None
        # (F, N*OH*OW) -> (F, N, OH, OW) -> (N, F, OH, OW): an NCHW view of channel-major memory, no copy
        return out.reshape(self.out_channels, n, oh, ow).transpose(1, 0, 2, 3)

    def backward(self, dout: Any, input_grad: bool = True) -> Any:
        """Fills ``grads``; returns dx, or None when ``input_grad`` is False (the network's first layer).

        Args:
            dout: (N, F, OH, OW), the gradient w.r.t. this layer's output (any memory layout; channel-major,
                as element-wise layers pass on this layer's own layout, makes the reshape below free).

        Returns:
            dx: (N, C, H, W) (an NCHW view of channel-major memory on the stride-1 path), or None.
        """
        x_shape, cols_t, weight = self._cache
        xp = get_array_module(dout)
        # (N, F, OH, OW) -> (F, N, OH, OW) -> (F, N*OH*OW)
        dout_t = dout.transpose(1, 0, 2, 3).reshape(self.out_channels, -1)
        self.grads["b"] = dout_t.sum(axis=1)  # (F,)
        # dW = dout_t @ cols_t.T, computed as (cols_t @ dout_t.T).T: the same numbers, and OpenBLAS runs this
        # orientation ~10% faster for Conv-2's shapes (measured)
        dweight = (cols_t @ dout_t.T).T  # (KH*KW*C, N*OH*OW) @ (N*OH*OW, F) -> (KH*KW*C, F) -> (F, KH*KW*C)
        dweight = dweight.reshape(self.out_channels, self.kh, self.kw, self.in_channels).transpose(0, 3, 1, 2)
        # (F, KH*KW*C) -> (F, KH, KW, C) -> (F, C, KH, KW); the copy makes the gradient contiguous like W
        self.grads["W"] = self.masked_grad("W", xp.ascontiguousarray(dweight))
        if not input_grad:
            return None
        n, c, h, w = x_shape
        if self.stride == 1 and self.kh == self.kw and self.padding < self.kh:
            return self._input_grad_as_convolution(dout, weight, x_shape, xp)
        dcols_t = self.workspace("dcols_t", cols_t.shape, cols_t.dtype, xp)
        xp.matmul(weight.T, dout_t, out=dcols_t)  # (KH*KW*C, F) @ (F, N*OH*OW) -> (KH*KW*C, N*OH*OW)
        padded = self.workspace("dx", (n, h + 2 * self.padding, w + 2 * self.padding, c), cols_t.dtype, xp)
        # col2im takes im2col's (N*OH*OW, KH*KW*C) orientation: the transposed view, no copy
        return col2im(dcols_t.T, x_shape, self.kh, self.kw, self.stride, self.padding, out=padded)

    def _input_grad_as_convolution(self, dout: Any, weight: Any, x_shape: tuple[int, ...], xp: Any) -> Any:
        """dx for stride 1, computed as a convolution: the same numbers as col2im(weight.T @ dout_t), faster.

        With stride 1, each input pixel's gradient sums the upstream gradients of the outputs whose windows
        covered it, weighted by the kernel entry that touched it: that is a correlation of ``dout``, padded by
        ``K - 1 - padding``, with the kernel rotated 180° and its in/out channels swapped. Computing it as
        im2col + one product writes each element once, where col2im's scatter-add reads and writes the image
        KH*KW times (the memory traffic, not the arithmetic, is what costs time on a CPU).
        """
        n, c, h, w = x_shape
        k = self.kh
        # weight: (F, KH*KW*C) -> (F, KH, KW, C) -> rotated 180° -> (C, KH, KW, F) -> (C, KH*KW*F)
        rotated = weight.reshape(self.out_channels, k, k, c)[:, ::-1, ::-1, :].transpose(3, 1, 2, 0)
        rotated = rotated.reshape(c, k * k * self.out_channels)
        dcols_t = self.workspace("dcols_t", (k * k * self.out_channels, n * h * w), dout.dtype, xp)
        im2col_transposed(dout, k, k, stride=1, padding=k - 1 - self.padding, out=dcols_t)  # (KH*KW*F, N*H*W)
        dx = rotated @ dcols_t  # (C, KH*KW*F) @ (KH*KW*F, N*H*W) -> (C, N*H*W)
        return dx.reshape(c, n, h, w).transpose(1, 0, 2, 3)  # -> (C, N, H, W) -> (N, C, H, W), a view

    def __repr__(self) -> str:
        return (
            f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size=({self.kh}, {self.kw}), "
            f"stride={self.stride}, padding={self.padding})"
        )
