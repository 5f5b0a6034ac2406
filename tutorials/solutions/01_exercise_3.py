"""Solution to exercise 1.3: a softmax that calls np.exp passes on the CPU and fails on a (strict) device.

Run (from the repository root): python tutorials/solutions/01_exercise_3.py
Prints: which call of the two softmax functions succeeds on host arrays and on the strict test device.
"""

import numpy as np

from minilottery.backend import get_array_module, to_device, to_numpy
from minilottery.testing.strict_backend import strict_device


def softmax(z):
    """Tutorial 1's softmax: xp is numpy for host arrays and the device's namespace for device arrays."""
    xp = get_array_module(z)
    shifted = z - z.max(axis=1, keepdims=True)
    e = xp.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def softmax_np(z):
    """The copy with np.exp: right only when z is a NumPy array."""
    shifted = z - z.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


rng = np.random.default_rng(0)
logits_host = rng.standard_normal((3, 4)).astype(np.float32)
same = np.array_equal(softmax(logits_host), softmax_np(logits_host))
print(f"host arrays: softmax and softmax_np agree bit for bit: {same}")
assert same

with strict_device() as device:
    logits_dev = to_device(logits_host, device)
    print(f"strict device: get_array_module(x) is {get_array_module(logits_dev).__name__}")
    print("  softmax(x) works; largest difference from the host result:",
          f"{float(np.abs(to_numpy(softmax(logits_dev)) - softmax(logits_host)).max()):.1e}")
    try:
        softmax_np(logits_dev)
    except TypeError as exc:
        print(f"  softmax_np(x) raises TypeError: {str(exc).splitlines()[0]}")
    else:
        raise AssertionError("softmax_np should fail on the strict device")
