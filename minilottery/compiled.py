"""Compiled loops, optional: each does in one pass over memory what a chain of NumPy (or CuPy) calls does in many.

A NumPy ufunc reads and writes a whole array per operation. The fast Adam (``minilottery.optim.fast``) is 14 such
passes over every weight (the mask, two moments, their bias-corrected ratio, the update, the mask again); for
LeNet-300-100's 266,200 weights that is over a third of a training step. ``adam_update`` below reads each weight,
gradient, mask and moment once and writes the weight and moments once. On the GPU the same passes are 14 kernel
launches per parameter, each costing the host more than the GPU's work on a LeNet layer; ``gpu_adam_update`` is
them as one CuPy kernel.

Each loop here has a NumPy twin that stays the specification, and a test that they agree:

* ``adam_update`` does the float operations of ``Adam.step``'s NumPy passes, in the same order, in the arrays'
  dtype, with no fast-math and so no fused multiply-add: the results are equal bit for bit
  (``tests/test_compiled.py``). A first moment stuck at a subnormal value is decayed in float64 instead, and a
  gradient's square that would be subnormal is left out where rounding drops it: the same bits without the CPU's
  slow subnormal arithmetic (``_adam_update_loop`` says why);
* ``gpu_adam_update`` does the same operations on CuPy arrays, compiled without fused multiply-adds
  (``--fmad=false``): equal bit for bit to the CuPy passes of ``Adam.step`` (a test marked gpu);
* ``sampled_product`` computes what ``minilottery.lab.sparse_training.sampled_product`` gathers and sums with
  NumPy, summing each dot product in its own order (a reduction may be reordered): equal within float rounding;
* ``csr_times`` and ``csr_transposed_times`` compute SciPy's CSR and CSC products (``W_csr @ X``, ``W_csr.T @ D``),
  the first adding the kept products four at a time: equal within float rounding;
* ``max_pool`` computes ``MaxPool2d.forward``'s maximum and its offset in one pass instead of one per window
  offset: equal, up to the sign of a zero (a window of 0.0 and -0.0);
* ``sparse_input_times`` computes a dense layer's ``x @ W.T`` from the non-zero entries of ``x`` only, for
  ``Dense`` in evaluation when most of its input is zero (MNIST's images): equal within float rounding;
* ``mask_is_ones`` answers what ``bool((mask == 1).all())`` answers, reading blocks until one holds another value;
* ``winograd_input``, ``winograd_output`` and their adjoints compute the tile transforms of
  ``minilottery.layers.winograd`` (``einsum`` there) for ``Conv2d``'s Winograd path: equal within float rounding.

Numba is the ``fast`` extra (``pip install "minilottery[fast]"``). Without it, or with the environment variable
``MINILOTTERY_COMPILED=0``, ``enabled()`` is False and every caller runs its NumPy twin. The loops run on plain
C-contiguous NumPy arrays only (``fits``); CuPy arrays (but for Adam's GPU kernel) and the strict test backend
take the NumPy twin's path, which is written with ``xp``. The first call of a loop compiles it (about a second;
the sparse loops once per training batch size, the pooling loop once per window and stride) and caches the
machine code next to this file, so later processes load it. The GPU kernel needs only CuPy (which compiles it at
its first call, and caches it); ``MINILOTTERY_COMPILED=0`` turns it off too (``gpu_enabled()``).
"""

from __future__ import annotations

import functools
import math
import os
from typing import Any, NamedTuple

import numpy as np

from minilottery.backend import device_of, get_backend

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


def _adam_update_loop(stuck_path: bool, counted: bool) -> Any:
    """Adam's update of one parameter, in place: the NumPy passes of ``Adam.step`` fused into one loop. With
    ``counted`` it returns how many of the updated first moments are subnormal (not 0, below float32's smallest
    normal number), else 0.

    Every array is 1-D, of the same length; an unmasked parameter's ``mask`` is ones (``adam_update``). ``scalars`` is
    (weight_decay, beta1, 1 - beta1, beta2, 1 - beta2, eps_hat, step_size) in the arrays' dtype, so every
    operation is in that dtype, as in the NumPy passes. ``stuck`` is ``_stuck_moments``' (on, beta1 * 2**149,
    bound, tiny_gradient, large_v), in float64.

    A first moment whose gradient has become exactly 0 (a pixel that is 0 in every image the weight still sees,
    a unit that no longer fires) decays by beta1 per step into float32's subnormal range and stays there: 1 to 4
    units of 2**-149 times 0.9 round back to themselves. Arithmetic on a subnormal takes the CPU a microcode
    assist, tens of times slower than on a normal number; a LeNet-300-100 run holds ~13,000 such moments after
    a few thousand steps, which made its Adam step several times as long. Such an element is "stuck" below when
    its gradient is 0, its moment subnormal, and its weight so much larger than the update that ``p - update`` is
    ``p`` (``_stuck_moments`` gives the bound). Its results are then computed without touching a subnormal, and
    are the same bits: the moment's ``m * beta1`` in float64, where it is exact (at most 23 by 24 significant
    bits), rounded half to even onto the subnormal grid as float32's product rounds it; the weight as
    ``p - 0``, which is ``p``. Later in training, gradients of 1e-18 and less appear, whose ``(d * d) * (1 -
    beta2)`` would be subnormal too; where ``v * beta2`` is so much larger that rounding drops that term, it is
    dropped before it is computed. Every other element, and every element of a float64 parameter, goes through
    the passes' operations.

    With ``stuck_path`` False the loop is compiled without that path (the constant removes it), for a parameter
    whose moments were all normal or 0 when they were last counted (most of them, most of the time): the path's
    float64 arithmetic is a third of the loop's time. Without subnormal moments the path changes nothing, and
    with them only the time: the results are the same bits either way. Counting costs as much again, so it is a
    compiled variant of its own too (``adam_update`` says when it runs).
    """

    def adam_update_loop(param, grad, mask, m, v, scalars, stuck):  # pragma: no cover - compiled; twin: Adam.step
        weight_decay, beta1, one_minus_beta1, beta2, one_minus_beta2, eps_hat, step_size = (
            scalars[0], scalars[1], scalars[2], scalars[3], scalars[4], scalars[5], scalars[6])
        on, beta1_in_ulps, bound = stuck[0] != 0, stuck[1], scalars.dtype.type(stuck[2])
        tiny_gradient, large_v = scalars.dtype.type(stuck[3]), scalars.dtype.type(stuck[4])
        smallest_normal = scalars.dtype.type(2.0**-126)  # float32's; a float64 call has ``on`` False
        smallest_weight = scalars.dtype.type(2.0**-60)
        zero = scalars.dtype.type(0)
        subnormal_moments = 0
        for i in range(param.size):
            d = grad[i]
            if weight_decay != 0:
                d = param[i] * weight_decay + d
            d = d * mask[i]  # d = (g + wd * p) * mask: a pruned weight's d is exactly 0
            decayed_v = v[i] * beta2
            # a gradient so small that (d * d) * (1 - beta2) would be computed as a subnormal number adds nothing to
            # a v * beta2 this large: its square is dropped, as rounding would drop it
            square_adds_nothing = on & (abs(d) < tiny_gradient) & (decayed_v >= large_v)
            d_for_v = zero if square_adds_nothing else d
            v[i] = decayed_v + (d_for_v * d_for_v) * one_minus_beta2
            denominator = np.sqrt(v[i]) + eps_hat
            weight, moment = param[i], m[i]
            if stuck_path:
                # |m * beta1| in units of 2**-149, rounded half to even (adding and taking away 2**52 rounds a
                # float64 under 2**52 to an integer so, where np.rint would be a library call per element): exact if
                # m is stuck
                decayed_ulps = (abs(np.float64(moment)) * beta1_in_ulps + 2.0**52) - 2.0**52
                stuck_here = (on & (d == 0) & (abs(moment) < smallest_normal) & (decayed_ulps != 0)
                              & (abs(weight) >= smallest_weight) & (bound < abs(weight) * denominator))
                # no branch: selects keep the loop vectorised. A stuck moment is only compared and widened to
                # float64, which take no assist; it is never multiplied or divided.
                new_moment = (zero if stuck_here else moment) * beta1 + d * one_minus_beta1
                param[i] = weight - (new_moment / denominator) * step_size
                # in this order: with the moment's select ahead of the weight's update, LLVM's code multiplied
                # stuck moments after all (2.5x the loop's time on a real run's state)
                decayed = scalars.dtype.type(decayed_ulps * 2.0**-149)
                m[i] = (-decayed if moment < 0 else decayed) if stuck_here else new_moment
            else:
                new_moment = moment * beta1 + d * one_minus_beta1
                param[i] = weight - (new_moment / denominator) * step_size
                m[i] = new_moment
            if counted:
                subnormal_moments += (abs(m[i]) < smallest_normal) & (m[i] != zero)
            param[i] = param[i] * mask[i]  # pruned weights are exactly 0.0 after the step
        return subnormal_moments

    return adam_update_loop


