"""Sparse training for winning tickets: a pruned network's dense layers trained over their kept weights only.

Beyond the paper. Frankle & Carbin (2019) train a ticket as a dense network times a mask (Section 2): at 3.6% of
LeNet-300-100's weights remaining, every step still multiplies all 266,200 weights, 96% of them by zero, and the
optimizer updates all of them. Here a masked ``Dense`` layer below a density threshold is replaced, for the
length of a training run, by a ``SparseDense`` that stores only the kept weights (9,600 of them in that ticket):

* its weight is a values vector of length nnz (the number of ones in the mask) laid out in compressed sparse row
  (CSR) order, with the mask as the fixed pattern: ``params["W"]`` is (nnz,), ``params["b"]`` is (out,);
* forward ``y = x W^T + b`` is the CSR product ``W_csr @ x^T`` and the input gradient ``dx = dout W`` the
  transposed product ``W_csr^T @ dout^T`` (SciPy on the CPU, ``cupyx.scipy.sparse`` (cuSPARSE) on the GPU);
* the weight gradient is computed at the kept positions only, a *sampled* product: for the kept (i, j),
  ``dW[i, j] = sum_n dout[n, i] * x[n, j]``, the entries of ``dout^T @ x`` the mask keeps and no others
  (in a layer keeping more than ``GATHER_DENSITY`` of its weights, the dense product read at the kept
  positions is faster, and gives the same numbers);
* on the CPU with Numba installed (``minilottery.compiled``), the two CSR products and the sampled product run
  as compiled loops over the same arrays, which spares SciPy's per-call cost and NumPy's gathers;
* the optimizer (the core's own ``Adam``/``SGD``) sees the values vector as the parameter, so its moments
  and updates cover the kept weights only, with the same hyperparameters and step count. A pruned weight is
  not stored, so it stays exactly 0 by construction, and its optimizer state is (implicitly) exactly 0.

Nothing else changes: the masked ``Sequential`` remains the specification (``minilottery.layers.Dense``) that
``tests/test_sparse_training.py`` checks this module against, step by step, in loss, gradients, updates and
optimizer state. ``SparseKernels`` is the ``kernels`` hook of ``minilottery.training.train``: it builds the
sparse network from the model, the training loop runs on it, and on exit the trained kept weights are written
back into the model's own (out, in) arrays, with zeros at the pruned positions and the masks untouched, so run
folders, metrics and the next pruning round see an ordinary masked ``Sequential``.

Layout (as in ``minilottery.lab.sparse``): SciPy's CSR product is fastest as ``W_csr @ X`` with X (in, N)
C-contiguous, so a run of sparse layers keeps its activations *feature-major*, (features, N): the first sparse
layer of a run transposes its input once, ReLUs between sparse layers work on (features, N) as they are, and
the last one transposes its output back. The gradients travel the same way in reverse.

Which layers run sparse (``choose_kernels``): convolutions always stay dense (their weights are few and
reused at every pixel); a ``Dense`` layer runs sparse when it has at least ``SPARSE_MIN_WEIGHTS`` weights and
keeps at most ``SPARSE_DENSITY`` of them ("auto"), or always ("on"), or never ("off"). "auto" runs sparse on
the CPU only, where the threshold was measured; on the GPU (cuSPARSE) no gain has been measured yet, so "on"
is the way to use it there. The run records the choice (``TrainResult.kernels``: weight name -> "sparse" or "dense").
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from minilottery import compiled
from minilottery.backend import device_of, get_array_module, scatter_add, to_device, to_numpy
from minilottery.checks import check_choice, check_real
from minilottery.lab.sparse import csr_indptr, kept_positions, sparse_module, transposed_copy
from minilottery.layers import Dense, Layer, ReLU, Sequential

# A Dense layer keeping at most this fraction of its weights trains sparse under "auto" (on the CPU). Chosen from
# LeNet-300-100's training step with one layer at a time sparse (batch 60, Adam, one BLAS thread): the first
# layer (235,200 weights) breaks even near 30% kept and is clearly faster at 10%; the 30,000-weight layer about
# breaks even at any density, and the 1,000-weight output layer is a little slower sparse at every density, hence
# SPARSE_MIN_WEIGHTS. The README's sparse training section gives the timings.
SPARSE_DENSITY = 0.1
SPARSE_MIN_WEIGHTS = 10_000  # "auto" keeps a smaller Dense layer dense (its products are too small to gain) ...
# ... unless the compiled loops run and the layer before it runs sparse: then the activations are feature-major
# already, and running it sparse spares a transpose each way (LeNet's output layer: see choose_kernels)

MODES = ("auto", "on", "off")
# At or below this kept fraction a layer's weight gradient comes from the gathers of ``sampled_product``; above
# it, from the dense product read at the kept positions (the same numbers): BLAS's dense product does a
# multiply-add many times faster than NumPy's gathers, so it wins once enough of the products are kept
# (for LeNet-300-100's first layer at batch 60, from about 5%; see the README's sparse training section).
GATHER_DENSITY = 0.05
SAMPLED_BLOCK_CPU = 4096  # kept weights per gather on the CPU: two (4096, 60) float32 blocks are 2 MB
SAMPLED_BLOCK_DEVICE = 1 << 20  # on a GPU: two (2**20, 60) float32 blocks are 0.5 GB


# -- the sparse dense layer ----------------------------------------------------------------------------------


class SparseDense(Layer):
    """A masked ``Dense`` layer that stores and trains only its kept weights: ``y = x @ W.T + b`` with W in CSR.

    Shapes:
        x: (N, in) or, when ``feature_major_input``, (in, N) -> y: (N, out) or, when ``feature_major_output``,
        (out, N); ``params["W"]``: (nnz,) the kept weights in CSR order (row by row, columns ascending);
        ``params["b"]``: (out,); ``rows``, ``cols``: (nnz,) the (i, j) position of each kept weight.

    Build it with ``SparseDense.from_dense(layer)``; ``dense_weight()`` gives the (out, in) weight back, with
    exact zeros at the pruned positions. The layer holds no mask: every stored weight is a kept one.
    """

    def __init__(self, values: Any, bias: Any, rows: Any, cols: Any, shape: tuple[int, int], *,
                 feature_major_input: bool = False, feature_major_output: bool = False) -> None:
        super().__init__()
        self.out_features, self.in_features = shape
        self.params["W"] = values  # (nnz,)
        self.params["b"] = bias  # (out,)
        self.rows, self.cols = rows, cols  # (nnz,) int64 each: the kept positions, sorted by row then column
        self.feature_major_input = feature_major_input
        self.feature_major_output = feature_major_output
        # the weight gradient by gathers (sampled_product) in a sparse layer, by the dense product in a denser one
        self.gathered_gradient = self.nnz <= GATHER_DENSITY * self.out_features * self.in_features
        self._products: _Products | None = None  # made on first use, for the values array it was made with
        self._x_t: Any = None  # (in, N): the input, feature-major, kept for the weight gradient

    @classmethod
    def from_dense(cls, layer: Dense, **layout: bool) -> SparseDense:
        """The kept weights of ``layer`` (``W * mask``: one stored value per mask 1, also where the weight is 0.0),
        copied, on the layer's device; ``layout``: ``feature_major_input``/``feature_major_output``."""
        weight = layer.params["W"]  # (out, in)
        rows, cols = kept_positions(weight, layer.masks.get("W"))  # (nnz,) each, in CSR order
        return cls(weight[rows, cols], layer.params["b"].copy(), rows, cols, weight.shape, **layout)

    @property
    def nnz(self) -> int:
        return int(self.rows.shape[0])

    def dense_weight(self) -> Any:
        """(out, in) array on the layer's device: the kept values at their positions, exactly 0 elsewhere."""
        values = self.params["W"]
        xp = get_array_module(values)
        weight = xp.zeros((self.out_features, self.in_features), dtype=values.dtype)
        weight[self.rows, self.cols] = values
        return weight

    def forward(self, x: Any) -> Any:
        xp = get_array_module(x)
        x_t = x if self.feature_major_input else transposed_copy(xp, x)  # (N, in) -> (in, N)
        if x_t.shape[0] != self.in_features:
            raise ValueError(f"{self!r}: expected {self.in_features} input features, got an input of shape "
                             f"{tuple(x.shape)}")
        self._x_t = x_t
        y_t = self._products_now().times(x_t)  # (out, in) sparse @ (in, N) -> (out, N)
        y_t += self.params["b"][:, None]  # (out, 1) broadcasts over the N columns
        return y_t if self.feature_major_output else transposed_copy(xp, y_t)  # (out, N) -> (N, out)

    def backward(self, dout: Any, input_grad: bool = True) -> Any:
        """Fills ``grads`` (``"W"``: (nnz,), the gradient of each kept weight); returns dx, or None when
        ``input_grad`` is False (the network's first layer)."""
        xp = get_array_module(dout)
        dout_t = dout if self.feature_major_output else transposed_copy(xp, dout)  # (N, out) -> (out, N)
        if compiled.enabled() and compiled.fits(dout_t, self._x_t):  # the sampled product as one loop
            self.grads["W"] = compiled.sampled_product(dout_t, self._x_t, self.rows, self.cols)  # (nnz,)
        elif self.gathered_gradient:
            self.grads["W"] = sampled_product(dout_t, self._x_t, self.rows, self.cols)  # (nnz,)
        else:  # (out, N) @ (N, in) -> (out, in), read at the kept positions -> (nnz,)
            self.grads["W"] = (dout_t @ self._x_t.T)[self.rows, self.cols]
        # (out, N) @ (N,) -> (out,): the sum over the batch as a matrix-vector product, which is faster than
        # NumPy's sum along rows this short (60 at the paper's batch)
        self.grads["b"] = dout_t @ xp.ones(dout_t.shape[1], dtype=dout_t.dtype)
        if not input_grad:
            return None
        dx_t = self._products_now().transposed_times(dout_t)  # (in, out) sparse @ (out, N) -> (in, N)
        return dx_t if self.feature_major_input else transposed_copy(xp, dx_t)  # (in, N) -> (N, in)

    def _products_now(self) -> _Products:
        """The products for the current values array (remade after ``to``/``astype``/a replaced parameter)."""
        values = self.params["W"]
        if self._products is None or self._products.values is not values:
            self._products = _Products(values, self.rows, self.cols, (self.out_features, self.in_features))
        return self._products

    def to(self, device: str | None = None) -> SparseDense:
        super().to(device)  # the values, the bias and the (absent) masks
        self.rows, self.cols = to_device(self.rows, device), to_device(self.cols, device)
        return self

    def __repr__(self) -> str:
        size = self.out_features * self.in_features
        return f"SparseDense({self.in_features}, {self.out_features}, nnz={self.nnz}, {100.0 * self.nnz / size:.1f}%)"


