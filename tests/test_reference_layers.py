"""Reference beside fast: ``Conv2d`` gives ``ReferenceConv2d``'s numbers, and the reference passes a gradient check.

``ReferenceConv2d`` is the plain im2col convolution a learner reads; ``Conv2d`` changes layouts, reuses buffers
and computes the stride-1 input gradient as a convolution. Both sum the same products in different orders, so
they agree to rounding: about 1e-12 relative in float64, 1e-5 in float32.
"""

import numpy as np
import pytest

from minilottery.backend import to_device, to_numpy
from minilottery.gradcheck import both_errors, check_layer
from minilottery.layers import Conv2d, ReferenceConv2d
from tests.helpers import on_device

# (in_channels, out_channels, kernel_size, stride, padding, (H, W)); the comments name Conv2d's dx path
CONFIGS = [
    (3, 4, 3, 1, 1, (8, 8)),  # Conv-2's layer shape: dx as a convolution
    (3, 4, 3, 1, 0, (7, 6)),  # no padding, non-square input
    (2, 5, 3, 1, 2, (6, 7)),  # padding 2 with a 3x3 kernel: dx as a convolution with no padding
    (1, 6, 5, 1, 2, (9, 9)),  # kernel 5
    (2, 3, 5, 1, 0, (8, 7)),  # kernel 5, no padding
    (4, 2, 5, 2, 1, (11, 10)),  # kernel 5, stride 2: col2im
    (2, 3, 3, 2, 0, (9, 8)),  # stride 2: col2im
    (5, 8, 3, 2, 2, (9, 8)),  # stride 2, padding 2: col2im
    (2, 3, (3, 2), 1, 1, (7, 6)),  # non-square kernel, stride 1: col2im
    (3, 2, (2, 3), 2, 1, (7, 9)),  # non-square kernel, stride 2: col2im
    (3, 2, 2, 1, 2, (5, 5)),  # padding >= kernel: col2im
    (16, 8, 3, 1, 1, (6, 6)),  # more channels
]
BATCH = 3
TOLERANCE = {np.float64: 1e-12, np.float32: 1e-5}


def make_pair(config, dtype, masked, device):
    """A ReferenceConv2d and a Conv2d with the same weights, nonzero biases and (optionally) the same mask."""
    c, f, kernel, stride, padding, _ = config
    rng = np.random.default_rng(0)
    bias = rng.standard_normal(f)
    mask = rng.random((f, c) + ((kernel, kernel) if isinstance(kernel, int) else kernel)) > 0.5
    layers = []
    for cls in (ReferenceConv2d, Conv2d):
        layer = cls(c, f, kernel, stride, padding, rng=np.random.default_rng(1), dtype=dtype)
        layer.params["b"] = bias.astype(dtype)
        if masked:
            layer.set_mask("W", mask)
        layers.append(on_device(layer, device))
    return layers[0], layers[1], mask


def assert_close(got, expected, dtype):
    """Agreement to ``TOLERANCE[dtype]`` relative to the largest entry (entries near 0 come from cancellation)."""
    got, expected = to_numpy(got), to_numpy(expected)
    assert got.dtype == expected.dtype == dtype
    assert got.shape == expected.shape
    scale = float(np.abs(expected).max())
    np.testing.assert_allclose(got, expected, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype] * scale)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_fast_conv_matches_reference(device, config, masked, dtype):
    reference, fast, mask = make_pair(config, dtype, masked, device)
    c, _, _, _, _, (h, w) = config
    rng = np.random.default_rng(2)
    x = to_device(rng.standard_normal((BATCH, c, h, w)).astype(dtype), device)
    y_ref, y = reference.forward(x), fast.forward(x)
    assert_close(y, y_ref, dtype)
    dout = to_device(rng.standard_normal(y_ref.shape).astype(dtype), device)
    dx_ref, dx = reference.backward(dout), fast.backward(dout)
    assert_close(dx, dx_ref, dtype)
    for name in ("W", "b"):
        assert_close(fast.grads[name], reference.grads[name], dtype)
    if masked:  # pruned weights: exactly zero gradient in both
        assert np.all(to_numpy(reference.grads["W"])[~mask] == 0.0)
        assert np.all(to_numpy(fast.grads["W"])[~mask] == 0.0)


