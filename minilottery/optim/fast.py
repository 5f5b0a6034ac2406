"""The SGD and Adam that training uses: the numbers of ``reference.py``, computed without allocating.

``step()`` runs once per training iteration (50K times per run). The reference versions make a new array for
every line of their equations; for Conv-2's 17 MB first dense weight such fresh arrays cost page faults on
every step. These versions write every result into the parameter, its state, or a work array made once per
parameter, so a step allocates nothing; every factor is a Python float, so float32 stays float32. Nothing in
``step()`` copies data to the host or waits for the GPU.
"""

from __future__ import annotations

import functools
import math
from typing import Any

from minilottery import compiled
from minilottery.backend import get_array_module
from minilottery.optim.base import Optimizer, check_fits
from minilottery.optim.reference import ReferenceAdam, ReferenceSGD


class WorkArrays(Optimizer):
    """What the fast optimizers add to their reference: work arrays per parameter, made once, reused every step.

    They carry nothing from one step to the next, so they are kept out of ``state``; ``reset()`` drops them too.
    """

    @functools.cached_property
    def _scratch(self) -> dict[str, tuple[Any, ...]]:
        """Param name -> work arrays of the parameter's shape (made on first use by ``_scratch_for``)."""
        return {}

    def reset(self) -> None:
        super().reset()  # forgets the state
        self._scratch.clear()

    def _scratch_for(self, name: str, param: Any, count: int) -> tuple[Any, ...]:
        """``count`` work arrays shaped like ``param``, on its device, made on first use."""
        scratch = self._scratch.get(name)
        if scratch is None:
            xp = get_array_module(param)
            scratch = self._scratch[name] = tuple(xp.empty_like(param) for _ in range(count))
        check_fits(name, scratch[0], param)
        return scratch


class SGD(WorkArrays, ReferenceSGD):
    """The same numbers as ``ReferenceSGD`` (its equations, options and state), faster because it allocates nothing.

    Each result goes into the parameter, the momentum buffer or one work array ``d``; ``lr`` and ``momentum``
    multiply ``d`` and the buffer in place instead of making ``lr * u``.
    """

    def step(self) -> None:
        """One update of every parameter that has a gradient, in place."""
        lr, mu = self.lr, self.momentum
        for name, param, grad, mask in self._parameters_with_gradients():
            xp = get_array_module(param)
            (d,) = self._scratch_for(name, param, 1)
            self._masked_gradient(grad, param, self.weight_decay, mask, out=d)  # d = (g + wd * p) * mask
            if mu:
                buf = self._state_for(name, param, ("momentum_buffer",))["momentum_buffer"]
                buf *= mu
                buf += d  # buf = mu * buf + d
                if self.nesterov:
                    # p -= lr * (d + mu * buf), as two in-place passes so no temporary is allocated
                    d *= lr
                    param -= d
                    xp.multiply(buf, lr * mu, out=d)
                else:
                    xp.multiply(buf, lr, out=d)
            else:
                d *= lr
            param -= d
            if mask is not None:
                param *= mask  # pruned weights are exactly 0.0, including ones non-zero before the first step


class Adam(WorkArrays, ReferenceAdam):
    """The same numbers as ``ReferenceAdam`` (its equations, options and state), faster because it allocates nothing.

    Each result goes into the parameter, ``m``, ``v`` or two work arrays ``d`` and ``tmp``, and the bias
    corrections are folded into two Python floats (PyTorch's arrangement): ``m_hat`` and ``v_hat`` are never
    made. This rounds differently from the reference in the last bits only.

    On plain NumPy arrays, when Numba is installed, the passes run fused in one loop
    (``minilottery.compiled.adam_update``), and on CuPy arrays as one kernel (``compiled.gpu_adam_update``), each
    with the same numbers bit for bit.
    """

    @functools.cached_property
    def _subnormal_moments(self) -> dict[str, int]:
        """Param name -> how many of its first moments the compiled loop left subnormal when it last counted them:
        a hint that picks the faster compilation of the loop (``compiled.adam_update``), never another result."""
        return {}

    def reset(self) -> None:
        super().reset()
        self._subnormal_moments.clear()

    def step(self) -> None:
        """One update of every parameter that has a gradient, in place."""
        beta1, beta2 = self.betas
        use_loop, use_kernel = compiled.enabled(), compiled.gpu_enabled()
        for name, param, grad, mask in self._parameters_with_gradients():
            state = self._state_for(name, param, ("m", "v"))
            t = state["step"] = state.get("step", 0) + 1  # a Python int: no device sync
            m, v = state["m"], state["v"]
            # p -= lr * m_hat / (sqrt(v_hat) + eps), with m_hat = m / c1, v_hat = v / c2, c1 = 1 - beta1**t and
            # c2 = 1 - beta2**t, is step_size * m / (sqrt(v) + eps_hat) with the two Python floats below: the
            # same value with the corrections folded in, so float32 stays float32 and no m_hat or v_hat is made.
            root_c2 = math.sqrt(1.0 - beta2**t)
            eps_hat, step_size = self.eps * root_c2, self.lr * root_c2 / (1.0 - beta1**t)
            arrays = (param, grad, m, v, *([] if mask is None else [mask]))
            if use_loop and compiled.fits(*arrays):
                # the passes below, fused into one loop over memory: the same numbers, bit for bit. The count of
                # subnormal moments, renewed every SUBNORMAL_RECOUNT_STEPS steps, only picks the fastest
                # compilation of the loop (see adam_update).
                recount = (t - 1) % compiled.SUBNORMAL_RECOUNT_STEPS == 0
                self._subnormal_moments[name] = compiled.adam_update(
                    param, grad, mask, m, v, weight_decay=self.weight_decay, beta1=beta1, beta2=beta2,
                    eps_hat=eps_hat, step_size=step_size,
                    subnormal_moments=None if recount else self._subnormal_moments.get(name))
                continue
            if use_kernel and compiled.gpu_fits(*arrays):  # the same, as one GPU kernel
                compiled.gpu_adam_update(param, grad, mask, m, v, weight_decay=self.weight_decay, beta1=beta1,
                                         beta2=beta2, eps_hat=eps_hat, step_size=step_size)
                continue
            xp = get_array_module(param)
            d, tmp = self._scratch_for(name, param, 2)
            self._masked_gradient(grad, param, self.weight_decay, mask, out=d)  # d = (g + wd * p) * mask
            # v = beta2 * v + (1 - beta2) * d**2
            xp.multiply(d, d, out=tmp)
            tmp *= 1.0 - beta2
            v *= beta2
            v += tmp
            # m = beta1 * m + (1 - beta1) * d   (d is not needed after this, so it is scaled in place)
            m *= beta1
            d *= 1.0 - beta1
            m += d
            # p -= step_size * m / (sqrt(v) + eps_hat)
            xp.sqrt(v, out=tmp)
            tmp += eps_hat  # tmp = denominator
            xp.divide(m, tmp, out=tmp)
            tmp *= step_size
            param -= tmp
            if mask is not None:
                param *= mask  # pruned weights are exactly 0.0, including ones non-zero before the first step
