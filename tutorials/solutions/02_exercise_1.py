"""Solution to exercise 2.1: dW computed as x.T @ dout instead of dout.T @ x.

Run (from the repository root): python tutorials/solutions/02_exercise_1.py
Prints: what check_layer does with the bug on a 4-to-3 layer (it raises: the shapes do not match) and on a
4-to-4 layer (it runs, and the error of W is of order 1 while x and b are right).
"""

import numpy as np

from minilottery.gradcheck import check_layer
from minilottery.layers import Dense


class BuggyWeightDense(Dense):
    """dW = x.T @ dout: (in, N) @ (N, out) = (in, out), the transpose of the right (out, in) gradient."""

    def backward(self, dout):
        x, _ = self._cache  # Dense keeps (input, weight) for backward
        dx = super().backward(dout)
        self.grads["W"] = x.T @ dout
        return dx


rng = np.random.default_rng(0)
for in_features, out_features in ((4, 3), (4, 4)):
    layer = BuggyWeightDense(in_features, out_features, rng=np.random.default_rng(0), dtype=np.float64)
    x = rng.standard_normal((5, in_features))
    try:
        errors = check_layer(layer, x)
    except ValueError as exc:
        print(f"{in_features}-to-{out_features}: check_layer raises ValueError: {exc}")
    else:
        print(f"{in_features}-to-{out_features}: check_layer runs;", {k: f"{v:.1e}" for k, v in errors.items()})
        assert errors["W"] > 1e-2 and errors["x"] < 1e-6 and errors["b"] < 1e-6
