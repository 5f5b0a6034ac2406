"""A chain of layers with parameters exposed under stable names ("0.W", "0.b", "2.W", ...)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from minilottery.backend import device_of, to_device, to_numpy
from minilottery.layers.base import Layer


class Sequential:
    """Applies ``layers`` in order; ``backward`` runs them in reverse.

    Parameter names are ``f"{index}.{key}"`` (``"0.W"`` is the first layer's weight, ``"0.b"`` its bias). The
    index is the one PyTorch's ``nn.Sequential`` gives the same layer, and W and b have torch's shapes, but the
    keys are W and b where torch says weight and bias: ``minilottery.ticket_file.torch_name`` maps one name onto
    the other ("1.W" -> "1.weight"), so a state dict maps one-to-one onto an ``nn.Sequential`` of the same layers.
    Optimizers, pruning and checkpoints all address parameters through these names.
    """

    def __init__(self, *layers: Layer) -> None:
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise ValueError(f"Sequential: item {i} is {type(layer).__name__}, expected a minilottery Layer")
        self.layers = list(layers)

    # -- computation ------------------------------------------------------------------------------------

    def forward(self, x: Any) -> Any:
        for layer in self.layers:
            x = layer.forward(x)
        return x

    __call__ = forward

    def backward(self, dout: Any, input_grad: bool = True) -> Any:
        """Backpropagates ``dout`` (gradient w.r.t. the output); fills every layer's ``grads``; returns dx.

        Training never needs the gradient w.r.t. the data, so ``input_grad=False`` stops at the first layer
        with parameters and returns None: it skips that layer's dx product (for LeNet-300-100, 40% of the
        backward FLOPs) and everything below it.
        """
        first = next((i for i, layer in enumerate(self.layers) if layer.params), 0)
        for i in reversed(range(len(self.layers))):
            if not input_grad and i == first:
                self.layers[i].backward(dout, input_grad=False)
                return None
            dout = self.layers[i].backward(dout)
        return dout

    def train(self) -> Sequential:
        for layer in self.layers:
            layer.training = True
        return self

    def eval(self) -> Sequential:
        for layer in self.layers:
            layer.training = False
        return self

    # -- named access -----------------------------------------------------------------------------------

    def named_layers(self) -> Iterator[tuple[str, Layer]]:
        for i, layer in enumerate(self.layers):
            yield str(i), layer

    def _split(self, name: str) -> tuple[Layer, str]:
        index, _, key = name.partition(".")
        try:
            layer = self.layers[int(index)]
        except (ValueError, IndexError):
            raise KeyError(f"no parameter named {name!r}; names are {list(self.parameters())}") from None
        if key not in layer.params:
            raise KeyError(f"no parameter named {name!r}; names are {list(self.parameters())}")
        return layer, key

    def parameters(self) -> dict[str, Any]:
        """Name -> parameter array (the live arrays: updating one in place updates the model)."""
        return {f"{i}.{k}": v for i, layer in self.named_layers() for k, v in layer.params.items()}

    def gradients(self) -> dict[str, Any]:
        """Name -> gradient from the last ``backward``."""
        return {f"{i}.{k}": v for i, layer in self.named_layers() for k, v in layer.grads.items()}

    def masks(self) -> dict[str, Any]:
        """Name -> pruning mask, for masked parameters only."""
        return {f"{i}.{k}": v for i, layer in self.named_layers() for k, v in layer.masks.items()}

    def set_masks(self, masks: dict[str, Any]) -> None:
        """Attaches masks by parameter name (a value of None removes that mask); others are left unchanged."""
        for name, mask in masks.items():
            layer, key = self._split(name)
            layer.set_mask(key, mask)

    def set_parameter(self, name: str, value: Any) -> None:
        """Replaces parameter ``name`` with ``value`` (same shape), moved to the parameter's device and dtype."""
        layer, key = self._split(name)
        old = layer.params[key]
        if tuple(value.shape) != tuple(old.shape):
            raise ValueError(f"parameter {name!r} has shape {tuple(old.shape)}, got {tuple(value.shape)}")
        # a copy in the parameter's dtype on the parameter's device: the caller's array is never aliased
        layer.params[key] = to_device(value, device_of(old)).astype(old.dtype, copy=True)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Name -> host (NumPy) copy of every parameter: safe to keep while training goes on."""
        return {name: np.array(to_numpy(value), copy=True) for name, value in self.parameters().items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Copies every parameter from ``state`` (host or device arrays); names and shapes must match exactly."""
        names = set(self.parameters())
        if set(state) != names:
            missing, extra = sorted(names - set(state)), sorted(set(state) - names)
            raise ValueError(f"state dict does not match the model: missing {missing}, unexpected {extra}")
        for name, value in state.items():
            self.set_parameter(name, value)

    # -- moving and casting -----------------------------------------------------------------------------

    def to(self, device: str | None = None) -> Sequential:
        """Moves every parameter and mask to ``device``; returns self."""
        for layer in self.layers:
            layer.to(device)
        return self

    def astype(self, dtype: Any) -> Sequential:
        for layer in self.layers:
            layer.astype(dtype)
        return self

    def __repr__(self) -> str:
        inner = "\n".join(f"  ({i}) {layer!r}" for i, layer in self.named_layers())
        return f"Sequential(\n{inner}\n)"