@functools.cache
def _compiled_adam(stuck_path: bool, counted: bool) -> Any:
    # error_model="numpy": a division by zero gives inf as NumPy's does, instead of a check per element that
    # stops the loop from being vectorised
    return _numba().njit(_adam_update_loop(stuck_path, counted), cache=True, nogil=True, error_model="numpy")


# How often ``Adam.step`` has the loop count a parameter's subnormal moments (``adam_update``): a moment that
# turns subnormal between two counts costs slow arithmetic until the next one, never a different result.
SUBNORMAL_RECOUNT_STEPS = 64


def _stuck_moments(scalars: Any) -> Any:
    """``_adam_update_loop``'s float64 (on, beta1 * 2**149, bound, tiny_gradient, large_v) for the ``scalars``
    of one call.

    On for float32 with 0 < beta1 < 1 only (float64's subnormal moments would need 53 by 53 bits). For a
    stuck element |m * beta1| < 2**-126, so the update's magnitude is below 2**-126 / denominator * step_size
    (times rounding, a few parts in 2**24). ``bound`` = step_size * 2**-99 < |p| * denominator makes that
    smaller than |p| * 2**-27: a quarter of |p| * 2**-25, which is at most half the unit in the last place
    that ``p - update`` would need to move ``p`` (below ``p``, where a power of two halves it). |p| >= 2**-60
    keeps the update's own subnormal rounding (2**-150) far below that too. Off, to keep the bound a normal
    number, for a step size under 2**-26, and for 1 - beta2 outside [2**-40, 1].
    """
    beta1, one_minus_beta2, step_size = float(scalars[1]), float(scalars[4]), float(scalars[6])
    on = (scalars.dtype == np.float32 and 0.0 < beta1 < 1.0 and step_size >= 2.0**-26
          and 2.0**-40 <= one_minus_beta2 <= 1.0)
    # For |d| < tiny_gradient, (d * d) * (1 - beta2) < 2**-124, near or in the subnormal range: the loop leaves it
    # out where v * beta2 >= large_v, whose last place is at least 2**-121. A term under 2**-124 (after its own
    # rounding too) is less than half of that, so ``v * beta2 + term`` is ``v * beta2``.
    tiny_gradient = math.sqrt(2.0**-124 / one_minus_beta2) if on else 0.0
    large_v = 2.0**-98
    return np.array((float(on), beta1 * 2.0**149, step_size * 2.0**-99, tiny_gradient, large_v), np.float64)


def adam_update(param: Any, grad: Any, mask: Any, m: Any, v: Any, *, weight_decay: float, beta1: float,
                beta2: float, eps_hat: float, step_size: float, subnormal_moments: int | None = None) -> int | None:
    """One Adam update of ``param`` and its moments ``m``, ``v``, in place; ``mask`` None for an unmasked one.

    The scalars are ``Adam.step``'s, each rounded to the arrays' dtype as NumPy rounds a Python float operand:
    ``eps_hat = eps * sqrt(1 - beta2**t)`` and ``step_size = lr * sqrt(1 - beta2**t) / (1 - beta1**t)``.
    Call only when ``enabled()`` and ``fits(param, grad, m, v[, mask])``.

    ``subnormal_moments`` picks one of the loop's compiled variants (``_adam_update_loop``), all with the same
    bits: None runs it with the stuck-moment path, counting the subnormal first moments it leaves, and returns
    the count; a count runs it without counting, with the path only where the count is not 0, and returns the
    count unchanged. A count that has gone stale costs time only, never a different result. (A float64
    parameter has no such path: nothing is counted, and the count passed is returned.)
    """
    scalars, stuck = _loop_scalars(param.dtype.str, weight_decay, beta1, beta2, eps_hat, step_size)
    # An unmasked parameter gets a mask of ones: multiplying by 1 changes no bit, and a loop that branched on
    # having a mask was not vectorised without one (20x slower on 235,200 weights).
    mask = _ones(param.size, param.dtype.str) if mask is None else mask
    # (size,) views of the C-contiguous arrays, written through in place: one compiled version per dtype, not
    # one per number of dimensions
    on = bool(stuck[0])  # off (a float64 parameter, say): the path would do nothing, and there is nothing to count
    counted = on and subnormal_moments is None
    loop = _compiled_adam(on and (counted or subnormal_moments > 0), counted)
    count = loop(param.reshape(-1), grad.reshape(-1), mask.reshape(-1), m.reshape(-1), v.reshape(-1), scalars, stuck)
    return count if counted else subnormal_moments


