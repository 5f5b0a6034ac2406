"""Optimizers: hand-computed references, pruned weights staying pruned while training, dtypes, devices, bad input."""


import numpy as np
import pytest

from minilottery.backend import device_of, to_device, to_numpy
from minilottery.layers import Conv2d, Dense, Flatten, ReLU, Sequential
from minilottery.loss import softmax_cross_entropy
from minilottery.optim import OPTIMIZERS, SGD, Adam, make_optimizer
from tests.helpers import on_device

# -- (1) each update rule against the equations, written out in float64 -----------------------------------

CURVATURE = {"0.W": 1.5, "0.b": 0.5}  # gradient of a quadratic bowl: g = c * (p - target)


def _tiny_model(masked, dtype=np.float32):
    """Dense(3, 2) with fixed weights; optionally its W half-pruned (with pruned weights non-zero)."""
    model = Sequential(Dense(3, 2, rng=np.random.default_rng(0), dtype=dtype))
    model.load_state_dict({"0.W": np.array([[0.5, -1.0, 2.0], [1.5, -0.25, 0.75]]), "0.b": np.array([0.3, -0.6])})
    if masked:
        model.set_masks({"0.W": np.array([[1, 0, 1], [0, 1, 1]])})
    return model


def _set_quadratic_grads(model, targets):
    """Sets layer grads (unmasked, so the optimizer alone must apply the mask) for the bowl around targets
    (host arrays, moved to the parameters' device)."""
    layer = model.layers[0]
    for key in ("W", "b"):
        p = layer.params[key]
        target = to_device(targets[f"0.{key}"], device_of(p))
        layer.grads[key] = (CURVATURE[f"0.{key}"] * (p - target)).astype(p.dtype)


