"""Sparse inference for winning tickets: a pruned network's dense layers as compressed sparse row matrices.

Beyond the paper. Frankle & Carbin (2019) train and evaluate tickets with dense arrays and masks (the effective
weight ``W * mask`` still costs a full matrix product). A ticket at 3.6% of its weights needs only 3.6% of the
multiply-adds, but only if the zeros are skipped. ``SparseModel.from_model`` exports a masked ``Sequential`` for
inference:

* every ``Dense`` layer becomes a CSR matrix holding exactly the unpruned weights of ``W * mask`` (one stored
  entry per mask 1, even where the weight itself happens to be 0.0);
* every other layer (``Conv2d``, ``MaxPool2d``, ``Flatten``, ...) runs as the dense layer it is (a copy, in
  evaluation mode). Convolutions stay dense on purpose: a convolution's weight is small and reused at every
  pixel, so im2col followed by a dense product is already efficient, and a pruned kernel would need a
  sparse-times-im2col product that SciPy does not make faster;
* ``ReLU`` is applied in place and ``Dropout`` is the identity (inference).

Layout, the part that makes it fast. A dense layer computes ``y = x @ W.T + b`` with x (N, in). SciPy's CSR
kernel is fastest with the sparse matrix on the left and many right-hand columns, ``W_csr @ X`` with X
(in, N) C-contiguous: for each stored weight it adds ``w * X[j, :]`` (a contiguous run of N numbers) into
``Y[i, :]``. So the activations of a run of dense layers are kept *feature-major*, (features, N): the input is
transposed once before the first sparse layer, each sparse layer maps (in, N) -> (out, N), and the result is
transposed back at the end (or before a dense layer such as a convolution). The batch is processed in blocks
of ``block_size`` examples so that one block's (in, block) input stays in the CPU's cache: one product over
all 10,000 test images has rows too long for it. ``minilottery bench`` times the block sizes on your machine.

SciPy's CSR product is single-threaded; ``workers > 1`` spreads the blocks over a thread pool (SciPy releases
the GIL inside the product). On the GPU the CSR matrices are ``cupyx.scipy.sparse.csr_matrix`` (cuSPARSE),
imported only when the model's weights are CuPy arrays; the CPU path never imports CuPy.
"""

from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import scipy.sparse

from minilottery.backend import device_of, get_array_module, to_numpy
from minilottery.checks import check_int
from minilottery.layers import Dense, Dropout, ReLU, Sequential

DEFAULT_BLOCK_SIZE = 512  # examples per block on the CPU: a (784, 512) float32 input block is 1.6 MB


def sparse_module(device: str) -> Any | None:
    """``scipy.sparse`` for host arrays, ``cupyx.scipy.sparse`` for CuPy (GPU) arrays, None on any other device."""
    if device == "cpu":
        return scipy.sparse
    if device == "gpu":
        import cupyx.scipy.sparse  # only reached when the weights already are CuPy arrays

        return cupyx.scipy.sparse
    return None


def _sparse_module(device: str) -> Any:
    """``sparse_module(device)``, or a one-line ValueError for a device neither SciPy nor cuSPARSE serves."""
    sparse = sparse_module(device)
    if sparse is None:
        raise ValueError(f"SparseModel supports models on the cpu or the gpu, got one on {device!r}; "
                         "move it with model.to('cpu') first")
    return sparse


def kept_positions(weight: Any, mask: Any | None) -> tuple[Any, Any]:
    """(rows, cols) of the kept weights (mask != 0; every weight when mask is None), each (nnz,), in row-major
    order: sorted by row, then by column, as CSR stores them. Built from the mask, so a kept weight that happens
    to be exactly 0.0 is still kept."""
    xp = get_array_module(weight)
    keep = xp.ones(weight.shape, dtype=bool) if mask is None else mask != 0  # (out, in)
    return xp.nonzero(keep)


def csr_indptr(xp: Any, rows: Any, out_features: int) -> Any:
    """CSR's row pointer, (out + 1,) int32, for kept positions sorted by row: row i's entries are
    ``indptr[i]:indptr[i + 1]``."""
    counts = xp.bincount(rows, minlength=out_features)  # (out,) kept weights per output unit
    return xp.concatenate([xp.zeros(1, dtype=xp.int32), xp.cumsum(counts).astype(xp.int32)])  # (out + 1,)


