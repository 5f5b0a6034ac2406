"""What every optimizer here shares: per-parameter state, ``reset()``, the learning-rate check, the masked gradient.

An optimizer holds a model, not a list of arrays: every ``step()`` reads ``model.parameters()``,
``model.gradients()`` and ``model.masks()`` afresh, because iterative magnitude pruning changes the masks
(and ``load_state_dict`` replaces the parameter arrays) between rounds.

Pruning (Frankle & Carbin 2019, Section 2): a pruned weight stays pruned. For a masked parameter the
optimizer uses the effective gradient ``d = (grad + weight_decay * param) * mask``, so its state (momentum,
Adam's moments) is exactly zero at pruned positions, and after the update it multiplies the parameter by
the mask, so pruned weights are exactly 0.0 after every step (even ones that were non-zero before the
first step). Biases are never masked.

Every hyperparameter is kept as a Python float (a NumPy 2 / CuPy "weak" scalar), so float32 arrays stay float32.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from minilottery.backend import device_of, get_array_module
from minilottery.checks import check_real


class Optimizer:
    """Base class: ``state`` (param name -> dict of arrays), ``reset()``, and helpers for ``step()``.

    Attributes:
        model: anything with ``parameters()``, ``gradients()`` and ``masks()`` (name -> array dicts).
        lr: learning rate (a Python float; may be changed between steps).
        state: param name -> per-parameter state (arrays like the parameter, plus e.g. Adam's ``"step"``).
    """

    def __init__(self, model: Any, lr: float) -> None:
        self.model = model
        self.lr = check_real("lr", lr, low=0.0, low_open=True, hint="pass a positive learning rate, e.g. 1.2e-3")
        self.state: dict[str, dict[str, Any]] = {}

    def step(self) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        """Forgets all state (momentum, moments, step counts), e.g. before the next pruning round."""
        self.state.clear()

    # -- helpers for subclasses ---------------------------------------------------------------------------

    def _parameters_with_gradients(self) -> Iterator[tuple[str, Any, Any, Any]]:
        """Yields ``(name, param, grad, mask)`` for every parameter that has a gradient (mask None if unmasked)."""
        params, grads, masks = self.model.parameters(), self.model.gradients(), self.model.masks()
        for name, param in params.items():
            grad = grads.get(name)
            if grad is not None:  # None: no backward has reached this parameter yet
                yield name, param, grad, masks.get(name)

    def _state_for(self, name: str, param: Any, keys: tuple[str, ...]) -> dict[str, Any]:
        """The state of parameter ``name``: zero arrays like ``param`` under ``keys``, made on first use."""
        state = self.state.get(name)
        if state is None:
            xp = get_array_module(param)
            state = self.state[name] = {key: xp.zeros_like(param) for key in keys}
        for key in keys:
            check_fits(name, state[key], param)
        return state

    @staticmethod
    def _masked_gradient(grad: Any, param: Any, weight_decay: float, mask: Any, out: Any = None) -> Any:
        """``d = (grad + weight_decay * param) * mask``, written into ``out`` (a new array when None).

        Weight decay is L2 added to the gradient (PyTorch's ``weight_decay``), applied before the mask, so a
        pruned weight is neither decayed nor gains momentum: its ``d`` is exactly 0. ``mask`` None: no mask.
        """
        # backward already masks dW, but the optimizer does not rely on it (nor on weight decay)
        xp = get_array_module(param)
        if out is None:
            out = xp.empty_like(param)
        if weight_decay:
            xp.multiply(param, weight_decay, out=out)
            out += grad
            if mask is not None:
                out *= mask
        elif mask is not None:
            xp.multiply(grad, mask, out=out)
        else:
            xp.copyto(out, grad)
        return out


def check_fits(name: str, array: Any, param: Any) -> None:
    """A one-line ValueError unless ``array`` (state made for ``name``) has ``param``'s shape, dtype and device."""
    if array.shape != param.shape or array.dtype != param.dtype or type(array) is not type(param):
        # the model was moved (to), cast (astype) or rebuilt under this optimizer: its state no longer fits
        raise ValueError(
            f"optimizer state for {name!r} was made for a {array.dtype} array of shape {tuple(array.shape)} "
            f"on {device_of(array)}, but the parameter is now {param.dtype} {tuple(param.shape)} on "
            f"{device_of(param)}; call optimizer.reset() after model.to()/astype()"
        )
