"""Tutorial 3: convolution as im2col: a tiny worked example, checked against SciPy; col2im as its adjoint.

Goal: see how `Conv2d` turns a convolution into one matrix product. `im2col` copies every receptive field of the
input into one row of a matrix; multiplying by the flattened kernels gives every output pixel at once. Its
adjoint, `col2im`, adds rows back onto the pixels they came from, and that is exactly the backward pass.

Run (from the repository root, after `pip install -e .`):
    python tutorials/03_convolution_as_im2col.py           # about 1 s on a 2-core laptop CPU
    python tutorials/03_convolution_as_im2col.py --quick   # the same: it is already small

Prints: a 4×4 image, its im2col matrix for a 2×2 kernel, the convolution as a product, the same numbers from
`scipy.signal.correlate`, the adjoint identity <im2col(x), y> = <x, col2im(y)>, and Conv2d's gradient check.
Draws: figures/03_convolution_as_im2col/im2col.png (the image, its im2col matrix, and the output).
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from scipy import signal

from minilottery.backend import to_device, to_numpy
from minilottery.gradcheck import check_layer
from minilottery.layers import Conv2d, col2im, im2col
from minilottery.lab.tutorial import heading, parse_args, save_figure

args = parse_args(__doc__, __file__)
np.set_printoptions(linewidth=120)

heading("1. a 4×4 image and a 2×2 kernel")
image = np.array([[1, 2, 0, 3], [4, 1, 2, 1], [0, 3, 1, 2], [2, 0, 4, 1]], dtype=np.float32).reshape(1, 1, 4, 4)  # (N, C, H, W)
kernel = np.array([[1, 0], [0, -1]], dtype=np.float32)  # difference along the diagonal
print("image:\n", image[0, 0])
print("kernel:\n", kernel)

heading("2. im2col: one row per output pixel, one column per kernel entry")
cols = to_numpy(im2col(to_device(image, args.device), 2, 2, stride=1, padding=0))
print(f"im2col -> {cols.shape}: (N*OH*OW, KH*KW*C) = (1*3*3, 2*2*1)")
print(cols)
print("Row 0 is the top-left window [[1, 2], [4, 1]], flattened. The loop that builds this runs over the 2×2 kernel")
print("offsets only: each offset copies one strided slice of the whole batch (no loop over pixels).")
print("Columns are ordered (KH, KW, C), channels last, so each copied piece is a contiguous run of channels;")
print("Conv2d matches it by flattening its (F, C, KH, KW) weight as W.transpose(0, 2, 3, 1).reshape(F, -1).")

heading("3. the convolution is one matrix product")
out = (cols @ kernel.reshape(-1)).reshape(3, 3)  # (9, 4) @ (4,) -> (9,) -> (3, 3)
print("im2col(x) @ kernel.ravel() ->\n", out)
reference = signal.correlate(image[0, 0], kernel, mode="valid")  # deep-learning "convolution" is correlation
print("scipy.signal.correlate(image, kernel, 'valid') ->\n", reference)
assert np.allclose(out, reference)

heading("4. Conv2d does the same, with channels, stride and padding")
rng = np.random.default_rng(0)
c_in, c_out = (2, 3) if args.quick else (3, 4)
conv = Conv2d(c_in, c_out, 3, stride=2, padding=1, rng=rng).to(args.device)
x = rng.standard_normal((2, c_in, 7, 7)).astype(np.float32)
y = to_numpy(conv.forward(to_device(x, args.device)))
W, b = to_numpy(conv.params["W"]), to_numpy(conv.params["b"])
x_padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
expected = np.stack([
    np.stack([signal.correlate(x_padded[n], W[f], mode="valid")[0, ::2, ::2] + b[f] for f in range(c_out)])
    for n in range(2)
])
print(f"Conv2d({c_in}, {c_out}, 3, stride=2, padding=1): x {x.shape} -> y {y.shape}")
print(f"largest difference from SciPy: {np.abs(y - expected).max():.1e}")
assert np.allclose(y, expected, atol=1e-5)

heading("5. col2im is the adjoint of im2col, so it is im2col's backward pass")
print("For any x and y: <im2col(x), y> = <x, col2im(y)>. That identity *is* the statement that col2im")
print("multiplies by the transpose of the (linear) map im2col, i.e. that it back-propagates through it.")
x64 = rng.standard_normal((2, 3, 6, 5))
cols64 = to_numpy(im2col(to_device(x64, args.device), 3, 3, stride=2, padding=1))
y64 = rng.standard_normal(cols64.shape)
lhs = float((cols64 * y64).sum())
rhs = float((x64 * to_numpy(col2im(to_device(y64, args.device), x64.shape, 3, 3, stride=2, padding=1))).sum())
print(f"<im2col(x), y> = {lhs:.12f}")
print(f"<x, col2im(y)> = {rhs:.12f}")
assert abs(lhs - rhs) < 1e-9 * max(1.0, abs(lhs))

heading("6. and the whole Conv2d backward passes the finite-difference check")
errors = check_layer(conv, to_device(x[:, :, :5, :5], args.device))
print("check_layer(Conv2d):", {k: f"{v:.1e}" for k, v in errors.items()})
assert max(errors.values()) < 1e-6

fig, axes = plt.subplots(1, 3, figsize=(10, 3.6), gridspec_kw={"width_ratios": [4, 4, 3]})
for ax, data, title in zip(axes, [image[0, 0], cols, out], ["image (4×4)", "im2col(image) (9×4)", "output (3×3)"]):
    ax.imshow(data, cmap="viridis")
    for (i, j), value in np.ndenumerate(data):
        ax.text(j, i, f"{value:g}", ha="center", va="center", color="w", fontsize=10)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle("A convolution is im2col followed by one matrix product")
save_figure(fig, args, "im2col")
