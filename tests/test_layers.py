"""Layer behaviour beyond gradients: references, adjointness, masks, dtypes, device agreement, bad input."""

import copy

import numpy as np
import pytest
from scipy import signal

from minilottery.backend import to_device, to_numpy
from minilottery.layers import Conv2d, Dense, Dropout, Flatten, MaxPool2d, ReLU, Sequential, col2im, im2col
from minilottery.loss import softmax_cross_entropy
from tests.helpers import on_device


@pytest.mark.parametrize("stride,padding", [(1, 0), (1, 1), (2, 0), (2, 1), (3, 2)])
def test_conv_forward_matches_scipy_correlate(device, stride, padding):
    rng = np.random.default_rng(0)
    layer = Conv2d(3, 4, (3, 2), stride=stride, padding=padding, rng=rng)
    layer.params["b"] = rng.standard_normal(4).astype(np.float32)
    x = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    out = to_numpy(on_device(layer, device).forward(to_device(x, device)))
    xpad = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    W = layer.params["W"].astype(np.float64)
    expected = np.stack([
        np.stack([signal.correlate(xpad[n], W[f], mode="valid")[0] + layer.params["b"][f] for f in range(4)])
        for n in range(2)
    ])[:, :, ::stride, ::stride]
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("stride,padding", [(1, 0), (1, 1), (2, 1), (2, 0)])
def test_im2col_col2im_adjoint(device, stride, padding):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 7, 6))
    cols = im2col(to_device(x, device), 3, 3, stride, padding)
    y = rng.standard_normal(cols.shape)
    lhs = float((to_numpy(cols) * y).sum())
    rhs = float((x * to_numpy(col2im(to_device(y, device), x.shape, 3, 3, stride, padding))).sum())
    assert lhs == pytest.approx(rhs, rel=1e-12)


def test_dense_matches_formula_and_pytorch_layout():
    rng = np.random.default_rng(2)
    layer = Dense(5, 3, rng=rng)
    assert layer.params["W"].shape == (3, 5) and layer.params["b"].shape == (3,)
    x = rng.standard_normal((4, 5)).astype(np.float32)
    np.testing.assert_allclose(layer.forward(x), x @ layer.params["W"].T + layer.params["b"], rtol=1e-6)


def test_maxpool_forward_and_tie_routing(device):
    x = np.array([[[[1.0, 5.0, 2.0, 2.0], [3.0, 4.0, 2.0, 2.0]]]], dtype=np.float32)  # (1, 1, 2, 4)
    pool = MaxPool2d(2)
    np.testing.assert_array_equal(to_numpy(pool.forward(to_device(x, device))), [[[[5.0, 2.0]]]])
    dx = to_numpy(pool.backward(to_device(np.ones((1, 1, 1, 2), dtype=np.float32), device)))
    # the first maximum of a tied window gets the whole gradient, never split or duplicated
    np.testing.assert_array_equal(dx, [[[[0, 1, 1, 0], [0, 0, 0, 0]]]])


def test_relu_backward_does_not_mutate_dout():
    relu = ReLU()
    relu.forward(np.array([-1.0, 2.0]))
    dout = np.array([3.0, 4.0])
    relu.backward(dout)
    np.testing.assert_array_equal(dout, [3.0, 4.0])


def test_dropout_is_inverted_and_identity_in_eval():
    x = np.ones((1000, 100), dtype=np.float32)
    layer = Dropout(0.25, rng=np.random.default_rng(0))
    y = layer.forward(x)
    assert set(np.unique(y)) <= {0.0, np.float32(1 / 0.75)}
    assert abs(y.mean() - 1.0) < 0.01
    np.testing.assert_array_equal(layer.backward(x), y)  # same mask scales the gradient
    layer.training = False
    assert layer.forward(x) is x