def sampled_product(dout_t: Any, x_t: Any, rows: Any, cols: Any, block: int | None = None) -> Any:
    """The entries of ``dout_t @ x_t.T`` at the positions (rows[k], cols[k]) only: a sampled product.

    For a dense layer ``dW = dout.T @ x`` (out, in); a sparse layer needs only its kept entries,
    ``dW[k] = sum_n dout[n, rows[k]] * x[n, cols[k]]``, nnz * N multiply-adds instead of out * in * N.
    Vectorised as two row gathers of the feature-major arrays and one contraction over the batch, over
    ``block`` kept weights at a time: two gathered (block, N) arrays stay in the CPU's cache, where two
    (nnz, N) arrays would not (they would also be fresh memory, page-faulted in, at every step).

    Args:
        dout_t: (out, N) gradient of the layer's output, feature-major.
        x_t: (in, N) the layer's input, feature-major.
        rows, cols: (nnz,) integer positions of the kept weights.
        block: kept weights per gather (None: ``sampled_block(device)``).

    Returns:
        (nnz,) array in the inputs' dtype.
    """
    xp = get_array_module(dout_t, x_t)
    nnz = rows.shape[0]
    block = sampled_block(device_of(x_t)) if block is None else block
    if nnz <= block:
        return _sampled_block_product(xp, dout_t, x_t, rows, cols)
    grad = xp.empty(nnz, dtype=xp.result_type(dout_t, x_t))  # (nnz,)
    for start in range(0, nnz, block):  # blocks of kept weights, not single ones
        stop = min(start + block, nnz)
        grad[start:stop] = _sampled_block_product(xp, dout_t, x_t, rows[start:stop], cols[start:stop])
    return grad


