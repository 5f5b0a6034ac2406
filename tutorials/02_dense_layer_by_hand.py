"""Tutorial 2: one layer by hand: Dense forward and backward, then the finite-difference check that proves it.

Goal: derive the three gradients of y = x @ W.T + b, run minilottery's `Dense`, and prove its backward pass with
central finite differences in vector-Jacobian form, the way every layer in minilottery is proved. Then break the
backward pass on purpose and watch the check catch it. Finally, a pruning mask: a masked weight's gradient is 0.

Run (from the repository root, after `pip install -e .`):
    python tutorials/02_dense_layer_by_hand.py           # about 1 s on a 2-core laptop CPU
    python tutorials/02_dense_layer_by_hand.py --class   # the same: it is already small
    python tutorials/02_dense_layer_by_hand.py --quick   # the same

Prints: the shapes at every step, the analytic and numerical gradients side by side, their relative errors
(about 1e-10 when right, about 1 when a bug is planted), and a masked layer's zero gradients.
Draws: figures/02_dense_layer_by_hand/analytic_vs_numeric.png (every dW entry, analytic vs numerical).
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from minilottery.backend import to_device, to_numpy
from minilottery.gradcheck import check_layer, numerical_vjp, rel_error
from minilottery.lab.tutorial import heading, parse_args, save_figure
from minilottery.layers import Dense

args = parse_args(__doc__, "02_dense_layer_by_hand.py")
rng = np.random.default_rng(0)

# %%
heading("1. forward: y = x @ W.T + b")
layer = Dense(4, 3, rng=rng, dtype=np.float64).to(args.device)  # float64: we are about to take differences
x = to_device(rng.standard_normal((5, 4)), args.device)  # a batch of N=5 inputs with 4 features
y = layer.forward(x)
print(f"x {tuple(x.shape)} @ W.T {tuple(layer.params['W'].T.shape)} + b {tuple(layer.params['b'].shape)} "
      f"-> y {tuple(y.shape)}  (W is (out, in), as in PyTorch)")

# %%
heading("2. backward: given dL/dy, return dL/dx and fill dL/dW, dL/db")
print("Chain rule, entry by entry: y[n,o] = sum_i x[n,i] W[o,i] + b[o], so")
print("  dL/dW[o,i] = sum_n dL/dy[n,o] x[n,i]   ->  dW = dout.T @ x    (3, 5) @ (5, 4) = (3, 4)")
print("  dL/db[o]   = sum_n dL/dy[n,o]          ->  db = dout.sum(0)   (3,)")
print("  dL/dx[n,i] = sum_o dL/dy[n,o] W[o,i]   ->  dx = dout @ W      (5, 3) @ (3, 4) = (5, 4)")
dout = to_device(rng.standard_normal(y.shape), args.device)  # any upstream gradient will do
dx = layer.backward(dout)
print("layer.grads holds", {k: tuple(v.shape) for k, v in layer.grads.items()},
      "and backward returned dx", tuple(dx.shape))

# %%
heading("3. the finite-difference check")
print("For L = sum(y * dout), dL/dW is exactly what backward(dout) computes. Numerically, nudge one weight")
print("by ±h and difference: (L(W + h) - L(W - h)) / 2h, with error O(h²) ~ 1e-12 for h = 1e-6.")
numeric_dW = numerical_vjp(lambda: layer.forward(x), layer.params["W"], dout)
analytic_dW = layer.grads["W"]
print("analytic dW[0]:", np.round(to_numpy(analytic_dW)[0], 8))
print("numeric  dW[0]:", np.round(to_numpy(numeric_dW)[0], 8))
err_W = rel_error(analytic_dW, numeric_dW)
print(f"relative error ||a - n|| / (||a|| + ||n||) = {err_W:.1e}")
errors = check_layer(layer, x)  # the library does the same for x and every parameter
print("check_layer:", {k: f"{v:.1e}" for k, v in errors.items()})
assert max(errors.values()) < 1e-6

# %%
heading("4. a planted bug is caught")


class BuggyDense(Dense):
    """Forgets that b is broadcast over the batch: uses the first row instead of summing."""

    def backward(self, dout):
        dx = super().backward(dout)
        self.grads["b"] = dout[0]
        return dx


buggy = BuggyDense(4, 3, rng=np.random.default_rng(0), dtype=np.float64).to(args.device)
bug_errors = check_layer(buggy, x)
print("check_layer on the buggy layer:", {k: f"{v:.1e}" for k, v in bug_errors.items()})
assert bug_errors["b"] > 1e-2 and bug_errors["W"] < 1e-6

# %%
heading("5. a pruning mask: the gradient of a pruned weight is exactly zero")
mask = rng.random((3, 4)) > 0.5  # 1 = keep, 0 = pruned (Frankle & Carbin 2019, Section 2)
layer.set_mask("W", mask)
layer.forward(x)
layer.backward(dout)
print("mask:\n", mask.astype(int))
print("dW (pruned entries are exactly 0):\n", np.round(to_numpy(layer.grads["W"]), 3) + 0.0)  # + 0.0 prints -0.0 as 0.0
assert np.all(to_numpy(layer.grads["W"])[~mask] == 0.0)
masked_errors = check_layer(layer, x)
print("check_layer with the mask:", {k: f"{v:.1e}" for k, v in masked_errors.items()})
assert max(masked_errors.values()) < 1e-6

# %%
fig, ax = plt.subplots(figsize=(4.5, 4.5))
a, n = to_numpy(analytic_dW).ravel(), to_numpy(numeric_dW).ravel()
ax.plot([a.min(), a.max()], [a.min(), a.max()], "k--", lw=1, label="y = x")
ax.plot(a, n, "o", ms=7, label=f"dW entries (rel. error {err_W:.0e})")
ax.set_xlabel("analytic gradient (backward)")
ax.set_ylabel("numerical gradient (finite differences)")
ax.set_title("Dense: backward agrees with finite differences")
ax.legend()
save_figure(fig, args, "analytic_vs_numeric",
            look_for="every dW entry lies on the dashed diagonal y = x: backward's gradient equals the finite-"
                     "difference estimate (a point off the line would be a wrong gradient)")
