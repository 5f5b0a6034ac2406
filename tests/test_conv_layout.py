"""Memory layouts in the convolution path: im2col_transposed, Conv2d's channel-major output, MaxPool2d's dx.

The layouts change only speed, never values: every layer must give the same numbers for any input layout, and
pass its own layout on (so that the next layer's reshapes are free views instead of transposing copies).
"""

import numpy as np
import pytest

from minilottery.backend import get_array_module, to_device, to_numpy
from minilottery.layers import Conv2d, MaxPool2d, ReLU, Sequential, im2col
from minilottery.layers.im2col import im2col_transposed
from tests.helpers import on_device

# (N, C, H, W) -> the same values stored as NCHW, channels-last (N, H, W, C) and channel-major (C, N, H, W), on
# the array's own device (moving a strided host array to a device need not keep its layout)
LAYOUTS = {
    "nchw": lambda a: get_array_module(a).ascontiguousarray(a),
    "channels_last": lambda a: get_array_module(a).ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2),
    "channel_major": lambda a: get_array_module(a).ascontiguousarray(a.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("kh,kw,stride,padding", [(3, 3, 1, 0), (3, 3, 1, 1), (3, 2, 2, 1), (2, 2, 3, 2)])
def test_im2col_transposed_is_im2col_transposed(device, layout, kh, kw, stride, padding):
    x = np.random.default_rng(0).standard_normal((2, 3, 7, 6))
    expected = im2col(x, kh, kw, stride, padding).T  # (KH*KW*C, N*OH*OW), on the host from an NCHW x
    x_dev = LAYOUTS[layout](to_device(x, device))
    got = im2col_transposed(x_dev, kh, kw, stride, padding)
    assert got.shape == expected.shape
    np.testing.assert_array_equal(to_numpy(got), expected)
    buffer = to_device(np.full(expected.shape, np.nan), device)  # a used buffer: every entry must be written
    assert im2col_transposed(x_dev, kh, kw, stride, padding, out=buffer) is buffer
    np.testing.assert_array_equal(to_numpy(buffer), expected)


def test_conv_output_is_channel_major_and_passes_through_relu(device):
    rng = np.random.default_rng(1)
    conv = on_device(Conv2d(3, 5, 3, padding=1, rng=rng), device)
    y = conv.forward(to_device(rng.standard_normal((4, 3, 6, 6)).astype(np.float32), device))
    assert y.shape == (4, 5, 6, 6)
    assert y.transpose(1, 0, 2, 3).flags.c_contiguous  # an NCHW view of (F, N, OH, OW) memory
    assert ReLU().forward(y).transpose(1, 0, 2, 3).flags.c_contiguous  # element-wise layers keep it


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_conv_gradients_do_not_depend_on_layouts(device, layout):
    """A layout of x and dout on any device gives the numbers of NCHW arrays on the CPU."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 4, 7, 7))
    dout = rng.standard_normal((3, 5, 7, 7))
    reference = Conv2d(4, 5, 3, padding=1, rng=np.random.default_rng(3), dtype=np.float64)
    other = on_device(Conv2d(4, 5, 3, padding=1, rng=np.random.default_rng(3), dtype=np.float64), device)
    y_ref = reference.forward(x)
    dx_ref = reference.backward(dout)
    y = other.forward(LAYOUTS[layout](to_device(x, device)))
    dx = other.backward(LAYOUTS[layout](to_device(dout, device)))
    np.testing.assert_allclose(to_numpy(y), y_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(to_numpy(dx), dx_ref, rtol=1e-12, atol=1e-12)
    for key in ("W", "b"):
        np.testing.assert_allclose(to_numpy(other.grads[key]), reference.grads[key], rtol=1e-12, atol=1e-12)
        assert other.grads[key].flags.c_contiguous


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("kernel,stride", [(2, None), (3, 2), (2, 1)])
def test_maxpool_dx_takes_the_inputs_layout(device, layout, kernel, stride):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 7, 6))  # 7x6: a 2x2 pool leaves the last row uncovered (its dx must be 0)
    dout_shape = MaxPool2d(kernel, stride).forward(x).shape
    dout = rng.standard_normal(dout_shape)
    pool, reference = MaxPool2d(kernel, stride), MaxPool2d(kernel, stride)
    expected_y, expected_dx = reference.forward(x), reference.backward(dout)  # NCHW on the CPU
    x_dev = LAYOUTS[layout](to_device(x, device))
    y = pool.forward(x_dev)
    dx = pool.backward(to_device(dout, device))  # dout NCHW, as Flatten passes it
    np.testing.assert_array_equal(to_numpy(y), expected_y)
    np.testing.assert_array_equal(to_numpy(dx), expected_dx)
    order = sorted(range(4), key=lambda axis: -x_dev.strides[axis])  # x's axes, outermost in memory first
    assert dx.transpose(order).flags.c_contiguous


def test_conv_relu_pool_stack_matches_across_layouts_of_its_input(device):
    rng = np.random.default_rng(5)
    net = Sequential(Conv2d(2, 4, 3, padding=1, rng=rng, dtype=np.float64), ReLU(), MaxPool2d(2),
                     Conv2d(4, 3, 3, rng=rng, dtype=np.float64))
    x = rng.standard_normal((2, 2, 8, 8))
    expected = net.forward(x)  # NCHW on the CPU
    net_dev = on_device(net, device)
    for layout in sorted(LAYOUTS):
        out = to_numpy(net_dev.forward(LAYOUTS[layout](to_device(x, device))))
        np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12, err_msg=layout)


@pytest.mark.parametrize("stride", [1, 2], ids=["dx_as_convolution", "dx_by_col2im"])
def test_conv_output_and_dx_are_not_overwritten_by_the_next_step(device, stride):
    """Conv2d reuses scratch buffers between steps, but never returns one: y and dx stay as they were."""
    rng = np.random.default_rng(6)
    conv = on_device(Conv2d(3, 4, 3, stride=stride, padding=1, rng=rng, dtype=np.float64), device)
    x1, x2 = (to_device(rng.standard_normal((2, 3, 7, 7)), device) for _ in range(2))
    y1 = conv.forward(x1)
    dx1 = conv.backward(to_device(rng.standard_normal(y1.shape), device))
    y1_before, dx1_before = to_numpy(y1).copy(), to_numpy(dx1).copy()  # to_numpy of a host array is itself
    y2 = conv.forward(x2)
    conv.backward(to_device(rng.standard_normal(y2.shape), device))
    np.testing.assert_array_equal(to_numpy(y1), y1_before)
    np.testing.assert_array_equal(to_numpy(dx1), dx1_before)
