"""Winograd's convolution: the ``einsum`` transforms compose into the direct convolution, each adjoint is its
transform's transpose, the compiled loops give the transforms' numbers, and ``Conv2d`` takes the Winograd path
exactly where its rule says, with ``ReferenceConv2d``'s outputs and gradients.

Correctness only: no test here measures time. Under CI the ``fast`` extra is installed, so a missing Numba fails
the tests of the compiled loops instead of skipping them.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from minilottery import compiled
from minilottery.backend import get_array_module, to_numpy
from minilottery.layers import Conv2d, ReferenceConv2d, conv, winograd
from tests.helpers import on_device

# (input channels, output channels, H, W, padding, batch): whole and cut tiles, padding 0 to 2, 1x1 images
SHAPES = [
    (3, 4, 8, 8, 1, 2),  # 8x8 output: two whole tiles per axis
    (2, 3, 7, 9, 1, 3),  # 7x9: the last tiles cut at the edge
    (2, 3, 8, 8, 0, 2),  # no padding: 6x6 output
    (3, 2, 6, 5, 2, 2),  # padding 2: 8x7 output
    (2, 2, 1, 1, 1, 1),  # one pixel
    (4, 3, 13, 10, 1, 2),
]
TOLERANCE = {np.float64: 1e-12, np.float32: 1e-5}


def assert_close(got, expected, dtype):
    """Agreement to ``TOLERANCE[dtype]`` of the largest entry (Winograd's transforms cancel large terms)."""
    got, expected = to_numpy(got), to_numpy(expected)
    assert got.dtype == expected.dtype == dtype and got.shape == expected.shape
    scale = float(np.abs(expected).max())
    np.testing.assert_allclose(got, expected, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype] * scale)


def winograd_conv(planes, weight, bias, padding, d_out=None):
    """Forward (and, given ``d_out``, backward) of a convolution from the ``einsum`` transforms alone.

    Channel-major arrays throughout: planes (C, N, H, W) -> y (F, N, OH, OW); returns y or (y, dW, dx)."""
    c, n, h, w = planes.shape
    out_h, out_w = h + 2 * padding - 2, w + 2 * padding - 2
    tiles_h, tiles_w = winograd.tile_counts(out_h, out_w)
    v = winograd.input_transform(planes, padding, tiles_h, tiles_w)  # (36, C, tiles)
    u = winograd.weight_transform(weight)  # (36, F, C)
    y = winograd.output_transform(u @ v, bias, out_h, out_w, n)  # (36, F, tiles) -> (F, N, OH, OW)
    if d_out is None:
        return y
    d_m = winograd.output_transform_adjoint(d_out)  # (36, F, tiles)
    d_weight = winograd.weight_transform_adjoint(d_m @ v.transpose(0, 2, 1))
    dx = winograd.input_transform_adjoint(u.transpose(0, 2, 1) @ d_m, padding, tiles_h, tiles_w, planes.shape)
    return y, d_weight, dx


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_transforms_compose_into_the_direct_convolution(device, shape, dtype):
    c, f, h, w, padding, n = shape
    rng = np.random.default_rng(0)
    reference = ReferenceConv2d(c, f, 3, padding=padding, rng=rng, dtype=dtype)
    reference.params["b"] = rng.standard_normal(f).astype(dtype)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    y_ref = reference.forward(x)
    d_out = rng.standard_normal(y_ref.shape).astype(dtype)
    dx_ref = reference.backward(d_out)
    planes, d_planes = (on_device(np.ascontiguousarray(a.transpose(1, 0, 2, 3)), device) for a in (x, d_out))
    weight, bias = (on_device(reference.params[name], device) for name in ("W", "b"))
    y, d_weight, dx = winograd_conv(planes, weight, bias, padding, d_planes)
    assert get_array_module(y) is get_array_module(planes)  # stays on the device
    assert_close(to_numpy(y).transpose(1, 0, 2, 3), y_ref, dtype)
    assert_close(d_weight, reference.grads["W"], dtype)
    assert_close(to_numpy(dx).transpose(1, 0, 2, 3), dx_ref, dtype)


