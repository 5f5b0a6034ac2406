"""Solution to exercise 2.2: the relative error of numerical_vjp against the step h, in float64 and float32.

Run (from the repository root): python tutorials/solutions/02_exercise_2.py
Prints: for h = 1e-1 ... 1e-12, the relative error of the central-difference gradient against the exact one for
(a) dL/dW of tutorial 2's Dense layer (linear in W: no truncation error, only rounding) and (b) the softmax
cross-entropy loss w.r.t. its logits (curved: truncation error ~ h² and rounding error ~ eps / h).
Draws: tutorials/figures/solutions/02_exercise_2/error_vs_step.png.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from minilottery.gradcheck import numerical_vjp, rel_error
from minilottery.layers import Dense
from minilottery.loss import softmax_cross_entropy

steps = [10.0 ** -k for k in range(1, 13)]
rng = np.random.default_rng(0)
layer64 = Dense(4, 3, rng=rng, dtype=np.float64)  # tutorial 2's layer, input and upstream gradient
x64 = rng.standard_normal((5, 4))
dout64 = rng.standard_normal((5, 3))
layer64.forward(x64)
layer64.backward(dout64)
exact_dW = layer64.grads["W"].copy()  # float64 and exact to rounding: the reference for both dtypes
logits64 = rng.standard_normal((5, 10))
labels = rng.integers(0, 10, 5)
exact_dlogits = softmax_cross_entropy(logits64, labels)[1]

errors = {}
for dtype in (np.float64, np.float32):
    name = np.dtype(dtype).name
    layer = Dense(4, 3, rng=np.random.default_rng(0), dtype=dtype)
    x, dout, logits = x64.astype(dtype), dout64.astype(dtype), logits64.astype(dtype)
    def dense_output(layer=layer, x=x):
        return layer.forward(x)

    def loss(logits=logits):
        return softmax_cross_entropy(logits, labels)[0]

    errors["dense", name] = [rel_error(exact_dW, numerical_vjp(dense_output, layer.params["W"], dout, h))
                             for h in steps]
    errors["loss", name] = [rel_error(exact_dlogits, numerical_vjp(loss, logits, 1.0, h)) for h in steps]
print("relative error of numerical_vjp (columns: Dense dW float64, float32; loss dlogits float64, float32)")
for i, h in enumerate(steps):
    print(f"h = {h:.0e}: " + "  ".join(f"{errors[key][i]:8.1e}" for key in
                                       (("dense", "float64"), ("dense", "float32"), ("loss", "float64"),
                                        ("loss", "float32"))))
for key, values in errors.items():
    best = int(np.argmin(values))
    print(f"{key[0]:5s} {key[1]}: smallest error {values[best]:.1e} at h = {steps[best]:.0e}")

out = Path(__file__).resolve().parents[1] / "figures" / "solutions" / "02_exercise_2"
out.mkdir(parents=True, exist_ok=True)
fig, ax = plt.subplots(figsize=(6.5, 4.5))
for (what, name), values in errors.items():
    ax.loglog(steps, values, "o-" if name == "float64" else "s--", label=f"{what}, {name}")
ax.invert_xaxis()
ax.set_xlabel("finite-difference step h")
ax.set_ylabel("relative error against the exact gradient")
ax.grid(alpha=0.3)
ax.legend()
fig.savefig(out / "error_vs_step.png", dpi=120, bbox_inches="tight")
