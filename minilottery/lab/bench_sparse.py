"""The sparse-inference section of ``minilottery bench``: dense versus ``SparseModel`` LeNet-300-100 inference at
several pruning levels (``minilottery/lab/bench.py`` describes the measurement).

The masks are the core's one-shot magnitude pruning (``minilottery.prune.magnitude_prune``) at the levels where
iterative pruning at the paper's rates would be: the hidden layers keep ``fraction`` and the output layer,
pruned at half the rate, ``output_fraction(fraction)`` (Frankle & Carbin 2019, Section 2 and Figure 2).
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from minilottery import backend
from minilottery.lab.bench_steps import INPUT_SHAPE, device_sync, time_per_call
from minilottery.lab.sparse import SparseModel
from minilottery.layers import Sequential
from minilottery.models import build_model, output_layer, weight_names
from minilottery.prune import DENSE_RATE, OUTPUT_FRACTION, full_masks, magnitude_prune

if TYPE_CHECKING:  # for the annotations only: bench.py imports this module
    from minilottery.lab.bench_config import BenchConfig

DENSE_BATCH = 1000  # dense inference is also timed on batches of this many images


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
