"""The networks of Frankle & Carbin (2019), Figure 2: LeNet-300-100 (MNIST) and Conv-2/4/6 (CIFAR-10).

    lenet_300_100  Flatten, Dense 300, ReLU, Dense 100, ReLU, Dense 10            266,200 weights on MNIST
    conv2          [conv 64, conv 64, pool], FC 256, 256, 10                    4.3M weights on CIFAR-10
    conv4          [64, 64, pool, 128, 128, pool], FC 256, 256, 10              2.4M weights on CIFAR-10
    conv6          [64, 64, pool, 128, 128, pool, 256, 256, pool], FC 256, 256, 10   2.3M on CIFAR-10

Every convolution is 3x3 with padding 1 (the spatial size is kept) followed by a ReLU; every pool is a 2x2
max pool. The size of the first dense layer follows from the input shape, so each network builds for MNIST's
(1, 28, 28) and CIFAR-10's (3, 32, 32). (Figure 2 lists 1.7M weights for Conv-6; this architecture, which
is the one the paper describes and open_lth builds, has 2,261,184: the conv part matches the paper's 1.1M.)

Weights are Gaussian Glorot, drawn on the host from ``np.random.default_rng(seed)`` in layer order, so a
network built with the same seed is the same θ0 on every machine and device; biases start at zero.

The paper prunes the output layer at half the rate of the other dense layers (Section 2, Appendix), so
``output_layer`` and ``layer_kind`` tell the pruning code which weight is which. ``layer_output_shapes``
gives every layer's output shape from the layer settings alone (``summary`` prints them; a benchmark can size
its memory by them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from minilottery.checks import is_integer
from minilottery.layers import Conv2d, Dense, Flatten, Layer, MaxPool2d, ReLU, Sequential
from minilottery.layers.im2col import conv_output_size

MODELS = ("lenet_300_100", "conv2", "conv4", "conv6")

# Convolution channels per block of two convolutions; a 2x2 max pool follows each block (Figure 2).
CONV_BLOCKS = {
    "conv2": ((64, 64),),
    "conv4": ((64, 64), (128, 128)),
    "conv6": ((64, 64), (128, 128), (256, 256)),
}

DEFAULT_MODEL = "lenet_300_100"  # the paper's main network (Figures 1-4), and every command's default

# Training settings of Figure 2 (all with Adam and batch 60): the one source of each network's defaults
# (``TrainConfig``'s defaults are LeNet's; ``TrainConfig.paper(model)`` reads the others).
PAPER_TRAINING = {
    "lenet_300_100": {"dataset": "mnist", "iterations": 50_000, "lr": 1.2e-3},
    "conv2": {"dataset": "cifar10", "iterations": 20_000, "lr": 2e-4},
    "conv4": {"dataset": "cifar10", "iterations": 25_000, "lr": 3e-4},
    "conv6": {"dataset": "cifar10", "iterations": 30_000, "lr": 3e-4},
}


def build_model(
    name: str, input_shape: tuple[int, int, int] = (1, 28, 28), seed: int = 0, dtype: Any = np.float32
) -> Sequential:
    """Builds one of ``MODELS`` with freshly drawn Glorot-normal weights, on the host (call ``.to(device)``).

    Args:
        name: "lenet_300_100", "conv2", "conv4" or "conv6".
        input_shape: (C, H, W) of one example: (1, 28, 28) for MNIST, (3, 32, 32) for CIFAR-10.
        seed: seed of the generator that draws every weight (the same seed gives the same θ0).
        dtype: parameter dtype (float32 to train, float64 for gradient checks).

    Returns:
        A ``Sequential`` mapping (N, C, H, W) images to (N, 10) logits.

    Raises:
        ValueError: an unknown name, or an input shape that is not (C, H, W) or too small for the pools.
    """
    if name not in MODELS:
        raise ValueError(f"--model must be one of {', '.join(MODELS)}, got {name!r}")
    input_shape = _check_input_shape(input_shape)
    rng = np.random.default_rng(seed)
    layers: list[Layer] = []
    if name == "lenet_300_100":
        sizes = (300, 100)
    else:
        channels = input_shape[0]
        for block in CONV_BLOCKS[name]:
            for out_channels in block:
                layers += [Conv2d(channels, out_channels, 3, padding=1, rng=rng, dtype=dtype), ReLU()]
                channels = out_channels
            layers.append(MaxPool2d(2))
        sizes = (256, 256)
    layers.append(Flatten())
    features = layer_output_shapes(layers, input_shape)[-1][0]  # (C*H*W,) after Flatten
    for size in sizes:
        layers += [Dense(features, size, rng=rng, dtype=dtype), ReLU()]
        features = size
    layers.append(Dense(features, 10, rng=rng, dtype=dtype))  # the output layer: logits for 10 classes
    return Sequential(*layers)


def weight_names(model: Sequential) -> list[str]:
    """Names of the prunable weights in layer order, e.g. ["1.W", "3.W", "5.W"] for LeNet (biases excluded)."""
    return [f"{i}.W" for i, layer in model.named_layers() if "W" in layer.params]


def output_layer(model: Sequential) -> str:
    """Name of the output layer's weight (the last weighted layer, e.g. "5.W" for LeNet-300-100)."""
    names = weight_names(model)
    if not names:
        raise ValueError("the model has no weighted layer, so it has no output layer")
    return names[-1]