def test_dropout_is_reproducible_from_seed():
    x = np.ones((10, 10), dtype=np.float32)
    a = Dropout(0.5, rng=np.random.default_rng(3)).forward(x)
    b = Dropout(0.5, rng=np.random.default_rng(3)).forward(x)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_preserved_end_to_end(device, dtype):
    rng = np.random.default_rng(3)
    model = Sequential(
        Conv2d(1, 2, 3, padding=1, rng=rng), ReLU(), MaxPool2d(2), Flatten(), Dropout(0.1, rng=rng),
        Dense(2 * 4 * 4, 3, rng=rng),
    ).astype(dtype)
    model = on_device(model, device)
    x = to_device(rng.standard_normal((2, 1, 8, 8)).astype(dtype), device)
    logits = model.forward(x)
    loss, dlogits = softmax_cross_entropy(logits, to_device(np.array([0, 2]), device))
    dx = model.backward(dlogits)
    assert logits.dtype == dtype and loss.dtype == dtype and dlogits.dtype == dtype and dx.dtype == dtype
    assert all(g.dtype == dtype for g in model.gradients().values())


def test_pruned_weights_get_exactly_zero_gradient_and_no_effect(device):
    rng = np.random.default_rng(4)
    layer = Dense(6, 4, rng=rng)
    mask = rng.random((4, 6)) > 0.5
    layer.set_mask("W", mask)
    layer = on_device(layer, device)
    x = to_device(rng.standard_normal((5, 6)).astype(np.float32), device)
    out = to_numpy(layer.forward(x))
    layer.backward(to_device(rng.standard_normal((5, 4)).astype(np.float32), device))
    assert np.all(to_numpy(layer.grads["W"])[~mask] == 0.0)
    W = to_numpy(layer.params["W"])
    np.testing.assert_allclose(out, to_numpy(x) @ (W * mask).T, rtol=1e-5, atol=1e-6)


def test_dense_output_and_cache_are_not_overwritten_by_a_later_forward():
    """A forward's output and cache are its own arrays: a later forward (here under the next round's mask)
    must not rewrite them, so a backward of the earlier forward still sees the weights that forward used."""
    rng = np.random.default_rng(8)
    layer = Dense(6, 4, rng=rng, dtype=np.float64)
    first_mask = rng.random((4, 6)) > 0.5
    layer.set_mask("W", first_mask)
    x1, x2 = rng.standard_normal((5, 6)), rng.standard_normal((5, 6))
    dout = rng.standard_normal((5, 4))
    y1 = layer.forward(x1)
    y1_before = y1.copy()
    first_cache = layer._cache
    first_cache_before = [a.copy() for a in first_cache]
    layer.set_mask("W", rng.random((4, 6)) > 0.5)  # the next pruning round
    layer.forward(x2)
    np.testing.assert_array_equal(y1, y1_before)
    for array, before in zip(first_cache, first_cache_before):
        np.testing.assert_array_equal(array, before)
    layer._cache = first_cache  # backward of the first forward: dx uses the weights it was computed with
    np.testing.assert_allclose(layer.backward(dout), dout @ (layer.params["W"] * first_mask), rtol=1e-12)


def test_sequential_names_and_state_dict_round_trip():
    rng = np.random.default_rng(5)
    model = Sequential(Dense(4, 3, rng=rng), ReLU(), Dense(3, 2, rng=rng))
    assert list(model.parameters()) == ["0.W", "0.b", "2.W", "2.b"]
    state = model.state_dict()
    state["0.W"][:] = 0.0  # a copy: the model is unchanged
    assert np.any(model.parameters()["0.W"] != 0.0)
    other = Sequential(Dense(4, 3, rng=rng), ReLU(), Dense(3, 2, rng=rng))
    other.load_state_dict(model.state_dict())
    for name, value in model.parameters().items():
        np.testing.assert_array_equal(other.parameters()[name], value)
    with pytest.raises(ValueError, match="missing"):
        other.load_state_dict({"0.W": state["0.W"]})


def test_every_device_matches_cpu_at_float32_tolerance(device):
    """The same training step on each device gives the CPU's loss and gradients (float32 tolerance)."""
    if device == "cpu":
        pytest.skip("the CPU is the reference: comparing it with itself proves nothing")
    rng = np.random.default_rng(6)
    model = Sequential(Conv2d(1, 4, 3, padding=1, rng=rng), ReLU(), MaxPool2d(2), Flatten(),
                       Dense(4 * 7 * 7, 10, rng=rng))
    model.set_masks({"0.W": rng.random((4, 1, 3, 3)) > 0.2})
    x = rng.random((6, 1, 14, 14)).astype(np.float32)
    y = rng.integers(0, 10, 6)

    def step(m, dev):
        loss, dlogits = softmax_cross_entropy(m.forward(to_device(x, dev)), to_device(y, dev))
        dx = m.backward(dlogits)
        return float(loss), to_numpy(dx), {k: to_numpy(v) for k, v in m.gradients().items()}

    ref = step(copy.deepcopy(model), "cpu")  # the reference
    got = step(on_device(model, device), device)  # the device under test
    assert got[0] == pytest.approx(ref[0], rel=1e-5)
    np.testing.assert_allclose(got[1], ref[1], rtol=1e-4, atol=1e-6)
    for name in ref[2]:
        np.testing.assert_allclose(got[2][name], ref[2][name], rtol=1e-4, atol=1e-6)