def _reference(kind, opts, params, masks, targets, steps):
    """The update equations in float64, one parameter at a time."""
    params = {k: v.astype(np.float64) for k, v in params.items()}
    buf = {k: np.zeros_like(v) for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v2 = {k: np.zeros_like(v) for k, v in params.items()}
    wd = opts.get("weight_decay", 0.0)
    for t in range(1, steps + 1):
        for k, p in params.items():
            mask = masks.get(k, np.ones_like(p))
            g = CURVATURE[k] * (p - targets[k])
            d = (g + wd * p) * mask
            if kind == "sgd":
                mu = opts.get("momentum", 0.0)
                buf[k] = mu * buf[k] + d
                if opts.get("nesterov"):
                    update = d + mu * buf[k]
                else:
                    update = buf[k] if mu else d
                params[k] = (p - LR * update) * mask
            else:
                (b1, b2), eps = opts.get("betas", (0.9, 0.999)), opts.get("eps", 1e-8)
                m[k] = b1 * m[k] + (1 - b1) * d
                v2[k] = b2 * v2[k] + (1 - b2) * d * d
                m_hat, v_hat = m[k] / (1 - b1**t), v2[k] / (1 - b2**t)
                params[k] = (p - LR * m_hat / (np.sqrt(v_hat) + eps)) * mask
    return params


LR = 0.1
CASES = [
    ("sgd", {}),
    ("sgd", {"momentum": 0.9}),
    ("sgd", {"momentum": 0.9, "nesterov": True}),
    ("sgd", {"weight_decay": 0.05}),
    ("sgd", {"momentum": 0.8, "nesterov": True, "weight_decay": 0.05}),
    ("adam", {}),
    ("adam", {"weight_decay": 0.05}),
    ("adam", {"betas": (0.8, 0.99), "eps": 1e-6}),
    ("adam", {"betas": (0.5, 0.9), "eps": 1e-3, "weight_decay": 0.05}),
]


# float64 checks the equations to rounding; float32 (how we train) to rtol 1e-6, plus an atol of about one
# float32 ulp of the O(1) weights, because a weight that lands near 0 (e.g. 0.3 - 0.2976) keeps only the
# absolute precision of the numbers it was computed from.
TOLERANCES = {np.float64: (1e-10, 0.0), np.float32: (1e-6, 1e-7)}


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("masked", [False, True], ids=["dense", "masked"])
@pytest.mark.parametrize("kind,opts", CASES, ids=[f"{k}-{'-'.join(o) or 'plain'}" for k, o in CASES])
def test_update_matches_hand_computed_reference(device, kind, opts, masked, dtype):
    host_model = _tiny_model(masked, dtype)
    targets = {"0.W": np.array([[1.0, 1.0, -1.0], [0.0, 2.0, 0.5]]), "0.b": np.array([-0.5, 0.5])}
    start = host_model.state_dict()
    masks = {k: v.astype(np.float64) for k, v in host_model.masks().items()}
    expected = _reference(kind, opts, start, masks, targets, steps=3)
    model = on_device(host_model, device)
    opt = make_optimizer(kind, model, LR, **opts)
    for _ in range(3):
        _set_quadratic_grads(model, targets)
        opt.step()
    rtol, atol = TOLERANCES[dtype]
    for name, value in model.parameters().items():
        value = to_numpy(value)
        assert value.dtype == dtype
        np.testing.assert_allclose(value, expected[name], rtol=rtol, atol=atol, err_msg=name)
        assert not np.array_equal(value, start[name]), f"{name} did not move"


# -- (2) pruned weights stay pruned over real training ------------------------------------------------------


def _net_and_data():
    """A small conv + dense net on a learnable 3-class problem, half of each weight tensor pruned."""
    rng = np.random.default_rng(1)
    model = Sequential(Conv2d(1, 4, 3, rng=rng), ReLU(), Flatten(), Dense(4 * 6 * 6, 3, rng=rng))
    x = rng.standard_normal((48, 1, 8, 8)).astype(np.float32)
    y = (x.reshape(48, 64) @ rng.standard_normal((64, 3))).argmax(axis=1)  # (48,) labels a net can fit
    masks = {name: (rng.random(p.shape) < 0.5).astype(np.float32)
             for name, p in model.parameters().items() if name.endswith(".W")}
    model.set_masks(masks)
    return model, x, y, masks


def _train_step(model, opt, x, y):
    loss, dlogits = softmax_cross_entropy(model(x), y)
    model.backward(dlogits)
    opt.step()
    return loss


MASK_CASES = [
    ("sgd", {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    ("sgd", {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.01}),
    ("adam", {"lr": 3e-3, "weight_decay": 0.01}),
]


@pytest.mark.parametrize("start", ["pruned_nonzero", "pruned_zero"])
@pytest.mark.parametrize("kind,opts", MASK_CASES, ids=[f"{k}-{'-'.join(o)}" for k, o in MASK_CASES])
def test_pruned_weights_stay_exactly_zero_while_training(device, kind, opts, start):
    model, x, y, masks = _net_and_data()
    if start == "pruned_zero":
        model.load_state_dict({k: v * masks.get(k, 1) for k, v in model.state_dict().items()})
    initial = model.state_dict()
    # the usual IMP situation "pruned_nonzero": masks attached, the weights themselves not yet zeroed
    assert start == "pruned_zero" or all((initial[k][m == 0] != 0).all() for k, m in masks.items())
    model = on_device(model, device)
    x_dev, y_dev = to_device(x, device), to_device(y, device)
    opts = dict(opts)
    opt = make_optimizer(kind, model, opts.pop("lr"), **opts)
    losses = []
    for step in range(300):
        losses.append(float(_train_step(model, opt, x_dev, y_dev)))
        params = model.state_dict()
        for name, mask in masks.items():
            pruned = mask == 0
            assert (params[name][pruned] == 0.0).all(), f"step {step}: pruned weights of {name} are not 0.0"
            for key, value in opt.state[name].items():
                if key != "step":
                    assert (to_numpy(value)[pruned] == 0.0).all(), f"step {step}: state[{name!r}][{key!r}] leaked"
    for name, mask in masks.items():
        changed = params[name] != initial[name]
        assert changed[mask == 1].mean() > 0.9, f"unpruned weights of {name} barely changed"
    assert losses[-1] < 0.5 * losses[0], f"loss did not decrease: {losses[0]:.4f} -> {losses[-1]:.4f}"


@pytest.mark.parametrize("kind", OPTIMIZERS)
def test_optimizer_masks_gradient_itself(device, kind):
    """Even a gradient that backward did not mask (e.g. a hand-set one) leaves pruned weights and state at 0."""
    host_model = _tiny_model(masked=True)
    mask = host_model.masks()["0.W"] == 0
    model = on_device(host_model, device)
    opt = make_optimizer(kind, model, 0.1, **({"momentum": 0.9} if kind == "sgd" else {}))
    rng = np.random.default_rng(3)
    for _ in range(5):
        for key, p in model.layers[0].params.items():
            model.layers[0].grads[key] = to_device(rng.standard_normal(p.shape).astype(np.float32), device)
        opt.step()
    params = model.state_dict()  # host copies
    assert (params["0.W"][mask] == 0.0).all()
    for key, value in opt.state["0.W"].items():
        if key != "step":
            assert (to_numpy(value)[mask] == 0.0).all(), key
    assert (params["0.b"] != 0).all()  # biases are never masked


# -- (3) dtypes, devices, reset ---------------------------------------------------------------------------


def _three_float32_steps(model, x, y, kind, opts, device):
    """A copy of ``model`` trained for three steps on ``device``; asserts float32 params, state and scratch."""
    opts = dict(opts)
    lr = opts.pop("lr")
    net = on_device(model, device)
    opt = make_optimizer(kind, net, lr, **opts)
    for _ in range(3):
        _train_step(net, opt, to_device(x, device), to_device(y, device))
    for name, p in net.parameters().items():
        assert p.dtype == np.float32, name
        for key, value in opt.state[name].items():
            assert key == "step" or value.dtype == np.float32, (name, key)
        for value in opt._scratch.get(name, ()):  # none when the compiled loop ran
            assert value.dtype == np.float32, name
    return net.state_dict()


@pytest.mark.parametrize("kind,opts", MASK_CASES, ids=[f"{k}-{'-'.join(o)}" for k, o in MASK_CASES])
def test_float32_kept(device, kind, opts):
    model, x, y, _ = _net_and_data()
    _three_float32_steps(model, x, y, kind, opts, device)


@pytest.mark.parametrize("kind,opts", MASK_CASES, ids=[f"{k}-{'-'.join(o)}" for k, o in MASK_CASES])
def test_devices_agree_with_cpu(device, kind, opts):
    if device == "cpu":
        pytest.skip("the CPU is the reference: comparing it with itself proves nothing")
    model, x, y, _ = _net_and_data()
    reference = _three_float32_steps(model, x, y, kind, opts, "cpu")
    on_device_result = _three_float32_steps(model, x, y, kind, opts, device)
    assert set(on_device_result) == set(reference)
    for name in reference:
        np.testing.assert_allclose(on_device_result[name], reference[name], rtol=1e-5, atol=1e-6, err_msg=name)


def test_reset_clears_state_and_restarts_adam_bias_correction():
    model = _tiny_model(masked=False)
    targets = {"0.W": np.zeros((2, 3)), "0.b": np.zeros(2)}
    opt = Adam(model, lr=0.1)
    _set_quadratic_grads(model, targets)
    opt.step()
    _set_quadratic_grads(model, targets)
    opt.step()
    assert opt.state["0.W"]["step"] == 2
    opt.reset()
    assert opt.state == {}
    before = model.state_dict()
    _set_quadratic_grads(model, targets)
    opt.step()
    # a fresh first Adam step moves every coordinate by lr * sign(g) (up to eps)
    np.testing.assert_allclose(np.abs(model.parameters()["0.W"] - before["0.W"]), 0.1, rtol=1e-5)


def test_state_mismatch_after_moving_the_model_says_reset():
    model = _tiny_model(masked=False)
    opt = SGD(model, lr=0.1, momentum=0.9)
    _set_quadratic_grads(model, {"0.W": np.zeros((2, 3)), "0.b": np.zeros(2)})
    opt.step()
    model.astype(np.float64)
    _set_quadratic_grads(model, {"0.W": np.zeros((2, 3)), "0.b": np.zeros(2)})
    with pytest.raises(ValueError, match=r"optimizer\.reset\(\)"):
        opt.step()


def test_state_made_on_the_cpu_does_not_fit_a_model_moved_to_a_device(device):
    if device == "cpu":
        pytest.skip("the model must move to another device than the CPU")
    model = _tiny_model(masked=False)
    targets = {"0.W": np.zeros((2, 3)), "0.b": np.zeros(2)}
    opt = SGD(model, lr=0.1, momentum=0.9)
    _set_quadratic_grads(model, targets)
    opt.step()
    model.to(device)
    _set_quadratic_grads(model, targets)
    with pytest.raises(ValueError, match=rf"state for '0\.W' .* on cpu, but the parameter is now float32 \(2, 3\) "
                                         rf"on {device}; call optimizer\.reset\(\)"):
        opt.step()


# -- (5) bad input ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind,kwargs,pattern", [
    ("adamw", {}, r"unknown optimizer 'adamw': expected one of sgd, adam"),
    ("sgd", {"lr": 0.0}, r"^lr must be"),
    ("adam", {"lr": -1e-3}, r"^lr must be"),
    ("sgd", {"lr": float("nan")}, r"^lr must be"),
    ("sgd", {"momentum": 1.0}, r"^momentum must be .*\[0\.0, 1\.0\)"),
    ("sgd", {"momentum": -0.1}, r"^momentum must be"),
    ("sgd", {"nesterov": True}, r"^nesterov=True needs momentum > 0"),
    ("sgd", {"weight_decay": -1e-4}, r"^weight_decay must be"),
    ("adam", {"weight_decay": -1e-4}, r"^weight_decay must be"),
    ("adam", {"betas": (0.9, 1.0)}, r"^betas\[1\] must be"),
    ("adam", {"eps": 0.0}, r"^eps must be"),
    ("adam", {"momentum": 0.9}, r"optimizer 'adam' does not take option\(s\) momentum: its options are betas"),
])
def test_bad_options_raise_value_error_naming_them(kind, kwargs, pattern):
    kwargs = dict(kwargs)
    lr = kwargs.pop("lr", 0.1)
    with pytest.raises(ValueError, match=pattern):
        make_optimizer(kind, _tiny_model(masked=False), lr, **kwargs)
