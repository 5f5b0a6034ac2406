"""What SGD and Adam share: hyperparameter checks, lazily created per-parameter state, the masked gradient.

An optimizer holds a model, not a list of arrays: every ``step()`` reads ``model.parameters()``,
``model.gradients()`` and ``model.masks()`` afresh, because iterative magnitude pruning changes the masks
(and ``load_state_dict`` replaces the parameter arrays) between rounds.

Pruning (Frankle & Carbin 2019, Section 2): a pruned weight stays pruned. For a masked parameter the
optimizer uses the effective gradient ``d = (grad + weight_decay * param) * mask``, so its state (momentum,
Adam's moments) is exactly zero at pruned positions, and after the update it multiplies the parameter by
the mask, so pruned weights are exactly 0.0 after every step (even ones that were non-zero before the
first step). Biases are never masked.

Speed: ``step()`` runs once per training iteration (50K times per run), so it allocates nothing per step:
every operation writes into the parameter, the state, or a scratch buffer made once per parameter, and
every hyperparameter is a Python float (a NumPy 2 / CuPy "weak" scalar), so float32 arrays stay float32.
Nothing in ``step()`` copies data to the host or waits for the GPU. On the CPU the update runs on
``CPU_BLOCK``-element pieces of the flattened arrays, one piece at a time (``cache_blocks``): NumPy makes one
pass over memory per operation, and each of Adam's dozen passes over a 13 MB weight would stream it from RAM
(or a shared L3 cache), while a piece's passes after the first find it in the core's own cache.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from minilottery.backend import device_of, get_array_module

CPU_BLOCK = 1 << 16  # elements per piece on the CPU: 256 KB per float32 array (measured best of 16K-128K for Adam)


def cache_blocks(arrays: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """Matching pieces of same-shaped arrays, for an element-wise update done one piece at a time.

    On the CPU, when every array is C-contiguous: tuples of views ``a.reshape(-1)[start:stop]`` (a flat view
    of the array, then a slice) of ``CPU_BLOCK`` elements each, so that writing into a piece writes into the
    array. Elsewhere (the GPU, which has no such cache problem and would pay a kernel launch per piece, or
    non-contiguous arrays): one tuple of the whole arrays. ``None`` entries stay ``None``.
    """
    present = [a for a in arrays if a is not None]
    size = present[0].size
    if device_of(present[0]) != "cpu" or size <= CPU_BLOCK or not all(a.flags.c_contiguous for a in present):
        return [arrays]
    flat = [None if a is None else a.reshape(-1) for a in arrays]  # (size,) views
    return [tuple(None if a is None else a[start:start + CPU_BLOCK] for a in flat)
            for start in range(0, size, CPU_BLOCK)]


def check_real(option: str, value: Any, *, low: float, high: float | None = None, low_open: bool = False,
               high_open: bool = True, hint: str = "") -> float:
    """``value`` as a Python float, or a one-line ValueError naming ``option`` and the allowed range."""
    lo = f"({low}" if low_open else f"[{low}"
    hi = "inf)" if high is None else (f"{high})" if high_open else f"{high}]")
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        value = float(value)
        ok = (value > low if low_open else value >= low) and (
            high is None or (value < high if high_open else value <= high))
    if not ok:
        raise ValueError(f"{option} must be a real number in {lo}, {hi}, got {value!r}" + (f"; {hint}" if hint else ""))
    return value


class Optimizer:
    """Base class: ``state`` (param name -> dict of arrays), ``reset()``, and the masked-gradient helper.

    Attributes:
        model: anything with ``parameters()``, ``gradients()`` and ``masks()`` (name -> array dicts).
        lr: learning rate (a Python float; may be changed between steps).
        state: param name -> per-parameter state (arrays like the parameter, plus e.g. Adam's ``"step"``).
    """

    def __init__(self, model: Any, lr: float) -> None:
        self.model = model
        self.lr = check_real("lr", lr, low=0.0, low_open=True, hint="pass a positive learning rate, e.g. 1.2e-3")
        self.state: dict[str, dict[str, Any]] = {}
        # Scratch space, param name -> work arrays of the parameter's shape: made once, reused every step.
        # Kept out of ``state`` because it carries nothing from one step to the next.
        self._scratch: dict[str, tuple[Any, ...]] = {}

    def step(self) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        """Forgets all state (momentum, moments, step counts), e.g. before the next pruning round."""
        self.state.clear()
        self._scratch.clear()

    # -- helpers for subclasses ---------------------------------------------------------------------------

    def _updates(self, scratch: int, state_keys: tuple[str, ...] = ()):
        """Yields ``(name, state, pieces, xp)`` for every parameter with a gradient.

        ``state`` is the parameter's state dict (zero arrays under ``state_keys``, made on first use), and
        ``pieces`` an iterable of tuples ``(param, grad, mask, *state arrays, *scratch arrays)`` of matching
        pieces of those arrays (see ``cache_blocks``; mask None when the parameter is not masked): an update
        written for whole arrays runs unchanged on each piece.
        """
        params, grads, masks = self.model.parameters(), self.model.gradients(), self.model.masks()
        for name, param in params.items():
            grad = grads.get(name)
            if grad is None:  # no backward has reached this parameter yet
                continue
            xp = get_array_module(param)
            state = self._state_for(name, param, state_keys) if state_keys else {}
            work = self._scratch_for(name, param, scratch)
            arrays = (param, grad, masks.get(name), *(state[key] for key in state_keys), *work)
            yield name, state, cache_blocks(arrays), xp

    def _scratch_for(self, name: str, param: Any, count: int) -> tuple[Any, ...]:
        """``count`` work arrays shaped like ``param``, on its device, made on first use."""
        scratch = self._scratch.get(name)
        if scratch is None:
            xp = get_array_module(param)
            scratch = self._scratch[name] = tuple(xp.empty_like(param) for _ in range(count))
        elif scratch[0].shape != param.shape or scratch[0].dtype != param.dtype or type(scratch[0]) is not type(param):
            # the model was moved (to), cast (astype) or rebuilt under this optimizer: its state no longer fits
            raise ValueError(
                f"optimizer state for {name!r} was made for a {scratch[0].dtype} array of shape "
                f"{tuple(scratch[0].shape)} on {device_of(scratch[0])}, but the parameter is now {param.dtype} "
                f"{tuple(param.shape)} on {device_of(param)}; call optimizer.reset() after model.to()/astype()"
            )
        return scratch

    def _state_for(self, name: str, param: Any, keys: tuple[str, ...]) -> dict[str, Any]:
        """The state of parameter ``name``: zero arrays under ``keys``, created on the parameter's device."""
        state = self.state.get(name)
        if state is None:
            xp = get_array_module(param)
            state = self.state[name] = {key: xp.zeros_like(param) for key in keys}
        return state

    @staticmethod
    def _masked_gradient(xp: Any, out: Any, grad: Any, param: Any, weight_decay: float, mask: Any) -> Any:
        """Writes ``d = (grad + weight_decay * param) * mask`` into ``out`` and returns it.

        Weight decay is L2 added to the gradient (PyTorch's ``weight_decay``), applied before the mask, so a
        pruned weight is neither decayed nor gains momentum: its ``d`` is exactly 0.
        """
        # backward already masks dW, but the optimizer does not rely on it (nor on weight decay)
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
