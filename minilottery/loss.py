"""Softmax cross-entropy, the paper's training loss, with its gradient w.r.t. the logits."""

from __future__ import annotations

from typing import Any

from minilottery.backend import get_array_module


def softmax_cross_entropy(logits: Any, labels: Any) -> tuple[Any, Any]:
    """Mean cross-entropy of softmax(logits) against integer labels, and d(loss)/d(logits).

    Numerically stable: the row maximum is subtracted before exponentiating and the log-probabilities come
    from log-sum-exp, so no exp overflows and no log sees 0.

    Args:
        logits: (N, K) scores, float32 or float64.
        labels: (N,) integer class indices in [0, K) on the same device.

    Returns:
        loss: 0-d array (not a Python float, so no device synchronisation happens here).
        dlogits: (N, K) gradient, (softmax - onehot) / N, in the logits' dtype.
    """
    if getattr(logits, "ndim", None) != 2:
        raise ValueError(f"softmax_cross_entropy: expected logits of shape (N, K), "
                         f"got {getattr(logits, 'shape', None)}")
    if getattr(labels, "shape", None) != logits.shape[:1]:
        raise ValueError(
            f"softmax_cross_entropy: expected labels of shape ({logits.shape[0]},) "
            f"to match logits {tuple(logits.shape)}, "
            f"got {getattr(labels, 'shape', None)}"
        )
    xp = get_array_module(logits)
    n = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)  # (N, K), max 0 per row
    log_probs = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))  # (N, K)
    rows = xp.arange(n)
    loss = -log_probs[rows, labels].mean()  # (N,): log p(true class) of each example
    ### BEGIN SOLUTION loss_gradient
    dlogits = xp.exp(log_probs)  # softmax, (N, K)
    dlogits[rows, labels] -= 1
    dlogits /= n
    ### END SOLUTION
    return loss, dlogits
