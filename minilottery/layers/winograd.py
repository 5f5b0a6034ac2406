"""Winograd's minimal filtering F(4x4, 3x3): a 3x3 convolution with 2.25x fewer multiplications per output than
the direct product, for stride 1 (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016).

The idea, in one dimension first. Four outputs of a 3-tap filter ``g`` over six inputs ``d`` take 12 products
directly; Winograd's F(4, 3) takes 6: ``y = A^T [(G g) * (B^T d)]``, where ``*`` multiplies entry by entry and
``A^T`` (4x6), ``G`` (6x3), ``B^T`` (6x6) are small fixed matrices of adds and scalings (below, from the paper's
interpolation points 0, 1, -1, 2, -2 and infinity). Nested in two dimensions, a 4x4 output tile reads a 6x6 input
tile ``d``:

    y = A^T [ (G g G^T) * (B^T d B) ] A                     one tile, one input and one output channel

Summed over input channels, the entry-by-entry product becomes, for each of the 36 positions (a, b) of the 6x6
transformed tile, one matrix product over channels and tiles:

    M[a, b] = U[a, b] (F, C) @ V[a, b] (C, tiles)     with U = G g G^T per (F, C), V = B^T d B per (C, tile)

So a convolution is: transform the weights (``weight_transform``) and the input tiles (``input_transform``),
36 matrix products, and transform the products back into 4x4 output tiles (``output_transform``). For C and F
channels and T tiles the products cost 36 C F T multiply-adds against im2col's 9 C F (16 T): 2.25x fewer, and
the transformed input holds 36/16 = 2.25 floats per input pixel against im2col's 9. The backward pass is the
same steps transposed (every transform is linear, so its gradient is its adjoint):

    dM = A dy A^T (``output_transform_adjoint``)  ->  dU = dM @ V^T, dV = U^T @ dM
    dW = G^T dU G (``weight_transform_adjoint``),  dx = B dV B^T summed over overlapping tiles
    (``input_transform_adjoint``)

Rounding: the transforms scale by up to 8 and 1/24 and then cancel, so float32 results differ from the direct
product by a few units in the sixth significant digit of the largest output (5e-6 for Conv-2's second layer;
the tests hold it to 1e-5 of the largest entry), float64 ones by about 1e-14.

These functions are the plain ``xp`` specification (NumPy, CuPy), written with ``einsum`` over whole tile
arrays. ``minilottery.compiled`` has the same four tile transforms as compiled loops that ``Conv2d`` runs on the
CPU; ``tests/test_winograd.py`` proves them equal to these, and these equal to the direct convolution.

Layouts: images are channel-major planes (C, N, H, W), as ``Conv2d`` keeps them; tiles are ordered
``p = (n * tiles_h + ty) * tiles_w + tx``; transformed arrays are (36, channels, N * tiles_h * tiles_w), row
``6 * a + b`` holding position (a, b).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from minilottery.backend import get_array_module

TILE = 4  # output tile: 4x4
WINDOW = TILE + 2  # input tile: 6x6, overlapping its neighbours by the kernel's 3 - 1 = 2 rows and columns

B_T = np.array([[4, 0, -5, 0, 1, 0],
                [0, -4, -4, 1, 1, 0],
                [0, 4, -4, -1, 1, 0],
                [0, -2, -1, 2, 1, 0],
                [0, 2, -1, -2, 1, 0],
                [0, 4, 0, -5, 0, 1]], dtype=np.float64)  # (6, 6): input transform
G = np.array([[1 / 4, 0, 0],
              [-1 / 6, -1 / 6, -1 / 6],
              [-1 / 6, 1 / 6, -1 / 6],
              [1 / 24, 1 / 12, 1 / 6],
              [1 / 24, -1 / 12, 1 / 6],
              [0, 0, 1]], dtype=np.float64)  # (6, 3): weight transform
A_T = np.array([[1, 1, 1, 1, 1, 0],
                [0, 1, -1, 2, -2, 0],
                [0, 1, 1, 4, 4, 0],
                [0, 1, -1, 8, -8, 1]], dtype=np.float64)  # (4, 6): output transform


def tile_counts(out_h: int, out_w: int) -> tuple[int, int]:
    """Tiles per image along each axis: enough 4x4 tiles to cover the output (the last ones cut at its edge)."""
    return -(-out_h // TILE), -(-out_w // TILE)


def _matrix(matrix: np.ndarray, like: Any) -> Any:
    """A transform matrix on ``like``'s device, in its dtype."""
    return get_array_module(like).asarray(matrix, dtype=like.dtype)


def weight_transform(weight: Any) -> Any:
    """(F, C, 3, 3) kernels -> U (36, F, C): G g G^T of each kernel, position (a, b) in row 6 * a + b."""
    f, c = weight.shape[:2]
    g = _matrix(G, weight)
    xp = get_array_module(weight)
    # optimize: two products over one axis each (tensordot, BLAS), not one loop over all six indices
    u = xp.einsum("ai,fcij,bj->abfc", g, weight, g, optimize=True)  # (6, 6, F, C)
    return u.reshape(WINDOW * WINDOW, f, c)  # -> (36, F, C)


def weight_transform_adjoint(d_u: Any) -> Any:
    """dU (36, F, C) -> dW (F, C, 3, 3): G^T dU G, the gradient through ``weight_transform``."""
    f, c = d_u.shape[1:]
    g = _matrix(G, d_u)
    xp = get_array_module(d_u)
    d_u = d_u.reshape(WINDOW, WINDOW, f, c)  # (36, F, C) -> (6, 6, F, C)
    return xp.einsum("ai,abfc,bj->fcij", g, d_u, g, optimize=True)


