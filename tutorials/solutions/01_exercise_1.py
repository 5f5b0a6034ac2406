"""Solution to exercise 1.1: a numerically stable log_softmax for NumPy and CuPy, compared with softmax.

Run (from the repository root): python tutorials/solutions/01_exercise_1.py
Prints: the largest |exp(log_softmax) - softmax| on tutorial 1's logits, and what the naive log(softmax) gives
for logits whose softmax underflows.
"""

import numpy as np

from minilottery.backend import get_array_module


def softmax(z):
    """Tutorial 1's row-wise softmax."""
    xp = get_array_module(z)
    shifted = z - z.max(axis=1, keepdims=True)
    e = xp.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def log_softmax(z):
    """Row-wise log softmax: log p_i = (z_i - max z) - log sum_j exp(z_j - max z) (log-sum-exp)."""
    xp = get_array_module(z)
    shifted = z - z.max(axis=1, keepdims=True)  # every exponent <= 0: exp cannot overflow, one term is exp(0) = 1
    return shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))  # the sum is >= 1: its log is finite


rng = np.random.default_rng(0)
logits = rng.standard_normal((3, 4)).astype(np.float32)  # tutorial 1's logits
difference = float(np.abs(np.exp(log_softmax(logits)) - softmax(logits)).max())
print(f"largest |exp(log_softmax(z)) - softmax(z)| on tutorial 1's logits: {difference:.1e}")
assert difference < 1e-6

extreme = np.array([[0.0, -200.0, 200.0]], dtype=np.float32)  # softmax underflows to exactly 0 for two entries
with np.errstate(divide="ignore"):
    naive = np.log(softmax(extreme))
print("z = [0, -200, 200]:")
print("  log(softmax(z)):", naive[0], "(-inf: the underflowed probabilities lose all information)")
print("  log_softmax(z): ", log_softmax(extreme)[0], "(finite: -200, -400, 0)")
assert np.all(np.isfinite(log_softmax(extreme))) and np.isinf(naive).sum() == 2
