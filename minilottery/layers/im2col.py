"""im2col and col2im: convolution as one matrix product (Deep Learning from Scratch, ``common/util.py``).

``im2col`` copies every receptive field of the (padded) input into one row of a matrix, so a convolution
becomes ``cols @ W.transpose(0, 2, 3, 1).reshape(F, -1).T``. ``col2im`` is its adjoint: it adds each row back
onto the pixels it came from (overlapping windows accumulate), which is exactly the gradient of ``im2col``.

Both loop only over the kh × kw kernel offsets, copying one strided slice of the whole batch per offset; there
is no Python loop over batch, channels or pixels, and the same code runs on NumPy and CuPy.

Layout: the public shapes are NCHW, but the copies work on the channels-last view ``x.transpose(0, 2, 3, 1)``
(N, H, W, C), so every copied piece is a run of C contiguous channels instead of single scattered floats. Rows
are ordered (N, OH, OW) and columns (KH, KW, C). ``ReferenceConv2d`` uses ``im2col`` and ``col2im``.

The fast ``Conv2d`` uses ``im2col_transposed``, the same matrix transposed, (KH*KW*C, N*OH*OW), built from
channel-major memory (C, N, H, W): its products run faster in that orientation (see its docstring). ``Conv2d``
returns its output as an NCHW view of channel-major memory, so for a stack of convolutions the transposes
here cost nothing.
"""

from __future__ import annotations

from typing import Any

from minilottery.backend import get_array_module


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output length of a convolution or pooling window along one axis."""
    return (size + 2 * padding - kernel) // stride + 1


def im2col(x: Any, kh: int, kw: int, stride: int = 1, padding: int = 0) -> Any:
    """Unfolds receptive fields into rows.

    Args:
        x: (N, C, H, W) input (any memory layout; channels-last memory is fastest).
        kh, kw: kernel height and width; stride, padding: as in ``Conv2d``.

    Returns:
        cols: (N*OH*OW, KH*KW*C), each row one receptive field, in ``x``'s dtype.
    """
    xp = get_array_module(x)
    n, c, h, w = x.shape
    oh, ow = conv_output_size(h, kh, stride, padding), conv_output_size(w, kw, stride, padding)
    x = x.transpose(0, 2, 3, 1)  # (N, C, H, W) -> (N, H, W, C), a view
    if padding:
        x = xp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    cols = xp.empty((n, oh, ow, kh, kw, c), dtype=x.dtype)  # (N, OH, OW, KH, KW, C): one window per (n, oh, ow)
    for i in range(kh):
        for j in range(kw):
            # (N, OH, OW, C): the input pixel under kernel offset (i, j) for every output pixel
            cols[:, :, :, i, j, :] = x[:, i : i + stride * oh : stride, j : j + stride * ow : stride, :]
    return cols.reshape(n * oh * ow, kh * kw * c)  # (N, OH, OW, KH, KW, C) -> (N*OH*OW, KH*KW*C), a view


def im2col_transposed(x: Any, kh: int, kw: int, stride: int = 1, padding: int = 0, out: Any = None) -> Any:
    """``im2col(x).T``, built directly: one row per (kernel offset, channel), one column per output pixel.

    Why a second layout: ``Conv2d`` computes ``W (F, KH*KW*C) @ cols_t (KH*KW*C, N*OH*OW)``, whose result
    (F, N*OH*OW) is channel-major memory, (C, N, H, W). For Conv-2's shapes BLAS runs these products faster
    than ``cols @ W.T`` (the long pixel axis becomes the product's wide side), and this copy is faster too:
    every destination row is one long contiguous run, and a channel-major input is read in runs of OW pixels.

    Args:
        x: (N, C, H, W) input (any memory layout; channel-major memory, ``Conv2d``'s output, is fastest).
        kh, kw: kernel height and width; stride, padding: as in ``Conv2d``.
        out: optional (KH*KW*C, N*OH*OW) contiguous buffer to write into (reused across steps by ``Conv2d``).

    Returns:
        cols_t: (KH*KW*C, N*OH*OW), rows ordered (KH, KW, C) and columns (N, OH, OW), in ``x``'s dtype.
    """
    xp = get_array_module(x)
    n, c, h, w = x.shape
    oh, ow = conv_output_size(h, kh, stride, padding), conv_output_size(w, kw, stride, padding)
    x = x.transpose(1, 0, 2, 3)  # (N, C, H, W) -> (C, N, H, W), a view
    if padding:  # the padded copy is C-contiguous (C, N, H + 2p, W + 2p), whatever x's layout was
        x = xp.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    if out is None:
        out = xp.empty((kh * kw * c, n * oh * ow), dtype=x.dtype)
    cols_t = out.reshape(kh, kw, c, n, oh, ow)  # (KH*KW*C, N*OH*OW) -> (KH, KW, C, N, OH, OW), a view
    for i in range(kh):
        for j in range(kw):
            # (C, N, OH, OW): the input pixel under kernel offset (i, j) for every output pixel
            cols_t[i, j] = x[:, :, i : i + stride * oh : stride, j : j + stride * ow : stride]
    return out


def col2im(cols: Any, x_shape: tuple[int, int, int, int], kh: int, kw: int, stride: int = 1, padding: int = 0) -> Any:
    """Folds rows back onto the image, summing where receptive fields overlap (the adjoint of ``im2col``).

    Args:
        cols: (N*OH*OW, KH*KW*C), e.g. the gradient w.r.t. ``im2col``'s output.
        x_shape: (N, C, H, W) of the original, unpadded input.

    Returns:
        (N, C, H, W) array in ``cols``' dtype (an NCHW view of channels-last memory).
    """
    xp = get_array_module(cols)
    n, c, h, w = x_shape
    oh, ow = conv_output_size(h, kh, stride, padding), conv_output_size(w, kw, stride, padding)
    cols = cols.reshape(n, oh, ow, kh, kw, c)  # (N*OH*OW, KH*KW*C) -> (N, OH, OW, KH, KW, C)
    img = xp.zeros((n, h + 2 * padding, w + 2 * padding, c), dtype=cols.dtype)  # (N, H, W, C), padded
    for i in range(kh):
        for j in range(kw):
            # add back onto the pixels this kernel offset read; overlapping windows accumulate
            img[:, i : i + stride * oh : stride, j : j + stride * ow : stride, :] += cols[:, :, :, i, j, :]
    if padding:
        img = img[:, padding : padding + h, padding : padding + w, :]
    return img.transpose(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W), a view