def dense_to_csr(weight: Any, mask: Any | None = None) -> Any:
    """The CSR matrix of ``weight * mask`` with one stored entry per kept weight (mask != 0).

    Args:
        weight: (out, in) array on the cpu (NumPy) or the gpu (CuPy).
        mask: (out, in) 0/1 array on the same device, or None (every weight is kept: a dense CSR).

    Returns:
        A ``scipy.sparse.csr_matrix`` (or ``cupyx.scipy.sparse.csr_matrix``) of shape (out, in), in the
        weight's dtype, with 32-bit indices and sorted column indices. Its ``nnz`` equals the number of
        ones in the mask, also where a kept weight is exactly 0.0 (built from the mask, not from ``!= 0``).
    """
    sparse = _sparse_module(device_of(weight))
    xp = get_array_module(weight)
    out_features, in_features = weight.shape
    rows, cols = kept_positions(weight, mask)  # (nnz,) each
    data = weight[rows, cols]  # (nnz,)
    indptr = csr_indptr(xp, rows, out_features)  # (out + 1,)
    return sparse.csr_matrix((data, cols.astype(xp.int32), indptr), shape=(out_features, in_features))


class SparseModel:
    """A pruned ``Sequential`` for inference, with its dense layers as CSR matrices (see the module docstring).

    Build it with ``SparseModel.from_model(model)``; it is a snapshot: later changes to ``model`` do not
    reach it. ``forward(x)`` returns the same logits as ``model.eval().forward(x)`` up to float rounding
    (the sums run in a different order), ``predict(x)`` the class indices.

    Attributes:
        steps: the layers in order, each ("sparse_dense", csr, bias), ("relu", None, None),
            ("identity", None, None) or ("layer", dense_layer_copy, None).
        device: "cpu" or "gpu".
        block_size: examples per block on the CPU (None: the whole input at once, the GPU's default).
        workers: threads over which CPU blocks are spread (1: no thread pool).
    """

    def __init__(self, steps: list[tuple[str, Any, Any]], device: str, block_size: int | None = DEFAULT_BLOCK_SIZE,
                 workers: int = 1) -> None:
        self.steps = steps
        self.device = device
        self.block_size = None if block_size is None else check_int(
            "block_size", block_size, hint="or None for the whole input at once")
        self.workers = check_int("workers", workers)

    @classmethod
    def from_model(cls, model: Sequential, *, block_size: int | None | str = "auto", workers: int = 1) -> SparseModel:
        """Exports ``model`` (a ``Sequential``, masked or not) on its current device.

        Args:
            model: the network; each ``Dense`` layer's effective weight ``W * mask`` becomes a CSR matrix.
            block_size: examples per block; "auto" is ``DEFAULT_BLOCK_SIZE`` on the CPU and the whole input on
                the GPU (where one large product is best).
            workers: CPU threads for the blocks (SciPy's product itself is single-threaded).

        Raises:
            ValueError: the model is on a device other than cpu or gpu, or is not a ``Sequential``.
        """
        if not isinstance(model, Sequential):
            raise ValueError(f"SparseModel.from_model expects a minilottery Sequential, got {type(model).__name__}")
        params = [p for layer in model.layers for p in layer.params.values()]
        device = device_of(params[0]) if params else "cpu"
        _sparse_module(device)  # fails early, with the fix, for a device SciPy/cuSPARSE cannot serve
        steps: list[tuple[str, Any, Any]] = []
        for layer in model.layers:
            if isinstance(layer, Dense):
                steps.append(("sparse_dense", dense_to_csr(layer.params["W"], layer.masks.get("W")),
                              layer.params["b"].copy()[:, None]))  # bias (out,) -> (out, 1): broadcasts over N
            elif isinstance(layer, ReLU):
                steps.append(("relu", None, None))
            elif isinstance(layer, Dropout):
                steps.append(("identity", None, None))  # inference: dropout does nothing
            else:
                frozen = copy.deepcopy(layer)  # a snapshot in evaluation mode (Conv2d, MaxPool2d, Flatten, ...)
                frozen.training = False
                steps.append(("layer", frozen, None))
        if block_size == "auto":
            block_size = DEFAULT_BLOCK_SIZE if device == "cpu" else None
        return cls(steps, device, block_size=block_size, workers=workers)

    # -- inference --------------------------------------------------------------------------------------

    def forward(self, x: Any) -> Any:
        """Logits for a batch.

        Args:
            x: (N, ...) input as the dense model takes it (e.g. (N, 1, 28, 28) or (N, 784)), on the model's
                device; cast to the weights' dtype (a float64 input would otherwise make SciPy compute in
                float64).

        Returns:
            (N, K) logits, C-contiguous, on the model's device.
        """
        xp = get_array_module(x)
        n = x.shape[0]
        size = n if self.block_size is None else self.block_size
        blocks = [(start, min(start + size, n)) for start in range(0, n, size)]
        if len(blocks) == 1:
            return self._forward_block(x)
        outputs: list[Any]
        if self.workers > 1 and self.device == "cpu":
            outputs = list(_thread_pool(self.workers).map(lambda se: self._forward_block(x[se[0]:se[1]]), blocks))
        else:
            outputs = [self._forward_block(x[start:stop]) for start, stop in blocks]
        return xp.concatenate(outputs, axis=0)  # blocks of (B, K) -> (N, K)

    __call__ = forward

    def predict(self, x: Any) -> Any:
        """Class indices, (N,) int64 on the model's device: ``forward(x).argmax(axis=1)``."""
        return self.forward(x).argmax(axis=1)

    def _forward_block(self, x: Any) -> Any:
        xp = get_array_module(x)
        dtype = self._dtype()
        h = x if dtype is None or x.dtype == dtype else x.astype(dtype)
        feature_major = False  # True while h is (features, N) rather than (N, ...)
        for kind, op, bias in self.steps:
            if kind == "sparse_dense":
                if not feature_major:
                    h = transposed_copy(xp, h)  # (N, in) -> (in, N), C-contiguous for the CSR kernel
                    feature_major = True
                h = op @ h  # (out, in) sparse @ (in, N) dense -> (out, N) dense
                h += bias  # (out, 1) broadcasts over the N columns
            elif kind == "relu":
                xp.maximum(h, 0, out=h)  # in place: h is this function's own array (made by a product)
            elif kind == "layer":
                if feature_major:
                    h = transposed_copy(xp, h)  # (features, N) -> (N, features)
                    feature_major = False
                h = op.forward(h)
        return transposed_copy(xp, h) if feature_major else xp.ascontiguousarray(h)  # (K, N) -> (N, K)

    def _dtype(self) -> Any:
        for kind, op, _ in self.steps:
            if kind == "sparse_dense":
                return op.dtype
            if kind == "layer" and op.params:
                return op.params["W"].dtype
        return None

    # -- bookkeeping ------------------------------------------------------------------------------------

    def nnz(self) -> dict[str, int]:
        """Stored weights of each sparse layer, by the dense model's parameter name ("1.W": 8467, ...)."""
        return {f"{i}.W": int(op.nnz) for i, (kind, op, _) in enumerate(self.steps) if kind == "sparse_dense"}

    def to_csr_dict(self) -> dict[str, Any]:
        """Parameter name -> the CSR matrix of that dense layer (on the model's device)."""
        return {f"{i}.W": op for i, (kind, op, _) in enumerate(self.steps) if kind == "sparse_dense"}

    def __repr__(self) -> str:
        parts = []
        for i, (kind, op, _) in enumerate(self.steps):
            if kind == "sparse_dense":
                out_f, in_f = op.shape
                parts.append(f"  ({i}) SparseDense({in_f}, {out_f}, nnz={op.nnz}, "
                             f"{100.0 * op.nnz / (in_f * out_f):.1f}%)")
            elif kind == "relu":
                parts.append(f"  ({i}) ReLU()")
            elif kind == "identity":
                parts.append(f"  ({i}) Identity()")
            else:
                parts.append(f"  ({i}) {op!r} (dense)")
        return "SparseModel(device={!r}\n{}\n)".format(self.device, "\n".join(parts))


