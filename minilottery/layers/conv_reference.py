"""Reference 2-D convolution: im2col, one matrix product, a reshape (the version tutorial 4 builds).

Read this one first. ``Conv2d`` (``layers/conv.py``) computes the same numbers faster and is what the models use;
``tests/test_reference_layers.py`` proves the two equal. The convolution is a cross-correlation, as in every
deep-learning framework.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from minilottery.backend import get_array_module
from minilottery.layers.base import Layer, as_pair, check_ndim
from minilottery.layers.im2col import col2im, conv_output_size, im2col
from minilottery.layers.init import glorot_normal


class ReferenceConv2d(Layer):
    """Convolution over NCHW input with an optional pruning mask on ``W`` (PyTorch's ``nn.Conv2d`` layout).

    Shapes:
        x: (N, C, H, W) -> y: (N, F, OH, OW) with OH = (H + 2*padding - KH) // stride + 1 (same for OW);
        W: (F, C, KH, KW); b: (F,).

    Forward: ``cols = im2col(x)`` holds one receptive field per row, columns ordered (KH, KW, C), so with the
    kernels flattened in that order, ``W_rows = W.transpose(0, 2, 3, 1).reshape(F, -1)``, every output pixel is
    ``cols @ W_rows.T + b``. Backward: ``dW = dout_rows.T @ cols`` and ``dx = col2im(dout_rows @ W_rows)``
    (``col2im`` is the adjoint of ``im2col``). A pruned weight (Section 2) is 0 in ``W_rows``, and its
    gradient is multiplied by the mask.

    Args:
        in_channels, out_channels: C and F.
        kernel_size: KH = KW, or a (KH, KW) pair.
        stride, padding: the step between windows, and the zeros added on every side of the input.
        rng: NumPy generator for the Gaussian Glorot initial weights (pass a seeded one for reproducibility).
        dtype: parameter dtype (float32 to train, float64 to check gradients).
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
        name = (
            f"{type(self).__name__}({in_channels}, {out_channels}, kernel_size={kernel_size!r}, "
            f"stride={stride!r}, padding={padding!r})"
        )
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

    def check_input(self, x: Any) -> None:
        """Raises a ValueError naming this layer unless ``x`` is (N, in_channels, H, W) and fits the kernel."""
        check_ndim(self, x, 4, f"(N, {self.in_channels}, H, W)")
        _, c, h, w = x.shape
        if c != self.in_channels:
            raise ValueError(
                f"{self!r}: expected {self.in_channels} input channels (N, C, H, W), got shape {tuple(x.shape)}"
            )
        if self.kh > h + 2 * self.padding or self.kw > w + 2 * self.padding:
            raise ValueError(
                f"{self!r}: kernel {self.kh}x{self.kw} is larger than the padded input "
                f"{h + 2 * self.padding}x{w + 2 * self.padding} (input {h}x{w}, padding {self.padding})"
            )

    def forward(self, x: Any) -> Any:
        self.check_input(x)
        n, _, h, w = x.shape
        oh, ow = self.output_shape(h, w)
        cols = im2col(x, self.kh, self.kw, self.stride, self.padding)  # (N*OH*OW, KH*KW*C)
        # (F, C, KH, KW) -> (F, KH, KW, C) -> (F, KH*KW*C), matching im2col's column order (KH, KW, C)
        weight_rows = self.masked_param("W").transpose(0, 2, 3, 1).reshape(self.out_channels, -1)
        out = cols @ weight_rows.T + self.params["b"]  # (N*OH*OW, KH*KW*C) @ (KH*KW*C, F) -> (N*OH*OW, F)
        self._cache = (x.shape, cols, weight_rows)
        # (N*OH*OW, F) -> (N, OH, OW, F) -> (N, F, OH, OW)
        return out.reshape(n, oh, ow, self.out_channels).transpose(0, 3, 1, 2)

    def backward(self, dout: Any, input_grad: bool = True) -> Any:
        """Fills ``grads``; returns dx (N, C, H, W), or None when ``input_grad`` is False (the first layer).

        Args:
            dout: (N, F, OH, OW), the gradient w.r.t. this layer's output.
        """
        x_shape, cols, weight_rows = self._cache
        xp = get_array_module(dout)
        # (N, F, OH, OW) -> (N, OH, OW, F) -> (N*OH*OW, F): one row per output pixel, like cols
        dout_rows = dout.transpose(0, 2, 3, 1).reshape(-1, self.out_channels)
        ### BEGIN SOLUTION conv_backward
        self.grads["b"] = dout_rows.sum(axis=0)  # (F,)
        dweight = dout_rows.T @ cols  # (F, N*OH*OW) @ (N*OH*OW, KH*KW*C) -> (F, KH*KW*C)
        # (F, KH*KW*C) -> (F, KH, KW, C) -> (F, C, KH, KW); the copy makes the gradient contiguous like W
        dweight = dweight.reshape(self.out_channels, self.kh, self.kw, self.in_channels).transpose(0, 3, 1, 2)
        self.grads["W"] = self.masked_grad("W", xp.ascontiguousarray(dweight))
        if not input_grad:
            return None
        dcols = dout_rows @ weight_rows  # (N*OH*OW, F) @ (F, KH*KW*C) -> (N*OH*OW, KH*KW*C)
        return col2im(dcols, x_shape, self.kh, self.kw, self.stride, self.padding)  # (N, C, H, W)
        ### END SOLUTION

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.in_channels}, {self.out_channels}, kernel_size=({self.kh}, {self.kw}), "
            f"stride={self.stride}, padding={self.padding})"
        )