# -- bad input: a ValueError naming the layer, what was expected and what was given ------------------------

@pytest.mark.parametrize(
    "make,x,pattern",
    [
        (lambda: Dense(4, 3), np.zeros((2, 5), np.float32), r"Dense\(4, 3\).*\(N, 4\).*\(2, 5\)"),
        (lambda: Dense(4, 3), np.zeros((2, 2, 4), np.float32), r"Dense\(4, 3\).*2-D.*\(2, 2, 4\)"),
        (lambda: Conv2d(3, 2, 3), np.zeros((1, 2, 5, 5), np.float32),
         r"Conv2d\(3, 2.*3 input channels.*\(1, 2, 5, 5\)"),
        (lambda: Conv2d(1, 2, 3), np.zeros((1, 5, 5), np.float32), r"Conv2d.*4-D.*\(1, 5, 5\)"),
        (lambda: Conv2d(1, 2, 5, padding=1), np.zeros((1, 1, 2, 2), np.float32),
         r"Conv2d.*kernel 5x5 is larger than the padded input 4x4"),
        (lambda: MaxPool2d(3), np.zeros((1, 1, 2, 2), np.float32), r"MaxPool2d.*larger than the input 2x2"),
        (lambda: MaxPool2d(2), np.zeros((4, 4), np.float32), r"MaxPool2d.*4-D"),
    ],
)
def test_bad_input_shapes(make, x, pattern):
    with pytest.raises(ValueError, match=pattern):
        make().forward(x)


@pytest.mark.parametrize(
    "make,pattern",
    [
        (lambda: Conv2d(1, 2, 3, padding=-1), r"Conv2d.*padding must be a non-negative int, got -1"),
        (lambda: Conv2d(1, 2, 3, stride=0), r"Conv2d.*stride must be a positive int, got 0"),
        (lambda: MaxPool2d(2, stride=0), r"MaxPool2d.*stride must be positive"),
        (lambda: Dropout(1.0), r"Dropout\(p=1.0\).*\[0, 1\)"),
        (lambda: Dropout(-0.1), r"Dropout.*\[0, 1\)"),
    ],
)
def test_bad_construction(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


def test_mask_of_wrong_shape_is_refused():
    layer = Dense(4, 3)
    with pytest.raises(ValueError, match=r"Dense\(4, 3\).*mask for 'W'.*\(3, 4\), got \(4, 3\)"):
        layer.set_mask("W", np.ones((4, 3)))


def test_loss_rejects_mismatched_labels():
    with pytest.raises(ValueError, match="labels of shape \\(3,\\)"):
        softmax_cross_entropy(np.zeros((3, 10)), np.zeros(4, dtype=int))


def test_backward_without_input_grad_gives_the_same_parameter_gradients(device):
    rng = np.random.default_rng(7)
    model = Sequential(Flatten(), Dense(16, 5, rng=rng), ReLU(), Dense(5, 3, rng=rng))
    conv_model = Sequential(Conv2d(1, 2, 3, padding=1, rng=rng), ReLU(), Flatten(), Dense(2 * 16, 3, rng=rng))
    x = to_device(rng.standard_normal((4, 1, 4, 4)).astype(np.float32), device)
    y = to_device(np.array([0, 1, 2, 0]), device)
    for m in (on_device(model, device), on_device(conv_model, device)):
        _, d = softmax_cross_entropy(m.forward(x), y)
        assert m.backward(d) is not None
        full = {k: to_numpy(v).copy() for k, v in m.gradients().items()}  # to_numpy of a host array is itself
        m.forward(x)
        assert m.backward(d, input_grad=False) is None
        for name, grad in m.gradients().items():
            np.testing.assert_array_equal(to_numpy(grad), full[name])
