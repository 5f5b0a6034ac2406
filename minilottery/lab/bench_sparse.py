"""The sparse sections of ``minilottery bench``: dense versus ``SparseModel`` LeNet-300-100 inference, and the
dense masked versus the sparse training step (``minilottery.lab.sparse_training``), at several pruning levels
(``minilottery/lab/bench.py`` describes the measurement).

The masks are the core's one-shot magnitude pruning (``minilottery.prune.magnitude_prune``) at the levels where
iterative pruning at the paper's rates would be: the hidden layers keep ``fraction`` and the output layer,
pruned at half the rate, ``output_fraction(fraction)`` (Frankle & Carbin 2019, Section 2 and Figure 2).
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from minilottery import backend
from minilottery.lab import threads
from minilottery.lab.bench_steps import INPUT_SHAPE, LR, device_sync, synthetic_batches, time_per_call
from minilottery.lab.sparse import SparseModel
from minilottery.lab.sparse_training import choose_kernels, sparse_network
from minilottery.layers import Sequential
from minilottery.models import build_model, output_layer, weight_names
from minilottery.optim import make_optimizer
from minilottery.prune import DENSE_RATE, OUTPUT_FRACTION, full_masks, magnitude_prune
from minilottery.training import train_step

if TYPE_CHECKING:  # for the annotations only: bench.py imports this module
    from minilottery.lab.bench_config import BenchConfig

DENSE_BATCH = 1000  # dense inference is also timed on batches of this many images
TRAINING_FRACTIONS = (1.0, 0.21, 0.07, 0.036, 0.012)  # kept fractions of the hidden layers for the training step
STEPS_PER_BLOCK = 20  # training steps timed together between two readings of the clock


def output_fraction(fraction: float) -> float:
    """Fraction of the output layer kept when the hidden layers keep ``fraction``, pruning it at half the rate.

    After r rounds the hidden layers keep ``(1 - DENSE_RATE) ** r`` (0.8 ** r) and the output layer
    ``(1 - DENSE_RATE * OUTPUT_FRACTION) ** r`` (0.9 ** r); r follows from ``fraction`` (Section 2, Appendix).
    """
    rounds = math.log(fraction) / math.log(1.0 - DENSE_RATE)
    return (1.0 - DENSE_RATE * OUTPUT_FRACTION) ** rounds


def magnitude_masks(model: Sequential, fraction: float, out_fraction: float | None = None) -> dict[str, np.ndarray]:
    """Per-layer magnitude masks keeping the largest ``fraction`` of each weight's entries (one-shot pruning).

    Args:
        model: the network; its current weights are ranked by |w| layer by layer.
        fraction: kept fraction of every weight but the output layer's, in (0, 1].
        out_fraction: kept fraction of the output layer (default ``output_fraction(fraction)``).

    Returns:
        name -> host bool mask of the weight's shape, from ``minilottery.prune.magnitude_prune`` at the rate
        ``1 - kept fraction``: it removes ``round(rate * size)`` weights of smallest |w| (ties: the earlier
        position goes first).
    """
    out_fraction = output_fraction(fraction) if out_fraction is None else out_fraction
    weights = {name: model.parameters()[name] for name in weight_names(model)}
    rates = {name: 1.0 - (out_fraction if name == output_layer(model) else fraction) for name in weights}
    return magnitude_prune(weights, full_masks(weights), rates)


def fastest(make_pass: Callable[[Any], Callable[[], Any]], settings: Iterable[Any], device: str, repeats: int,
            images: int) -> tuple[float, Any]:
    """(images per second, setting) of the fastest setting; ``make_pass(setting)`` is the pass over ``images``
    images to time (the median of ``repeats`` passes, after one warm-up pass)."""
    best_rate, best = 0.0, None
    for setting in settings:
        times, _ = time_per_call(make_pass(setting), device_sync(device), repeats)
        rate = images / statistics.median(times)
        if rate > best_rate:
            best_rate, best = rate, setting
    return best_rate, best


def bench_sparse(device: str, config: BenchConfig) -> dict[str, Any]:
    """Dense versus sparse LeNet-300-100 inference at ``config.sparse_fractions`` (see ``bench.py``)."""
    n = config.sparse_images
    rng = np.random.default_rng(config.seed + 2)
    x = backend.to_device(rng.random((n, *INPUT_SHAPE), dtype=np.float32), device)  # (n, 1, 28, 28)
    return {"model": "lenet_300_100", "images": n,
            "rows": [sparse_row(fraction, x, device, config) for fraction in config.sparse_fractions],
            "method": "dense: model.eval() forward (BLAS, all threads), best of batch sizes; sparse: SparseModel "
                      "(SciPy CSR, feature-major), best of block sizes, 1 thread (and cpu_count threads); "
                      "hidden layers keep `fraction`, the output layer `output_fraction` (half the pruning rate)"}


def sparse_row(fraction: float, x: Any, device: str, config: BenchConfig) -> dict[str, Any]:
    """One row of the table: LeNet-300-100 pruned to ``fraction``, dense and sparse, on the images ``x``.

    Args:
        x: (n, 1, 28, 28) float32 images on ``device``.

    Raises:
        AssertionError: the sparse model's predictions differ from the dense model's.
    """
    n = x.shape[0]
    workers = max(1, os.cpu_count() or 1)
    blocks: list[int | None] = [256, 512, 1000] if device == "cpu" else [None, 1000]
    model = build_model("lenet_300_100", INPUT_SHAPE, seed=config.seed)
    model.set_masks(magnitude_masks(model, fraction))
    model.to(device).eval()

    def dense_pass(batch: int) -> Callable[[], list[Any]]:  # the model's own forward over x, batch by batch
        return lambda: [model.forward(x[i:i + batch]) for i in range(0, n, batch)]

    def sparse_pass(block: int | None, threads: int = 1) -> Callable[[], Any]:
        sparse = SparseModel.from_model(model, block_size=block, workers=threads)
        return lambda: sparse.forward(x)

    dense_rate, dense_batch = fastest(dense_pass, sorted({min(DENSE_BATCH, n), n}), device, config.sparse_repeats, n)
    sparse_rate, sparse_block = fastest(sparse_pass, blocks, device, config.sparse_repeats, n)
    threads_rate, threads_block = None, None
    if device == "cpu" and workers > 1:  # the best block for one thread is not always the best for several
        threads_rate, threads_block = fastest(lambda block: sparse_pass(block, workers), blocks, device,
                                              config.sparse_repeats, n)
    xp = backend.get_array_module(x)
    dense_logits = backend.to_numpy(xp.concatenate(dense_pass(DENSE_BATCH)(), axis=0))  # (n, 10)
    sparse = SparseModel.from_model(model, block_size=sparse_block)
    sparse_logits = backend.to_numpy(sparse.forward(x))  # (n, 10)
    check_same_predictions(dense_logits, sparse_logits, f"sparse LeNet at {fraction:.1%}")
    mismatched = mismatched_predictions(dense_logits, sparse_logits)  # the row records what was compared
    kept = sum(sparse.nnz().values())
    total = sum(int(np.prod(model.parameters()[w].shape)) for w in weight_names(model))
    return {
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
        "predictions_identical": mismatched == 0,
    }


def mismatched_predictions(dense_logits: np.ndarray, sparse_logits: np.ndarray) -> int:
    """How many of the (n, classes) logits' rows pick a different class (argmax) in the two models."""
    return int((dense_logits.argmax(axis=1) != sparse_logits.argmax(axis=1)).sum())


