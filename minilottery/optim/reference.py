"""SGD and Adam written as their equations: whole arrays, a new array per line. Read these first.

The optimizers training uses (``SGD`` and ``Adam`` in ``fast.py``, what ``make_optimizer`` returns) take the
same options, keep the same state and give the same numbers (``tests/test_reference_optim.py`` checks it), but
write every intermediate into arrays made once. Both are mask-aware (Frankle & Carbin 2019, Section 2): the
masked gradient ``d`` is 0 at pruned weights, so their state stays 0 there, and the last line multiplies the new
parameter by the mask, so pruned weights are exactly 0.0 after every step.
"""

from __future__ import annotations

from typing import Any

from minilottery.backend import get_array_module
from minilottery.checks import check_real
from minilottery.optim.base import Optimizer


class ReferenceSGD(Optimizer):
    """SGD with PyTorch's semantics (``torch.optim.SGD``, dampening 0), mask-aware.

    For each parameter ``p`` with gradient ``g`` and optional pruning mask ``mask`` (1 = keep)::

        d   = (g + weight_decay * p) * mask
        buf = momentum * buf + d                 # buf starts at 0, so the first buf is d (as in PyTorch)
        u   = d + momentum * buf   if nesterov
              buf                  if momentum > 0
              d                    otherwise
        p   = (p - lr * u) * mask

    ``state[name]["momentum_buffer"]`` holds ``buf`` (only when momentum > 0); pruned entries stay exactly 0.

    Args:
        model: a ``Sequential`` (or anything with ``parameters()``, ``gradients()``, ``masks()``).
        lr: learning rate, > 0.
        momentum: in [0, 1); 0 is plain SGD.
        nesterov: use Nesterov momentum (needs momentum > 0).
        weight_decay: L2 coefficient added to the gradient, >= 0.
    """

    def __init__(self, model: Any, lr: float, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0) -> None:
        super().__init__(model, lr)
        self.momentum = check_real("momentum", momentum, low=0.0, high=1.0, hint="e.g. 0.9, or 0 for plain SGD")
        self.weight_decay = check_real("weight_decay", weight_decay, low=0.0, hint="e.g. 1e-4, or 0 for none")
        if not isinstance(nesterov, bool):
            raise ValueError(f"nesterov must be True or False, got {nesterov!r}")
        if nesterov and self.momentum == 0.0:
            raise ValueError("nesterov=True needs momentum > 0, got momentum=0.0; set momentum (e.g. 0.9) "
                             "or nesterov=False")
        self.nesterov = nesterov

    def step(self) -> None:
        """One update of every parameter that has a gradient (the parameter arrays are changed in place)."""
        mu = self.momentum
        for name, p, g, mask in self._parameters_with_gradients():
            d = self._masked_gradient(g, p, self.weight_decay, mask)
            if mu:
                state = self._state_for(name, p, ("momentum_buffer",))
                buf = state["momentum_buffer"] = mu * state["momentum_buffer"] + d
                u = d + mu * buf if self.nesterov else buf
            else:
                u = d
            new_p = p - self.lr * u
            p[...] = new_p if mask is None else new_p * mask  # into the model's own array


class ReferenceAdam(Optimizer):
    """Adam (Kingma & Ba 2015, Algorithm 1) with PyTorch's semantics (``torch.optim.Adam``, L2 weight decay),
    mask-aware; the paper trains Lenet and Conv-2/4/6 with it (Figure 2; lr 1.2e-3 for Lenet).

    For each parameter ``p`` with gradient ``g``, optional pruning mask ``mask`` (1 = keep), at step t = 1, 2, ...::

        d     = (g + weight_decay * p) * mask
        m     = beta1 * m + (1 - beta1) * d          # m and v start at 0
        v     = beta2 * v + (1 - beta2) * d**2
        m_hat = m / (1 - beta1**t)                   # bias correction: m and v are too small while t is small
        v_hat = v / (1 - beta2**t)
        p     = (p - lr * m_hat / (sqrt(v_hat) + eps)) * mask

    ``state[name]`` holds ``"m"``, ``"v"`` and ``"step"`` (t, a Python int); pruned entries of m and v stay
    exactly 0, and ``eps > 0`` keeps their update 0 / eps = 0.

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
        """One update of every parameter that has a gradient (the parameter arrays are changed in place)."""
        beta1, beta2 = self.betas
        for name, p, g, mask in self._parameters_with_gradients():
            xp = get_array_module(p)
            state = self._state_for(name, p, ("m", "v"))
            t = state["step"] = state.get("step", 0) + 1
            d = self._masked_gradient(g, p, self.weight_decay, mask)
            ### BEGIN SOLUTION adam_step
            m = state["m"] = beta1 * state["m"] + (1 - beta1) * d
            v = state["v"] = beta2 * state["v"] + (1 - beta2) * d**2
            m_hat = m / (1 - beta1**t)
            v_hat = v / (1 - beta2**t)
            new_p = p - self.lr * m_hat / (xp.sqrt(v_hat) + self.eps)
            p[...] = new_p if mask is None else new_p * mask  # into the model's own array
            ### END SOLUTION