def _sampled_block_product(xp: Any, dout_t: Any, x_t: Any, rows: Any, cols: Any) -> Any:
    """``sampled_product`` for one block of kept weights: (block,)."""
    products = xp.take(x_t, cols, axis=0)  # (block, N): each weight's input-feature row
    products *= xp.take(dout_t, rows, axis=0)  # (block, N): times its output unit's gradient row
    return products @ xp.ones(x_t.shape[1], dtype=products.dtype)  # (block, N) @ (N,) -> (block,): sum over N


def sampled_block(device: str) -> int:
    """Kept weights per gather of ``sampled_product``: ``SAMPLED_BLOCK_CPU`` on the CPU; on other devices
    ``SAMPLED_BLOCK_DEVICE``, which only bounds the memory (a GPU prefers few, large kernels)."""
    return SAMPLED_BLOCK_CPU if device == "cpu" else SAMPLED_BLOCK_DEVICE


class _Products:
    """``W_csr @ X`` and ``W_csr.T @ D`` for a layer's values vector, by the fastest means its device has.

    On the CPU and the GPU: a SciPy / cuSPARSE CSR matrix whose ``data`` *is* ``values`` (the same array, set
    explicitly, not a copy), and a CSC matrix over the same arrays, which is the CSR matrix transposed. So the
    optimizer's in-place updates of ``values`` reach the next product without rebuilding anything; a layer whose
    ``params["W"]`` is a different array makes new ``_Products`` (``SparseDense._products_now``).

    On any other device (the test suite's strict CuPy-like backend): the same products written with a gather and
    a scatter-add, ``Y[rows[k]] += values[k] * X[cols[k]]``, which any array library can run.

    On the CPU with Numba (``minilottery.compiled``), the same CSR products run as compiled loops over the same
    three arrays instead of SciPy's: the same sums in the same order, vectorised over the batch.
    """

    def __init__(self, values: Any, rows: Any, cols: Any, shape: tuple[int, int]) -> None:
        self.values, self.rows, self.cols, self.shape = values, rows, cols, shape
        self.matrix = self.matrix_t = None
        self.loops = compiled.enabled() and compiled.fits(values)  # the compiled CSR loops instead of SciPy's
        sparse = sparse_module(device_of(values))
        if sparse is not None:
            xp = get_array_module(values)
            out_features, in_features = shape
            indptr = csr_indptr(xp, rows, out_features)  # (out + 1,)
            indices = cols.astype(xp.int32)  # (nnz,)
            self.indptr, self.indices = indptr, indices  # for the compiled loops
            self.matrix = sparse.csr_matrix((values, indices, indptr), shape=(out_features, in_features))
            # A CSR matrix read as CSC (same three arrays) is its transpose: (in, out).
            self.matrix_t = sparse.csc_matrix((values, indices, indptr), shape=(in_features, out_features))
            self.matrix.data = self.matrix_t.data = values  # the layer's own array: see the class docstring

    def times(self, x_t: Any) -> Any:
        """(out, in) sparse @ (in, N) -> (out, N)."""
        if self.loops and compiled.fits(self.values, x_t):
            return compiled.csr_times(self.indptr, self.indices, self.values, x_t, self.shape[0])
        if self.matrix is not None:
            return self.matrix @ x_t
        return _gather_scatter(self.values, self.rows, self.cols, x_t, self.shape[0])

    def transposed_times(self, d_t: Any) -> Any:
        """(in, out) sparse @ (out, N) -> (in, N): the CSR matrix transposed, times ``d_t``."""
        if self.loops and compiled.fits(self.values, d_t):
            return compiled.csr_transposed_times(self.indptr, self.indices, self.values, d_t, self.shape[1])
        if self.matrix_t is not None:
            return self.matrix_t @ d_t
        return _gather_scatter(self.values, self.cols, self.rows, d_t, self.shape[1])