@functools.lru_cache(maxsize=16)
def _loop_scalars(dtype: str, weight_decay: float, beta1: float, beta2: float, eps_hat: float,
                  step_size: float) -> tuple[Any, Any]:
    """``_adam_update_loop``'s read-only ``scalars`` (the seven in the parameter's dtype, each rounded as NumPy
    rounds a Python float) and ``stuck`` (``_stuck_moments``'). Made once per step, not once per parameter: every
    parameter of a step has the same step count, so the same scalars."""
    scalars = np.array((weight_decay, beta1, 1.0 - beta1, beta2, 1.0 - beta2, eps_hat, step_size), dtype)
    stuck = _stuck_moments(scalars)
    scalars.flags.writeable = stuck.flags.writeable = False
    return scalars, stuck


@functools.lru_cache(maxsize=64)
def _ones(size: int, dtype: str) -> Any:
    """A read-only (size,) array of ones, made once per size and dtype: the mask of an unmasked parameter."""
    ones = np.ones(size, dtype)
    ones.flags.writeable = False
    return ones


# -- a mask of ones ------------------------------------------------------------------------------------------

# The entries the check below compares before it may stop: a block of fixed length, which the compiler
# vectorises whole (a loop that may stop at any entry is compiled one entry at a time, several times slower).
MASK_BLOCK = 512


def _mask_is_ones_loop(mask):  # pragma: no cover - compiled; its twin is bool((mask == 1).all())
    """True when every entry of the 1-D ``mask`` is exactly 1. It stops after the first block that holds another
    value, so a pruned mask costs a block or a few; a mask of ones is read once, a third of the memory traffic
    of the multiply it saves (two arrays read, one written)."""
    one = mask.dtype.type(1)
    full = mask.size - mask.size % MASK_BLOCK
    for start in range(0, full, MASK_BLOCK):
        others = 0
        block = mask[start:start + MASK_BLOCK]
        for i in range(MASK_BLOCK):
            others += block[i] != one
        if others:
            return False
    for i in range(full, mask.size):
        if mask[i] != one:
            return False
    return True


@functools.cache
def _compiled_mask_is_ones() -> Any:
    return _numba().njit(_mask_is_ones_loop, cache=True, nogil=True, error_model="numpy")


def mask_is_ones(mask: Any) -> bool:
    """True when the compiled loops run, ``mask`` fits them and every entry is exactly 1 (a NaN or a -1 is not
    1); False otherwise, including when nothing was checked (no Numba, a CuPy or strict array, whose answer
    would wait for the device). Where it is True, ``Layer.masked_param`` and ``masked_grad`` skip multiplying by
    the mask, which would change no bit; where it is False, they multiply."""
    if not (enabled() and fits(mask)):
        return False
    return bool(_compiled_mask_is_ones()(mask.reshape(-1)))  # (size,) view of the C-contiguous mask


# -- the products of sparse training -------------------------------------------------------------------------

# Batches up to this size get loops compiled for their exact size (see ``_sparse_loops``); larger ones, such as
# evaluation batches, share one version that reads the batch at run time.
EXACT_BATCH_MAX = 256


class _SparseLoops(NamedTuple):
    sampled_product: Any
    csr_times: Any
    csr_transposed_times: Any


@functools.cache
def _sparse_loops(batch: int) -> _SparseLoops:
    """The three loops of sparse training for feature-major (features, ``batch``) arrays; ``batch`` 0: any batch.

    A nonzero ``batch`` is a constant of the compiled code, not a bound read at run time: each loop over the
    batch then has a known length, which the compiler vectorises whole. Read at run time, the length leaves a
    loop vectorised 32 at a time with a remainder loop 4 at a time; at batch 60, 28 of the 60 products fall in
    the remainder, and the sampled product took about twice as long (LeNet-300-100's first layer at 3.6%).
    Training uses one batch size, so one version is compiled (and cached on disk, keyed by ``batch``) per size.
    """

    def sampled_product_loop(dout_t, x_t, rows, cols, zero, out):  # pragma: no cover - compiled; twin: see below
        """``out[k] = dout_t[rows[k]] . x_t[cols[k]]``: the (rows[k], cols[k]) entry of ``dout_t @ x_t.T`` only;
        its twin is ``minilottery.lab.sparse_training.sampled_product``."""
        width = batch if batch else x_t.shape[1]  # a constant when batch is nonzero (the branch is compiled away)
        for k in range(rows.size):
            a, b = dout_t[rows[k]], x_t[cols[k]]  # (N,) rows, contiguous in the feature-major layout
            total = zero  # of the arrays' dtype, so the sum stays in it
            for n in range(width):
                total += a[n] * b[n]
            out[k] = total

    def csr_times_loop(indptr, cols, values, x_t, out):  # pragma: no cover - compiled; twin: SciPy's CSR product
        """``out = A @ x_t`` for the CSR matrix ``A`` (indptr, cols, values): row r of ``out`` is the sum of
        ``values[k] * x_t[cols[k]]`` over the kept k of row r, added to it four at a time (one read and write
        of the row per four kept weights instead of per one)."""
        width = batch if batch else x_t.shape[1]
        for r in range(out.shape[0]):
            row = out[r]  # (N,)
            row[:] = 0
            k, end = indptr[r], indptr[r + 1]
            while k + 4 <= end:
                v0, v1, v2, v3 = values[k], values[k + 1], values[k + 2], values[k + 3]  # scalars
                s0, s1, s2, s3 = x_t[cols[k]], x_t[cols[k + 1]], x_t[cols[k + 2]], x_t[cols[k + 3]]  # (N,) rows
                for n in range(width):
                    row[n] += (v0 * s0[n] + v1 * s1[n]) + (v2 * s2[n] + v3 * s3[n])
                k += 4
            while k < end:  # the row's last 0 to 3 kept weights
                value, source = values[k], x_t[cols[k]]
                for n in range(width):
                    row[n] += value * source[n]
                k += 1

    def csr_transposed_times_loop(indptr, cols, values, d_t, out):  # pragma: no cover - twin: SciPy's CSC product
        """``out = A.T @ d_t`` for the CSR matrix ``A``: each kept k of row r adds ``values[k] * d_t[r]`` into
        row ``cols[k]`` of ``out``, in CSR order."""
        width = batch if batch else d_t.shape[1]
        out[:] = 0
        for r in range(d_t.shape[0]):
            source = d_t[r]  # (N,)
            for k in range(indptr[r], indptr[r + 1]):
                value, row = values[k], out[cols[k]]  # a scalar and an (N,) row of out
                for n in range(width):
                    row[n] += value * source[n]

    njit = _numba().njit
    # reassoc lets the compiler sum each dot product in SIMD lanes: a different order of the same float sum;
    # error_model="numpy": no check per element that would stop the CSR loops from being vectorised
    return _SparseLoops(njit(sampled_product_loop, cache=True, nogil=True, fastmath={"reassoc", "contract"}),
                        njit(csr_times_loop, cache=True, nogil=True, error_model="numpy"),
                        njit(csr_transposed_times_loop, cache=True, nogil=True, error_model="numpy"))


