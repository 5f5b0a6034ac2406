"""How fast is minilottery? Training-step time, achieved GFLOP/s against the machine's own matmul peak,
evaluation throughput, peak memory, and dense-versus-sparse inference of pruned LeNets.

What is measured, and how (``run_bench`` returns it all as one JSON-able dict; ``format_report`` prints it):

* ``peak_gflops``: the best of several large square float32 products ``a @ b`` (2048 on the CPU, 4096 on the
  GPU) after a warm-up: the rate this machine's BLAS (or cuBLAS) actually reaches, the yardstick below.
* per model, a training step is ``minilottery.training.train_step`` (forward, softmax cross-entropy, backward,
  mask-aware Adam) on a batch of 60 MNIST-shaped (1, 28, 28) float32 images already on the device, with
  all-ones masks attached to every weight (so the masked code paths run; the cost does not depend on the
  mask's values, the products stay dense). After ``warmup`` steps, ``repeats`` timings are taken, each of a
  block of steps long enough (>= 20 ms) for the clock, with ``backend.synchronize`` before reading it.
  ``ms_per_step`` is the median.
* ``gflops`` counts only the useful matrix products: per Dense layer forward 2*N*in*out, backward dW
  2*N*in*out and dx 2*N*in*out; per Conv2d forward 2*N*OH*OW*C*KH*KW*F, same for dW and dx; the first
  weighted layer's dx is not counted (training never needs the gradient w.r.t. the images). Element-wise
  work (ReLU, bias, loss, Adam, im2col) is not counted, so ``fraction_of_peak`` is a lower bound on the
  efficiency of the products themselves; but a convolution that runs Winograd's algorithm (``Conv2d``'s rule)
  multiplies 2.25x less than this count, so its rate is that of the direct product it replaces
  (``winograd_convolutions``: how many of the model's convolutions did, of how many; the report notes it).
  ``first_layer_input_grad`` reports whether ``train_step`` computed that unneeded dx anyway (it should pass
  ``input_grad=False`` to ``Sequential.backward``).
* ``eval_images_per_s``: ``model.eval()`` forward passes on batches of 100 (``evaluate``'s default).
* ``peak_memory_mb``: on the CPU, the peak of NumPy's allocations (NumPy reports them to ``tracemalloc``)
  from building the model to the end of two training steps: weights, masks, Adam state, one batch of data,
  activations and gradients. BLAS-internal buffers are not included. On the GPU, the size of CuPy's memory
  pool after the same steps (the pool keeps freed blocks, so it is an upper bound of the peak).
  ``dataset_mb`` is the size of the MNIST training set that ``train`` keeps on the device besides.
* sparse inference (``minilottery.lab.sparse``): LeNet-300-100 pruned in one shot by the core's
  ``minilottery.prune.magnitude_prune``, keeping 100%, 10%, 3.6% and 1% of the hidden layers' weights and the
  output layer pruned at half the rate, as in the paper (it keeps ``f ** (log 0.9 / log 0.8)`` when the hidden
  layers keep ``f``: after r rounds of pruning 20% and 10%, 0.8**r and 0.9**r remain). Dense is the model's own
  ``eval()`` forward (BLAS, all cores) at the faster
  of batch 1000 and 10,000; sparse is ``SparseModel`` at the fastest of its block sizes, on one thread
  (SciPy's CSR product is single-threaded) and, separately (with its own fastest block size), on
  ``cpu_count`` threads. Both run on the same
  10,000 MNIST-shaped images, and the predictions must agree (an ``AssertionError`` otherwise).
* ``--compare-torch``: the same step in PyTorch (nn.Linear / nn.Conv2d, Adam, the masks multiplied into the
  gradients and the weights), when PyTorch happens to be installed.
* ``--vs-torch-script`` (a mode of its own, ``bench_torch.run_vs_torch_script``): one network of the demo trained
  by minilottery and by the PyTorch script ``benchmarks/torch_peer.py``, whole processes in turns, A B A B ...;
  the median over the pairs of minilottery's wall time / PyTorch's.

This module holds the options, the memory bounds, the machine's description, the run and its report; the
measurements are in ``bench_steps`` (the one timer, the peak, FLOPs, the training step, evaluation, memory),
``bench_sparse`` (sparse inference) and ``bench_torch`` (the PyTorch step).
"""

