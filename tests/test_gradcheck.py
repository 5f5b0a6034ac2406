"""Finite-difference proof of every backward pass (relative error < 1e-6), on every device under test."""

import numpy as np
import pytest

from minilottery.backend import to_device
from minilottery.gradcheck import away_from_zero, check_layer, check_loss, check_model, numerical_vjp, rel_error
from minilottery.layers import Conv2d, Dense, Dropout, Flatten, MaxPool2d, ReLU, Sequential
from tests.conftest import on_device

TOL = 1e-6


def assert_all_small(errors):
    assert errors and all(err < TOL for err in errors.values()), errors


def test_dense(device):
    rng = np.random.default_rng(0)
    errors = check_layer(on_device(Dense(7, 5, rng=rng), device), to_device(rng.standard_normal((4, 7)), device))
    assert set(errors) == {"x", "W", "b"}
    assert_all_small(errors)


@pytest.mark.parametrize("stride,padding", [(1, 0), (1, 1), (2, 0), (2, 1)])
def test_conv2d(device, stride, padding):
    rng = np.random.default_rng(1)
    layer = Conv2d(3, 4, 3, stride=stride, padding=padding, rng=rng)
    x = rng.standard_normal((2, 3, 7, 5))  # odd, non-square sizes
    errors = check_layer(on_device(layer, device), to_device(x, device))
    assert set(errors) == {"x", "W", "b"}
    assert_all_small(errors)


def test_conv2d_rectangular_kernel(device):
    rng = np.random.default_rng(2)
    layer = Conv2d(2, 3, (3, 2), stride=2, padding=1, rng=rng)
    assert_all_small(check_layer(on_device(layer, device), to_device(rng.standard_normal((2, 2, 5, 6)), device)))


@pytest.mark.parametrize("kernel,stride", [(2, None), (3, 2), (2, 1)])
def test_maxpool(device, kernel, stride):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 7, 6))  # continuous values: no ties in any window
    assert_all_small(check_layer(MaxPool2d(kernel, stride), to_device(x, device)))


def test_relu(device):
    rng = np.random.default_rng(4)
    x = away_from_zero(rng.standard_normal((3, 4, 5)))
    assert_all_small(check_layer(ReLU(), to_device(x, device)))


def test_flatten(device):
    rng = np.random.default_rng(5)
    assert_all_small(check_layer(Flatten(), to_device(rng.standard_normal((2, 3, 4, 5)), device)))


class _FrozenRng:
    """Same draws every call, so finite differences see one fixed dropout mask."""

    def __init__(self, seed):
        self.seed = seed

    def random(self, shape):
        return np.random.default_rng(self.seed).random(shape)


def test_dropout_training(device):
    rng = np.random.default_rng(6)
    assert_all_small(check_layer(Dropout(0.4, rng=_FrozenRng(0)), to_device(rng.standard_normal((4, 6)), device)))


def test_loss(device):
    rng = np.random.default_rng(7)
    logits = to_device(rng.standard_normal((5, 4)) * 3, device)
    labels = to_device(np.array([0, 3, 1, 1, 2]), device)
    assert check_loss(logits, labels) < TOL


def test_masked_conv_dense_network(device):
    rng = np.random.default_rng(8)
    model = Sequential(
        Conv2d(1, 3, 3, padding=1, rng=rng), ReLU(), MaxPool2d(2),
        Conv2d(3, 2, 3, stride=2, padding=1, rng=rng), ReLU(), Flatten(),
        Dense(2 * 2 * 2, 6, rng=rng), ReLU(), Dense(6, 3, rng=rng),
    )
    model.set_masks({
        "0.W": rng.random((3, 1, 3, 3)) > 0.3,
        "3.W": rng.random((2, 3, 3, 3)) > 0.3,
        "6.W": rng.random((6, 8)) > 0.5,
        "8.W": rng.random((3, 6)) > 0.5,
    })
    # Non-zero biases keep units whose every input is pruned (output = bias) away from ReLU's kink at 0.
    for name, value in model.parameters().items():
        if name.endswith(".b"):
            model.set_parameter(name, rng.uniform(0.1, 0.5, value.shape) * rng.choice([-1, 1], value.shape))
    x = to_device(rng.standard_normal((3, 1, 7, 7)), device)
    labels = to_device(np.array([0, 2, 1]), device)
    errors = check_model(on_device(model, device), x, labels)
    assert set(errors) == {"x"} | set(model.parameters())
    assert_all_small(errors)


def test_check_catches_a_wrong_backward():
    """The check can fail: a Dense whose backward forgets a transpose is reported with a large error."""

    class BrokenDense(Dense):
        def backward(self, dout):
            dx = super().backward(dout)
            self.grads["W"] = self.grads["W"] * 1.01  # 1% off
            return dx

    rng = np.random.default_rng(9)
    errors = check_layer(BrokenDense(4, 4, rng=rng), rng.standard_normal((3, 4)))
    assert errors["x"] < TOL and errors["W"] > 1e-3


def test_rel_error_floor_handles_zero_gradients():
    zeros = np.zeros(3)
    assert rel_error(zeros, zeros) == 0.0
    assert rel_error(np.ones(3), np.ones(3)) == 0.0


def test_numerical_vjp_restores_its_input():
    a = np.array([1.0, 2.0, 3.0])
    before = a.copy()
    grad = numerical_vjp(lambda: a ** 2, a, np.ones(3))
    np.testing.assert_array_equal(a, before)
    np.testing.assert_allclose(grad, 2 * before, rtol=1e-8)