def input_transform(planes: Any, padding: int, tiles_h: int, tiles_w: int) -> Any:
    """Channel-major input (C, N, H, W) -> V (36, C, N * tiles_h * tiles_w): B^T d B of every 6x6 input tile.

    Tile (ty, tx) starts at row 4 * ty - padding and column 4 * tx - padding; pixels outside the image are 0.
    """
    xp = get_array_module(planes)
    c, n, h, w = planes.shape
    # the region the tiles cover, at least H + 2 * padding rows (4 * tiles_h >= OH = H + 2 * padding - 2)
    padded = xp.zeros((c, n, TILE * tiles_h + 2, TILE * tiles_w + 2), dtype=planes.dtype)
    padded[:, :, padding:padding + h, padding:padding + w] = planes
    row_index = TILE * xp.arange(tiles_h)[:, None] + xp.arange(WINDOW)  # (tiles_h, 6): the rows of each tile
    col_index = TILE * xp.arange(tiles_w)[:, None] + xp.arange(WINDOW)  # (tiles_w, 6)
    # (C, N, tiles_h, 6, tiles_w, 6): every tile, copied out of the overlapping windows
    tiles = padded[:, :, row_index[:, :, None, None], col_index[None, None, :, :]]
    b_t = _matrix(B_T, planes)
    v = xp.einsum("ak,cnykxl,bl->abcnyx", b_t, tiles, b_t)  # (6, 6, C, N, tiles_h, tiles_w)
    return v.reshape(WINDOW * WINDOW, c, n * tiles_h * tiles_w)  # -> (36, C, tiles)


def input_transform_adjoint(d_v: Any, padding: int, tiles_h: int, tiles_w: int, image_shape: tuple) -> Any:
    """dV (36, C, tiles) -> dx (C, N, H, W): B dV B^T of every tile, added onto the pixels the tile read.

    ``image_shape`` is (C, N, H, W). Where tiles overlap (two rows and columns), their gradients add up.
    """
    xp = get_array_module(d_v)
    c, n, h, w = image_shape
    b_t = _matrix(B_T, d_v)
    d_v = d_v.reshape(WINDOW, WINDOW, c, n, tiles_h, tiles_w)  # (36, C, tiles) -> (6, 6, C, N, tiles_h, tiles_w)
    d_tiles = xp.einsum("ak,abcnyx,bl->cnykxl", b_t, d_v, b_t)  # (C, N, tiles_h, 6, tiles_w, 6)
    # Rows 0-3 of tile ty land in block ty of a grid of 4x4 blocks, rows 4-5 in rows 0-1 of block ty + 1 (the
    # same for columns): four slice additions, no scatter.
    blocks = xp.zeros((c, n, tiles_h + 1, TILE, tiles_w + 1, TILE), dtype=d_v.dtype)
    for row_part, row_block in ((slice(0, TILE), slice(0, tiles_h)), (slice(TILE, WINDOW), slice(1, tiles_h + 1))):
        rows_in_block = slice(0, row_part.stop - row_part.start)
        for col_part, col_block in ((slice(0, TILE), slice(0, tiles_w)),
                                    (slice(TILE, WINDOW), slice(1, tiles_w + 1))):
            cols_in_block = slice(0, col_part.stop - col_part.start)
            blocks[:, :, row_block, rows_in_block, col_block, cols_in_block] += d_tiles[:, :, :, row_part, :, col_part]
    # (C, N, tiles_h + 1, 4, tiles_w + 1, 4) -> (C, N, 4 * tiles_h + 4, 4 * tiles_w + 4): the padded region
    padded = blocks.reshape(c, n, TILE * (tiles_h + 1), TILE * (tiles_w + 1))
    return padded[:, :, padding:padding + h, padding:padding + w]  # the image's pixels: (C, N, H, W), a view


def output_transform(m: Any, bias: Any, out_h: int, out_w: int, batch: int) -> Any:
    """M (36, F, tiles) -> channel-major output (F, N, OH, OW): A^T M A of every tile, plus ``bias`` (F,)."""
    xp = get_array_module(m)
    f = m.shape[1]
    tiles_h, tiles_w = tile_counts(out_h, out_w)
    a_t = _matrix(A_T, m)
    m = m.reshape(WINDOW, WINDOW, f, batch, tiles_h, tiles_w)  # (36, F, tiles) -> (6, 6, F, N, tiles_h, tiles_w)
    y = xp.einsum("ia,abfnyx,jb->fnyixj", a_t, m, a_t)  # (F, N, tiles_h, 4, tiles_w, 4)
    y = y.reshape(f, batch, TILE * tiles_h, TILE * tiles_w)[:, :, :out_h, :out_w]  # whole tiles, cut to the output
    return y + bias[:, None, None, None]  # (F,) -> (F, 1, 1, 1): one bias per output channel


def output_transform_adjoint(d_out: Any) -> Any:
    """Channel-major dy (F, N, OH, OW) -> dM (36, F, tiles): A dy A^T of every 4x4 tile (0 beyond the edge)."""
    xp = get_array_module(d_out)
    f, n, out_h, out_w = d_out.shape
    tiles_h, tiles_w = tile_counts(out_h, out_w)
    whole = xp.zeros((f, n, TILE * tiles_h, TILE * tiles_w), dtype=d_out.dtype)
    whole[:, :, :out_h, :out_w] = d_out
    tiles = whole.reshape(f, n, tiles_h, TILE, tiles_w, TILE)  # (F, N, 4 * tiles_h, 4 * tiles_w) -> 4x4 tiles
    a_t = _matrix(A_T, d_out)
    d_m = xp.einsum("ia,fnyixj,jb->abfnyx", a_t, tiles, a_t)  # (6, 6, F, N, tiles_h, tiles_w)
    return d_m.reshape(WINDOW * WINDOW, f, n * tiles_h * tiles_w)  # -> (36, F, tiles)
