"""Solution to exercise 2.3: an element-wise scale layer y = x ⊙ w, its backward pass, and check_layer on it.

Run (from the repository root): python tutorials/solutions/02_exercise_3.py
Prints: check_layer's relative errors for the layer (about 1e-10), and for a planted bug (dw not summed over the
batch) the error check_layer reports.
"""

import numpy as np

from minilottery.gradcheck import check_layer
from minilottery.layers import Layer


class Scale(Layer):
    """y = x ⊙ w, with x (N, D) and w (D,) broadcast over the batch."""

    def __init__(self, features, rng, dtype=np.float32):
        super().__init__()
        self.params["w"] = rng.standard_normal(features).astype(dtype)
        self._x = None

    def forward(self, x):
        self._x = x  # backward needs x for dw
        return x * self.params["w"]  # (N, D) * (D,) -> (N, D)

    def backward(self, dout):
        # y[n, d] = x[n, d] w[d]: dL/dw[d] = sum_n dout[n, d] x[n, d] (w is shared by the whole batch),
        # dL/dx[n, d] = dout[n, d] w[d]
        self.grads["w"] = (dout * self._x).sum(axis=0)  # (N, D) -> (D,)
        return dout * self.params["w"]  # (N, D)


class BuggyScale(Scale):
    """Forgets the batch sum: takes the first example's dw."""

    def backward(self, dout):
        dx = super().backward(dout)
        self.grads["w"] = dout[0] * self._x[0]
        return dx


rng = np.random.default_rng(0)
x = rng.standard_normal((5, 4))
errors = check_layer(Scale(4, np.random.default_rng(1), np.float64), x)
print("check_layer(Scale):", {k: f"{v:.1e}" for k, v in errors.items()})
assert max(errors.values()) < 1e-6
bug = check_layer(BuggyScale(4, np.random.default_rng(1), np.float64), x)
print("check_layer(BuggyScale):", {k: f"{v:.1e}" for k, v in bug.items()})
assert bug["w"] > 1e-2 and bug["x"] < 1e-6