@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
@pytest.mark.parametrize("config", CONFIGS[:1] + CONFIGS[3:4] + CONFIGS[5:6] + CONFIGS[8:9], ids=str)
def test_reference_conv_passes_gradient_check(device, config, masked):
    reference, _, _ = make_pair(config, np.float64, masked, device)
    c, _, _, _, _, (h, w) = config
    x = np.random.default_rng(3).standard_normal((2, c, h, w))
    errors = check_layer(reference, to_device(x, device), error=both_errors)  # (whole-array, worst-element)
    assert set(errors) == {"x", "W", "b"}
    # Tolerances as in test_gradcheck.py: measured at most 1.2e-9 whole-array and 7.4e-7 worst-element error.
    assert all(whole < 1e-8 and worst < 1e-5 for whole, worst in errors.values()), errors


def test_reference_conv_without_input_grad_gives_the_same_parameter_gradients(device):
    reference, _, _ = make_pair(CONFIGS[0], np.float64, True, device)
    rng = np.random.default_rng(4)
    x = to_device(rng.standard_normal((BATCH, 3, 8, 8)), device)
    dout = to_device(rng.standard_normal((BATCH, 4, 8, 8)), device)
    reference.forward(x)
    assert reference.backward(dout) is not None
    full = {name: to_numpy(grad).copy() for name, grad in reference.grads.items()}  # a copy on every device
    reference.forward(x)
    assert reference.backward(dout, input_grad=False) is None
    for name, grad in reference.grads.items():
        np.testing.assert_array_equal(to_numpy(grad), full[name])


def test_reference_conv_cache_is_not_overwritten_by_a_later_forward():
    reference, _, _ = make_pair(CONFIGS[0], np.float64, True, "cpu")
    rng = np.random.default_rng(5)
    y1 = reference.forward(rng.standard_normal((BATCH, 3, 8, 8)))
    y1_before = y1.copy()
    first_cache = reference._cache
    first_cache_before = [np.array(a) for a in first_cache]
    reference.set_mask("W", rng.random((4, 3, 3, 3)) > 0.5)
    reference.forward(rng.standard_normal((BATCH, 3, 8, 8)))
    np.testing.assert_array_equal(y1, y1_before)
    for array, before in zip(first_cache, first_cache_before):
        np.testing.assert_array_equal(np.array(array), before)


def test_both_convolutions_share_arguments_and_parameters():
    reference, fast, _ = make_pair(CONFIGS[9], np.float32, False, "cpu")
    for name in ("W", "b"):
        assert reference.params[name].shape == fast.params[name].shape
        assert reference.params[name].dtype == fast.params[name].dtype == np.float32
        np.testing.assert_array_equal(reference.params[name], fast.params[name])
    assert reference.params["W"].shape == (2, 3, 2, 3)
    assert repr(reference) == "Reference" + repr(fast)


@pytest.mark.parametrize("cls", [ReferenceConv2d, Conv2d])
@pytest.mark.parametrize(
    "kwargs,pattern",
    [
        ({"padding": -1}, r"padding must be a non-negative int, got -1"),
        ({"stride": 0}, r"stride must be a positive int, got 0"),
        ({"kernel_size": (3, 3, 3)}, r"kernel_size must be an int or a pair of ints"),
        ({"kernel_size": 0}, r"channels and kernel_size must be positive"),
    ],
)
def test_both_convolutions_refuse_the_same_arguments(cls, kwargs, pattern):
    arguments = {"in_channels": 1, "out_channels": 2, "kernel_size": 3, **kwargs}
    with pytest.raises(ValueError, match=rf"^{cls.__name__}\(1, 2, .*{pattern}"):
        cls(**arguments)


@pytest.mark.parametrize("cls", [ReferenceConv2d, Conv2d])
@pytest.mark.parametrize(
    "shape,pattern",
    [
        ((1, 2, 5, 5), r"3 input channels.*\(1, 2, 5, 5\)"),
        ((1, 5, 5), r"4-D.*\(1, 5, 5\)"),
        ((1, 3, 2, 2), r"kernel 3x3 is larger than the padded input 2x2"),
    ],
)
def test_both_convolutions_refuse_the_same_inputs(cls, shape, pattern):
    with pytest.raises(ValueError, match=rf"^{cls.__name__}\(3, 2, .*{pattern}"):
        cls(3, 2, 3).forward(np.zeros(shape, np.float32))