def _loops_for(*arrays: Any) -> _SparseLoops:
    """The loops for feature-major ``arrays`` (features, N) of one batch N: exact for N <= ``EXACT_BATCH_MAX``."""
    batch = int(arrays[0].shape[1])
    if any(a.shape[1] != batch for a in arrays):
        raise ValueError(f"feature-major arrays of shapes {[tuple(a.shape) for a in arrays]} differ in the batch")
    return _sparse_loops(batch if batch <= EXACT_BATCH_MAX else 0)


def sampled_product(dout_t: Any, x_t: Any, rows: Any, cols: Any) -> Any:
    """The kept entries of ``dout_t @ x_t.T``: ``out[k] = sum_n dout_t[rows[k], n] * x_t[cols[k], n]``.

    Shapes: dout_t (out, N), x_t (in, N), rows and cols (nnz,) integer -> (nnz,). Call only when ``enabled()``
    and ``fits(dout_t, x_t)``.
    """
    out = np.empty(rows.shape[0], dtype=dout_t.dtype)
    _loops_for(dout_t, x_t).sampled_product(dout_t, x_t, rows, cols, dout_t.dtype.type(0), out)
    return out


def csr_times(indptr: Any, cols: Any, values: Any, x_t: Any, n_rows: int) -> Any:
    """``A @ x_t`` for the (n_rows, len(x_t)) CSR matrix A = (indptr, cols, values): (n_rows, N).

    Call only when ``enabled()`` and ``fits(values, x_t)``."""
    out = np.empty((n_rows, x_t.shape[1]), dtype=x_t.dtype)
    _loops_for(x_t).csr_times(indptr, cols, values, x_t, out)
    return out


def csr_transposed_times(indptr: Any, cols: Any, values: Any, d_t: Any, n_cols: int) -> Any:
    """``A.T @ d_t`` for the (len(d_t), n_cols) CSR matrix A = (indptr, cols, values): (n_cols, N).

    Call only when ``enabled()`` and ``fits(values, d_t)``."""
    out = np.empty((n_cols, d_t.shape[1]), dtype=d_t.dtype)
    _loops_for(d_t).csr_transposed_times(indptr, cols, values, d_t, out)
    return out


# -- a product with a mostly-zero input ----------------------------------------------------------------------


def _sparse_input_loop(x, weight_t, out):  # pragma: no cover - compiled; its twin is x @ weight_t
    """``out = x @ weight_t`` for (N, I) ``x`` and (I, O) ``weight_t``, skipping the zero entries of ``x``.

    Row n of ``out`` is the sum of ``x[n, c] * weight_t[c]`` over the c where ``x[n, c]`` is not zero, added to
    it four at a time in increasing c (one read and write of the row per four entries instead of per one), as
    ``csr_times`` adds a sparse matrix's kept products.
    """
    n_in, n_out = weight_t.shape
    nonzero = np.empty(n_in, np.int64)  # the columns of one row of x that are not zero
    for n in range(x.shape[0]):
        source = x[n]  # (I,)
        count = 0
        for c in range(n_in):  # no branch: a branch per entry is mispredicted where zeros and non-zeros mix
            nonzero[count] = c
            count += source[c] != 0
        row = out[n]  # (O,)
        row[:] = 0
        j = 0
        while j + 4 <= count:
            c0, c1, c2, c3 = nonzero[j], nonzero[j + 1], nonzero[j + 2], nonzero[j + 3]
            v0, v1, v2, v3 = source[c0], source[c1], source[c2], source[c3]  # scalars
            w0, w1, w2, w3 = weight_t[c0], weight_t[c1], weight_t[c2], weight_t[c3]  # (O,) rows
            for o in range(n_out):
                row[o] += (v0 * w0[o] + v1 * w1[o]) + (v2 * w2[o] + v3 * w3[o])
            j += 4
        while j < count:  # the row's last 0 to 3 non-zero entries
            value, weights = source[nonzero[j]], weight_t[nonzero[j]]
            for o in range(n_out):
                row[o] += value * weights[o]
            j += 1


@functools.cache
def _compiled_sparse_input() -> Any:
    return _numba().njit(_sparse_input_loop, cache=True, nogil=True, error_model="numpy")


