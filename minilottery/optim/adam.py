"""Adam (Kingma & Ba 2015), the optimizer the paper uses for Lenet and Conv-2/4/6 (lr 1.2e-3 for Lenet)."""

from __future__ import annotations

import math
from typing import Any

from minilottery.optim.base import Optimizer, check_real


class Adam(Optimizer):
    """Adam with bias correction and PyTorch's semantics (``torch.optim.Adam``, L2 weight decay), mask-aware.

    For each parameter ``p`` with gradient ``g``, optional pruning mask ``mask`` (1 = keep), at step t = 1, 2, ...::

        d = (g + weight_decay * p) * mask
        m = beta1 * m + (1 - beta1) * d
        v = beta2 * v + (1 - beta2) * d**2
        p = (p - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)) * mask

    (the last line is ``lr * m_hat / (sqrt(v_hat) + eps)`` with ``m_hat = m / (1 - beta1**t)`` and
    ``v_hat = v / (1 - beta2**t)``, arranged as PyTorch does). ``state[name]`` holds ``"m"``, ``"v"`` and
    ``"step"`` (t, a Python int); pruned entries of m and v stay exactly 0, and ``eps > 0`` keeps their
    update 0 / eps = 0.

    Args:
        model: a ``Sequential`` (or anything with ``parameters()``, ``gradients()``, ``masks()``).
        lr: learning rate, > 0 (the paper's Lenet: 1.2e-3).
        betas: (beta1, beta2), each in [0, 1).
        eps: > 0, added to the denominator.
        weight_decay: L2 coefficient added to the gradient, >= 0.
    """

    def __init__(self, model: Any, lr: float = 1.2e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        super().__init__(model, lr)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}; e.g. (0.9, 0.999)")
        self.betas = (check_real("betas[0]", betas[0], low=0.0, high=1.0, hint="e.g. 0.9"),
                      check_real("betas[1]", betas[1], low=0.0, high=1.0, hint="e.g. 0.999"))
        # eps must be > 0: with eps = 0 a pruned (or never-updated) weight would divide 0 by 0
        self.eps = check_real("eps", eps, low=0.0, low_open=True, hint="e.g. 1e-8")
        self.weight_decay = check_real("weight_decay", weight_decay, low=0.0, hint="e.g. 1e-4, or 0 for none")

    def step(self) -> None:
        """One update of every parameter that has a gradient, in place."""
        for _, state, pieces, xp in self._updates(scratch=2, state_keys=("m", "v")):
            t = state["step"] = state.get("step", 0) + 1  # a Python int: no device sync
            for param, grad, mask, m, v, d, tmp in pieces:
                self._update(xp, t, param, grad, mask, m, v, d, tmp)

    def _update(self, xp: Any, t: int, param: Any, grad: Any, mask: Any, m: Any, v: Any, d: Any, tmp: Any) -> None:
        """Step ``t`` on (a piece of) one parameter, in place; ``d`` and ``tmp`` are scratch of its shape."""
        beta1, beta2 = self.betas
        self._masked_gradient(xp, d, grad, param, self.weight_decay, mask)  # d = (g + wd * p) * mask
        # v = beta2 * v + (1 - beta2) * d**2
        xp.multiply(d, d, out=tmp)
        tmp *= 1.0 - beta2
        v *= beta2
        v += tmp
        # m = beta1 * m + (1 - beta1) * d   (d is not needed after this, so it is scaled in place)
        m *= beta1
        d *= 1.0 - beta1
        m += d
        # p -= lr / c1 * m / (sqrt(v) / sqrt(c2) + eps), with c1 = 1 - beta1**t, c2 = 1 - beta2**t, computed
        # as (lr * sqrt(c2) / c1) * m / (sqrt(v) + eps * sqrt(c2)): the same value, one pass fewer. The
        # factors are Python floats, so float32 stays float32.
        root_c2 = math.sqrt(1.0 - beta2**t)
        xp.sqrt(v, out=tmp)
        tmp += self.eps * root_c2  # tmp = denominator
        xp.divide(m, tmp, out=tmp)
        tmp *= self.lr * root_c2 / (1.0 - beta1**t)
        param -= tmp
        if mask is not None:
            param *= mask  # pruned weights are exactly 0.0, including ones non-zero before the first step
