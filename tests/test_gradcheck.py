"""Finite-difference proof of every backward pass, on every device under test.

Each check asserts the whole-array relative error below ``TOL`` and the worst single element below
``ELEMENT_TOL``. A correct backward reaches about 1e-9 on whole arrays (at most 1.3e-9 measured over these tests
and test_reference_layers.py) and 1e-6 on single elements: an element with a small gradient carries the
rounding error of the finite difference, about 1e-16 * |f| / h, relative to that small value.
"""

import numpy as np
import pytest

from minilottery.backend import to_device
from minilottery.gradcheck import (
    away_from_zero,
    both_errors,
    check_layer,
    check_loss,
    check_model,
    max_rel_error,
    numerical_vjp,
    rel_error,
)
from minilottery.layers import Conv2d, Dense, Dropout, Flatten, MaxPool2d, ReLU, Sequential
from tests.helpers import on_device

TOL = 1e-8  # whole array; measured at most 1.3e-9
ELEMENT_TOL = 1e-5  # worst element; measured at most 7.4e-7 (3.1e-6 for the whole network, below)


def assert_all_small(check, *args, **kwargs):
    """Runs ``check`` once, with both errors; asserts both small; returns the whole-array errors."""
    errors = check(*args, error=both_errors, **kwargs)
    if not isinstance(errors, dict):  # check_loss: one array, one pair
        errors = {"logits": errors}
    whole = {name: pair[0] for name, pair in errors.items()}
    worst = {name: pair[1] for name, pair in errors.items()}
    assert whole and all(err < TOL for err in whole.values()), whole
    assert all(err < ELEMENT_TOL for err in worst.values()), worst
    return whole


def test_dense(device):
    rng = np.random.default_rng(0)
    errors = assert_all_small(check_layer, on_device(Dense(7, 5, rng=rng), device),
                              to_device(rng.standard_normal((4, 7)), device))
    assert set(errors) == {"x", "W", "b"}


@pytest.mark.parametrize("stride,padding", [(1, 0), (1, 1), (2, 0), (2, 1)])
def test_conv2d(device, stride, padding):
    rng = np.random.default_rng(1)
    layer = Conv2d(3, 4, 3, stride=stride, padding=padding, rng=rng)
    x = rng.standard_normal((2, 3, 7, 5))  # odd, non-square sizes
    errors = assert_all_small(check_layer, on_device(layer, device), to_device(x, device))
    assert set(errors) == {"x", "W", "b"}


def test_conv2d_rectangular_kernel(device):
    rng = np.random.default_rng(2)
    layer = Conv2d(2, 3, (3, 2), stride=2, padding=1, rng=rng)
    assert_all_small(check_layer, on_device(layer, device), to_device(rng.standard_normal((2, 2, 5, 6)), device))


@pytest.mark.parametrize("kernel,stride", [(2, None), (3, 2), (2, 1)])
def test_maxpool(device, kernel, stride):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 7, 6))  # continuous values: no ties in any window
    assert_all_small(check_layer, MaxPool2d(kernel, stride), to_device(x, device))


def test_relu(device):
    rng = np.random.default_rng(4)
    x = away_from_zero(rng.standard_normal((3, 4, 5)))
    assert_all_small(check_layer, ReLU(), to_device(x, device))


def test_flatten(device):
    rng = np.random.default_rng(5)
    assert_all_small(check_layer, Flatten(), to_device(rng.standard_normal((2, 3, 4, 5)), device))


class _FrozenRng:
    """Same draws every call, so finite differences see one fixed dropout mask."""

    def __init__(self, seed):
        self.seed = seed

    def random(self, shape):
        return np.random.default_rng(self.seed).random(shape)


def test_dropout_training(device):
    rng = np.random.default_rng(6)
    assert_all_small(check_layer, Dropout(0.4, rng=_FrozenRng(0)), to_device(rng.standard_normal((4, 6)), device))


def test_loss(device):
    rng = np.random.default_rng(7)
    logits = to_device(rng.standard_normal((5, 4)) * 3, device)
    labels = to_device(np.array([0, 3, 1, 1, 2]), device)
    assert_all_small(check_loss, logits, labels)


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
    # The loss is a scalar near 1, so each numeric entry carries about 1e-16 / h of rounding error, large next
    # to the small input gradients here (3.3e-5 worst element, 1.1e-8 whole dx at h = 1e-6). h = 1e-5 cuts that
    # tenfold while the O(h²) truncation error stays near 1e-10 (measured: 1.3e-9 whole, 3.1e-6 worst element).
    errors = assert_all_small(check_model, on_device(model, device), x, labels, h=1e-5)
    assert set(errors) == {"x"} | set(model.parameters())


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


def test_tolerance_catches_a_backward_off_by_one_part_in_ten_million():
    """TOL sits below the error of a gradient scaled by 1 + 1e-7 (whole-array error 5e-8), above correct code."""

    class SlightlyWrongDense(Dense):
        def backward(self, dout):
            dx = super().backward(dout)
            self.grads["W"] = self.grads["W"] * (1 + 1e-7)
            return dx

    rng = np.random.default_rng(9)
    errors = check_layer(SlightlyWrongDense(4, 4, rng=rng), rng.standard_normal((3, 4)))
    assert errors["x"] < TOL and errors["b"] < TOL and errors["W"] > TOL, errors


def test_max_rel_error_finds_one_wrong_element_that_the_norm_hides():
    numeric = np.ones(10_000)
    analytic = numeric.copy()
    numeric[0], analytic[0] = 1e-6, 2e-6  # a small entry, wrong by a factor of two
    assert rel_error(analytic, numeric) < TOL  # 1e-6 / 200: lost in the norm of 10,000 right entries
    assert max_rel_error(analytic, numeric) == pytest.approx(1 / 3)


def test_rel_error_floor_handles_zero_gradients():
    zeros = np.zeros(3)
    assert rel_error(zeros, zeros) == 0.0
    assert rel_error(np.ones(3), np.ones(3)) == 0.0
    assert max_rel_error(zeros, zeros) == 0.0
    assert max_rel_error(np.ones(3), np.ones(3)) == 0.0
    assert max_rel_error(np.zeros(0), np.zeros(0)) == 0.0  # a layer with no parameters of that kind


def test_numerical_vjp_restores_its_input():
    a = np.array([1.0, 2.0, 3.0])
    before = a.copy()
    grad = numerical_vjp(lambda: a ** 2, a, np.ones(3))
    np.testing.assert_array_equal(a, before)
    np.testing.assert_allclose(grad, 2 * before, rtol=1e-8)
