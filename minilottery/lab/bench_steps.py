"""The measurements of ``minilottery bench`` (``minilottery/lab/bench.py`` says what each one means): the one
timer, the machine's matmul peak, the FLOPs of a training step, the step's time, evaluation throughput and
peak memory.

Every timing goes through ``time_per_call``: untimed warm-up calls first, then blocks of calls between two
device synchronisations, so the clock is read only after the GPU has finished the work it was given.
"""

from __future__ import annotations

import functools
import itertools
import math
import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from minilottery import backend
from minilottery.layers import Conv2d, Dense, Sequential
from minilottery.models import build_model, weight_names
from minilottery.optim import make_optimizer
from minilottery.training import train_step

if TYPE_CHECKING:  # for the annotations only: bench.py imports this module
    from minilottery.lab.bench_config import BenchConfig

INPUT_SHAPE = (1, 28, 28)  # MNIST
NUM_CLASSES = 10
LR = 1.2e-3  # LeNet's Adam rate (Figure 2); a step's cost does not depend on it
MIN_BLOCK_SECONDS = 0.02  # each timed repeat of a training step runs at least this long, for the clock's resolution


# -- the timer -------------------------------------------------------------------------------------------


def time_per_call(fn: Callable[[], Any], sync: Callable[[], None], repeats: int, warmup: int = 1,
                  min_seconds: float = 0.0, calls: int | None = None) -> tuple[list[float], int]:
    """Seconds per call of ``fn``, measured ``repeats`` times after ``warmup`` untimed calls.

    Args:
        fn: the work to time; it must leave nothing queued that ``sync`` does not wait for.
        sync: blocks until the device is idle (``backend.synchronize`` bound to a device, or PyTorch's).
        min_seconds: 0 times one call per repeat; else one call is timed first and each repeat is a block of
            as many calls as last at least ``min_seconds``.
        calls: the calls per repeat, when given (``min_seconds`` is then not used).

    Returns:
        (seconds per call of each repeat, calls per repeat).
    """
    for _ in range(warmup):
        fn()
    if calls is not None:
        return [_block_seconds(fn, sync, calls) / calls for _ in range(repeats)], calls
    calls = 1
    if min_seconds > 0:
        calls = max(1, math.ceil(min_seconds / max(_block_seconds(fn, sync, 1), 1e-6)))
    return [_block_seconds(fn, sync, calls) / calls for _ in range(repeats)], calls


def _block_seconds(fn: Callable[[], Any], sync: Callable[[], None], calls: int) -> float:
    """Wall-clock seconds of ``calls`` calls of ``fn``, the device synchronised before and after."""
    sync()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    sync()
    return time.perf_counter() - start


def device_sync(device: str) -> Callable[[], None]:
    """``sync`` for ``time_per_call``: waits for ``device``'s queued work (nothing to wait for on the CPU)."""
    return functools.partial(backend.synchronize, device)


# -- the machine's peak ----------------------------------------------------------------------------------


def default_peak_size(device: str) -> int:
    """Side of the peak's square product when ``--peak-size`` is not given: 4096 on the GPU, else 2048."""
    return 4096 if device == "gpu" else 2048


def measure_peak_gflops(device: str, size: int | None = None, repeats: int = 5) -> tuple[float, int]:
    """The best rate of a (size, size) @ (size, size) float32 product on ``device``, in GFLOP/s.

    Returns:
        (GFLOP/s, size). One untimed product warms up the BLAS threads (and cuBLAS's handle) first.
    """
    size = default_peak_size(device) if size is None else int(size)
    rng = np.random.default_rng(0)
    a = backend.to_device(rng.standard_normal((size, size), dtype=np.float32), device)
    b = backend.to_device(rng.standard_normal((size, size), dtype=np.float32), device)
    times, _ = time_per_call(lambda: a @ b, device_sync(device), repeats)
    return 2.0 * size**3 / min(times) / 1e9, size


# -- FLOPs -----------------------------------------------------------------------------------------------


