"""Tutorial 1: arrays and the `xp` backend: one code path for NumPy (CPU) and CuPy (GPU), and why float32.

Goal: see how minilottery writes every numerical function once, against an array namespace `xp` that is NumPy
on the CPU and CuPy on the GPU; how data moves between host and device (explicitly, only at the edges); and why
we train in float32 but check gradients in float64.

Run (from the repository root, after `pip install -e .`):
    python tutorials/01_arrays_and_backend.py            # about 2 s on a 2-core laptop CPU
    python tutorials/01_arrays_and_backend.py --class    # the same: it is already small
    python tutorials/01_arrays_and_backend.py --quick    # about 1 s (products up to n = 512 only)
    python tutorials/01_arrays_and_backend.py --device gpu   # needs `pip install -e ".[gpu]"`

Prints: which module `get_array_module` picks, a softmax computed by the same function on host and device,
what implicit conversion does on a device, float32 vs float64 precision and matrix-multiply speed.
Draws: figures/01_arrays_and_backend/matmul_speed.png (GFLOP/s of float32 vs float64 products by size).
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from minilottery import backend
from minilottery.backend import get_array_module, to_device, to_numpy
from minilottery.lab.tutorial import Timer, by_size, heading, parse_args, save_figure

args = parse_args(__doc__, "01_arrays_and_backend.py")

# %%
heading("1. one function, any device")


def softmax(z):
    """Row-wise softmax, written once: `xp` is numpy for host arrays and cupy for device arrays."""
    xp = get_array_module(z)
    shifted = z - z.max(axis=1, keepdims=True)  # subtracting the max changes nothing but prevents overflow
    e = xp.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


rng = np.random.default_rng(0)  # all randomness is drawn on the host from a seeded generator
logits_host = rng.standard_normal((3, 4)).astype(np.float32)
print("get_array_module(host array) is numpy:", get_array_module(logits_host) is np)
probs_host = softmax(logits_host)
print("softmax on the host, rows sum to 1:", probs_host.sum(axis=1))

logits_dev = to_device(logits_host, args.device)  # host -> device (no copy when the device is the CPU)
probs_dev = softmax(logits_dev)  # the very same function
print(f"device {args.device!r}: result lives on {backend.device_of(probs_dev)!r}, "
      f"namespace {get_array_module(probs_dev).__name__}")
max_diff = float(np.abs(to_numpy(probs_dev) - probs_host).max())  # device -> host, explicitly
print(f"largest difference host vs {args.device}: {max_diff:.1e}")
assert max_diff < 1e-6

# %%
heading("2. moving data is explicit")
print("to_device(x) copies host -> device, to_numpy(x) copies device -> host; both are free when already there.")
print("to_numpy(host array) is the same object:", to_numpy(logits_host) is logits_host)
if args.device == "gpu":
    try:
        np.asarray(logits_dev)
    except TypeError as exc:  # CuPy refuses silent copies, so stray np.* calls on device data fail loudly
        print("np.asarray(device array) raises TypeError:", exc)
else:
    print("On the GPU, np.asarray(cupy_array) raises TypeError: CuPy refuses silent device->host copies.\n"
          "The test suite runs every layer on a strict backend that behaves the same way, so a stray np.* call\n"
          "in device code fails on a machine without a GPU too.")

# %%
heading("3. why float32")
for dtype in (np.float32, np.float64):
    info = np.finfo(dtype)
    print(f"{np.dtype(dtype).name}: {info.bits} bits, machine epsilon {info.eps:.1e}, "
          f"LeNet-300-100's 266,610 parameters take {266_610 * info.bits // 8 / 1e6:.2f} MB")
print("float32's ~7 significant digits are plenty for SGD's noisy steps, at half the memory traffic;")
print("finite-difference gradient checks need float64, whose rounding error (~1e-16 / h) stays far below 1e-6.")

xp = backend.get_backend(args.device).xp
sizes = by_size(args, [128, 256, 512], [128, 256, 512, 1024, 1536], [128, 256, 512, 1024, 1536])
speeds = {np.float32: [], np.float64: []}
for n in sizes:
    for dtype in speeds:
        a = to_device(rng.standard_normal((n, n)).astype(dtype), args.device)
        a @ a  # warm-up: the first product pays for thread start-up and caches
        repeats = max(3, int(2e8 / n**3))
        with Timer() as t:
            for _ in range(repeats):
                a @ a
        speeds[dtype].append(2 * n**3 * repeats / t.seconds / 1e9)  # a product of n×n matrices is 2n³ FLOPs
    print(f"n={n:5d}: float32 {speeds[np.float32][-1]:7.1f} GFLOP/s, float64 {speeds[np.float64][-1]:7.1f} GFLOP/s")
ratio = speeds[np.float32][-1] / speeds[np.float64][-1]
print(f"float32 is {ratio:.1f}x the speed of float64 at n={sizes[-1]} on {args.device}")

fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(sizes, speeds[np.float32], "o-", lw=2, label="float32")
ax.plot(sizes, speeds[np.float64], "s--", lw=2, label="float64")
ax.set_xlabel("matrix size n (n × n @ n × n)")
ax.set_ylabel("GFLOP/s")
ax.set_title(f"Matrix-multiply speed on {args.device}")
ax.grid(alpha=0.3)
ax.legend()
look_for = ("float32 runs above float64 at every size: the gap at the largest n is the speed-up float32 gives"
            " training; small products are dominated by call overhead, so their speeds are lower and noisier")
if args.quick:
    look_for += " (--quick stops at n = 512; run without it to see the curves level off)"
save_figure(fig, args, "matmul_speed", look_for=look_for)