def _gather_scatter(values: Any, rows: Any, cols: Any, x_t: Any, n_rows: int) -> Any:
    """The sparse product ``A @ x_t`` for ``A[rows[k], cols[k]] = values[k]`` (shape (n_rows, len(x_t))):
    each stored value adds ``values[k] * x_t[cols[k]]`` into row ``rows[k]`` of the (n_rows, N) result."""
    xp = get_array_module(x_t)
    out = xp.zeros((n_rows, x_t.shape[1]), dtype=xp.result_type(values, x_t))  # (n_rows, N)
    scatter_add(out, rows, values[:, None] * xp.take(x_t, cols, axis=0))  # (nnz, 1) * (nnz, N)
    return out




# -- a network with sparse layers ------------------------------------------------------------------------


class SparseSequential(Sequential):
    """A masked ``Sequential`` with some ``Dense`` layers replaced by ``SparseDense`` (``sparse_network``).

    The other layers are the dense model's own objects (trained in place); the parameter names are the dense
    model's ("1.W", "1.b", ...), so an optimizer keys its state the same way, but a sparse layer's "W" is its
    (nnz,) values vector.

    Attributes:
        kernels: weight name -> "sparse" or "dense", for every layer with a weight (convolutions included).
    """

    def __init__(self, *layers: Layer, kernels: dict[str, str]) -> None:
        super().__init__(*layers)
        self.kernels = dict(kernels)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Host copies of the *dense* model's parameters: a sparse layer's W as the (out, in) ``W * mask`` (exact
        zeros at the pruned positions), so a snapshot taken while training sparse is the dense model's."""
        state = {}
        for index, layer in self.named_layers():
            for key, value in layer.params.items():
                dense = layer.dense_weight() if isinstance(layer, SparseDense) and key == "W" else value
                state[f"{index}.{key}"] = np.array(to_numpy(dense), copy=True)
        return state

    def write_back(self, model: Sequential) -> None:
        """Copies every sparse layer's weight (as ``dense_weight()``) and bias into ``model``'s own arrays, in
        place; ``model``'s masks are not touched (its pruned weights become exactly 0.0, as dense training
        leaves them)."""
        for layer, target in zip(self.layers, model.layers):
            if isinstance(layer, SparseDense):
                xp = get_array_module(layer.params["W"])
                xp.copyto(target.params["W"], layer.dense_weight())
                xp.copyto(target.params["b"], layer.params["b"])


