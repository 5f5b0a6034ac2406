"""Fast 2-D convolution: the same numbers as ``ReferenceConv2d`` (``layers/conv_reference.py``), laid out for speed.

Read ``ReferenceConv2d`` first; ``tests/test_reference_layers.py`` proves the two equal, and ``tests/test_winograd.py``
the Winograd path (``layers/winograd.py``) equal to it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from minilottery import compiled
from minilottery.backend import get_array_module
from minilottery.layers import winograd
from minilottery.layers.conv_reference import ReferenceConv2d
from minilottery.layers.im2col import col2im, im2col_transposed

# Winograd's convolution runs for a 3x3 kernel, stride 1, the compiled loops on, and at least these many input
# channels and tiles per product (images x tiles per image). Measured against im2col, forward and backward (with
# dx) of one layer on CIFAR-10-sized batches, one thread, A B A B: 0.44x the time for Conv-2's second layer (64 -> 64
# channels, 32x32, batch 60: 3,840 tiles), 0.32-0.39x for Conv-4's 16x16 layers (960 tiles), 0.58x for Conv-6's
# 8x8 ones (240 tiles), 0.43x with 16 input channels and 0.50x with 8; but 2.0x for Conv-2's first layer (3 input
# channels, no dx: the transforms cost more than the products save). With few tiles the 36 products are too small
# for BLAS: 0.58x at 120 tiles, 0.94-1.06x at 60.
WINOGRAD_MIN_CHANNELS = 16
WINOGRAD_MIN_TILES = 120


class Workspaces:
    """Scratch arrays kept between training steps, each overwritten by the next step (contents undefined).

    Why: a convolution's im2col matrix is large (for Conv-2's second layer on a CIFAR-10 minibatch of 60,
    576 rows x 61,440 pixels, over 100 MB). Asking the OS for that much fresh memory every step costs a page
    fault on every first touch of every page, more work than the copy into it. Reusing one buffer avoids
    them (CuPy's memory pool does the same on the GPU). A buffer lives until a call asks for another shape,
    dtype or device (say, an evaluation batch of another size), which replaces it.

    Only ``Conv2d`` uses workspaces, and only for arrays it never returns: its output, gradients and dx are
    new arrays, so no caller holds memory that the next step overwrites.
    """

    def __init__(self) -> None:
        self._buffers: dict[str, Any] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: Any, xp: Any) -> Any:
        """The buffer ``name`` with this shape, dtype and array module, allocated on first use or on change."""
        buffer = self._buffers.get(name)
        fits = buffer is not None and buffer.shape == tuple(shape) and buffer.dtype == dtype
        if not fits or get_array_module(buffer) is not xp:
            buffer = self._buffers[name] = xp.empty(shape, dtype=dtype)
        return buffer


class Conv2d(ReferenceConv2d):
    """The same numbers as ``ReferenceConv2d``, faster because of five changes (arguments, parameters, masks
    and errors are the reference's; shapes: x (N, C, H, W) -> y (N, F, OH, OW), W (F, C, KH, KW), b (F,)).

    1. The transposed orientation: forward computes ``W_rows (F, KH*KW*C) @ im2col_transposed(x)
       (KH*KW*C, N*OH*OW)``, the reference's product transposed. The long pixel axis becomes the product's
       wide side, which BLAS runs faster for these shapes, and every row of the copy that builds the matrix
       is one long contiguous run.
    2. Channel-major output: the product's result (F, N*OH*OW) is returned as an (N, F, OH, OW) view of that
       (F, N, OH, OW) memory, without a transposing copy. Element-wise layers (ReLU) keep the layout, so the
       next convolution's ``im2col_transposed`` reads runs of pixels and backward's reshape of ``dout`` is free.
    3. Workspaces (see ``Workspaces``): the im2col matrices are written into buffers reused across steps. So
       the cache points into a workspace that the next forward overwrites: backward must follow its own
       forward, as it does in training. Evaluation (``training`` False) keeps no cache.
    4. The stride-1 input gradient as a convolution (``_input_grad_as_convolution``): one im2col and one
       product write each element of dx once, where ``col2im``'s scatter-add reads and writes it KH*KW times.
    5. Winograd's F(4x4, 3x3) (``layers/winograd.py``) for a 3x3 kernel with stride 1, at least
       ``WINOGRAD_MIN_CHANNELS`` input channels and ``WINOGRAD_MIN_TILES`` tiles, where the compiled loops run
       (``uses_winograd``): 2.25x fewer multiplications than the product of 1, equal to it within float rounding
       (a few units in the sixth significant digit of the largest output in float32). Its workspaces hold the
       transformed input V, kept for backward as 1's matrix is, and the products M.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._workspaces = Workspaces()

    def to(self, device: str | None = None) -> Conv2d:
        self._workspaces = Workspaces()  # the old device's buffers are dropped, not moved
        return super().to(device)

    def astype(self, dtype: Any) -> Conv2d:
        self._workspaces = Workspaces()  # buffers of the old dtype are dropped, not cast
        return super().astype(dtype)

    def uses_winograd(self, x: Any) -> bool:
        """True when ``forward(x)`` runs Winograd's convolution: a 3x3 kernel, stride 1, at least
        ``WINOGRAD_MIN_CHANNELS`` input channels and ``WINOGRAD_MIN_TILES`` tiles, and the compiled loops on for
        ``x`` and the weight (NumPy arrays on the CPU; CuPy and the strict test backend run im2col)."""
        if not (self.kh == self.kw == 3 and self.stride == 1 and self.in_channels >= WINOGRAD_MIN_CHANNELS
                and compiled.enabled() and compiled.fits(self.params["W"]) and type(x) is np.ndarray
                and x.dtype == self.params["W"].dtype):
            return False
        tiles_h, tiles_w = winograd.tile_counts(*self.output_shape(*x.shape[2:]))
        return x.shape[0] * tiles_h * tiles_w >= WINOGRAD_MIN_TILES

    def forward(self, x: Any) -> Any:
        self.check_input(x)
        n, c, h, w = x.shape
        oh, ow = self.output_shape(h, w)
        if self.uses_winograd(x):
            return self._winograd_forward(x, oh, ow)
        xp = get_array_module(x)
        # (F, C, KH, KW) -> (F, KH, KW, C) -> (F, KH*KW*C), matching im2col's row order (KH, KW, C)
        weight = self.masked_param("W").transpose(0, 2, 3, 1).reshape(self.out_channels, -1)
        buffer = self._workspaces.get("cols_t", (self.kh * self.kw * c, n * oh * ow), x.dtype, xp)
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
        if self._cache[0] == "winograd":
            return self._winograd_backward(dout, input_grad)
        x_shape, cols_t, weight = self._cache
        xp = get_array_module(dout)
        # (N, F, OH, OW) -> (F, N, OH, OW) -> (F, N*OH*OW)
        dout_t = dout.transpose(1, 0, 2, 3).reshape(self.out_channels, -1)
        self.grads["b"] = dout_t.sum(axis=1)  # (F,)
        # dW = dout_t @ cols_t.T, computed as (cols_t @ dout_t.T).T: the same numbers, in the orientation BLAS
        # runs faster for Conv-2's shapes
        dweight = (cols_t @ dout_t.T).T  # (KH*KW*C, N*OH*OW) @ (N*OH*OW, F) -> (KH*KW*C, F) -> (F, KH*KW*C)
        dweight = dweight.reshape(self.out_channels, self.kh, self.kw, self.in_channels).transpose(0, 3, 1, 2)
        # (F, KH*KW*C) -> (F, KH, KW, C) -> (F, C, KH, KW); the copy makes the gradient contiguous like W
        self.grads["W"] = self.masked_grad("W", xp.ascontiguousarray(dweight))
        if not input_grad:
            return None
        if self.stride == 1 and self.kh == self.kw and self.padding < self.kh:
            return self._input_grad_as_convolution(dout, weight, x_shape, xp)
        dcols_t = self._workspaces.get("dcols_t", cols_t.shape, cols_t.dtype, xp)
        xp.matmul(weight.T, dout_t, out=dcols_t)  # (KH*KW*C, F) @ (F, N*OH*OW) -> (KH*KW*C, N*OH*OW)
        # col2im takes im2col's (N*OH*OW, KH*KW*C) orientation: the transposed view, no copy; dx is a new array
        return col2im(dcols_t.T, x_shape, self.kh, self.kw, self.stride, self.padding)

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
        dcols_t = self._workspaces.get("dcols_t", (k * k * self.out_channels, n * h * w), dout.dtype, xp)
        im2col_transposed(dout, k, k, stride=1, padding=k - 1 - self.padding, out=dcols_t)  # (KH*KW*F, N*H*W)
        dx = rotated @ dcols_t  # (C, KH*KW*F) @ (KH*KW*F, N*H*W) -> (C, N*H*W)
        return dx.reshape(c, n, h, w).transpose(1, 0, 2, 3)  # -> (C, N, H, W) -> (N, C, H, W), a view

    def _winograd_forward(self, x: Any, oh: int, ow: int) -> Any:
        """Change 5: y = A^T [U * V] A per tile, with ``winograd``'s transforms run as compiled loops."""
        n, c = x.shape[:2]
        planes = np.ascontiguousarray(x.transpose(1, 0, 2, 3))  # (N, C, H, W) -> (C, N, H, W): free if channel-major
        tiles_h, tiles_w = winograd.tile_counts(oh, ow)
        tiles = n * tiles_h * tiles_w
        u = winograd.weight_transform(self.masked_param("W"))  # (F, C, 3, 3) -> (36, F, C)
        v = self._workspaces.get("winograd_v", (36, c, tiles), x.dtype, np)
        compiled.winograd_input(planes, self.padding, tiles_h, tiles_w, out=v)  # (C, N, H, W) -> (36, C, tiles)
        m = self._workspaces.get("winograd_m", (36, self.out_channels, tiles), x.dtype, np)
        np.matmul(u, v, out=m)  # 36 products (F, C) @ (C, tiles) -> (36, F, tiles)
        out = compiled.winograd_output(m, self.params["b"], tiles_h, tiles_w, (self.out_channels, n, oh, ow))
        self._cache = ("winograd", planes.shape, v, u) if self.training else None
        return out.transpose(1, 0, 2, 3)  # (F, N, OH, OW) -> (N, F, OH, OW): an NCHW view of channel-major memory

    def _winograd_backward(self, dout: Any, input_grad: bool) -> Any:
        """The gradients of ``_winograd_forward``: each transform's adjoint, in reverse order."""
        _, planes_shape, v, u = self._cache
        d_planes = np.ascontiguousarray(dout.transpose(1, 0, 2, 3))  # (N, F, OH, OW) -> (F, N, OH, OW)
        self.grads["b"] = d_planes.sum(axis=(1, 2, 3))  # (F,)
        tiles_h, tiles_w = winograd.tile_counts(*d_planes.shape[2:])
        # M's workspace: forward is done with it
        d_m = self._workspaces.get("winograd_m", (36, self.out_channels, v.shape[2]), v.dtype, np)
        compiled.winograd_output_adjoint(d_planes, tiles_h, tiles_w, out=d_m)  # -> (36, F, tiles)
        d_u = np.matmul(d_m, v.transpose(0, 2, 1))  # (36, F, tiles) @ (36, tiles, C) -> (36, F, C)
        self.grads["W"] = self.masked_grad("W", np.ascontiguousarray(winograd.weight_transform_adjoint(d_u)))
        if not input_grad:
            return None
        d_v = np.matmul(u.transpose(0, 2, 1), d_m, out=v)  # (36, C, F) @ (36, F, tiles): into V, read for the last time
        dx = compiled.winograd_input_adjoint(d_v, self.padding, tiles_h, tiles_w, planes_shape)  # (C, N, H, W)
        return dx.transpose(1, 0, 2, 3)  # -> (N, C, H, W), a view