@pytest.mark.parametrize("shape", SHAPES)
def test_each_adjoint_is_its_transforms_transpose(shape):
    """<T a, b> == <a, T^T b> for random a and b: the backward pass differentiates exactly what forward computes."""
    c, f, h, w, padding, n = shape
    rng = np.random.default_rng(1)
    out_h, out_w = h + 2 * padding - 2, w + 2 * padding - 2
    tiles_h, tiles_w = winograd.tile_counts(out_h, out_w)
    tiles = n * tiles_h * tiles_w
    planes, d_v = rng.standard_normal((c, n, h, w)), rng.standard_normal((36, c, tiles))
    forward = winograd.input_transform(planes, padding, tiles_h, tiles_w)
    adjoint = winograd.input_transform_adjoint(d_v, padding, tiles_h, tiles_w, planes.shape)
    np.testing.assert_allclose(np.vdot(forward, d_v), np.vdot(planes, adjoint), rtol=1e-12)
    m, d_out = rng.standard_normal((36, f, tiles)), rng.standard_normal((f, n, out_h, out_w))
    forward = winograd.output_transform(m, np.zeros(f), out_h, out_w, n)
    np.testing.assert_allclose(np.vdot(forward, d_out), np.vdot(m, winograd.output_transform_adjoint(d_out)),
                               rtol=1e-12)
    weight, d_u = rng.standard_normal((f, c, 3, 3)), rng.standard_normal((36, f, c))
    np.testing.assert_allclose(np.vdot(winograd.weight_transform(weight), d_u),
                               np.vdot(weight, winograd.weight_transform_adjoint(d_u)), rtol=1e-12)


# -- the compiled loops ------------------------------------------------------------------------------------------------

needs_numba = pytest.mark.skipif(compiled._numba() is None and not os.environ.get("CI"),
                                 reason="Numba is not installed (the fast extra)")


