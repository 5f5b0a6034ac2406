"""Max pooling over NCHW input, vectorised over the batch, channels and pixels."""

from __future__ import annotations

from typing import Any

from minilottery import compiled
from minilottery.backend import get_array_module
from minilottery.layers.base import Layer, as_pair, check_ndim
from minilottery.layers.im2col import conv_output_size


class MaxPool2d(Layer):
    """Max pooling; ``stride`` defaults to ``kernel_size`` (non-overlapping windows, the paper's 2×2 pools).

    Shapes: x: (N, C, H, W) -> y: (N, C, OH, OW) with OH = (H - KH) // stride + 1.

    Forward loops over the KH × KW offsets of the window only, keeping a running maximum and the index of the
    offset that produced it (the first maximum wins a tie). Backward routes each upstream gradient to that
    one input, so only the small index array is cached, not the input.

    Forward's passes read and write the whole (N, C, OH, OW) output once per offset. On NumPy arrays whose rows
    and columns are the innermost axes in memory (NCHW, or a convolution's channel-major output), with Numba, the
    same numbers come from one compiled pass instead (``minilottery.compiled.max_pool``), equal to these passes up
    to the sign of a zero (``tests/test_compiled.py``).
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
        # x's axes, outermost in memory first: dx and the compiled loops take x's memory layout (see backward)
        memory_order = sorted(range(4), key=lambda axis: -x.strides[axis])
        if self._compiled(x, memory_order):
            back = [memory_order.index(axis) for axis in range(4)]  # memory order -> (N, C, H, W)
            # (A, B, H, W) C-contiguous view -> out, argmax (A, B, OH, OW) -> (N, C, OH, OW) views in x's layout
            out, argmax = compiled.max_pool(x.transpose(memory_order), self.kh, self.kw, self.sh, self.sw)
            out, argmax = out.transpose(back), argmax.transpose(back)
            self._cache = (x.shape, memory_order, argmax)
            return out
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
        # dx takes x's memory layout too (NCHW, channels-last, or Conv2d's channel-major), so element-wise
        # layers below never mix layouts (slow strided loops) and Conv2d's backward reshapes dout for free
        self._cache = (x.shape, memory_order, argmax)
        return out

    def _compiled(self, x: Any, memory_order: list[int]) -> bool:
        """Whether ``compiled.max_pool`` takes ``x``: Numba runs, x is a NumPy float array whose rows and columns
        are its innermost axes in memory (so ``x.transpose(memory_order)`` is C-contiguous), int8 offsets fit."""
        return (memory_order[2:] == [2, 3] and self.kh * self.kw < 128 and compiled.enabled()
                and compiled.fits(x.transpose(memory_order)))

    def backward(self, dout: Any) -> Any:
        (n, c, h, w), memory_order, argmax = self._cache
        xp = get_array_module(dout)
        # axes permuted into x's memory order and back: (N, C, H, W) -> memory order -> (N, C, H, W)
        back = [memory_order.index(axis) for axis in range(4)]
        memory_shape = tuple((n, c, h, w)[axis] for axis in memory_order)
        # dout usually arrives NCHW (from Flatten); one copy of this small array into x's (and argmax's) layout
        dout = xp.ascontiguousarray(dout.transpose(memory_order)).transpose(back)
        oh, ow = dout.shape[2:]
        if (self.sh, self.sw) == (self.kh, self.kw):
            # windows tile the input without overlap: every covered pixel is written exactly once, straight
            # into dx (no zero-filling pass, no read-modify-write); only rows/columns no window reaches are zeroed
            dx = xp.empty(memory_shape, dtype=dout.dtype).transpose(back)  # (N, C, H, W) in x's layout
            dx[:, :, oh * self.sh:, :] = 0
            dx[:, :, :, ow * self.sw:] = 0
            for k, (rows, cols) in self._windows(h, w):
                ### BEGIN SOLUTION maxpool_backward
                xp.multiply(dout, argmax == k, out=dx[:, :, rows, cols])
                ### END SOLUTION
            return dx
        dx = xp.zeros(memory_shape, dtype=dout.dtype).transpose(back)  # (N, C, H, W) in x's layout
        for k, (rows, cols) in self._windows(h, w):
            # overlapping windows (stride < kernel) may route several gradients to one pixel: accumulate
            ### BEGIN SOLUTION maxpool_backward
            dx[:, :, rows, cols] += dout * (argmax == k)
            ### END SOLUTION
        return dx

    def __repr__(self) -> str:
        return f"MaxPool2d(kernel_size=({self.kh}, {self.kw}), stride=({self.sh}, {self.sw}))"
