"""Optimizers that keep pruned weights pruned: SGD (momentum, Nesterov, weight decay) and Adam.

Usage::

    opt = make_optimizer("adam", model, lr=1.2e-3)
    loss, dlogits = softmax_cross_entropy(model(x), y); model.backward(dlogits); opt.step()

State is keyed by parameter name (``opt.state["0.W"]["m"]``); ``opt.reset()`` forgets it.

Modules: ``base`` (what every optimizer shares), ``reference`` (``ReferenceSGD``, ``ReferenceAdam``: the update
equations written out on whole arrays; read these first), ``fast`` (``SGD``, ``Adam``: the same numbers
computed in place; ``make_optimizer`` returns these).
"""

from __future__ import annotations

import inspect
from typing import Any

from minilottery.optim.base import Optimizer
from minilottery.optim.fast import SGD, Adam
from minilottery.optim.reference import ReferenceAdam, ReferenceSGD

OPTIMIZERS = ("sgd", "adam")
_CLASSES = {"sgd": SGD, "adam": Adam}


def make_optimizer(name: str, model: Any, lr: float, **kwargs: Any) -> Optimizer:
    """The optimizer called ``name`` ("sgd" or "adam") for ``model``; ``kwargs`` are its options.

    Raises:
        ValueError: an unknown name, an option the optimizer does not take, or an option out of range.
    """
    cls = _CLASSES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"unknown optimizer {name!r}: expected one of {', '.join(OPTIMIZERS)}")
    options = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "model", "lr")]
    unknown = sorted(set(kwargs) - set(options))
    if unknown:
        raise ValueError(f"optimizer {name!r} does not take option(s) {', '.join(unknown)}: "
                         f"its options are {', '.join(options)}")
    return cls(model, lr, **kwargs)


__all__ = ["OPTIMIZERS", "SGD", "Adam", "Optimizer", "ReferenceAdam", "ReferenceSGD", "make_optimizer"]