# ``sparse_input_times`` pays where at most this fraction of the input's entries are not zero. Measured against
# BLAS on 1,337 rows and 300 outputs (one thread): 0.45x the time at 10% non-zero entries in random places, 0.89x
# at 20%, 1.09x at 30%, 1.9x at 50%; MNIST's images (19%, gathered in the middle, so fewer weight rows are read)
# 0.60-0.71x in four runs.
SPARSE_INPUT_DENSITY = 0.25
# Fewer rows and the transposed copy of the weight costs more than skipping zeros saves: on MNIST and 300 outputs
# 1.2x BLAS's time at 16 rows, 1.0x at 32, 0.87x at 64, 0.80x at 100.
SPARSE_INPUT_MIN_ROWS = 64
# A larger weight is copied transposed out of the cache, slower per entry than the product saves: Conv-2's first
# dense weight (256 x 16,384) took 20 ms to copy against 11 ms for BLAS's whole product of 100 rows.
SPARSE_INPUT_MAX_WEIGHTS = 2**20


# OpenBLAS's AVX-512 cores, whose float32 products outrun the loop on MNIST: on an Intel Xeon (SkylakeX kernels,
# one thread) LeNet-300-100's evaluation of 15,000 images took 91 ms with the loop against 77 ms with BLAS alone
# (median of 7, twice); the figures above come from an AMD EPYC (Haswell kernels). Another BLAS keeps the loop.
BLAS_CORES_FASTER_THAN_SPARSE_INPUT = ("SkylakeX", "Cooperlake", "SapphireRapids")


@functools.cache
def blas_core() -> str:
    """The core OpenBLAS picked for NumPy's products on this CPU ("Haswell", "SkylakeX", ...; threadpoolctl's
    ``architecture``), or "" for another BLAS or when none is found."""
    from threadpoolctl import threadpool_info

    cores = [info.get("architecture") or "" for info in threadpool_info()
             if info.get("user_api") == "blas" and info.get("internal_api") == "openblas"]
    return cores[0] if cores else ""


def sparse_input_pays(x: Any, weight: Any) -> bool:
    """True when ``sparse_input_times`` is the faster way to ``x @ weight.T``: the loops are on, both arrays
    fit, ``x`` has at least ``SPARSE_INPUT_MIN_ROWS`` rows and at most ``SPARSE_INPUT_DENSITY`` of its entries
    are not zero, ``weight`` has at most ``SPARSE_INPUT_MAX_WEIGHTS`` entries, and BLAS's core is not one of
    ``BLAS_CORES_FASTER_THAN_SPARSE_INPUT``."""
    if not (enabled() and fits(x, weight) and x.ndim == 2 and x.shape[0] >= SPARSE_INPUT_MIN_ROWS
            and weight.size <= SPARSE_INPUT_MAX_WEIGHTS and blas_core() not in BLAS_CORES_FASTER_THAN_SPARSE_INPUT):
        return False
    # counted on the bits, which NumPy counts several times faster than floats: a -0.0 (sign bit set) counts as
    # non-zero, which can only send an input to the dense product
    bits = x.view(np.int32 if x.dtype == np.float32 else np.int64)
    return bool(np.count_nonzero(bits) <= SPARSE_INPUT_DENSITY * x.size)


def sparse_input_times(x: Any, weight: Any) -> Any:
    """``x @ weight.T`` for (N, I) ``x`` and (O, I) ``weight``, computed from the non-zero entries of ``x`` only:
    (N, O), equal within float rounding (but a zero input times an infinite weight adds nothing here, where the
    dense product adds NaN). Call only when ``enabled()`` and ``fits(x, weight)``."""
    weight_t = np.ascontiguousarray(weight.T)  # (O, I) -> (I, O): each input's O weights in one row
    out = np.empty((x.shape[0], weight.shape[0]), dtype=x.dtype)
    _compiled_sparse_input()(x, weight_t, out)
    return out


# -- max pooling ---------------------------------------------------------------------------------------------


@functools.cache
def _max_pool_loop(kh: int, kw: int, sh: int, sw: int) -> Any:
    """``MaxPool2d.forward``'s loop for one window (kh, kw) and stride (sh, sw).

    The four are constants of the compiled code, not arguments: the loops over a window's offsets are then
    unrolled and the loop over an output row's columns vectorised; read at run time, they leave the loop scalar,
    slower than NumPy's passes. One version per geometry is compiled, and cached on disk keyed by the four.
    Backward stays NumPy's: a compiled loop writing dx (stores kw apart) was slower than its kh * kw passes.
    """

    def forward_loop(planes, out, argmax):  # pragma: no cover - compiled; twin: MaxPool2d.forward
        """(P, H, W) planes -> (P, OH, OW) ``out`` and ``argmax``. As the twin, the offsets k = i * kw + j of each
        window are taken in turn: ``argmax`` moves to k where the pixel is strictly greater than the running
        maximum (the first maximum wins a tie), and the maximum is ``np.maximum``'s (a NaN on either side makes
        it NaN). But each window stays in registers, instead of the whole output once per offset."""
        for p in range(out.shape[0]):
            for r in range(out.shape[1]):
                best_row, argmax_row = out[p, r], argmax[p, r]  # (OW,) rows, written in place
                for c in range(best_row.shape[0]):
                    best, arg = planes[p, r * sh, c * sw], np.int8(0)
                    for i in range(kh):
                        source = planes[p, r * sh + i]  # (W,)
                        for j in range(kw):
                            value = source[c * sw + j]
                            arg = np.int8(i * kw + j) if value > best else arg
                            best = np.maximum(best, value)
                    best_row[c], argmax_row[c] = best, arg

    return _numba().njit(forward_loop, cache=True, nogil=True, error_model="numpy")


def max_pool(x: Any, kh: int, kw: int, sh: int, sw: int) -> tuple[Any, Any]:
    """Max pooling of ``x`` (A, B, H, W), C-contiguous, whose last two axes are the image's rows and columns
    (NCHW, or a convolution's channel-major output read as (C, N, H, W)): (out, argmax), both (A, B, OH, OW),
    ``argmax`` int8 (the offset i * kw + j of each window's maximum). ``MaxPool2d.forward``'s numbers; call only
    when ``enabled()``, ``fits(x)`` and ``kh * kw < 128``."""
    a, b, h, w = x.shape
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    out = np.empty((a, b, oh, ow), dtype=x.dtype)
    argmax = np.empty((a, b, oh, ow), dtype=np.int8)
    # (A * B, H, W) and (A * B, OH, OW) views: one compiled version per dtype for any two leading axes
    _max_pool_loop(kh, kw, sh, sw)(x.reshape(a * b, h, w), out.reshape(a * b, oh, ow), argmax.reshape(a * b, oh, ow))
    return out, argmax


