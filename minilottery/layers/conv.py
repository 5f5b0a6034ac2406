"""Fast 2-D convolution: the same numbers as ``ReferenceConv2d`` (``layers/conv_reference.py``), laid out for speed.

Read ``ReferenceConv2d`` first; ``tests/test_reference_layers.py`` proves the two equal.
"""

from __future__ import annotations

from typing import Any

from minilottery.backend import get_array_module
from minilottery.layers.conv_reference import ReferenceConv2d
from minilottery.layers.im2col import col2im, im2col_transposed


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
    """The same numbers as ``ReferenceConv2d``, faster because of four changes (arguments, parameters, masks
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

    def forward(self, x: Any) -> Any:
        self.check_input(x)
        n, c, h, w = x.shape
        oh, ow = self.output_shape(h, w)
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