def choose_kernels(model: Sequential, mode: str = "auto", threshold: float = SPARSE_DENSITY) -> dict[str, str]:
    """Weight name -> "sparse" or "dense" for every layer of ``model`` with a weight.

    Only ``Dense`` layers can run sparse. "on": all of them; "off": none; "auto", on the CPU only: those with at
    least ``SPARSE_MIN_WEIGHTS`` weights keeping at most ``threshold`` of them (the mask's mean; an unmasked layer
    keeps 1.0), and, when the compiled loops run (``minilottery.compiled``), a smaller one right after a sparse
    one, at any density. In LeNet-300-100's step at 3.6%, running its 1,000-weight output layer sparse after the
    sparse hidden layers saved about 0.1 ms of 0.67 (the transposes between the two layouts); without the loops,
    SciPy's per-call cost made it slower.

    Raises:
        ValueError: an unknown mode, or a threshold outside [0, 1].
    """
    check_choice("--sparse-kernels", mode, MODES)
    check_real("threshold", threshold, low=0.0, high=1.0, high_open=False,
               hint=f"a kept fraction, e.g. {SPARSE_DENSITY}")
    kernels = {}
    previous = "dense"  # the kernel of the previous layer with a weight
    for index, layer in model.named_layers():
        if "W" not in layer.params:
            continue
        name = f"{index}.W"
        if not isinstance(layer, Dense) or mode == "off":
            kernels[name] = "dense"
        elif mode == "on":
            kernels[name] = "sparse"
        else:
            weight = layer.params["W"]
            on_cpu = device_of(weight) == "cpu"
            if weight.size >= SPARSE_MIN_WEIGHTS:
                wanted = on_cpu and density(layer) <= threshold
            else:  # a small layer gains only by sparing the transposes after a sparse layer, with the loops
                wanted = on_cpu and previous == "sparse" and compiled.enabled()
            kernels[name] = "sparse" if wanted else "dense"
        previous = kernels[name]
    return kernels