# -- Winograd's tile transforms ------------------------------------------------------------------------------
#
# The four transforms of ``minilottery.layers.winograd`` as loops over one image plane at a time. Each 6-point
# transform (B^T, A^T and their transposes) is written out as the adds and scalings of its matrix's rows. It is
# applied along each row of a plane first, so that a pixel of two overlapping tiles is transformed along its row
# once, then along the columns. Rows and columns are kept split by their offset within a tile (``line[r, t]`` is
# column 4 * t + r of a row; ``rows[r, b, t * tiles_w + tx]`` row 4 * t + r), so the loop over a plane's tiles
# reads and writes consecutive floats, which the compiler turns into vector instructions; with a 6x6 tile read
# as one piece, every one of the 36 arrays of a transform would be written a few floats at a time. The constants
# are of the arrays' dtype (an integer literal would promote float32 arithmetic to float64). Twins: the
# ``einsum`` functions of ``layers/winograd.py``, equal within float rounding (the sums run in another order).


def _winograd_input_loop(planes, padding, tiles_h, tiles_w, v):  # pragma: no cover - twin: input_transform
    """(C, N, H, W) planes -> v (36, C, N * tiles_h * tiles_w): B^T d B of every 6x6 tile."""
    n_channels, n_images, h, w = planes.shape
    dt = planes.dtype
    k2, k4, k5 = dt.type(2), dt.type(4), dt.type(5)
    tiles = tiles_h * tiles_w
    line = np.zeros((4, tiles_w + 1), dt)  # column 4 * t + r of one padded row at [r, t]; 0 beyond the image
    rows = np.zeros((4, 6, (tiles_h + 1) * tiles_w), dt)  # B^T along padded row 4 * t + r at [r, :, t * tiles_w:]
    for c in range(n_channels):
        for n in range(n_images):
            for yy in range(4 * tiles_h + 2):
                y = yy - padding
                row = rows[yy % 4, :, (yy // 4) * tiles_w:(yy // 4 + 1) * tiles_w]  # (6, tiles_w)
                if y < 0 or y >= h:
                    row[:] = 0
                    continue
                for x in range(w):
                    line[(x + padding) % 4, (x + padding) // 4] = planes[c, n, y, x]
                for tx in range(tiles_w):
                    d0, d1, d2, d3 = line[0, tx], line[1, tx], line[2, tx], line[3, tx]
                    d4, d5 = line[0, tx + 1], line[1, tx + 1]
                    row[0, tx] = k4 * d0 - k5 * d2 + d4
                    row[1, tx] = -k4 * d1 - k4 * d2 + d3 + d4
                    row[2, tx] = k4 * d1 - k4 * d2 - d3 + d4
                    row[3, tx] = -k2 * d1 - d2 + k2 * d3 + d4
                    row[4, tx] = k2 * d1 - d2 - k2 * d3 + d4
                    row[5, tx] = k4 * d1 - k5 * d3 + d5
            p0 = n * tiles
            for b in range(6):
                r0, r1, r2, r3 = rows[0, b], rows[1, b], rows[2, b], rows[3, b]  # ((tiles_h + 1) * tiles_w,)
                v0, v1, v2 = v[b, c, p0:p0 + tiles], v[6 + b, c, p0:p0 + tiles], v[12 + b, c, p0:p0 + tiles]
                v3, v4, v5 = v[18 + b, c, p0:p0 + tiles], v[24 + b, c, p0:p0 + tiles], v[30 + b, c, p0:p0 + tiles]
                for t in range(tiles):  # tile t = ty * tiles_w + tx reads rows 4 ty .. 4 ty + 5
                    d0, d1, d2, d3 = r0[t], r1[t], r2[t], r3[t]
                    d4, d5 = r0[t + tiles_w], r1[t + tiles_w]
                    v0[t] = k4 * d0 - k5 * d2 + d4
                    v1[t] = -k4 * d1 - k4 * d2 + d3 + d4
                    v2[t] = k4 * d1 - k4 * d2 - d3 + d4
                    v3[t] = -k2 * d1 - d2 + k2 * d3 + d4
                    v4[t] = k2 * d1 - d2 - k2 * d3 + d4
                    v5[t] = k4 * d1 - k5 * d3 + d5


def _winograd_input_adjoint_loop(d_v, padding, tiles_h, tiles_w, dx):  # pragma: no cover - twin: see above
    """d_v (36, C, tiles) -> dx (C, N, H, W): B d_v B^T of every tile, overlapping tiles adding up."""
    n_channels, n_images, h, w = dx.shape
    dt = dx.dtype
    k2, k4, k5 = dt.type(2), dt.type(4), dt.type(5)
    tiles = tiles_h * tiles_w
    line = np.zeros((4, tiles_w + 1), dt)
    rows = np.zeros((4, 6, (tiles_h + 1) * tiles_w), dt)
    for c in range(n_channels):
        for n in range(n_images):
            p0 = n * tiles
            for b in range(6):
                r0, r1, r2, r3 = rows[0, b], rows[1, b], rows[2, b], rows[3, b]
                v0, v1, v2 = d_v[b, c, p0:p0 + tiles], d_v[6 + b, c, p0:p0 + tiles], d_v[12 + b, c, p0:p0 + tiles]
                v3, v4, v5 = d_v[18 + b, c, p0:p0 + tiles], d_v[24 + b, c, p0:p0 + tiles], d_v[30 + b, c, p0:p0 + tiles]
                for t in range(tiles):  # rows 4 ty .. 4 ty + 3 of each tile
                    r0[t] = k4 * v0[t]
                    r1[t] = -k4 * v1[t] + k4 * v2[t] - k2 * v3[t] + k2 * v4[t] + k4 * v5[t]
                    r2[t] = -k5 * v0[t] - k4 * v1[t] - k4 * v2[t] - v3[t] - v4[t]
                    r3[t] = v1[t] - v2[t] + k2 * v3[t] - k2 * v4[t] - k5 * v5[t]
                r0[tiles:] = 0
                r1[tiles:] = 0
                for t in range(tiles):  # rows 4 ty + 4 and 4 ty + 5: rows 0 and 1 of the next tile row
                    r0[t + tiles_w] += v0[t] + v1[t] + v2[t] + v3[t] + v4[t]
                    r1[t + tiles_w] += v5[t]
            for y in range(h):
                yy = y + padding  # < 4 * tiles_h + 2, as 4 * tiles_h >= OH = H + 2 * padding - 2
                row = rows[yy % 4, :, (yy // 4) * tiles_w:(yy // 4 + 1) * tiles_w]  # (6, tiles_w)
                for tx in range(tiles_w):
                    v0, v1, v2, v3, v4, v5 = row[0, tx], row[1, tx], row[2, tx], row[3, tx], row[4, tx], row[5, tx]
                    line[0, tx] = k4 * v0
                    line[1, tx] = -k4 * v1 + k4 * v2 - k2 * v3 + k2 * v4 + k4 * v5
                    line[2, tx] = -k5 * v0 - k4 * v1 - k4 * v2 - v3 - v4
                    line[3, tx] = v1 - v2 + k2 * v3 - k2 * v4 - k5 * v5
                line[0, tiles_w] = 0
                line[1, tiles_w] = 0
                for tx in range(tiles_w):  # columns 4 tx + 4 and 4 tx + 5 of each tile
                    line[0, tx + 1] += row[0, tx] + row[1, tx] + row[2, tx] + row[3, tx] + row[4, tx]
                    line[1, tx + 1] += row[5, tx]
                for x in range(w):
                    dx[c, n, y, x] = line[(x + padding) % 4, (x + padding) // 4]


def _winograd_output_loop(m, bias, tiles_h, tiles_w, out):  # pragma: no cover - twin: output_transform
    """m (36, F, tiles) -> out (F, N, OH, OW): A^T m A of every tile, cut at the output's edge, plus the bias."""
    n_out, n_images, out_h, out_w = out.shape
    dt = out.dtype
    k2, k4, k8 = dt.type(2), dt.type(4), dt.type(8)
    tiles = tiles_h * tiles_w
    cols = np.empty((4, 6, tiles), dt)  # A^T along the columns of every tile: row i of tile t at [i, :, t]
    line = np.empty((4, tiles_w), dt)  # column 4 * tx + j of one output row at [j, tx]
    for f in range(n_out):
        bias_f = bias[f]
        for n in range(n_images):
            p0 = n * tiles
            for b in range(6):
                m0, m1, m2 = m[b, f, p0:p0 + tiles], m[6 + b, f, p0:p0 + tiles], m[12 + b, f, p0:p0 + tiles]
                m3, m4, m5 = m[18 + b, f, p0:p0 + tiles], m[24 + b, f, p0:p0 + tiles], m[30 + b, f, p0:p0 + tiles]
                for t in range(tiles):
                    cols[0, b, t] = m0[t] + m1[t] + m2[t] + m3[t] + m4[t]
                    cols[1, b, t] = m1[t] - m2[t] + k2 * (m3[t] - m4[t])
                    cols[2, b, t] = m1[t] + m2[t] + k4 * (m3[t] + m4[t])
                    cols[3, b, t] = m1[t] - m2[t] + k8 * (m3[t] - m4[t]) + m5[t]
            for y in range(out_h):
                row = cols[y % 4, :, (y // 4) * tiles_w:(y // 4 + 1) * tiles_w]  # (6, tiles_w)
                for tx in range(tiles_w):
                    m0, m1, m2, m3, m4, m5 = row[0, tx], row[1, tx], row[2, tx], row[3, tx], row[4, tx], row[5, tx]
                    line[0, tx] = (m0 + m1 + m2 + m3 + m4) + bias_f
                    line[1, tx] = (m1 - m2 + k2 * (m3 - m4)) + bias_f
                    line[2, tx] = (m1 + m2 + k4 * (m3 + m4)) + bias_f
                    line[3, tx] = (m1 - m2 + k8 * (m3 - m4) + m5) + bias_f
                for x in range(out_w):
                    out[f, n, y, x] = line[x % 4, x // 4]


def _winograd_output_adjoint_loop(d_out, tiles_h, tiles_w, d_m):  # pragma: no cover - twin: see above
    """d_out (F, N, OH, OW) -> d_m (36, F, tiles): A g A^T of every 4x4 tile, 0 beyond the output's edge."""
    n_out, n_images, out_h, out_w = d_out.shape
    dt = d_out.dtype
    k2, k4, k8 = dt.type(2), dt.type(4), dt.type(8)
    tiles = tiles_h * tiles_w
    rows = np.zeros((4, 6, tiles), dt)  # A along row i of every tile: tile t at [i, :, t]; 0 beyond the edge
    line = np.zeros((4, tiles_w), dt)  # column 4 * tx + j of one output row at [j, tx]; 0 beyond the edge
    for f in range(n_out):
        for n in range(n_images):
            for y in range(out_h):
                for x in range(out_w):
                    line[x % 4, x // 4] = d_out[f, n, y, x]
                row = rows[y % 4, :, (y // 4) * tiles_w:(y // 4 + 1) * tiles_w]  # (6, tiles_w)
                for tx in range(tiles_w):
                    o0, o1, o2, o3 = line[0, tx], line[1, tx], line[2, tx], line[3, tx]
                    row[0, tx] = o0
                    row[1, tx] = o0 + o1 + o2 + o3
                    row[2, tx] = o0 - o1 + o2 - o3
                    row[3, tx] = o0 + k2 * o1 + k4 * o2 + k8 * o3
                    row[4, tx] = o0 - k2 * o1 + k4 * o2 - k8 * o3
                    row[5, tx] = o3
            p0 = n * tiles
            for b in range(6):
                o0, o1, o2, o3 = rows[0, b], rows[1, b], rows[2, b], rows[3, b]  # (tiles,)
                g0, g1, g2 = d_m[b, f, p0:p0 + tiles], d_m[6 + b, f, p0:p0 + tiles], d_m[12 + b, f, p0:p0 + tiles]
                g3, g4, g5 = d_m[18 + b, f, p0:p0 + tiles], d_m[24 + b, f, p0:p0 + tiles], d_m[30 + b, f, p0:p0 + tiles]
                for t in range(tiles):
                    g0[t] = o0[t]
                    g1[t] = o0[t] + o1[t] + o2[t] + o3[t]
                    g2[t] = o0[t] - o1[t] + o2[t] - o3[t]
                    g3[t] = o0[t] + k2 * o1[t] + k4 * o2[t] + k8 * o3[t]
                    g4[t] = o0[t] - k2 * o1[t] + k4 * o2[t] - k8 * o3[t]
                    g5[t] = o3[t]


class _WinogradLoops(NamedTuple):
    input: Any
    input_adjoint: Any
    output: Any
    output_adjoint: Any


@functools.cache
def _winograd_loops() -> _WinogradLoops:
    njit = _numba().njit
    return _WinogradLoops(*(njit(loop, cache=True, nogil=True, error_model="numpy") for loop in (
        _winograd_input_loop, _winograd_input_adjoint_loop, _winograd_output_loop, _winograd_output_adjoint_loop)))


def winograd_input(planes: Any, padding: int, tiles_h: int, tiles_w: int, out: Any) -> Any:
    """``winograd.input_transform`` written into ``out`` (36, C, N * tiles_h * tiles_w); returns ``out``.
    Call only when ``enabled()`` and ``fits(planes, out)``."""
    _winograd_loops().input(planes, padding, tiles_h, tiles_w, out)
    return out


def winograd_input_adjoint(d_v: Any, padding: int, tiles_h: int, tiles_w: int, image_shape: tuple) -> Any:
    """``winograd.input_transform_adjoint``: a new (C, N, H, W) array. Call only when ``enabled()`` and
    ``fits(d_v)``."""
    dx = np.empty(image_shape, dtype=d_v.dtype)
    _winograd_loops().input_adjoint(d_v, padding, tiles_h, tiles_w, dx)
    return dx


def winograd_output(m: Any, bias: Any, tiles_h: int, tiles_w: int, out_shape: tuple) -> Any:
    """``winograd.output_transform``: a new (F, N, OH, OW) array, ``out_shape``, covered by tiles_h x tiles_w
    tiles per image (``winograd.tile_counts``). Call only when ``enabled()`` and ``fits(m, bias)``."""
    out = np.empty(out_shape, dtype=m.dtype)
    _winograd_loops().output(m, bias, tiles_h, tiles_w, out)
    return out


def winograd_output_adjoint(d_out: Any, tiles_h: int, tiles_w: int, out: Any) -> Any:
    """``winograd.output_transform_adjoint`` written into ``out`` (36, F, tiles); returns ``out``. Call only
    when ``enabled()`` and ``fits(d_out, out)``."""
    _winograd_loops().output_adjoint(d_out, tiles_h, tiles_w, out)
    return out


# -- Adam's update on the GPU --------------------------------------------------------------------------------


def gpu_enabled() -> bool:
    """True unless ``MINILOTTERY_COMPILED`` is "0": ``gpu_adam_update`` needs nothing but CuPy itself."""
    return os.environ.get(ENV_SWITCH, "1") != "0"


def gpu_fits(*arrays: Any) -> bool:
    """True when every array is a float32/float64 array of one dtype on the GPU (what ``gpu_adam_update`` takes)."""
    dtype = arrays[0].dtype
    if dtype != np.float32 and dtype != np.float64:
        return False
    return all(a.dtype == dtype and device_of(a) == "gpu" for a in arrays)


@functools.cache
def _gpu_adam_kernel(masked: bool, decayed: bool) -> Any:
    """The CuPy kernel of one Adam update: ``_adam_update_loop``'s body for one element, T the arrays' dtype.

    ``param``, ``m`` and ``v`` are its outputs, read and written in place. One kernel per (masked, decayed) pair,
    so no element tests a flag; ``--fmad=false`` keeps each multiply and add rounded on its own, as the CuPy
    passes round them (CUDA would otherwise fuse ``m * beta1 + d * (1 - beta1)`` into a multiply-add).
    """
    cupy = get_backend("gpu").xp  # the backend owns the import of CuPy

    inputs = ["T grad", *(["T mask"] if masked else []), "T weight_decay", "T beta1", "T one_minus_beta1", "T beta2",
              "T one_minus_beta2", "T eps_hat", "T step_size"]
    body = [
        "T d = grad;",
        *(["d = param * weight_decay + d;"] if decayed else []),
        *(["d = d * mask;  // a pruned weight's d is exactly 0"] if masked else []),
        "v = v * beta2 + (d * d) * one_minus_beta2;",
        "m = m * beta1 + d * one_minus_beta1;",
        "param = param - (m / (sqrt(v) + eps_hat)) * step_size;",
        *(["param = param * mask;  // pruned weights are exactly 0.0 after the step"] if masked else []),
    ]
    name = f"minilottery_adam{'_masked' if masked else ''}{'_decayed' if decayed else ''}"
    return cupy.ElementwiseKernel(", ".join(inputs), "T param, T m, T v", "\n".join(body), name,
                                  options=("--fmad=false",))


def gpu_adam_update(param: Any, grad: Any, mask: Any, m: Any, v: Any, *, weight_decay: float, beta1: float,
                    beta2: float, eps_hat: float, step_size: float) -> None:
    """``adam_update`` on CuPy arrays: one kernel launch instead of the passes' 14, the same numbers.

    Call only when ``gpu_enabled()`` and ``gpu_fits(param, grad, m, v[, mask])``. The scalars are passed as
    scalars of the arrays' dtype, rounded as the passes round a Python float operand.
    """
    scalar = param.dtype.type
    kernel = _gpu_adam_kernel(mask is not None, weight_decay != 0)
    kernel(grad, *([] if mask is None else [mask]), scalar(weight_decay), scalar(beta1), scalar(1.0 - beta1),
           scalar(beta2), scalar(1.0 - beta2), scalar(eps_hat), scalar(step_size), param, m, v)


__all__ = ["BLAS_CORES_FASTER_THAN_SPARSE_INPUT", "ENV_SWITCH", "EXACT_BATCH_MAX", "SPARSE_INPUT_DENSITY",
           "SPARSE_INPUT_MAX_WEIGHTS", "SPARSE_INPUT_MIN_ROWS", "SUBNORMAL_RECOUNT_STEPS", "adam_update", "blas_core",
           "csr_times", "csr_transposed_times", "describe", "enabled", "fits", "gpu_adam_update", "gpu_enabled",
           "gpu_fits", "max_pool", "sampled_product", "sparse_input_pays", "sparse_input_times", "winograd_input",
           "winograd_input_adjoint", "winograd_output", "winograd_output_adjoint"]
