"""Tutorial 10: the GPU: the same training step on CuPy, timed honestly with device synchronisation.

Goal: run the paper's networks on the GPU by changing nothing but the device, and learn to time GPU code:
CuPy launches kernels asynchronously, so a clock read without `synchronize()` measures only how fast Python
queued the work. On a machine without a GPU (or without CuPy) the script times the CPU and explains what the
GPU run would show.

Run (from the repository root, after `pip install -e .`; for the GPU also `pip install -e ".[gpu]"`):
    python tutorials/10_gpu.py                 # about 8 s on a 2-core CPU
    python tutorials/10_gpu.py --class         # the same: it is already small
    python tutorials/10_gpu.py --quick         # a few seconds (fewer steps timed: noisier numbers)
    python tutorials/10_gpu.py --device gpu    # the same, with the GPU as the default device

Prints: which devices are available, ms per training step of LeNet-300-100 and Conv-2 (batch 60) on each, the
wrong (unsynchronised) and right (synchronised) GPU timings, and the speed-up.
Draws: figures/10_gpu/step_time.png (ms per training step by model and device).
"""

import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from minilottery import backend
from minilottery.lab.tutorial import Timer, by_size, heading, parse_args, save_figure
from minilottery.models import build_model
from minilottery.optim import make_optimizer
from minilottery.training import train_step

args = parse_args(__doc__, "10_gpu.py")

# %%
heading("1. which devices are there?")
devices = ["cpu"]
try:
    backend.get_backend("gpu")
    devices.append("gpu")
    print("CuPy and a CUDA device are available: timing cpu and gpu.")
except backend.DeviceError as exc:
    print(f"no GPU here: {exc}")
    print("Timing the CPU only; the code below is exactly what runs on the GPU when one is there.")

# %%
heading("2. the same step on every device: only the data's location changes")
rng = np.random.default_rng(0)
x_host = rng.random((60, 1, 28, 28)).astype(np.float32)  # a batch of 60 MNIST-shaped images
y_host = rng.integers(0, 10, 60)
models = ["lenet_300_100", "conv2"]
steps = by_size(args, {"lenet_300_100": 20, "conv2": 2}, {"lenet_300_100": 300, "conv2": 20},
                {"lenet_300_100": 300, "conv2": 20})
timings: dict[tuple[str, str], float] = {}
for device in devices:
    for name in models:
        model = build_model(name, (1, 28, 28), seed=0).to(device)  # θ0 drawn on the host, then moved
        optimizer = make_optimizer("adam", model, lr=1.2e-3)
        x, y = backend.to_device(x_host, device), backend.to_device(y_host, device)
        for _ in range(3):  # warm-up: BLAS threads, CuPy's kernel compilation and memory pool
            train_step(model, optimizer, x, y)
        with Timer() as t:  # Timer synchronises the device before and after reading the clock
            for _ in range(steps[name]):
                train_step(model, optimizer, x, y)
        timings[device, name] = 1e3 * t.seconds / steps[name]
        print(f"{name:14s} on {device}: {timings[device, name]:8.2f} ms per training step")

# %%
heading("3. timing GPU code: synchronise, or you time nothing")
if "gpu" in devices:
    model = build_model("conv2", (1, 28, 28), seed=0).to("gpu")
    optimizer = make_optimizer("adam", model, lr=1.2e-3)
    x, y = backend.to_device(x_host, "gpu"), backend.to_device(y_host, "gpu")
    train_step(model, optimizer, x, y)
    backend.synchronize("gpu")
    start = time.perf_counter()
    train_step(model, optimizer, x, y)
    unsynced = time.perf_counter() - start  # only the kernel launches
    backend.synchronize("gpu")
    synced = time.perf_counter() - start  # the work itself
    print(f"conv2 step without synchronize: {1e3 * unsynced:.2f} ms (launch only); with: {1e3 * synced:.2f} ms")
    for name in models:
        print(f"{name}: GPU is {timings['cpu', name] / timings['gpu', name]:.1f}x the CPU")
else:
    print("On a GPU, time.perf_counter() around train_step returns as soon as the kernels are *queued*. Call")
    print("backend.synchronize() before reading the clock (minilottery.lab.tutorial.Timer and `minilottery bench`")
    print("do). Also keep float(loss) out of the step: it copies to the host and so waits for the GPU.")
print("What to expect: LeNet-300-100's matrices are small (batch 60), so a GPU gains little over a good CPU on it;")
print("Conv-2's convolutions are ~3.6 GFLOP per forward pass, where a GPU is tens of times faster than 2 cores.")

# %%
fig, ax = plt.subplots(figsize=(6, 4))
width = 0.8 / len(devices)
for k, device in enumerate(devices):
    values = [timings[device, name] for name in models]
    bars = ax.bar(np.arange(len(models)) + k * width, values, width, label=device, hatch=["", "//"][k])
    ax.bar_label(bars, fmt="%.1f")
ax.set_xticks(np.arange(len(models)) + width * (len(devices) - 1) / 2, models)
ax.set_yscale("log")
ax.set_ylabel("ms per training step (batch 60, log scale)")
ax.set_title("One Adam training step, MNIST shapes")
ax.legend()
look_for = ("Conv-2's bars stand far above LeNet-300-100's on every device (its convolutions are most of the"
            " work); with a GPU, compare each model's pair of bars: the log scale makes their ratio the speed-up")
if args.quick:
    look_for += " (--quick times 2 Conv-2 steps only: expect noisy bars)"
save_figure(fig, args, "step_time", look_for=look_for)