_POOLS: dict[int, ThreadPoolExecutor] = {}  # workers -> a pool kept for the life of the process


def _thread_pool(workers: int) -> ThreadPoolExecutor:
    """A thread pool of ``workers`` threads, made on first use and then reused by every forward pass.

    Why kept: a pool started and joined inside every pass would add that fixed cost to each pass, which small
    inputs feel most; idle threads cost nothing, and Python joins them at exit.
    """
    pool = _POOLS.get(workers)
    if pool is None:
        pool = _POOLS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="minilottery-sparse")
    return pool


def transposed_copy(xp: Any, a: Any) -> Any:
    """A C-contiguous copy of the 2-D ``a`` transposed, (R, C) -> (C, R).

    A plain strided copy: for blocks of the default size it is as fast as copying in cache-sized tiles, and
    simpler.
    """
    return xp.ascontiguousarray(a.T)


def dense_parameters(model: SparseModel) -> dict[str, np.ndarray]:
    """Host dense copies of the exported weights (name -> (out, in) array): for checking an export."""
    return {name: to_numpy(csr.toarray()) for name, csr in model.to_csr_dict().items()}


__all__ = ["DEFAULT_BLOCK_SIZE", "SparseModel", "csr_indptr", "dense_parameters", "dense_to_csr", "kept_positions",
           "sparse_module", "transposed_copy"]