def check_same_predictions(dense_logits: np.ndarray, sparse_logits: np.ndarray, what: str) -> None:
    """Raises AssertionError unless both give the same class for every example and allclose logits (float32)."""
    mismatched = mismatched_predictions(dense_logits, sparse_logits)
    if mismatched:
        raise AssertionError(f"{what}: {mismatched} of {len(dense_logits)} predictions differ from the dense model's")
    scale = max(1.0, float(np.abs(dense_logits).max()))
    if not np.allclose(dense_logits, sparse_logits, rtol=1e-4, atol=1e-5 * scale):
        raise AssertionError(f"{what}: logits differ from the dense model's by up to "
                             f"{float(np.abs(dense_logits - sparse_logits).max()):.3g}")


# -- the training step ---------------------------------------------------------------------------------------


def bench_sparse_training(device: str, config: BenchConfig, fractions: Iterable[float] = TRAINING_FRACTIONS,
                          blas_threads: int = 1) -> dict[str, Any]:
    """Dense masked versus sparse LeNet-300-100 training steps (batch ``config.batch_size``, Adam) at ``fractions``.

    Each row times, in alternation (A B C A B C ...: a load that comes and goes hits every side alike),
    ``2 * config.sparse_repeats`` blocks of ``STEPS_PER_BLOCK`` steps of: the masked dense model (the core's
    ``train_step``), every ``Dense`` layer sparse (``choose_kernels(model, "on")``) and the "auto" choice, with
    ``blas_threads`` BLAS threads (SciPy's sparse product uses one). Each block's wall-clock time and, on the
    CPU, the process's CPU time are recorded: on a shared machine the CPU time leaves out the time other
    processes held the core, so it is the steadier of the two.
    """
    with threads.limit(blas_threads):
        rows = [training_row(fraction, device, config) for fraction in fractions]
    return {"model": "lenet_300_100", "batch_size": config.batch_size, "blas_threads": blas_threads,
            "steps_per_block": STEPS_PER_BLOCK, "rows": rows,
            "method": "ms per train_step (Adam), median and [25th, 75th] percentiles of alternating blocks of "
                      f"{STEPS_PER_BLOCK} steps; dense: the masked Sequential; sparse: every Dense layer a "
                      "SparseDense; auto: choose_kernels(model, 'auto'); hidden layers keep `fraction`, the output "
                      "layer `output_fraction` (half the pruning rate)"}


