"""Stochastic gradient descent with momentum, optional Nesterov momentum, and L2 weight decay."""

from __future__ import annotations

from typing import Any

from minilottery.optim.base import Optimizer, check_real


class SGD(Optimizer):
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
        """One update of every parameter that has a gradient, in place."""
        keys = ("momentum_buffer",) if self.momentum else ()
        for _, _, pieces, xp in self._updates(scratch=1, state_keys=keys):
            for param, grad, mask, *rest in pieces:
                self._update(xp, param, grad, mask, *rest)

    def _update(self, xp: Any, param: Any, grad: Any, mask: Any, *rest: Any) -> None:
        """(A piece of) one parameter, in place; ``rest`` is (momentum buffer, scratch d) or (scratch d,)."""
        lr, mu = self.lr, self.momentum
        d = self._masked_gradient(xp, rest[-1], grad, param, self.weight_decay, mask)  # d = (g + wd * p) * mask
        if mu:
            buf = rest[0]
            buf *= mu
            buf += d
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