def layer_kind(model: Sequential, name: str) -> str:
    """"dense", "conv" or "output" for a parameter name ("3.W", "3.b") or a layer index ("3").

    The paper prunes each kind at its own rate: convolutions, the hidden dense layers, and the output layer
    at half the dense rate (Section 2 and Appendix).
    """
    index = name.partition(".")[0]
    layer = dict(model.named_layers()).get(index)
    if layer is None:
        raise ValueError(f"no layer for {name!r}; weights are {weight_names(model)}")
    if "W" in layer.params and f"{index}.W" == output_layer(model):
        return "output"
    if isinstance(layer, Conv2d):
        return "conv"
    if isinstance(layer, Dense):
        return "dense"
    raise ValueError(f"{name!r} is {layer!r}, which has no weights; weights are {weight_names(model)}")


def summary(model: Sequential, input_shape: tuple[int, int, int]) -> str:
    """A table of every layer, its output shape (without the batch axis), and its weight and bias counts.

    When the model carries pruning masks, a "kept" column shows the unpruned weights of each layer and the
    total line the fraction of weights remaining (reading the masks synchronises the device: call this at
    the edges, not inside a training loop).
    """
    shapes = layer_output_shapes(model.layers, input_shape)
    masks = model.masks()
    header = f"{'#':>3}  {'layer':<60}{'output shape':<18}{'weights':>12}{'biases':>9}"
    header += f"{'kept':>12}" if masks else ""
    lines = [f"input shape {tuple(input_shape)}", header]
    total_w = total_b = total_kept = 0
    for (i, layer), shape in zip(model.named_layers(), shapes):
        weights = _size(layer.params.get("W"))
        biases = _size(layer.params.get("b"))
        total_w, total_b = total_w + weights, total_b + biases
        line = f"{i:>3}  {layer!r:<60}{str(shape):<18}{weights:>12,}{biases:>9,}"
        if masks:
            mask = layer.masks.get("W")
            kept = int(float(mask.sum())) if mask is not None else weights
            total_kept += kept
            line += f"{kept:>12,}" if weights else f"{'':>12}"
        lines.append(line)
    total = f"{'':>3}  {'total':<60}{'':<18}{total_w:>12,}{total_b:>9,}"
    if masks:
        total += f"{total_kept:>12,}  ({100.0 * total_kept / max(total_w, 1):.1f}% of weights remain)"
    lines.append(total)
    return "\n".join(lines)


def count_parameters(model: Sequential) -> tuple[int, int]:
    """(number of weights, number of biases) of the whole model."""
    params = model.parameters()
    weights = sum(_size(v) for k, v in params.items() if k.endswith(".W"))
    return weights, sum(_size(v) for k, v in params.items() if k.endswith(".b"))


def layer_output_shapes(layers: Sequence[Layer], input_shape: tuple[int, int, int]) -> list[tuple[int, ...]]:
    """The output shape of every layer, without the batch axis, from the layer settings (nothing is run).

    Args:
        layers: the layers in order (``model.layers``, or a list still being built).
        input_shape: (C, H, W) of one example, e.g. (1, 28, 28).

    Returns:
        One shape per layer: (C, H, W) after a convolution or a pool, (F,) after Flatten or Dense; other layers
        (ReLU, Dropout) keep the shape before them. E.g. LeNet-300-100 on MNIST:
        [(784,), (300,), (300,), (100,), (100,), (10,)].

    Raises:
        ValueError: ``input_shape`` is not (C, H, W), a Dense layer's input size does not match, or the input
            is too small for the pools.
    """
    input_shape = _check_input_shape(input_shape)
    shapes = []
    shape: tuple[int, ...] = input_shape
    for layer in layers:
        if isinstance(layer, Conv2d):
            shape = (layer.out_channels, *layer.output_shape(*shape[1:]))
        elif isinstance(layer, MaxPool2d):
            shape = (shape[0], conv_output_size(shape[1], layer.kh, layer.sh, 0),
                     conv_output_size(shape[2], layer.kw, layer.sw, 0))
        elif isinstance(layer, Flatten):
            shape = (math.prod(shape),)
        elif isinstance(layer, Dense):
            if shape != (layer.in_features,):
                raise ValueError(f"{layer!r} expects inputs of shape ({layer.in_features},), but the layer before "
                                 f"gives {shape}; is input_shape {input_shape} right?")
            shape = (layer.out_features,)
        if min(shape) < 1:
            raise ValueError(f"input_shape {input_shape} is too small: {layer!r} would output {shape}")
        shapes.append(shape)
    return shapes


# -- helpers -------------------------------------------------------------------------------------------


def _size(array: Any) -> int:
    return 0 if array is None else int(math.prod(array.shape))


def _check_input_shape(input_shape: Any) -> tuple[int, ...]:
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else None
    if shape is None or len(shape) != 3 or not all(is_integer(d) and d > 0 for d in shape):
        raise ValueError(f"input_shape must be (C, H, W) with positive ints, e.g. (1, 28, 28), got {input_shape!r}")
    return tuple(int(d) for d in shape)
