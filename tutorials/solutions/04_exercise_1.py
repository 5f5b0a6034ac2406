"""Solution to exercise 4.1: the im2col matrix of a 5×5 image, 3×3 kernel, stride 2, padding 1, by hand.

Run (from the repository root): python tutorials/solutions/04_exercise_1.py
Prints: OH = OW = (5 + 2·1 − 3) // 2 + 1 = 3, the 9×9 matrix written by hand, and the check against im2col.
"""

import numpy as np

from minilottery.layers import im2col

image = np.arange(1, 26, dtype=np.float32).reshape(1, 1, 5, 5)  # (N, C, H, W): pixels 1..25, row by row
oh = (5 + 2 * 1 - 3) // 2 + 1
print(f"OH = OW = (5 + 2*1 - 3) // 2 + 1 = {oh}: {oh * oh} rows (one per output pixel), 3*3*1 = 9 columns")
# Output pixel (i, j) reads padded rows 2i..2i+2 and columns 2j..2j+2, i.e. image rows 2i-1..2i+1 (row -1 and
# row 5 are the zero padding). Each row lists its window row by row (columns ordered KH, KW, C; one channel).
by_hand = np.array([
    [0, 0, 0, 0, 1, 2, 0, 6, 7],            # (0, 0): the top-left corner, 5 of its 9 entries are padding
    [0, 0, 0, 2, 3, 4, 7, 8, 9],            # (0, 1)
    [0, 0, 0, 4, 5, 0, 9, 10, 0],           # (0, 2)
    [0, 6, 7, 0, 11, 12, 0, 16, 17],        # (1, 0)
    [7, 8, 9, 12, 13, 14, 17, 18, 19],      # (1, 1): the only window without padding
    [9, 10, 0, 14, 15, 0, 19, 20, 0],       # (1, 2)
    [0, 16, 17, 0, 21, 22, 0, 0, 0],        # (2, 0)
    [17, 18, 19, 22, 23, 24, 0, 0, 0],      # (2, 1)
    [19, 20, 0, 24, 25, 0, 0, 0, 0],        # (2, 2)
], dtype=np.float32)
cols = im2col(image, 3, 3, stride=2, padding=1)
print(cols.astype(int))
np.testing.assert_array_equal(cols, by_hand)
print(f"im2col gives the matrix by hand: {cols.shape}; {int((by_hand == 0).sum())} of its 81 entries are padding")
