"""Solution to exercise 4.3: for stride 1, the input gradient is a cross-correlation of dout, padded by K - 1 - p,
with the kernel rotated by 180°.

Run (from the repository root): python tutorials/solutions/04_exercise_3.py
Prints: which input pixels an impulse in dout reaches and with which kernel entries; then, for padding 0 and 1,
the largest difference between scipy.signal.correlate(pad(dout, K - 1 - p), rot180(W)) and ReferenceConv2d's dx.
"""

import numpy as np
from scipy import signal

from minilottery.layers import ReferenceConv2d

K = 3
rng = np.random.default_rng(0)
for padding in (0, 1):
    conv = ReferenceConv2d(1, 1, K, stride=1, padding=padding, rng=np.random.default_rng(1), dtype=np.float64)
    w = conv.params["W"][0, 0]  # (K, K)
    x = rng.standard_normal((1, 1, 6, 6))
    out = conv.forward(x)  # (1, 1, OH, OW)
    impulse = np.zeros_like(out)
    impulse[0, 0, 1, 1] = 1.0  # dL/dy = 1 at output pixel (1, 1) only
    dx = conv.backward(impulse)[0, 0]
    if padding == 0:
        # y[1, 1] = sum_{a,b} w[a, b] x[1 + a, 1 + b]: the impulse sends w[a, b] to x[1 + a, 1 + b], the kernel
        # laid on the input unrotated, at the window's place
        np.testing.assert_array_equal(dx[1:4, 1:4], w)
        print(f"padding 0: an impulse at output (1, 1) gives dx = W on input rows/cols 1..3, zero elsewhere "
              f"({int((dx != 0).sum())} nonzero pixels)")
    # as a correlation: input pixel (i, j) collects dout[i - a + p, j - b + p] w[a, b]; substituting a' = K-1-a
    # turns it into sum_{a', b'} dout_padded[i + a', j + b'] w[K-1-a', K-1-b']: pad by K - 1 - p, rotate W by 180°
    rotated = w[::-1, ::-1]
    dout = rng.standard_normal(out.shape)
    dx = conv.backward(dout)[0, 0]
    q = K - 1 - padding
    as_correlation = signal.correlate(np.pad(dout[0, 0], q), rotated, mode="valid")
    difference = float(np.abs(as_correlation - dx).max())
    print(f"padding {padding}: dx == correlate(pad(dout, {q}), rot180(W), 'valid'), shape {as_correlation.shape}; "
          f"largest difference {difference:.1e}")
    assert difference < 1e-12
