"""Solution to exercise 4.2: what Conv2d and ReferenceConv2d keep in `_cache`, across two forward passes.

Run (from the repository root): python tutorials/solutions/04_exercise_2.py
Prints: for each layer, whether the im2col matrix cached by a first forward pass is still that input's after a
second forward pass on another input, and what a backward pass after the two forwards computes.
"""

import numpy as np

from minilottery.layers import Conv2d, ReferenceConv2d, im2col
from minilottery.layers.im2col import im2col_transposed

rng = np.random.default_rng(0)
x1 = rng.standard_normal((2, 3, 7, 7))
x2 = rng.standard_normal((2, 3, 7, 7))
dout = rng.standard_normal((2, 4, 7, 7))
for layer_class, unfold in ((Conv2d, im2col_transposed), (ReferenceConv2d, im2col)):
    layer = layer_class(3, 4, 3, 1, 1, rng=np.random.default_rng(1), dtype=np.float64)
    layer.forward(x1)
    kept = layer._cache[1]  # Conv2d: cols_t (KH*KW*C, N*OH*OW); ReferenceConv2d: cols (N*OH*OW, KH*KW*C)
    layer.backward(dout)
    right_dW = layer.grads["W"].copy()  # forward(x1) then backward: the gradient for x1
    layer.forward(x1)
    kept = layer._cache[1]
    layer.forward(x2)  # a second forward before the backward of the first
    still_x1 = np.array_equal(kept, unfold(x1, 3, 3, 1, 1))
    now_x2 = np.array_equal(kept, unfold(x2, 3, 3, 1, 1))
    shared = np.shares_memory(kept, layer._cache[1])
    layer._cache = (x1.shape, kept, layer._cache[2])  # backward for x1, from the matrix the first forward kept
    layer.backward(dout)
    dW_error = float(np.abs(layer.grads["W"] - right_dW).max())
    print(f"{layer_class.__name__:15s}: first forward's matrix still im2col(x1): {still_x1}; now im2col(x2): "
          f"{now_x2}; shares memory with the second forward's: {shared}; "
          f"dW for x1 from it off by {dW_error:.2f}")
