"""Fully connected layer: y = x @ W.T + b (PyTorch's ``nn.Linear`` layout)."""

from __future__ import annotations

from typing import Any

import numpy as np

from minilottery import compiled
from minilottery.layers.base import Layer, check_ndim
from minilottery.layers.init import glorot_normal


class Dense(Layer):
    """Affine layer with an optional pruning mask on ``W``.

    Shapes:
        x: (N, in_features) -> y: (N, out_features); W: (out_features, in_features); b: (out_features,).

    Args:
        in_features, out_features: sizes of the input and output.
        rng: NumPy generator for the Gaussian Glorot initial weights (pass a seeded one for reproducibility).
        dtype: parameter dtype (float32 to train, float64 to check gradients).

    In evaluation, with Numba, an input at most a quarter non-zero (MNIST's images) is multiplied by its non-zero
    entries only (``minilottery.compiled.sparse_input_times``): the matrix product's numbers within float rounding.
    Not where OpenBLAS runs its AVX-512 kernels, whose product is faster (``compiled.sparse_input_pays``).
    """

    def __init__(
        self, in_features: int, out_features: int, *, rng: np.random.Generator | None = None, dtype=np.float32
    ) -> None:
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError(f"Dense: sizes must be positive, got in_features={in_features}, "
                             f"out_features={out_features}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        rng = np.random.default_rng() if rng is None else rng
        self.params["W"] = glorot_normal(rng, (self.out_features, self.in_features), dtype)
        self.params["b"] = np.zeros(self.out_features, dtype=dtype)
        self._cache: tuple[Any, Any] | None = None

    def forward(self, x: Any) -> Any:
        check_ndim(self, x, 2, f"(N, {self.in_features})")
        if x.shape[1] != self.in_features:
            raise ValueError(f"{self!r}: expected input of shape (N, {self.in_features}), got {tuple(x.shape)}")
        weight = self.masked_param("W")  # (out, in), pruned entries zero; a new array when pruned
        self._cache = (x, weight)  # what backward reads: the input for dW, the weight used here for dx
        if not self.training and compiled.sparse_input_pays(x, weight):
            # Evaluation of a mostly-zero input (81% of MNIST's pixels are 0): the products of its non-zero
            # entries only, the same numbers within float rounding. Not in training, where the rounding would
            # change every training run in its last bits; evaluation only reads the weights.
            return compiled.sparse_input_times(x, weight) + self.params["b"]  # (N, out)
        return x @ weight.T + self.params["b"]  # (N, in) @ (in, out) -> (N, out)

    def backward(self, dout: Any, input_grad: bool = True) -> Any:
        """Fills ``grads``; returns dx, or None when ``input_grad`` is False (the network's first layer)."""
        x, weight = self._cache
        ### BEGIN SOLUTION dense_backward
        self.grads["W"] = self.masked_grad("W", dout.T @ x)  # (out, N) @ (N, in) -> (out, in)
        self.grads["b"] = dout.sum(axis=0)  # (N, out) -> (out,)
        if not input_grad:
            return None
        return dout @ weight  # (N, out) @ (out, in) -> (N, in)
        ### END SOLUTION

    def __repr__(self) -> str:
        return f"Dense({self.in_features}, {self.out_features})"