@needs_numba
@pytest.mark.parametrize("shape", SHAPES + [(16, 8, 32, 32, 1, 3)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_compiled_transforms_equal_the_einsum_ones(shape, dtype):
    c, f, h, w, padding, n = shape
    rng = np.random.default_rng(2)
    out_h, out_w = h + 2 * padding - 2, w + 2 * padding - 2
    tiles_h, tiles_w = winograd.tile_counts(out_h, out_w)
    tiles = n * tiles_h * tiles_w
    planes = rng.standard_normal((c, n, h, w)).astype(dtype)
    v = compiled.winograd_input(planes, padding, tiles_h, tiles_w, out=np.full((36, c, tiles), np.nan, dtype))
    assert_close(v, winograd.input_transform(planes, padding, tiles_h, tiles_w), dtype)
    d_v = rng.standard_normal((36, c, tiles)).astype(dtype)
    dx = compiled.winograd_input_adjoint(d_v, padding, tiles_h, tiles_w, planes.shape)
    assert_close(dx, winograd.input_transform_adjoint(d_v, padding, tiles_h, tiles_w, planes.shape), dtype)
    m, bias = rng.standard_normal((36, f, tiles)).astype(dtype), rng.standard_normal(f).astype(dtype)
    y = compiled.winograd_output(m, bias, tiles_h, tiles_w, (f, n, out_h, out_w))
    assert_close(y, winograd.output_transform(m, bias, out_h, out_w, n), dtype)
    d_out = rng.standard_normal((f, n, out_h, out_w)).astype(dtype)
    d_m = compiled.winograd_output_adjoint(d_out, tiles_h, tiles_w, out=np.full((36, f, tiles), np.nan, dtype))
    assert_close(d_m, winograd.output_transform_adjoint(d_out), dtype)


# -- Conv2d's choice and its numbers -----------------------------------------------------------------------------------

# 30 images of 8x8: 4 tiles each, 120 in all (WINOGRAD_MIN_TILES)
BIG_ENOUGH = dict(images=30, size=8)


def _conv_pair(dtype, masked, in_channels=16, out_channels=8, padding=1):
    rng = np.random.default_rng(3)
    pair = [cls(in_channels, out_channels, 3, padding=padding, rng=np.random.default_rng(4), dtype=dtype)
            for cls in (ReferenceConv2d, Conv2d)]
    bias = rng.standard_normal(out_channels).astype(dtype)
    mask = rng.random(pair[0].params["W"].shape) > 0.5
    for layer in pair:
        layer.params["b"] = bias.copy()
        if masked:
            layer.set_mask("W", mask)
    return pair[0], pair[1], mask


@needs_numba
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("layout", ["nchw", "channel-major"])
def test_conv2d_by_winograd_gives_the_references_numbers(dtype, masked, layout):
    reference, fast, mask = _conv_pair(dtype, masked)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((BIG_ENOUGH["images"], 16, 16, 12)).astype(dtype)  # 16 channels, 4 x 3 tiles each
    if layout == "channel-major":  # as the layer before it (a convolution and a ReLU) hands it over
        x = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    assert fast.uses_winograd(x)
    y = fast.forward(x)
    assert fast._cache[0] == "winograd"  # the path taken
    y_ref = reference.forward(x)
    assert_close(y, y_ref, dtype)
    d_out = rng.standard_normal(y.shape).astype(dtype)
    assert_close(fast.backward(d_out), reference.backward(d_out), dtype)
    for name in ("W", "b"):
        assert_close(fast.grads[name], reference.grads[name], dtype)
        assert fast.grads[name].flags.c_contiguous
    if masked:
        assert np.all(fast.grads["W"][~mask] == 0)  # a pruned weight's gradient is exactly 0
    assert fast.backward(d_out, input_grad=False) is None  # the network's first layer: no dx
    fast.training = False
    fast.forward(x)
    assert fast._cache is None  # evaluation keeps nothing for a backward pass


def test_conv2d_uses_winograd_where_its_rule_says(monkeypatch):
    images, size = BIG_ENOUGH["images"], BIG_ENOUGH["size"]
    x = np.zeros((images, 16, size, size), np.float32)
    on = compiled.enabled()
    assert Conv2d(16, 8, 3, padding=1).uses_winograd(x) == on
    assert Conv2d(16, 8, 3, padding=0).uses_winograd(np.zeros((images, 16, 10, 10), np.float32)) == on  # 8x8 out
    assert not Conv2d(16, 8, 3, padding=1).uses_winograd(x[:-1])  # 116 tiles, fewer than WINOGRAD_MIN_TILES
    assert not Conv2d(3, 8, 3, padding=1).uses_winograd(x[:, :3])  # fewer than WINOGRAD_MIN_CHANNELS
    assert not Conv2d(16, 8, 3, stride=2, padding=1).uses_winograd(x)
    assert not Conv2d(16, 8, 5, padding=2).uses_winograd(x)
    assert not Conv2d(16, 8, 3, padding=1).uses_winograd(x.astype(np.float64))  # another dtype than the weight
    monkeypatch.setenv(compiled.ENV_SWITCH, "0")
    assert not Conv2d(16, 8, 3, padding=1).uses_winograd(x)
    assert conv.WINOGRAD_MIN_TILES == images * (size // 4) ** 2


def test_conv2d_off_the_winograd_path_gives_the_same_numbers(monkeypatch, device):
    """With the compiled loops off (on NumPy), on the strict backend and on CuPy, the layer runs im2col."""
    monkeypatch.setenv(compiled.ENV_SWITCH, "0")
    reference, fast, _ = _conv_pair(np.float32, masked=True)
    x = np.random.default_rng(6).standard_normal((BIG_ENOUGH["images"], 16, 16, 12)).astype(np.float32)
    fast = on_device(fast, device)
    y = fast.forward(on_device(x, device))
    assert fast._cache[0] != "winograd"
    assert_close(y, reference.forward(x), np.float32)
