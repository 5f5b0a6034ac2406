"""How fast is minilottery? Training-step time, achieved GFLOP/s against the machine's own matmul peak,
evaluation throughput, peak memory, and dense-versus-sparse inference of pruned LeNets.

What is measured, and how (``run_bench`` returns it all as one JSON-able dict; ``format_report`` prints it):

* ``peak_gflops``: the best of several large square float32 products ``a @ b`` (2048 on the CPU, 4096 on the
  GPU) after a warm-up: the rate this machine's BLAS (or cuBLAS) actually reaches, the yardstick below.
* per model, a training step is ``minilottery.train.train_step`` (forward, softmax cross-entropy, backward,
  mask-aware Adam) on a batch of 60 MNIST-shaped (1, 28, 28) float32 images already on the device, with
  all-ones masks attached to every weight (so the masked code paths run; the cost does not depend on the
  mask's values, the products stay dense). After ``warmup`` steps, ``repeats`` timings are taken, each of a
  block of steps long enough (>= 20 ms) for the clock, with ``backend.synchronize`` before reading it.
  ``ms_per_step`` is the median.
* ``gflops`` counts only the useful matrix products: per Dense layer forward 2*N*in*out, backward dW
  2*N*in*out and dx 2*N*in*out; per Conv2d forward 2*N*OH*OW*C*KH*KW*F, same for dW and dx; the first
  weighted layer's dx is not counted (training never needs the gradient w.r.t. the images). Element-wise
  work (ReLU, bias, loss, Adam, im2col) is not counted, so ``fraction_of_peak`` is a lower bound on the
  efficiency of the products themselves. ``first_layer_input_grad`` reports whether ``train_step`` computed
  that unneeded dx anyway (it should pass ``input_grad=False`` to ``Sequential.backward``).
* ``eval_images_per_s``: ``model.eval()`` forward passes on batches of 100 (``evaluate``'s default).
* ``peak_memory_mb``: on the CPU, the peak of NumPy's allocations (NumPy reports them to ``tracemalloc``)
  from building the model to the end of two training steps: weights, masks, Adam state, one batch of data,
  activations and gradients. BLAS-internal buffers are not included. On the GPU, the size of CuPy's memory
  pool after the same steps (the pool keeps freed blocks, so it is an upper bound of the peak).
  ``dataset_mb`` is the size of the MNIST training set that ``train`` keeps on the device besides.
* sparse inference (``minilottery.lab.sparse``): LeNet-300-100 with per-layer magnitude masks keeping 100%, 10%,
  3.6% and 1% of the hidden layers' weights and the output layer pruned at half the rate, as in the paper
  (it keeps ``f ** (log 0.9 / log 0.8)`` when the hidden layers keep ``f``: after r rounds of pruning 20% and
  10%, 0.8**r and 0.9**r remain). Dense is the model's own ``eval()`` forward (BLAS, all cores) at the faster
  of batch 1000 and 10,000; sparse is ``SparseModel`` at the fastest of its block sizes, on one thread
  (SciPy's CSR product is single-threaded) and, separately (with its own fastest block size), on
  ``cpu_count`` threads. Both run on the same
  10,000 MNIST-shaped images, and the predictions must agree (an ``AssertionError`` otherwise).
* ``--compare-torch``: the same step in PyTorch (nn.Linear / nn.Conv2d, Adam, the masks multiplied into the
  gradients and the weights), when PyTorch happens to be installed.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
import tracemalloc
from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np

from minilottery import backend
from minilottery.layers import Conv2d, Dense, Flatten, MaxPool2d, ReLU, Sequential
from minilottery.models import MODELS, _propagate, build_model, output_layer, weight_names
from minilottery.optim import make_optimizer
from minilottery.lab.sparse import SparseModel
from minilottery.train import train_step

INPUT_SHAPE = (1, 28, 28)  # MNIST
NUM_CLASSES = 10
MNIST_TRAIN_EXAMPLES = 55_000  # 60,000 minus the 5,000 validation images
MNIST_TEST_EXAMPLES = 10_000
# Sane upper bounds of the options (the memory they need is checked against the machine's by check_memory).
MAX_REPEATS = 10_000
MAX_PEAK_SIZE = 16_384  # three 16384^2 float32 matrices: 3 GiB, 8.8 TFLOP per product
MAX_SPARSE_IMAGES = 100_000
SPARSE_FRACTIONS = (1.0, 0.1, 0.036, 0.01)
MIN_BLOCK_SECONDS = 0.02  # each timed repeat runs at least this long, so the clock's resolution does not matter
TORCH_MISSING = "PyTorch is not installed: skipping --compare-torch (pip install torch to compare)"


@dataclass
class BenchConfig:
    """Settings of one benchmark run (the CLI's options).

    Attributes:
        models: names from ``minilottery.models.MODELS``.
        device: "cpu" or "gpu".
        repeats: timed repeats per measurement (the median is reported).
        warmup: untimed steps before timing.
        batch_size: training batch (the paper's 60).
        eval_batch_size: evaluation batch.
        eval_repeats: timed evaluation batches.
        peak_size: side of the square product for ``peak_gflops`` (None: 2048 on the CPU, 4096 on the GPU).
        peak_repeats: timed square products (the best is reported).
        memory: measure ``peak_memory_mb``.
        sparse: run the sparse-inference section.
        sparse_fractions: fractions of the hidden layers' weights kept.
        sparse_images: images per sparse/dense inference pass (the MNIST test set has 10,000).
        sparse_repeats: timed passes per configuration.
        compare_torch: also time the step in PyTorch, when installed.
        seed: seed of the weights and the synthetic data.
    """

    models: tuple[str, ...] = ("lenet_300_100", "conv2")
    device: str = "cpu"
    repeats: int = 20
    warmup: int = 5
    batch_size: int = 60
    eval_batch_size: int = 100
    eval_repeats: int = 3
    peak_size: int | None = None
    peak_repeats: int = 5
    memory: bool = True
    sparse: bool = True
    sparse_fractions: tuple[float, ...] = SPARSE_FRACTIONS
    sparse_images: int = 10_000
    sparse_repeats: int = 5
    compare_torch: bool = False
    seed: int = 0

    def validate(self) -> "BenchConfig":
        """Raises ValueError naming the command-line option of the first bad value. Returns self."""
        unknown = [m for m in self.models if m not in MODELS]
        if not self.models or unknown:
            raise ValueError(f"--models must be a comma-separated list of {', '.join(MODELS)}, got {','.join(self.models)!r}")
        for option, value, low, high in (
                ("--repeats", self.repeats, 1, MAX_REPEATS), ("--warmup", self.warmup, 0, MAX_REPEATS),
                ("--batch-size", self.batch_size, 1, MNIST_TRAIN_EXAMPLES),  # a batch beyond the training set
                ("--eval-batch-size", self.eval_batch_size, 1, MNIST_TEST_EXAMPLES),  # ... beyond the test set
                ("--eval-repeats", self.eval_repeats, 1, MAX_REPEATS),
                ("--peak-repeats", self.peak_repeats, 1, MAX_REPEATS),
                ("--sparse-images", self.sparse_images, 1, MAX_SPARSE_IMAGES),
                ("--sparse-repeats", self.sparse_repeats, 1, MAX_REPEATS)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
                raise ValueError(f"{option} must be an integer >= {low} and <= {high:,}, got {value!r}")
        size = self.peak_size
        if size is not None and (isinstance(size, bool) or not isinstance(size, (int, np.integer))
                                 or not 16 <= size <= MAX_PEAK_SIZE):
            raise ValueError(f"--peak-size must be an integer >= 16 and <= {MAX_PEAK_SIZE:,}, got {self.peak_size!r}")
        for f in self.sparse_fractions:
            if not 0.0 < f <= 1.0:
                raise ValueError(f"--sparse-fractions must be in (0, 1], got {f!r}; e.g. 1,0.1,0.036,0.01")
        return self


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
    for layer, shape in zip(model.layers, _propagate(model.layers, INPUT_SHAPE)):  # shape: (C, H, W) or (F,)
        floats += (3 if training else 1) * math.prod(shape)
        if isinstance(layer, Conv2d):
            floats += (2 if training else 1) * layer.in_channels * layer.kh * layer.kw * shape[1] * shape[2]
    return floats


def memory_needs(config: BenchConfig, device: str) -> list[tuple[str, int, str, int]]:
    """(option, its value, what it sizes, estimated bytes) of the largest allocation of each measurement."""
    size = config.peak_size or (4096 if device == "gpu" else 2048)
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


def measure_peak_gflops(device: str, size: int | None = None, repeats: int = 5) -> tuple[float, int]:
    """The best rate of a (size, size) @ (size, size) float32 product on ``device``, in GFLOP/s.

    Returns:
        (GFLOP/s, size). One untimed product warms up the BLAS threads (and cuBLAS's handle) first.
    """
    size = (4096 if device == "gpu" else 2048) if size is None else int(size)
    rng = np.random.default_rng(0)
    a = backend.to_device(rng.standard_normal((size, size), dtype=np.float32), device)
    b = backend.to_device(rng.standard_normal((size, size), dtype=np.float32), device)
    seconds = _best_time(lambda: a @ b, device, repeats, warmup=1)
    return 2.0 * size**3 / seconds / 1e9, size


def _times(fn: Callable[[], Any], device: str, repeats: int, warmup: int = 1) -> list[float]:
    """Seconds of ``repeats`` calls of ``fn`` after ``warmup`` calls, the device synchronised around each."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        backend.synchronize(device)
        start = time.perf_counter()
        fn()
        backend.synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def _best_time(fn: Callable[[], Any], device: str, repeats: int, warmup: int = 1) -> float:
    return min(_times(fn, device, repeats, warmup))


def _median_time(fn: Callable[[], Any], device: str, repeats: int, warmup: int = 1) -> float:
    return statistics.median(_times(fn, device, repeats, warmup))


# -- FLOPs -----------------------------------------------------------------------------------------------


def training_flops(model: Sequential, x: Any) -> dict[str, int]:
    """FLOPs of one training step's matrix products on the batch ``x`` (see the module docstring).

    Runs ``model.forward`` layer by layer once to learn each weighted layer's input and output shapes.

    Returns:
        {"forward": ..., "backward": ..., "total": ...} in FLOPs (a multiply-add is 2).
    """
    forward = backward = 0
    first = True
    h = x
    for layer in model.layers:
        y = layer.forward(h)
        if isinstance(layer, Dense):
            n, fan_in = h.shape
            product = 2 * n * fan_in * layer.out_features
        elif isinstance(layer, Conv2d):
            n, c = h.shape[:2]
            _, f, oh, ow = y.shape
            product = 2 * n * oh * ow * c * layer.kh * layer.kw * f
        else:
            product = 0
        if product:
            forward += product
            backward += product if first else 2 * product  # dW always; dx except for the first weighted layer
            first = False
        h = y
    return {"forward": forward, "backward": backward, "total": forward + backward}


# -- training step ---------------------------------------------------------------------------------------


def _synthetic_batches(device: str, batch_size: int, count: int, seed: int) -> tuple[Any, Any]:
    """``count`` batches of MNIST-shaped images in [0, 1) and labels, on the device: (count*B, 1, 28, 28), (count*B,)."""
    rng = np.random.default_rng(seed)
    x = rng.random((count * batch_size, *INPUT_SHAPE), dtype=np.float32)
    y = rng.integers(0, NUM_CLASSES, count * batch_size).astype(np.int64)
    return backend.to_device(x, device), backend.to_device(y, device)


def _masked_model(name: str, device: str, seed: int) -> Sequential:
    """``name`` built on the host, with all-ones masks on every weight, moved to ``device``."""
    model = build_model(name, INPUT_SHAPE, seed=seed)
    params = model.parameters()
    model.set_masks({w: np.ones_like(params[w]) for w in weight_names(model)})
    return model.to(device)


def first_layer_input_grad(model: Sequential, optimizer: Any, x: Any, y: Any) -> bool:
    """Whether ``train_step`` asks the first weighted layer for its (unneeded) input gradient.

    Runs one step with that layer's ``backward`` wrapped to record its ``input_grad`` argument.
    """
    layer = next(layer for layer in model.layers if layer.params)
    seen: list[bool] = []
    original = layer.backward

    def recording(dout: Any, input_grad: bool = True) -> Any:
        seen.append(bool(input_grad))
        return original(dout, input_grad=input_grad)

    layer.backward = recording  # an instance attribute shadows the method for this one step
    try:
        train_step(model, optimizer, x, y)
    finally:
        del layer.backward
    return any(seen)


def time_train_step(name: str, device: str, config: BenchConfig) -> dict[str, Any]:
    """Times ``train_step`` for model ``name`` (see the module docstring); returns its results."""
    model = _masked_model(name, device, config.seed)
    optimizer = make_optimizer("adam", model, lr=1.2e-3)
    count = 10  # cycle over 10 different batches, as training would
    xs, ys = _synthetic_batches(device, config.batch_size, count, config.seed)
    batches = [(xs[i * config.batch_size:(i + 1) * config.batch_size], ys[i * config.batch_size:(i + 1) * config.batch_size])
               for i in range(count)]
    flops = training_flops(model, batches[0][0])
    wasted_dx = first_layer_input_grad(model, optimizer, *batches[0])

    step_index = 0

    def steps(k: int) -> None:
        nonlocal step_index
        for _ in range(k):
            train_step(model, optimizer, *batches[step_index % count])
            step_index += 1

    steps(config.warmup)
    backend.synchronize(device)
    start = time.perf_counter()
    steps(1)
    backend.synchronize(device)
    per_block = max(1, math.ceil(MIN_BLOCK_SECONDS / max(time.perf_counter() - start, 1e-6)))
    times = []
    for _ in range(config.repeats):
        backend.synchronize(device)
        start = time.perf_counter()
        steps(per_block)
        backend.synchronize(device)
        times.append((time.perf_counter() - start) / per_block)
    seconds = statistics.median(times)
    return {
        "ms_per_step": 1e3 * seconds,
        "ms_per_step_min": 1e3 * min(times),
        "steps_per_repeat": per_block,
        "repeats": config.repeats,
        "gflop_per_step": flops["total"] / 1e9,
        "gflop_forward": flops["forward"] / 1e9,
        "gflop_backward": flops["backward"] / 1e9,
        "gflops": flops["total"] / seconds / 1e9,
        "masks": "all-ones on every weight",
        "first_layer_input_grad": wasted_dx,
        "batch_size": config.batch_size,
    }


def eval_throughput(name: str, device: str, config: BenchConfig) -> float:
    """Images per second of ``model.eval()`` forward passes on batches of ``config.eval_batch_size``."""
    model = _masked_model(name, device, config.seed).eval()
    x, _ = _synthetic_batches(device, config.eval_batch_size, 1, config.seed + 1)
    seconds = _median_time(lambda: model.forward(x), device, config.eval_repeats, warmup=1)
    return config.eval_batch_size / seconds


def peak_memory_mb(name: str, device: str, config: BenchConfig) -> tuple[float, str]:
    """Peak memory of a training step for model ``name``, in MiB, and how it was measured (module docstring)."""
    if device == "cpu":
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            _two_steps(name, device, config)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        return peak / 2**20, "tracemalloc peak of NumPy allocations (model, masks, Adam state, batch, activations)"
    xp = backend.get_backend(device).xp
    pool = getattr(xp, "get_default_memory_pool", None)
    if pool is None:
        return float("nan"), "not measured on this device"
    pool().free_all_blocks()
    _two_steps(name, device, config)
    backend.synchronize(device)
    return pool().total_bytes() / 2**20, "CuPy memory pool size after the steps (an upper bound of the peak)"


def _two_steps(name: str, device: str, config: BenchConfig) -> None:
    model = _masked_model(name, device, config.seed)
    optimizer = make_optimizer("adam", model, lr=1.2e-3)
    x, y = _synthetic_batches(device, config.batch_size, 1, config.seed)
    for _ in range(2):  # the first step creates Adam's state, the second runs with it in place
        train_step(model, optimizer, x, y)


# -- PyTorch comparison ----------------------------------------------------------------------------------


def torch_available() -> bool:
    try:
        import torch  # noqa: F401  (an optional comparison, never a dependency)
        del torch
    except ImportError:
        return False
    return True


def time_torch_step(name: str, device: str, config: BenchConfig) -> dict[str, Any]:
    """The same masked Adam training step in PyTorch on the same device; needs ``torch`` installed."""
    import torch

    ours = build_model(name, INPUT_SHAPE, seed=config.seed)
    tdev = torch.device("cuda" if device == "gpu" else "cpu")
    modules = []
    for layer in ours.layers:
        if isinstance(layer, Dense):
            module = torch.nn.Linear(layer.in_features, layer.out_features)
        elif isinstance(layer, Conv2d):
            module = torch.nn.Conv2d(layer.in_channels, layer.out_channels, (layer.kh, layer.kw),
                                     stride=layer.stride, padding=layer.padding)
        elif isinstance(layer, MaxPool2d):
            module = torch.nn.MaxPool2d((layer.kh, layer.kw), stride=(layer.sh, layer.sw))
        elif isinstance(layer, ReLU):
            module = torch.nn.ReLU()
        elif isinstance(layer, Flatten):
            module = torch.nn.Flatten()
        else:
            raise ValueError(f"--compare-torch: no PyTorch counterpart for {layer!r}")
        if layer.params:
            with torch.no_grad():
                module.weight.copy_(torch.from_numpy(layer.params["W"]))
                module.bias.copy_(torch.from_numpy(layer.params["b"]))
        modules.append(module)
    net = torch.nn.Sequential(*modules).to(tdev)
    masks = {p: torch.ones_like(p) for n, p in net.named_parameters() if n.endswith("weight")}
    optimizer = torch.optim.Adam(net.parameters(), lr=1.2e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    xs, ys = _synthetic_batches("cpu", config.batch_size, 10, config.seed)
    xs, ys = torch.from_numpy(xs).to(tdev), torch.from_numpy(ys).to(tdev)
    batches = [(xs[i * config.batch_size:(i + 1) * config.batch_size], ys[i * config.batch_size:(i + 1) * config.batch_size])
               for i in range(10)]
    sync = torch.cuda.synchronize if device == "gpu" else (lambda: None)
    state = {"i": 0}

    def step() -> None:
        x, y = batches[state["i"] % 10]
        state["i"] += 1
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(net(x), y)
        loss.backward()
        with torch.no_grad():
            for p, m in masks.items():
                p.grad.mul_(m)  # pruned weights get no gradient ...
        optimizer.step()
        with torch.no_grad():
            for p, m in masks.items():
                p.mul_(m)  # ... and stay exactly zero

    for _ in range(config.warmup):
        step()
    sync()
    times = []
    for _ in range(config.repeats):
        sync()
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    return {"torch_version": torch.__version__, "torch_threads": torch.get_num_threads(),
            "torch_ms_per_step": 1e3 * statistics.median(times)}


# -- sparse inference ------------------------------------------------------------------------------------


def output_fraction(fraction: float) -> float:
    """Fraction of the output layer kept when the hidden layers keep ``fraction``, pruning it at half the rate
    (Frankle & Carbin 2019: 20% per round for hidden layers, 10% for the output layer)."""
    return fraction ** (math.log(0.9) / math.log(0.8))


def magnitude_masks(model: Sequential, fraction: float, out_fraction: float | None = None) -> dict[str, np.ndarray]:
    """Per-layer magnitude masks (host float32 0/1) keeping the largest ``fraction`` of each weight's entries.

    Args:
        model: the network; its current weights are ranked by |w| layer by layer.
        fraction: kept fraction of every weight but the output layer's, in (0, 1].
        out_fraction: kept fraction of the output layer (default ``output_fraction(fraction)``).

    Returns:
        name -> mask with exactly ``round(fraction * size)`` ones (at least 1), ties broken by position.
    """
    out_name = output_layer(model)
    out_fraction = output_fraction(fraction) if out_fraction is None else out_fraction
    masks = {}
    for name in weight_names(model):
        weight = backend.to_numpy(model.parameters()[name])
        keep = max(1, int(round((out_fraction if name == out_name else fraction) * weight.size)))
        order = np.argsort(-np.abs(weight).ravel(), kind="stable")  # largest magnitude first
        mask = np.zeros(weight.size, dtype=np.float32)
        mask[order[:keep]] = 1.0
        masks[name] = mask.reshape(weight.shape)  # (size,) -> the weight's shape
    return masks


def bench_sparse(device: str, config: BenchConfig) -> dict[str, Any]:
    """Dense versus sparse LeNet-300-100 inference at ``config.sparse_fractions`` (see the module docstring)."""
    n = config.sparse_images
    rng = np.random.default_rng(config.seed + 2)
    x = backend.to_device(rng.random((n, *INPUT_SHAPE), dtype=np.float32), device)  # (n, 1, 28, 28)
    workers = max(1, os.cpu_count() or 1)
    dense_batches = sorted({min(1000, n), n})
    blocks: list[int | None] = [256, 512, 1000] if device == "cpu" else [None, 1000]
    rows = []
    for fraction in config.sparse_fractions:
        model = build_model("lenet_300_100", INPUT_SHAPE, seed=config.seed)
        model.set_masks(magnitude_masks(model, fraction))
        model.to(device).eval()
        dense_rate, dense_batch = 0.0, 0
        for batch in dense_batches:
            seconds = _median_time(lambda: [model.forward(x[i:i + batch]) for i in range(0, n, batch)],
                                   device, config.sparse_repeats)
            if n / seconds > dense_rate:
                dense_rate, dense_batch = n / seconds, batch
        sparse = SparseModel.from_model(model, workers=1)
        sparse_rate, sparse_block = 0.0, None
        for block in blocks:
            sparse.block_size = block
            seconds = _median_time(lambda: sparse.forward(x), device, config.sparse_repeats)
            if n / seconds > sparse_rate:
                sparse_rate, sparse_block = n / seconds, block
        threads_rate, threads_block = None, None
        if device == "cpu" and workers > 1:
            sparse.workers, threads_rate = workers, 0.0
            for block in blocks:  # the best block for one thread is not always the best for several
                sparse.block_size = block
                seconds = _median_time(lambda: sparse.forward(x), device, config.sparse_repeats)
                if n / seconds > threads_rate:
                    threads_rate, threads_block = n / seconds, block
            sparse.workers = 1
        sparse.block_size = sparse_block
        dense_logits = backend.to_numpy(_batched(model.forward, x, 1000))
        sparse_logits = backend.to_numpy(sparse.forward(x))
        check_same_predictions(dense_logits, sparse_logits, f"sparse LeNet at {fraction:.1%}")
        kept = sum(sparse.nnz().values())
        total = sum(int(np.prod(model.parameters()[w].shape)) for w in weight_names(model))
        rows.append({
            "fraction": fraction,
            "output_fraction": output_fraction(fraction),
            "weights_kept": kept,
            "percent_remaining": 100.0 * kept / total,
            "dense_images_per_s": dense_rate,
            "dense_batch": dense_batch,
            "sparse_images_per_s": sparse_rate,
            "sparse_block": sparse_block,
            "sparse_threads_images_per_s": threads_rate,
            "sparse_threads": workers if threads_rate is not None else None,
            "sparse_threads_block": threads_block,
            "speedup": sparse_rate / dense_rate,
            "speedup_threads": None if threads_rate is None else threads_rate / dense_rate,
            "max_abs_logit_diff": float(np.abs(dense_logits - sparse_logits).max()),
            "predictions_identical": True,
        })
    return {"model": "lenet_300_100", "images": n, "rows": rows,
            "method": "dense: model.eval() forward (BLAS, all threads), best of batch sizes; sparse: SparseModel "
                      "(SciPy CSR, feature-major), best of block sizes, 1 thread (and cpu_count threads); "
                      "hidden layers keep `fraction`, the output layer `output_fraction` (half the pruning rate)"}


def _batched(fn: Callable[[Any], Any], x: Any, batch: int) -> Any:
    xp = backend.get_array_module(x)
    return xp.concatenate([fn(x[i:i + batch]) for i in range(0, x.shape[0], batch)], axis=0)


def check_same_predictions(dense_logits: np.ndarray, sparse_logits: np.ndarray, what: str) -> None:
    """Raises AssertionError unless both give the same class for every example and allclose logits (float32)."""
    mismatched = int((dense_logits.argmax(axis=1) != sparse_logits.argmax(axis=1)).sum())
    if mismatched:
        raise AssertionError(f"{what}: {mismatched} of {len(dense_logits)} predictions differ from the dense model's")
    scale = max(1.0, float(np.abs(dense_logits).max()))
    if not np.allclose(dense_logits, sparse_logits, rtol=1e-4, atol=1e-5 * scale):
        raise AssertionError(f"{what}: logits differ from the dense model's by up to "
                             f"{float(np.abs(dense_logits - sparse_logits).max()):.3g}")


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
    have_torch = config.compare_torch and torch_available()
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
        if have_torch:
            say(f"{name}: PyTorch step")
            entry.update(time_torch_step(name, device, config))
            entry["ratio_vs_torch"] = entry["ms_per_step"] / entry["torch_ms_per_step"]
        result["models"][name] = entry
    if config.sparse:
        say("sparse inference: LeNet-300-100")
        result["sparse"] = bench_sparse(device, config)
    else:
        result["sparse"] = None
    return result


def format_report(result: dict[str, Any]) -> str:
    """The human-readable table of ``run_bench``'s result."""
    m = result["machine"]
    where = m.get("gpu") or f"{m['cpu_count']} CPU cores ({m['processor']})"
    lines = [
        f"device {result['device']}: {where}; numpy {m['numpy']}, scipy {m['scipy']}, BLAS {m['blas']}",
        f"peak: {result['peak_gflops']:.1f} GFLOP/s (best {result['peak_size']}x{result['peak_size']} float32 matmul)",
        "",
        f"training step (batch {result['config']['batch_size']}, Adam, all-ones masks), median of "
        f"{result['config']['repeats']} repeats after {result['config']['warmup']} warm-up steps:",
        f"  {'model':<15}{'ms/step':>9}{'GFLOP/step':>12}{'GFLOP/s':>9}{'of peak':>9}{'eval img/s':>12}{'peak MiB':>10}",
    ]
    for name, e in result["models"].items():
        memory = f"{e['peak_memory_mb']:>10.1f}" if "peak_memory_mb" in e else f"{'-':>10}"
        lines.append(f"  {name:<15}{e['ms_per_step']:>9.2f}{e['gflop_per_step']:>12.3f}{e['gflops']:>9.1f}"
                     f"{e['fraction_of_peak']:>9.1%}{e['eval_images_per_s']:>12,.0f}{memory}")
    for name, e in result["models"].items():
        if "torch_ms_per_step" in e:
            lines.append(f"  {name}: PyTorch {e['torch_version']} {e['torch_ms_per_step']:.2f} ms/step; "
                         f"minilottery takes {e['ratio_vs_torch']:.2f}x as long")
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
    return "\n".join(lines)


__all__ = ["BenchConfig", "check_memory", "format_report", "magnitude_masks", "output_fraction", "run_bench", "training_flops"]
