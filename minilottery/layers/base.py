"""The base class every layer shares: named parameters, their gradients, optional pruning masks.

A layer is a small object with ``forward(x) -> y`` and ``backward(dout) -> dx`` written by hand (the
Deep Learning from Scratch / cs231n pattern). ``params`` and ``grads`` share keys (``"W"``, ``"b"``), with
PyTorch's shapes, so state moves between the two frameworks once ``W``/``b`` are renamed ``weight``/``bias``
(``minilottery.ticket_file.torch_name``).

Pruning (Frankle & Carbin 2019, Section 2): a weighted layer may carry a binary mask per parameter in
``masks`` (1 = keep, 0 = pruned). The forward pass uses the effective weight ``W * mask`` (``masked_param``),
so a pruned connection contributes nothing, and backward multiplies the weight gradient by the mask, so a
pruned weight's gradient is exactly zero.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from minilottery import compiled
from minilottery.backend import device_of, get_array_module, to_device


class Layer:
    """A differentiable layer. Subclasses fill ``params`` at construction and ``grads`` in ``backward``.

    Attributes:
        params: parameter name -> array (e.g. ``{"W": (out, in), "b": (out,)}``); empty for parameter-free layers.
        grads: parameter name -> gradient of the loss w.r.t. that parameter, same shape; set by ``backward``.
        masks: parameter name -> pruning mask of the parameter's shape and dtype (1 = keep, 0 = pruned).
        training: True while training (only ``Dropout`` behaves differently in evaluation).
    """

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}
        self.grads: dict[str, Any] = {}
        self.masks: dict[str, Any] = {}
        self.training = True
        # param name -> (the mask the last masked_param saw, whether it was all ones), for masked_grad
        self._checked_masks: dict[str, tuple[Any, bool]] = {}

    def forward(self, x: Any) -> Any:
        raise NotImplementedError

    def backward(self, dout: Any) -> Any:
        raise NotImplementedError

    def __call__(self, x: Any) -> Any:
        return self.forward(x)

    # -- pruning masks ----------------------------------------------------------------------------------

    def set_mask(self, name: str, mask: Any) -> None:
        """Attaches a pruning mask to parameter ``name``; ``None`` removes it.

        The mask is stored in the parameter's dtype on the parameter's device, so that ``W * mask`` allocates
        no mixed-precision temporaries.

        Raises:
            ValueError: ``name`` is not a parameter, or the mask's shape differs from the parameter's.
        """
        if name not in self.params:
            raise ValueError(f"{self!r}: cannot mask {name!r}: parameters are {sorted(self.params)}")
        if mask is None:
            self.masks.pop(name, None)
            return
        param = self.params[name]
        if tuple(mask.shape) != tuple(param.shape):
            raise ValueError(
                f"{self!r}: mask for {name!r} must have the parameter's shape {tuple(param.shape)}, "
                f"got {tuple(mask.shape)}"
            )
        xp = get_array_module(param)
        device_mask = to_device(mask, device_of(param))
        self.masks[name] = xp.asarray(device_mask, dtype=param.dtype)

    def masked_param(self, name: str) -> Any:
        """The parameter as the forward pass uses it: a new array ``param * mask`` when pruned, else ``param``.

        A pruned entry is exactly 0 here, so it contributes nothing to the output (Section 2). A mask of ones
        (every network of round 0) would change no bit: where the compiled loops find one
        (``compiled.mask_is_ones``), ``param`` itself is returned, without the multiply's pass over memory. The
        answer is kept for ``masked_grad``.
        """
        param = self.params[name]
        mask = self.masks.get(name)
        ones = mask is not None and compiled.mask_is_ones(mask)
        self._checked_masks[name] = (mask, ones)  # for this forward pass's backward (masked_grad)
        return param if mask is None or ones else param * mask

    def masked_grad(self, name: str, grad: Any) -> Any:
        """``grad * mask`` in place on the freshly computed ``grad`` (so pruned weights get exactly 0).

        A mask of ones is skipped, as in ``masked_param``, whose answer for the same mask object is reused: the
        gradient is that of the function the forward pass computed, and the mask is not read a second time.
        """
        mask = self.masks.get(name)
        if mask is None:
            return grad
        checked, ones = self._checked_masks.get(name, (None, False))
        if checked is not mask:  # no forward pass has checked this mask (it was set, moved or cast since)
            ones = compiled.mask_is_ones(mask)
        if not ones:
            grad *= mask
        return grad

    # -- moving and casting -----------------------------------------------------------------------------

    def to(self, device: str | None = None) -> Layer:
        """Moves parameters and masks to ``device`` ("cpu", "gpu"; default: the current default). Returns self."""
        self.params = {k: to_device(v, device) for k, v in self.params.items()}
        self.masks = {k: to_device(v, device) for k, v in self.masks.items()}
        self.grads = {}
        return self

    def astype(self, dtype: Any) -> Layer:
        """Casts parameters and masks to ``dtype`` (float64 for gradient checks). Returns self."""
        self.params = {k: v.astype(dtype) for k, v in self.params.items()}
        self.masks = {k: v.astype(dtype) for k, v in self.masks.items()}
        self.grads = {}
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def check_ndim(layer: Layer, x: Any, ndim: int, layout: str) -> None:
    """Raises a ValueError naming ``layer`` unless ``x`` has rank ``ndim`` (``layout`` names the axes)."""
    shape = getattr(x, "shape", None)
    if shape is None or len(shape) != ndim:
        raise ValueError(f"{layer!r}: expected a {ndim}-D input of shape {layout}, got shape {shape}")


def as_pair(value: int | tuple[int, int], what: str, layer_name: str) -> tuple[int, int]:
    """``3`` -> ``(3, 3)``; validates a (height, width) pair of ints."""
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) for v in pair):
        raise ValueError(f"{layer_name}: {what} must be an int or a pair of ints, got {value!r}")
    return int(pair[0]), int(pair[1])
