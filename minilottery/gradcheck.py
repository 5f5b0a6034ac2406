"""Finite-difference gradient checks: the proof that every hand-written backward pass is right.

The check works in vector-Jacobian form (cs231n's ``eval_numerical_gradient_array``): for a function
``y = f(a)`` and a random upstream gradient ``dout`` of y's shape, the gradient of the scalar ``sum(f(a) * dout)``
w.r.t. ``a`` is exactly what ``backward(dout)`` must return. Central differences in float64,
(g(a + h) - g(a - h)) / 2h, have O(h²) truncation error, so with h = 1e-6 a correct backward agrees to about
1e-9, and a wrong one (a missing transpose, a dropped term) is off by order 1.

The error is reported per array as ``|analytic - numeric| / max(floor, |analytic| + |numeric|)`` with Euclidean
norms (``rel_error``): a floor in the denominator keeps an all-zero gradient (a fully pruned weight) from dividing
by zero. A norm can hide one wrong element among many right ones, so ``max_rel_error`` (cs231n's ``rel_error``)
takes the same ratio element by element and reports the largest; pass ``error=max_rel_error`` (or
``both_errors``) to the checks below.

Inputs must stay away from kinks, where the function is not differentiable: ReLU at 0, and max-pooling
windows with ties. Random Gaussian inputs hit neither with probability 1; ``away_from_zero`` makes sure.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np

from minilottery.backend import device_of, get_array_module, to_device
from minilottery.loss import softmax_cross_entropy

DEFAULT_STEP = 1e-6
DEFAULT_FLOOR = 1e-8


def rel_error(analytic: Any, numeric: Any, floor: float = DEFAULT_FLOOR) -> float:
    """Relative error of two same-shaped arrays: ||a - n|| / max(floor, ||a|| + ||n||)."""
    xp = get_array_module(analytic, numeric)
    diff = float(xp.linalg.norm((analytic - numeric).ravel()))
    scale = float(xp.linalg.norm(analytic.ravel())) + float(xp.linalg.norm(numeric.ravel()))
    return diff / max(floor, scale)


def max_rel_error(analytic: Any, numeric: Any, floor: float = DEFAULT_FLOOR) -> float:
    """Largest per-element relative error: max over i of |a_i - n_i| / max(floor, |a_i| + |n_i|)."""
    xp = get_array_module(analytic, numeric)
    ratio = xp.abs(analytic - numeric) / xp.maximum(floor, xp.abs(analytic) + xp.abs(numeric))
    return float(ratio.max()) if ratio.size else 0.0


def both_errors(analytic: Any, numeric: Any) -> tuple[float, float]:
    """``(rel_error, max_rel_error)``: one numerical gradient judged as a whole and by its worst element
    (pass ``error=both_errors`` to a check so the costly numerical gradient is computed once)."""
    return rel_error(analytic, numeric), max_rel_error(analytic, numeric)


def numerical_vjp(f: Callable[[], Any], a: Any, dout: Any, h: float = DEFAULT_STEP) -> Any:
    """Central-difference gradient of ``sum(f() * dout)`` w.r.t. array ``a``, which ``f`` reads.

    ``a`` is perturbed in place, one element at a time, and restored exactly afterwards. Use float64.

    Args:
        f: a function of no arguments whose result depends on ``a`` (e.g. ``lambda: layer.forward(x)``).
        a: the array to differentiate against (an input or a parameter), float64.
        dout: upstream gradient, f()'s shape (or a scalar for a scalar-valued f).
        h: the finite-difference step.

    Returns:
        An array of ``a``'s shape and device.
    """
    xp = get_array_module(a)
    grad = xp.zeros(a.shape, dtype=xp.float64)
    for index in np.ndindex(*a.shape):
        original = float(a[index])
        a[index] = original + h
        plus = float((f() * dout).sum())
        a[index] = original - h
        minus = float((f() * dout).sum())
        a[index] = original
        grad[index] = (plus - minus) / (2 * h)
    return grad


def away_from_zero(x: Any, margin: float = 1e-3) -> Any:
    """Returns a copy of ``x`` with entries closer than ``margin`` to 0 pushed out to ±margin (ReLU's kink)."""
    xp = get_array_module(x)
    sign = xp.where(x >= 0, 1.0, -1.0).astype(x.dtype)
    return xp.where(xp.abs(x) < margin, sign * margin, x)


def check_layer(
    layer: Any, x: Any, seed: int = 0, h: float = DEFAULT_STEP, error: Callable[[Any, Any], float] = rel_error
) -> dict[str, float]:
    """Gradient-checks ``layer.backward`` for its input and every parameter, in float64.

    The layer is deep-copied and cast to float64, so the caller's layer is left untouched. Masks, if any,
    are kept: the check then also proves that pruned weights get exactly the (zero) gradient they have.

    Args:
        layer: any ``Layer`` or ``Sequential`` (something with forward/backward and params or parameters()).
        x: an input it accepts, on the device to check on.
        seed: seeds the random upstream gradient.
        h: the finite-difference step.
        error: compares an analytic gradient with its numeric one: ``rel_error`` (whole array, the default)
            or ``max_rel_error`` (the worst element).

    Returns:
        {"x": err, "W": err, "b": err, ...}: relative error per array (keys as in ``layer.grads``).
    """
    layer = copy.deepcopy(layer).astype(np.float64)
    x = x.astype(np.float64, copy=True)
    out = layer.forward(x)
    rng = np.random.default_rng(seed)
    dout = to_device(rng.standard_normal(out.shape), device_of(x))
    dx = layer.backward(dout)
    grads = layer.gradients() if hasattr(layer, "gradients") else dict(layer.grads)
    params = layer.parameters() if hasattr(layer, "parameters") else layer.params
    forward = lambda: layer.forward(x)  # noqa: E731 - re-reads x and the parameters each call
    errors = {"x": error(dx, numerical_vjp(forward, x, dout, h))}
    for name, param in params.items():
        errors[name] = error(grads[name], numerical_vjp(forward, param, dout, h))
    return errors


def check_loss(
    logits: Any, labels: Any, h: float = DEFAULT_STEP, error: Callable[[Any, Any], float] = rel_error
) -> float:
    """Gradient-checks ``softmax_cross_entropy`` w.r.t. the logits; returns the relative error (see ``error``)."""
    logits = logits.astype(np.float64, copy=True)
    _, dlogits = softmax_cross_entropy(logits, labels)
    numeric = numerical_vjp(lambda: softmax_cross_entropy(logits, labels)[0], logits, 1.0, h)
    return error(dlogits, numeric)


def check_model(
    model: Any, x: Any, labels: Any, h: float = DEFAULT_STEP, error: Callable[[Any, Any], float] = rel_error
) -> dict[str, float]:
    """Gradient-checks a whole model under the softmax cross-entropy loss, for every named parameter.

    ``h`` and ``error`` are as in ``check_layer``.

    Returns:
        {"x": err, "0.W": err, "0.b": err, ...}.
    """
    model = copy.deepcopy(model).astype(np.float64)
    x = x.astype(np.float64, copy=True)
    loss_of = lambda: softmax_cross_entropy(model.forward(x), labels)[0]  # noqa: E731
    _, dlogits = softmax_cross_entropy(model.forward(x), labels)
    dx = model.backward(dlogits)
    grads = model.gradients()
    errors = {"x": error(dx, numerical_vjp(loss_of, x, 1.0, h))}
    for name, param in model.parameters().items():
        errors[name] = error(grads[name], numerical_vjp(loss_of, param, 1.0, h))
    return errors
