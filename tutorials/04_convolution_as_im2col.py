"""Tutorial 4: convolution as im2col: build im2col and the reference convolution, then meet the fast Conv2d.

Goal: build, in a few lines, the convolution minilottery's `ReferenceConv2d` is. `im2col` copies every receptive
field of the input into one row of a matrix, so one matrix product gives every output pixel at once; backward
is two more products and `col2im`, the adjoint of im2col, which adds rows back onto the pixels they came from.
The models run `Conv2d`, which computes the same numbers in faster layouts: we check that too.

Run (from the repository root, after `pip install -e .`):
    python tutorials/04_convolution_as_im2col.py           # about 1 s on a 2-core laptop CPU
    python tutorials/04_convolution_as_im2col.py --class   # the same: it is already small
    python tutorials/04_convolution_as_im2col.py --quick   # the same, with fewer channels in section 4

Prints: a 4×4 image, its im2col matrix for a 2×2 kernel, the convolution as a product beside
`scipy.signal.correlate`; our forward and backward beside `ReferenceConv2d` (equal) and `Conv2d` (equal to
float64 rounding); the adjoint identity <im2col(x), y> = <x, col2im(y)>; a gradient check.
Draws: figures/04_convolution_as_im2col/im2col.png (the image, its im2col matrix, and the output).
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from scipy import signal

from minilottery.backend import get_array_module, to_device, to_numpy
from minilottery.gradcheck import check_layer
from minilottery.lab.tutorial import by_size, heading, parse_args, save_figure
from minilottery.layers import Conv2d, ReferenceConv2d, col2im, im2col

args = parse_args(__doc__, "04_convolution_as_im2col.py")
np.set_printoptions(linewidth=120)


# %%
def our_im2col(x, kh, kw, stride, padding):
    """(N, C, H, W) -> (N*OH*OW, KH*KW*C): one row per output pixel, columns ordered (KH, KW, C)."""
    xp = get_array_module(x)
    n, c, h, w = x.shape
    oh, ow = (h + 2 * padding - kh) // stride + 1, (w + 2 * padding - kw) // stride + 1
    x = xp.pad(x.transpose(0, 2, 3, 1), ((0, 0), (padding, padding), (padding, padding), (0, 0)))  # (N, H, W, C)
    cols = xp.empty((n, oh, ow, kh, kw, c), dtype=x.dtype)
    for i in range(kh):  # a loop over the kernel offsets only: each copies one strided slice of the whole batch
        for j in range(kw):
            cols[:, :, :, i, j, :] = x[:, i : i + stride * oh : stride, j : j + stride * ow : stride, :]
    return cols.reshape(n * oh * ow, kh * kw * c)  # (N, OH, OW, KH, KW, C) -> (N*OH*OW, KH*KW*C)


# %%
heading("1. a 4×4 image and a 2×2 kernel")
image = np.array([[1, 2, 0, 3], [4, 1, 2, 1], [0, 3, 1, 2], [2, 0, 4, 1]],
                 dtype=np.float32).reshape(1, 1, 4, 4)  # (N, C, H, W)
kernel = np.array([[1, 0], [0, -1]], dtype=np.float32)  # difference along the diagonal
print("image:\n", image[0, 0])
print("kernel:\n", kernel)

# %%
heading("2. im2col: one row per output pixel, one column per kernel entry")
cols = to_numpy(our_im2col(to_device(image, args.device), 2, 2, stride=1, padding=0))
print(f"our_im2col -> {cols.shape}: (N*OH*OW, KH*KW*C) = (1*3*3, 2*2*1)")
print(cols)
print("Row 0 is the top-left window [[1, 2], [4, 1]], flattened. Columns are ordered (KH, KW, C), channels last,")
print("so each copied piece is a contiguous run of channels. minilottery's im2col is this same loop:")
np.testing.assert_array_equal(cols, to_numpy(im2col(to_device(image, args.device), 2, 2)))
print("our_im2col == minilottery.layers.im2col")

# %%
heading("3. the convolution is one matrix product")
out = (cols @ kernel.reshape(-1)).reshape(3, 3)  # (9, 4) @ (4,) -> (9,) -> (3, 3)
print("im2col(x) @ kernel.ravel() ->\n", out)
reference = signal.correlate(image[0, 0], kernel, mode="valid")  # deep-learning "convolution" is correlation
print("scipy.signal.correlate(image, kernel, 'valid') ->\n", reference)
assert np.allclose(out, reference)

# %%
heading("4. the reference convolution: im2col, one product, a reshape; backward: two products and col2im")
rng = np.random.default_rng(0)
c_in, c_out, stride, padding = by_size(args, (2, 3, 2, 1), (3, 4, 2, 1), (3, 4, 2, 1))
ref_conv = ReferenceConv2d(c_in, c_out, 3, stride, padding, rng=np.random.default_rng(1), dtype=np.float64)
ref_conv.params["b"] = rng.standard_normal(c_out)  # a nonzero bias, so the check covers it
ref_conv.to(args.device)
W, b = ref_conv.params["W"], ref_conv.params["b"]
x = to_device(rng.standard_normal((2, c_in, 7, 7)), args.device)  # (N, C, H, W)
x_cols = our_im2col(x, 3, 3, stride, padding)  # (N*OH*OW, KH*KW*C) = (2*4*4, 3*3*C)
W_rows = W.transpose(0, 2, 3, 1).reshape(c_out, -1)  # (F, C, KH, KW) -> (F, KH, KW, C) -> (F, KH*KW*C)
y_rows = x_cols @ W_rows.T + b  # (N*OH*OW, KH*KW*C) @ (KH*KW*C, F) -> (N*OH*OW, F)
y = y_rows.reshape(2, 4, 4, c_out).transpose(0, 3, 1, 2)  # (N*OH*OW, F) -> (N, OH, OW, F) -> (N, F, OH, OW)
dout = to_device(rng.standard_normal(y.shape), args.device)  # an upstream gradient, (N, F, OH, OW)
dout_rows = dout.transpose(0, 2, 3, 1).reshape(-1, c_out)  # (N, F, OH, OW) -> (N, OH, OW, F) -> (N*OH*OW, F)
dW = (dout_rows.T @ x_cols).reshape(c_out, 3, 3, c_in).transpose(0, 3, 1, 2)  # (F, KH*KW*C) -> (F, C, KH, KW)
dx = col2im(dout_rows @ W_rows, x.shape, 3, 3, stride, padding)  # (N*OH*OW, KH*KW*C) -> (N, C, H, W)
print(f"{ref_conv!r}: x {tuple(x.shape)} -> y {tuple(y.shape)}")
np.testing.assert_array_equal(to_numpy(y), to_numpy(ref_conv.forward(x)))
np.testing.assert_array_equal(to_numpy(dx), to_numpy(ref_conv.backward(dout)))
np.testing.assert_array_equal(to_numpy(dW), to_numpy(ref_conv.grads["W"]))
print("our y, dW and dx == ReferenceConv2d's, exactly: it is these lines")

# %%
heading("5. the fast Conv2d: the same numbers, other layouts")
fast = Conv2d(c_in, c_out, 3, stride, padding, rng=np.random.default_rng(1), dtype=np.float64)  # the same W
fast.params["b"] = to_numpy(b).copy()
fast.to(args.device)
y_fast, dx_fast = fast.forward(x), fast.backward(dout)
for name, ours, theirs in [("y", y, y_fast), ("dW", dW, fast.grads["W"]), ("dx", dx, dx_fast)]:
    difference = float(np.abs(to_numpy(ours) - to_numpy(theirs)).max())
    print(f"largest |ours - Conv2d| in {name}: {difference:.1e}")
    np.testing.assert_allclose(to_numpy(theirs), to_numpy(ours), rtol=1e-12, atol=1e-12)
print("Conv2d multiplies W_rows by im2col(x).T instead and keeps its output channel-major (see its docstring);")
print("the sums run in another order, so the numbers agree to rounding. tests/test_reference_layers.py proves it.")

# %%
heading("6. col2im is the adjoint of im2col, so it is im2col's backward pass")
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

# %%
heading("7. and the reference passes the finite-difference check")
errors = check_layer(ref_conv, x[:, :, :5, :5])
print("check_layer(ReferenceConv2d):", {k: f"{v:.1e}" for k, v in errors.items()})
assert max(errors.values()) < 1e-6

# %%
fig, axes = plt.subplots(1, 3, figsize=(10, 3.6), gridspec_kw={"width_ratios": [4, 4, 3]})
for ax, data, title in zip(axes, [image[0, 0], cols, out], ["image (4×4)", "im2col(image) (9×4)", "output (3×3)"]):
    ax.imshow(data, cmap="viridis")
    for (i, j), value in np.ndenumerate(data):
        ax.text(j, i, f"{value:g}", ha="center", va="center", color="w", fontsize=10)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle("A convolution is im2col followed by one matrix product")
save_figure(fig, args, "im2col",
            look_for="each row of the middle matrix is one 2×2 window of the image, read row by row; that row times"
                     " the flattened kernel [1, 0, 0, -1] is one pixel of the output (row 0: 1 - 1 = 0, top left)")