def training_flops(model: Sequential, x: Any) -> dict[str, int]:
    """FLOPs of one training step's matrix products on the batch ``x`` (see ``minilottery/lab/bench.py``).

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


def winograd_convolutions(model: Sequential, x: Any) -> tuple[int, int]:
    """(how many of ``model``'s convolutions run Winograd's algorithm on the batch ``x``, how many it has): the
    former multiply 2.25x less than ``training_flops`` counts for them (``Conv2d.uses_winograd``)."""
    winograd = total = 0
    h = x
    for layer in model.layers:
        if isinstance(layer, Conv2d):
            total += 1
            winograd += layer.uses_winograd(h)
        h = layer.forward(h)
    return winograd, total


# -- training step, evaluation, memory -------------------------------------------------------------------


def synthetic_batches(device: str, batch_size: int, count: int, seed: int) -> list[tuple[Any, Any]]:
    """``count`` batches of MNIST-shaped images in [0, 1) and labels: [((B, 1, 28, 28), (B,) int64), ...].

    All ``count * B`` images are drawn at once from ``seed`` on the host, then moved to ``device``.
    """
    rng = np.random.default_rng(seed)
    x = backend.to_device(rng.random((count * batch_size, *INPUT_SHAPE), dtype=np.float32), device)
    y = backend.to_device(rng.integers(0, NUM_CLASSES, count * batch_size).astype(np.int64), device)
    return [(x[i * batch_size:(i + 1) * batch_size], y[i * batch_size:(i + 1) * batch_size]) for i in range(count)]


def masked_model(name: str, device: str, seed: int) -> Sequential:
    """``name`` built on the host, with all-ones masks on every weight, moved to ``device``."""
    model = build_model(name, INPUT_SHAPE, seed=seed)
    params = model.parameters()
    model.set_masks({w: np.ones_like(params[w]) for w in weight_names(model)})
    return model.to(device)


def _training_setup(name: str, device: str, seed: int) -> tuple[Sequential, Any]:
    """(the masked model, its Adam optimizer) as a training run starts them."""
    model = masked_model(name, device, seed)
    return model, make_optimizer("adam", model, lr=LR)


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


def minilottery_step(name: str, device: str, config: BenchConfig) -> tuple[Callable[[], Any], Callable[[], None]]:
    """``train_step`` of model ``name`` (all-ones masks, Adam) over synthetic batches in turn, and its sync."""
    model, optimizer = _training_setup(name, device, config.seed)
    batch_cycle = itertools.cycle(synthetic_batches(device, config.batch_size, 10, config.seed))
    return (lambda: train_step(model, optimizer, *next(batch_cycle))), device_sync(device)


def time_train_step(name: str, device: str, config: BenchConfig) -> dict[str, Any]:
    """Times ``train_step`` for model ``name`` (see ``minilottery/lab/bench.py``); returns its results."""
    model, optimizer = _training_setup(name, device, config.seed)
    batches = synthetic_batches(device, config.batch_size, 10, config.seed)  # cycled over, as training would
    flops = training_flops(model, batches[0][0])
    winograd, convolutions = winograd_convolutions(model, batches[0][0])
    wasted_dx = first_layer_input_grad(model, optimizer, *batches[0])
    batch_cycle = itertools.cycle(batches)
    times, per_block = time_per_call(lambda: train_step(model, optimizer, *next(batch_cycle)), device_sync(device),
                                     config.repeats, warmup=config.warmup, min_seconds=MIN_BLOCK_SECONDS)
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
        "winograd_convolutions": [winograd, convolutions],
        "batch_size": config.batch_size,
    }


def eval_throughput(name: str, device: str, config: BenchConfig) -> float:
    """Images per second of ``model.eval()`` forward passes on batches of ``config.eval_batch_size``."""
    model = masked_model(name, device, config.seed).eval()
    ((x, _),) = synthetic_batches(device, config.eval_batch_size, 1, config.seed + 1)
    times, _ = time_per_call(lambda: model.forward(x), device_sync(device), config.eval_repeats)
    return config.eval_batch_size / statistics.median(times)


def peak_memory_mb(name: str, device: str, config: BenchConfig) -> tuple[float, str]:
    """Peak memory of a training step for model ``name``, in MiB, and how it was measured (see bench.py)."""
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
    model, optimizer = _training_setup(name, device, config.seed)
    ((x, y),) = synthetic_batches(device, config.batch_size, 1, config.seed)
    for _ in range(2):  # the first step creates Adam's state, the second runs with it in place
        train_step(model, optimizer, x, y)