from __future__ import annotations

import math
import os
import platform
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np

from minilottery import backend, compiled
from minilottery.lab.bench_config import MNIST_TRAIN_EXAMPLES, BenchConfig
from minilottery.lab.bench_sparse import bench_sparse, bench_sparse_training, format_training
from minilottery.lab.bench_steps import (
    INPUT_SHAPE,
    default_peak_size,
    eval_throughput,
    measure_peak_gflops,
    peak_memory_mb,
    time_train_step,
)
from minilottery.lab.bench_torch import compare_with_torch, torch_available
from minilottery.layers import Conv2d
from minilottery.models import build_model, layer_output_shapes

# -- memory bounds ---------------------------------------------------------------------------------------


def available_memory(device: str) -> int | None:
    """Bytes that can still be allocated on ``device``, or None where the system does not say.

    CPU: ``MemAvailable`` of /proc/meminfo, lowered to what a container's cgroup limit leaves, else the free
    physical pages. GPU: the free device memory (CUDA's ``memGetInfo``).
    """
    if device == "gpu":
        free, _total = backend.get_backend("gpu").xp.cuda.runtime.memGetInfo()
        return int(free)
    found = []
    try:
        with open("/proc/meminfo") as f:
            found += [int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:")]  # kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = open("/sys/fs/cgroup/memory.max").read().strip()  # cgroup v2: "max" when unlimited
        if limit != "max":
            found.append(int(limit) - int(open("/sys/fs/cgroup/memory.current").read()))
    except (OSError, ValueError):
        pass
    if not found:
        try:
            found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            return None
    return max(0, min(found))


def floats_per_example(name: str, training: bool) -> int:
    """float32 values one MNIST image takes in a pass of model ``name``, estimated from the layers' shapes.

    Every layer's output (kept for backward), its gradient and the ReLU's mask: 3 per output value when
    training, 1 in evaluation; a Conv2d also unfolds its input into im2col columns (C*KH*KW values per
    output pixel), and backward builds their gradient.
    """
    model = build_model(name, INPUT_SHAPE)
    floats = math.prod(INPUT_SHAPE)
    for layer, shape in zip(model.layers, layer_output_shapes(model.layers, INPUT_SHAPE)):  # (C, H, W) or (F,)
        floats += (3 if training else 1) * math.prod(shape)
        if isinstance(layer, Conv2d):
            floats += (2 if training else 1) * layer.in_channels * layer.kh * layer.kw * shape[1] * shape[2]
    return floats


def memory_needs(config: BenchConfig, device: str) -> list[tuple[str, int, str, int]]:
    """(option, its value, what it sizes, estimated bytes) of the largest allocation of each measurement."""
    size = config.peak_size or default_peak_size(device)
    needs = [("--peak-size", size, "the peak's square matrix product", 3 * 4 * size * size)]  # a, b, a @ b
    for name in config.models:
        weights = sum(math.prod(p.shape) for p in build_model(name, INPUT_SHAPE).parameters().values())
        # 10 batches of images; per weight: itself, its mask, gradient and Adam's two moments.
        train = config.batch_size * (floats_per_example(name, True) + 10 * math.prod(INPUT_SHAPE)) + 5 * weights
        needs.append(("--batch-size", config.batch_size, f"{name}'s training step", 4 * train))
        evaluation = config.eval_batch_size * floats_per_example(name, False) + 2 * weights
        needs.append(("--eval-batch-size", config.eval_batch_size, f"{name}'s evaluation", 4 * evaluation))
    if config.sparse:  # the images, and LeNet's activations on all of them at once
        needs.append(("--sparse-images", config.sparse_images, "sparse inference",
                      4 * config.sparse_images * floats_per_example("lenet_300_100", False)))
    return needs


def check_memory(config: BenchConfig, device: str, available: int | None = None) -> None:
    """Raises ValueError, before anything is allocated, when a measurement would need more memory than
    ``device`` has available (``available`` bytes; default: ``available_memory(device)``)."""
    available = available_memory(device) if available is None else available
    if available is None:
        return
    for option, value, what, need in memory_needs(config, device):
        if need > available:
            raise ValueError(f"{option} {value:,}: {what} would need about {need / 2**30:.1f} GiB of memory, more "
                             f"than the {available / 2**30:.1f} GiB available on the {device}; use a smaller {option}")


# -- machine ---------------------------------------------------------------------------------------------


def machine_info(device: str) -> dict[str, Any]:
    """CPU count, Python/NumPy/SciPy versions, the BLAS NumPy links, and the GPU's name when on the GPU."""
    import scipy

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "blas": _blas_info(),
        "blas_core": compiled.blas_core(),  # OpenBLAS's kernels for this CPU: they decide its products' speed
        # Adam's update is a fused loop with Numba and NumPy passes without it: a step's time depends on which
        "compiled": compiled.describe(),
    }
    if device == "gpu":
        xp = backend.get_backend("gpu").xp
        props = xp.cuda.runtime.getDeviceProperties(xp.cuda.Device().id)
        name = props["name"]
        info["gpu"] = name.decode() if isinstance(name, bytes) else str(name)
        info["cupy"] = xp.__version__
    return info