def training_row(fraction: float, device: str, config: BenchConfig) -> dict[str, Any]:
    """One row: LeNet-300-100 pruned to ``fraction``, its training step timed dense, sparse and "auto"."""
    batches = synthetic_batches(device, config.batch_size, 10, config.seed)
    steppers = {}
    for side, mode in (("dense", None), ("sparse", "on"), ("auto", "auto")):
        model = build_model("lenet_300_100", INPUT_SHAPE, seed=config.seed)
        model.set_masks(magnitude_masks(model, fraction))
        model.to(device).train()
        network = model if mode is None else sparse_network(model, choose_kernels(model, mode))
        steppers[side] = _stepper(network, batches)
    auto_kernels = choose_kernels(model, "auto")  # which layers "auto" ran sparse
    sync = device_sync(device)
    wall: dict[str, list[float]] = {side: [] for side in steppers}
    cpu: dict[str, list[float]] = {side: [] for side in steppers}
    for stepper in steppers.values():
        stepper()  # untimed: Adam's state is made, and the caches are warm
    for _ in range(2 * config.sparse_repeats):
        for side, stepper in steppers.items():
            sync()
            started, started_cpu = time.perf_counter(), time.process_time()
            stepper()
            sync()
            wall[side].append(1e3 * (time.perf_counter() - started) / STEPS_PER_BLOCK)
            cpu[side].append(1e3 * (time.process_time() - started_cpu) / STEPS_PER_BLOCK)
    row: dict[str, Any] = {"fraction": fraction, "output_fraction": output_fraction(fraction),
                           "auto_kernels": auto_kernels}
    for clock, times in (("", wall), ("_cpu", cpu)):
        for side, values in times.items():
            quartiles = np.percentile(values, [25, 50, 75])
            row[f"{side}_ms{clock}"] = float(quartiles[1])
            row[f"{side}_ms{clock}_spread"] = [float(quartiles[0]), float(quartiles[2])]
        row[f"speedup{clock}"] = row[f"dense_ms{clock}"] / row[f"sparse_ms{clock}"]
        row[f"speedup_auto{clock}"] = row[f"dense_ms{clock}"] / row[f"auto_ms{clock}"]
    return row


def format_training(result: dict[str, Any]) -> list[str]:
    """The lines of ``bench_sparse_training``'s table, for ``minilottery bench``'s report."""
    lines = [f"sparse training step, {result['model']}, batch {result['batch_size']}, Adam, "
             f"{result['blas_threads']} BLAS thread(s): ms per step, median (CPU time):",
             f"  {'kept':>6}{'(output)':>10}{'dense':>16}{'sparse':>16}{'speedup':>9}{'auto':>16}{'speedup':>9}"
             "  auto runs sparse"]
    for r in result["rows"]:
        times = {side: f"{r[f'{side}_ms']:.2f} ({r[f'{side}_ms_cpu']:.2f})" for side in ("dense", "sparse", "auto")}
        sparse_layers = ",".join(name for name, kind in r["auto_kernels"].items() if kind == "sparse") or "-"
        lines.append(f"  {r['fraction']:>6.1%}{r['output_fraction']:>10.1%}{times['dense']:>16}"
                     f"{times['sparse']:>16}{r['speedup']:>8.1f}x{times['auto']:>16}{r['speedup_auto']:>8.1f}x"
                     f"  {sparse_layers}")
    return lines


def _stepper(network: Sequential, batches: list[tuple[Any, Any]]) -> Callable[[], None]:
    """``STEPS_PER_BLOCK`` training steps of ``network`` with its own Adam, over ``batches`` in turn."""
    optimizer = make_optimizer("adam", network, lr=LR)
    position = [0]

    def steps() -> None:
        for _ in range(STEPS_PER_BLOCK):
            x, y = batches[position[0] % len(batches)]
            position[0] += 1
            train_step(network, optimizer, x, y)

    return steps
