"""Compiled CPU loops (Numba), optional: each does in one pass over memory what a chain of NumPy calls does in many.

A NumPy ufunc reads and writes a whole array per operation. The fast Adam (``minilottery.optim.fast``) is 14 such
passes over every weight (the mask, two moments, their bias-corrected ratio, the update, the mask again); for
LeNet-300-100's 266,200 weights that is over a third of a training step. ``adam_update`` below reads each weight,
gradient, mask and moment once and writes the weight and moments once.

Each loop here has a NumPy twin that stays the specification, and a test that they agree:

* ``adam_update`` does the float operations of ``Adam.step``'s NumPy passes, in the same order, in the arrays'
  dtype, with no fast-math and so no fused multiply-add: the results are equal bit for bit
  (``tests/test_compiled.py``);
* ``sampled_product`` computes what ``minilottery.lab.sparse_training.sampled_product`` gathers and sums with
  NumPy, summing each dot product in its own order (a reduction may be reordered): equal within float rounding.

Numba is the ``fast`` extra (``pip install "minilottery[fast]"``). Without it, or with the environment variable
``MINILOTTERY_COMPILED=0``, ``enabled()`` is False and every caller runs its NumPy twin. The loops run on plain
C-contiguous NumPy arrays only (``fits``); CuPy arrays and the strict test backend take the NumPy twin's path,
which is written with ``xp``. The first call of a loop compiles it (about a second) and caches the machine code
next to this file, so later processes load it.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import numpy as np

ENV_SWITCH = "MINILOTTERY_COMPILED"  # "0" turns the compiled loops off (the NumPy twins run instead)


@functools.cache
def _numba() -> Any:
    """The ``numba`` module, or None when it is not installed (or fails to import on this platform)."""
    try:
        import numba
    except Exception:  # ImportError, or a Numba built against another NumPy: fall back to the NumPy twins
        return None
    return numba


def enabled() -> bool:
    """True when the compiled loops run: Numba imports and ``MINILOTTERY_COMPILED`` is not "0"."""
    return os.environ.get(ENV_SWITCH, "1") != "0" and _numba() is not None


def describe() -> str:
    """One line for ``doctor`` and ``bench``: whether the compiled loops run, and why not."""
    numba = _numba()
    if numba is None:
        return 'off (Numba is not installed: pip install "minilottery[fast]")'
    if not enabled():
        return f"off ({ENV_SWITCH}=0; Numba {numba.__version__} is installed)"
    return f"on (Numba {numba.__version__})"


def fits(*arrays: Any) -> bool:
    """True when every array is a C-contiguous NumPy float32/float64 array of one dtype (what the loops take)."""
    dtype = arrays[0].dtype
    if dtype != np.float32 and dtype != np.float64:
        return False
    for a in arrays:
        if type(a) is not np.ndarray or not a.flags.c_contiguous or a.dtype != dtype:
            return False
    return True


# -- Adam's update -------------------------------------------------------------------------------------------


def _adam_update_loop(param, grad, mask, m, v, scalars):  # pragma: no cover - compiled; its twin is Adam.step
    """Adam's update of one parameter, in place: the NumPy passes of ``Adam.step`` fused into one loop.

    Every array is 1-D, of the same length; ``mask`` has length 0 for an unmasked parameter. ``scalars`` is
    (weight_decay, beta1, 1 - beta1, beta2, 1 - beta2, eps_hat, step_size) in the arrays' dtype, so every
    operation is in that dtype, as in the NumPy passes.
    """
    weight_decay, beta1, one_minus_beta1, beta2, one_minus_beta2, eps_hat, step_size = (
        scalars[0], scalars[1], scalars[2], scalars[3], scalars[4], scalars[5], scalars[6])
    masked = mask.size > 0
    for i in range(param.size):
        d = grad[i]
        if weight_decay != 0:
            d = param[i] * weight_decay + d
        if masked:
            d = d * mask[i]  # d = (g + wd * p) * mask: a pruned weight's d is exactly 0
        v[i] = v[i] * beta2 + (d * d) * one_minus_beta2
        m[i] = m[i] * beta1 + d * one_minus_beta1
        param[i] = param[i] - (m[i] / (np.sqrt(v[i]) + eps_hat)) * step_size
        if masked:
            param[i] = param[i] * mask[i]  # pruned weights are exactly 0.0 after the step


@functools.cache
def _compiled_adam() -> Any:
    # error_model="numpy": a division by zero gives inf as NumPy's does, instead of a check per element that
    # stops the loop from being vectorised
    return _numba().njit(_adam_update_loop, cache=True, nogil=True, error_model="numpy")


def adam_update(param: Any, grad: Any, mask: Any, m: Any, v: Any, *, weight_decay: float, beta1: float,
                beta2: float, eps_hat: float, step_size: float) -> None:
    """One Adam update of ``param`` and its moments ``m``, ``v``, in place; ``mask`` None for an unmasked one.

    The scalars are ``Adam.step``'s, each rounded to the arrays' dtype as NumPy rounds a Python float operand:
    ``eps_hat = eps * sqrt(1 - beta2**t)`` and ``step_size = lr * sqrt(1 - beta2**t) / (1 - beta1**t)``.
    Call only when ``enabled()`` and ``fits(param, grad, m, v[, mask])``.
    """
    # the seven scalars in one array of the parameter's dtype (each rounded as NumPy rounds a Python float)
    scalars = np.array((weight_decay, beta1, 1.0 - beta1, beta2, 1.0 - beta2, eps_hat, step_size), param.dtype)
    no_mask = param[:0].reshape(-1)  # (0,)
    # (size,) views of the C-contiguous arrays, written through in place: one compiled version per dtype, not
    # one per number of dimensions
    _compiled_adam()(param.reshape(-1), grad.reshape(-1), no_mask if mask is None else mask.reshape(-1),
                     m.reshape(-1), v.reshape(-1), scalars)


# -- the sampled product of sparse training ------------------------------------------------------------------


def _sampled_product_loop(dout_t, x_t, rows, cols, zero, out):  # pragma: no cover - compiled; twin: sparse_training
    """``out[k] = dout_t[rows[k]] . x_t[cols[k]]``: the (rows[k], cols[k]) entry of ``dout_t @ x_t.T`` only."""
    for k in range(rows.size):
        a, b = dout_t[rows[k]], x_t[cols[k]]  # (N,) rows, contiguous in the feature-major layout
        total = zero  # of the arrays' dtype, so the sum stays in it
        for n in range(a.size):
            total += a[n] * b[n]
        out[k] = total


@functools.cache
def _compiled_sampled_product() -> Any:
    # reassoc lets the compiler sum each dot product in SIMD lanes: a different order of the same float sum
    return _numba().njit(_sampled_product_loop, cache=True, nogil=True, fastmath={"reassoc", "contract"})


def sampled_product(dout_t: Any, x_t: Any, rows: Any, cols: Any) -> Any:
    """The kept entries of ``dout_t @ x_t.T``: ``out[k] = sum_n dout_t[rows[k], n] * x_t[cols[k], n]``.

    Shapes: dout_t (out, N), x_t (in, N), rows and cols (nnz,) integer -> (nnz,). Call only when ``enabled()``
    and ``fits(dout_t, x_t)``.
    """
    out = np.empty(rows.shape[0], dtype=dout_t.dtype)
    _compiled_sampled_product()(dout_t, x_t, rows, cols, dout_t.dtype.type(0), out)
    return out


# -- the sparse products of sparse training ------------------------------------------------------------------


def _csr_times_loop(indptr, cols, values, x_t, out):  # pragma: no cover - compiled; twin: SciPy's CSR product
    """``out = A @ x_t`` for the CSR matrix ``A`` (indptr, cols, values): row r of ``out`` adds
    ``values[k] * x_t[cols[k]]`` for each kept k of row r, in CSR order (as SciPy's ``csr_matvecs`` does)."""
    for r in range(out.shape[0]):
        row = out[r]  # (N,)
        row[:] = 0
        for k in range(indptr[r], indptr[r + 1]):
            value, source = values[k], x_t[cols[k]]  # a scalar and an (N,) row
            for n in range(row.size):
                row[n] += value * source[n]


def _csr_transposed_times_loop(indptr, cols, values, d_t, out):  # pragma: no cover - twin: SciPy's CSC product
    """``out = A.T @ d_t`` for the CSR matrix ``A``: each kept k of row r adds ``values[k] * d_t[r]`` into row
    ``cols[k]`` of ``out``."""
    out[:] = 0
    for r in range(d_t.shape[0]):
        source = d_t[r]  # (N,)
        for k in range(indptr[r], indptr[r + 1]):
            value, row = values[k], out[cols[k]]  # a scalar and an (N,) row of out
            for n in range(row.size):
                row[n] += value * source[n]


@functools.cache
def _compiled_csr_products() -> tuple[Any, Any]:
    njit = _numba().njit
    return (njit(_csr_times_loop, cache=True, nogil=True, error_model="numpy"),
            njit(_csr_transposed_times_loop, cache=True, nogil=True, error_model="numpy"))


def csr_times(indptr: Any, cols: Any, values: Any, x_t: Any, n_rows: int) -> Any:
    """``A @ x_t`` for the (n_rows, len(x_t)) CSR matrix A = (indptr, cols, values): (n_rows, N).

    Call only when ``enabled()`` and ``fits(values, x_t)``."""
    out = np.empty((n_rows, x_t.shape[1]), dtype=x_t.dtype)
    _compiled_csr_products()[0](indptr, cols, values, x_t, out)
    return out


def csr_transposed_times(indptr: Any, cols: Any, values: Any, d_t: Any, n_cols: int) -> Any:
    """``A.T @ d_t`` for the (len(d_t), n_cols) CSR matrix A = (indptr, cols, values): (n_cols, N).

    Call only when ``enabled()`` and ``fits(values, d_t)``."""
    out = np.empty((n_cols, d_t.shape[1]), dtype=d_t.dtype)
    _compiled_csr_products()[1](indptr, cols, values, d_t, out)
    return out


__all__ = ["ENV_SWITCH", "adam_update", "csr_times", "csr_transposed_times", "describe", "enabled", "fits",
           "sampled_product"]