def density(layer: Layer) -> float:
    """The kept fraction of ``layer``'s weight: the number of ones in its mask over its size (1.0 unmasked)."""
    mask = layer.masks.get("W")
    if mask is None:
        return 1.0
    xp = get_array_module(mask)
    return int(xp.count_nonzero(mask)) / mask.size


def sparse_network(model: Sequential, kernels: dict[str, str]) -> SparseSequential:
    """``model`` with each ``Dense`` layer that ``kernels`` names "sparse" replaced by a ``SparseDense`` (a copy of
    its kept weights and bias); every other layer is ``model``'s own object.

    A sparse layer is feature-major on a side where its neighbour (past any ReLUs) is another sparse layer, so a
    run of sparse layers transposes the activations once on the way in and once on the way out.
    """
    layers = list(model.layers)
    sparse = [kernels.get(f"{i}.W") == "sparse" for i in range(len(layers))]
    for index, layer in enumerate(layers):
        if sparse[index] and not isinstance(layer, Dense):
            raise ValueError(f"layer {index} ({layer!r}) cannot run sparse: only Dense layers can; "
                             f"mark {index}.W 'dense' (choose_kernels does)")

    def sparse_neighbour(index: int, step: int) -> bool:  # the nearest layer that is not a ReLU, in that direction
        index += step
        while 0 <= index < len(layers) and isinstance(layers[index], ReLU):
            index += step
        return 0 <= index < len(layers) and sparse[index]

    new_layers = []
    for index, layer in enumerate(layers):
        if sparse[index]:
            layer = SparseDense.from_dense(layer, feature_major_input=sparse_neighbour(index, -1),
                                           feature_major_output=sparse_neighbour(index, +1))
            layer.training = model.layers[index].training
        new_layers.append(layer)
    return SparseSequential(*new_layers, kernels=kernels)


class SparseKernels:
    """The ``kernels`` hook of ``minilottery.training.train``: trains the ticket's sparse layers sparse.

    ``train(model, data, config, kernels=SparseKernels("auto"))`` calls ``SparseKernels(...)(model)`` once the
    model is on its device; the context manager yields the ``SparseSequential`` the steps, evaluations and
    snapshots run on, and on exit (also after an error) writes the trained weights back into ``model``.

    Args:
        mode: "auto" (the default: ``Dense`` layers of at least ``SPARSE_MIN_WEIGHTS`` weights keeping at most
            ``threshold`` of them, on the CPU), "on" (every ``Dense`` layer) or "off" (none: the model's own
            layers, as without the hook).
        threshold: the kept fraction at or below which "auto" trains a ``Dense`` layer sparse.
    """

    def __init__(self, mode: str = "auto", threshold: float = SPARSE_DENSITY) -> None:
        check_choice("--sparse-kernels", mode, MODES)
        self.mode = mode
        self.threshold = check_real("threshold", threshold, low=0.0, high=1.0, high_open=False,
                                    hint=f"a kept fraction, e.g. {SPARSE_DENSITY}")

    @contextlib.contextmanager
    def __call__(self, model: Sequential) -> Iterator[SparseSequential]:
        network = sparse_network(model, choose_kernels(model, self.mode, self.threshold))
        try:
            yield network
        finally:
            network.write_back(model)

    def __repr__(self) -> str:
        return f"SparseKernels({self.mode!r}, threshold={self.threshold})"


__all__ = ["GATHER_DENSITY", "MODES", "SAMPLED_BLOCK_CPU", "SAMPLED_BLOCK_DEVICE", "SPARSE_DENSITY",
           "SPARSE_MIN_WEIGHTS", "SparseDense", "SparseKernels", "SparseSequential", "choose_kernels", "density",
           "sampled_block", "sampled_product", "sparse_network"]
