"""Magnitude pruning, as in Frankle & Carbin (2019), Section 2 and Figure 2.

A *mask* is a dict ``name -> bool array`` of the weight's shape (True = kept). Only weights (``"1.W"``, ...)
are pruned; biases never are. One round of layer-wise pruning removes, in every layer, the fraction ``p`` of
the weights that are still *alive* with the smallest magnitude, so after ``n`` rounds a layer keeps
``(1 - p) ** n`` of its weights. The paper's rates (Figure 2, Appendix):

    hidden dense layers   20%      (LeNet-300-100, and the dense layers of Conv-2/4/6)
    convolutions          10%      (Conv-2, Conv-4); 15% for Conv-6
    output layer          half the dense rate (10%)

Exactly ``round(p * alive)`` weights go per layer (Python's ``round``: halves go to the even number, so
``round(2.5) == 2``). Ties in magnitude are broken by position: a stable sort of ``|w|`` over the alive
weights in row-major order removes the earlier weight first, so pruning is deterministic.

Variants:

* ``global_magnitude_prune``: one threshold over all layers pooled (Frankle & Carbin, Section 5, for VGG-19
  and ResNet-18): ``round(p * alive)`` of all alive weights go, wherever they are. Every weight, the output
  layer's included, competes in the one pool at the one rate; layers with many small weights lose more.
* ``random_prune``: masks with the same number of kept weights per layer as given masks, chosen uniformly
  at random: the "random pruning" control.
* ``keep_highest`` / ``keep_highest_global``: keep the highest *scores*, whatever the score: the primitive for
  the other mask criteria (the sanity checks, pruning at initialization) in ``minilottery.lab``.

Pruning runs once per round on host (NumPy) arrays: it is not a hot path, so it favours clarity.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from minilottery.backend import to_numpy
from minilottery.models import layer_kind, weight_names

# Figure 2 of the paper: the rate for convolutions per network (dense layers: the dense rate, 20%).
CONV_RATES = {"conv2": 0.1, "conv4": 0.1, "conv6": 0.15}
DENSE_RATE = 0.2
OUTPUT_FRACTION = 0.5  # the output layer is pruned at half the dense rate


def default_rates(
    model_name: str,
    model: Any,
    prune_rate: float = DENSE_RATE,
    conv_rate: float | None = None,
    output_rate: float | None = None,
) -> dict[str, float]:
    """Per-weight pruning rates: weight name -> fraction of its *remaining* weights to remove per round.

    Args:
        model_name: one of ``models.MODELS`` (picks the conv rate: 10%, or 15% for conv6).
        model: the network (``models.layer_kind`` tells dense, conv and output weights apart).
        prune_rate: the dense rate (the paper: 0.2).
        conv_rate: overrides the conv rate of Figure 2.
        output_rate: overrides the output rate (default: ``prune_rate / 2``).

    Returns:
        e.g. ``{"1.W": 0.2, "3.W": 0.2, "5.W": 0.1}`` for LeNet-300-100.
    """
    rates = {
        "dense": prune_rate,
        "conv": CONV_RATES.get(model_name, 0.1) if conv_rate is None else conv_rate,
        "output": prune_rate * OUTPUT_FRACTION if output_rate is None else output_rate,
    }
    return {name: rates[layer_kind(model, name)] for name in weight_names(model)}


def full_masks(weights: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """All-True masks (nothing pruned yet: round 0 of IMP) for every weight in ``weights``."""
    return {name: np.ones(tuple(w.shape), dtype=bool) for name, w in weights.items()}


def prune_count(rate: float, alive: int) -> int:
    """How many of ``alive`` weights one round at ``rate`` removes: ``round(rate * alive)``."""
    return int(round(rate * alive))


def _smallest_alive(weight: np.ndarray, mask: np.ndarray, count: int) -> np.ndarray:
    """Flat indices of the ``count`` alive weights of smallest magnitude (ties: the earlier index first)."""
    ### BEGIN SOLUTION prune_layer
    alive = np.flatnonzero(mask)  # (alive,) row-major positions of the kept weights
    magnitudes = np.abs(weight.reshape(-1)[alive])  # (alive,)
    order = np.argsort(magnitudes, kind="stable")  # a stable sort keeps equal magnitudes in position order
    return alive[order[:count]]
    ### END SOLUTION


def prune_layer(weight: Any, mask: Any, rate: float) -> np.ndarray:
    """One layer, one round: removes ``round(rate * alive)`` of the alive weights with the smallest ``|w|``.

    Args:
        weight: (any shape) trained weights (host or device; read on the host).
        mask: bool array of the same shape, True = alive.
        rate: fraction of the alive weights to remove, in [0, 1].

    Returns:
        A new bool mask (the input is not modified); its alive weights are a subset of ``mask``'s.
    """
    weight, mask = to_numpy(weight), to_numpy(mask).astype(bool)
    ### BEGIN SOLUTION prune_layer
    new = mask.copy()
    count = prune_count(rate, int(mask.sum()))
    new.reshape(-1)[_smallest_alive(weight, mask, count)] = False  # reshape of a contiguous copy is a view
    ### END SOLUTION
    return new


def magnitude_prune(
    weights: Mapping[str, Any], masks: Mapping[str, Any], rates: Mapping[str, float]
) -> dict[str, np.ndarray]:
    """Layer-wise magnitude pruning (the paper's default): ``prune_layer`` on every weight named in ``rates``.

    Weights not in ``rates`` keep their masks (pass a rate of 0 or leave a name out to keep a layer whole).
    """
    return {
        name: prune_layer(weights[name], mask, rates[name]) if name in rates else to_numpy(mask).astype(bool)
        for name, mask in masks.items()
    }


def global_magnitude_prune(
    weights: Mapping[str, Any], masks: Mapping[str, Any], rate: float
) -> dict[str, np.ndarray]:
    """Global magnitude pruning: removes ``round(rate * alive)`` of all alive weights pooled across layers.

    One ranking of ``|w|`` over every alive weight of every layer (layers in the order of ``masks``,
    row-major inside a layer; a stable sort breaks ties by that order), so the threshold is the same for
    all layers and each layer loses as many weights as fall below it.
    """
    names = list(masks)
    host_masks = {name: to_numpy(masks[name]).astype(bool) for name in names}
    flat_w = np.concatenate([to_numpy(weights[name]).reshape(-1) for name in names])  # (all weights,)
    flat_m = np.concatenate([host_masks[name].reshape(-1) for name in names])  # (all weights,)
    pruned = _smallest_alive(flat_w, flat_m, prune_count(rate, int(flat_m.sum())))
    flat_m[pruned] = False
    return _split(flat_m, {name: host_masks[name].shape for name in names})


def _split(flat: np.ndarray, shapes: Mapping[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """The inverse of concatenating row-major flattened arrays: ``flat`` cut into ``shapes``, in their order."""
    out, start = {}, 0
    for name, shape in shapes.items():
        size = int(np.prod(shape))
        out[name] = flat[start:start + size].reshape(shape)  # (size,) -> the array's shape
        start += size
    return out


def random_prune(masks: Mapping[str, Any], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random masks with the same number of kept weights per layer as ``masks`` (the random-pruning control).

    Args:
        masks: name -> bool mask; only the shape and the count of True entries of each are used.
        rng: the generator that picks the kept positions (uniformly, without replacement).
    """
    new = {}
    for name, mask in masks.items():
        mask = to_numpy(mask).astype(bool)
        ### BEGIN SOLUTION random_prune
        keep = rng.choice(mask.size, size=int(mask.sum()), replace=False)  # (kept,) flat positions
        flat = np.zeros(mask.size, dtype=bool)
        flat[keep] = True
        new[name] = flat.reshape(mask.shape)  # (size,) -> the weight's shape
        ### END SOLUTION
    return new


def keep_highest(scores: Mapping[str, Any], counts: Mapping[str, int]) -> dict[str, np.ndarray]:
    """Per-layer masks that keep the ``counts[name]`` positions of highest score (ties: the earlier position).

    The primitive behind the mask criteria other than the paper's own (``magnitude_prune``): e.g. the
    inverted criterion ranks ``-|w|`` and the pruning-at-initialization methods rank their saliencies. A
    position with score ``-inf`` is kept only when the count needs it, so a caller can rule out positions
    (e.g. already pruned ones) that way.

    Args:
        scores: name -> score array (any shape; host or device, read on the host).
        counts: name -> how many to keep in that layer, 0 <= count <= size.

    Returns:
        name -> bool mask of the score's shape with exactly ``counts[name]`` True entries.
    """
    masks = {}
    for name, count in counts.items():
        score = to_numpy(scores[name])
        if not 0 <= count <= score.size:
            raise ValueError(f"cannot keep {count} of the {score.size} weights of {name}")
        flat = np.zeros(score.size, dtype=bool)
        flat[_highest(score.reshape(-1), count)] = True  # (size,) row-major
        masks[name] = flat.reshape(score.shape)  # (size,) -> the score's shape
    return masks


def keep_highest_global(scores: Mapping[str, Any], count: int) -> dict[str, np.ndarray]:
    """Masks that keep the ``count`` positions of highest score over all layers pooled (ties: layer order, then
    position), the way SNIP, GraSP and SynFlow allocate a sparsity across layers.

    Returns:
        name -> bool mask of each score's shape; ``count`` True entries in all.
    """
    names = list(scores)
    host = {name: to_numpy(scores[name]) for name in names}
    flat = np.concatenate([host[name].reshape(-1) for name in names])  # (all weights,)
    if not 0 <= count <= flat.size:
        raise ValueError(f"cannot keep {count} of the {flat.size} weights")
    kept = np.zeros(flat.size, dtype=bool)
    kept[_highest(flat, count)] = True
    return _split(kept, {name: host[name].shape for name in names})


def _highest(flat: np.ndarray, count: int) -> np.ndarray:
    """Indices of the ``count`` largest entries of ``flat`` (a stable sort: equal scores keep position order)."""
    order = np.argsort(-flat.astype(np.float64), kind="stable")  # descending: a score of -inf comes last
    return order[:count]


def one_shot_rates(
    rates: Mapping[str, float], sizes: Mapping[str, int], target_percent: float | None = None,
    rounds: float | None = None,
) -> dict[str, float]:
    """Per-layer rates that prune a dense network in one step to what ``rounds`` rounds of IMP would leave.

    Iterative pruning at ``rates`` leaves ``(1 - r) ** n`` of a layer after ``n`` rounds. One-shot pruning
    keeps that shape: each layer is pruned at ``1 - (1 - r) ** n``. Give ``rounds`` (n), or
    ``target_percent``: then ``n`` (a real number) is solved so that the whole network keeps
    ``target_percent`` % of its weights (up to the rounding of each layer's count).

    Args:
        rates: name -> per-round rate (from ``default_rates``).
        sizes: name -> number of weights of that layer.
    """
    if (target_percent is None) == (rounds is None):
        raise ValueError("one_shot_rates: give exactly one of target_percent and rounds")
    total = sum(sizes[name] for name in rates)

    def percent_after(n: float) -> float:
        return 100.0 * sum(sizes[name] * (1.0 - r) ** n for name, r in rates.items()) / total

    if rounds is None:
        if not 0.0 < target_percent < 100.0:
            raise ValueError(f"--target-percent must be in (0, 100), got {target_percent!r}")
        low, high = 0.0, 1.0
        while percent_after(high) > target_percent:  # percent_after falls monotonically with n
            low, high = high, high * 2.0
            if high > 1e6:
                raise ValueError(f"--target-percent {target_percent} cannot be reached with these rates")
        for _ in range(100):  # bisection: 100 halvings pin n far below any count's rounding
            mid = 0.5 * (low + high)
            low, high = (mid, high) if percent_after(mid) > target_percent else (low, mid)
        rounds = high
    return {name: 1.0 - (1.0 - r) ** rounds for name, r in rates.items()}


def sparsity(masks: Mapping[str, Any]) -> dict[str, Any]:
    """Weights remaining per layer and in total, as exact counts and percentages (biases are not counted).

    Returns:
        ``{"layers": {"1.W": {"remaining": 188160, "total": 235200, "percent": 80.0}, ...},
        "remaining": int, "total": int, "percent": float}``.
    """
    layers = {}
    for name, mask in masks.items():
        mask = to_numpy(mask)
        remaining, total = int(np.count_nonzero(mask)), int(mask.size)
        layers[name] = {"remaining": remaining, "total": total, "percent": 100.0 * remaining / max(total, 1)}
    remaining = sum(layer["remaining"] for layer in layers.values())
    total = sum(layer["total"] for layer in layers.values())
    return {"layers": layers, "remaining": remaining, "total": total, "percent": 100.0 * remaining / max(total, 1)}


def masked_weights(weights: Mapping[str, Any], masks: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """``weights`` with every masked weight set to ``w * mask`` (host arrays; names without a mask are copied).

    The lottery-ticket reset (Section 2, step 4): survivors take their original values, the pruned are 0.
    Weights and masks may be host or device arrays; both are read on the host.
    """
    out = {}
    for name, w in weights.items():
        w = to_numpy(w)
        out[name] = (w * to_numpy(masks[name])).astype(w.dtype) if name in masks else w.copy()
    return out


def check_nested(inner: Mapping[str, Any], outer: Mapping[str, Any]) -> bool:
    """True when every weight kept by ``inner`` is also kept by ``outer`` (IMP's masks shrink, never grow)."""
    return all(not np.any(to_numpy(inner[n]) & ~to_numpy(outer[n])) for n in inner)


__all__ = [
    "CONV_RATES", "DENSE_RATE", "OUTPUT_FRACTION", "default_rates", "full_masks", "prune_count", "prune_layer",
    "magnitude_prune", "global_magnitude_prune", "random_prune", "one_shot_rates", "sparsity",
    "masked_weights", "check_nested", "keep_highest", "keep_highest_global",
]