def _blas_info() -> str:
    try:
        config = np.show_config(mode="dicts")  # NumPy >= 1.26
        blas = config["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # older NumPy, or a build without the dict form: not worth failing for
        return "unknown"


# -- the whole run ---------------------------------------------------------------------------------------


def run_bench(config: BenchConfig, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Runs every measurement of ``config``; returns a JSON-able dict (the ``--json`` output).

    Args:
        log: called with a short line before each measurement (progress on stderr); None for silence.
    """
    config.validate()
    device = backend.get_backend(config.device).name  # fails early and clearly without a GPU
    check_memory(config, device)  # sizes that would exhaust the memory fail here, before any allocation
    say = log or (lambda message: None)
    result: dict[str, Any] = {"device": device, "machine": machine_info(device), "config": asdict(config)}
    result["config"]["models"] = list(config.models)
    result["config"]["sparse_fractions"] = list(config.sparse_fractions)
    say("peak: square float32 matrix product")
    peak, size = measure_peak_gflops(device, config.peak_size, config.peak_repeats)
    result["peak_gflops"], result["peak_size"] = peak, size
    result["torch_available"] = torch_available() if config.compare_torch else None
    result["models"] = {}
    for name in config.models:
        say(f"{name}: training step")
        entry = time_train_step(name, device, config)
        entry["fraction_of_peak"] = entry["gflops"] / peak
        say(f"{name}: evaluation throughput")
        entry["eval_images_per_s"] = eval_throughput(name, device, config)
        entry["eval_batch_size"] = config.eval_batch_size
        if config.memory:
            say(f"{name}: peak memory")
            entry["peak_memory_mb"], entry["memory_method"] = peak_memory_mb(name, device, config)
            entry["dataset_mb"] = MNIST_TRAIN_EXAMPLES * (math.prod(INPUT_SHAPE) * 4 + 8) / 2**20
        if result["torch_available"]:
            say(f"{name}: PyTorch step")
            entry.update(compare_with_torch(name, device, config))
        result["models"][name] = entry
    if config.sparse:
        say("sparse inference: LeNet-300-100")
        result["sparse"] = bench_sparse(device, config)
        say("sparse training step: LeNet-300-100")
        result["sparse_training"] = bench_sparse_training(device, config)
    else:
        result["sparse"] = result["sparse_training"] = None
    return result


def format_report(result: dict[str, Any]) -> str:
    """The human-readable table of ``run_bench``'s result."""
    m = result["machine"]
    where = m.get("gpu") or f"{m['cpu_count']} CPU cores ({m['processor']})"
    lines = [
        f"device {result['device']}: {where}; numpy {m['numpy']}, scipy {m['scipy']}, BLAS {m['blas']}"
        + (f" ({m['blas_core']} kernels)" if m.get("blas_core") else ""),
        f"compiled loops: {m['compiled']}",
        f"peak: {result['peak_gflops']:.1f} GFLOP/s (best {result['peak_size']}x{result['peak_size']} float32 matmul)",
        "",
        f"training step (batch {result['config']['batch_size']}, Adam, all-ones masks), median of "
        f"{result['config']['repeats']} repeats after {result['config']['warmup']} warm-up steps:",
        f"  {'model':<15}{'ms/step':>9}{'GFLOP/step':>12}{'GFLOP/s':>9}{'of peak':>9}{'eval img/s':>12}"
        f"{'peak MiB':>10}",
    ]
    for name, e in result["models"].items():
        memory = f"{e['peak_memory_mb']:>10.1f}" if "peak_memory_mb" in e else f"{'-':>10}"
        lines.append(f"  {name:<15}{e['ms_per_step']:>9.2f}{e['gflop_per_step']:>12.3f}{e['gflops']:>9.1f}"
                     f"{e['fraction_of_peak']:>9.1%}{e['eval_images_per_s']:>12,.0f}{memory}")
    for name, e in result["models"].items():
        if "torch_ms_per_step" in e:
            low, high = e["ratio_vs_torch_spread"]
            lines.append(f"  {name}: PyTorch {e['torch_version']} ({e['torch_threads']} thread(s)) "
                         f"{e['torch_ms_per_step']:.2f} ms/step against minilottery's {e['paired_ms_per_step']:.2f} "
                         f"in {e['torch_pairs']} alternating pairs: minilottery takes {e['ratio_vs_torch']:.2f}x as "
                         f"long (quartiles {low:.2f}-{high:.2f})")
        winograd, convolutions = e.get("winograd_convolutions", (0, 0))
        if winograd:
            lines.append(f"  note: {name} ran {winograd} of its {convolutions} convolutions by Winograd's algorithm, "
                         "which multiplies 2.25x less than GFLOP/step counts for them")
        if e.get("first_layer_input_grad"):
            lines.append(f"  note: {name}'s train_step computes the first layer's unneeded input gradient "
                         "(not counted in GFLOP/s)")
    if any("peak_memory_mb" in e for e in result["models"].values()):
        method = next(e["memory_method"] for e in result["models"].values() if "memory_method" in e)
        lines.append(f"  peak MiB: {method}; the MNIST training set adds "
                     f"{next(iter(result['models'].values()))['dataset_mb']:.0f} MiB on the device")
    sparse = result.get("sparse")
    if sparse:
        lines += ["", f"sparse inference, {sparse['model']}, {sparse['images']:,} images (identical predictions):",
                  f"  {'kept':>6}{'(output)':>10}{'dense img/s':>13}{'sparse img/s':>14}{'speedup':>9}"
                  f"{'threads img/s':>15}{'speedup':>9}"]
        for r in sparse["rows"]:
            threads = (f"{r['sparse_threads_images_per_s']:>15,.0f}{r['speedup_threads']:>8.1f}x"
                       if r["sparse_threads_images_per_s"] else f"{'-':>15}{'-':>9}")
            lines.append(f"  {r['fraction']:>6.1%}{r['output_fraction']:>10.1%}{r['dense_images_per_s']:>13,.0f}"
                         f"{r['sparse_images_per_s']:>14,.0f}{r['speedup']:>8.1f}x{threads}")
        lines.append("  dense: model.eval() forward, BLAS on all cores, best of batch 1000 / 10,000; sparse: SciPy "
                     "CSR, one thread (threads: the blocks spread over cpu_count threads)")
    if result.get("sparse_training"):
        lines += ["", *format_training(result["sparse_training"])]
    return "\n".join(lines)


__all__ = ["BenchConfig", "available_memory", "check_memory", "format_report", "machine_info", "run_bench"]
