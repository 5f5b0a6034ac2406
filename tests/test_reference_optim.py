"""The fast optimizers (``SGD``, ``Adam``) give the numbers of the textbook ``ReferenceSGD`` and ``ReferenceAdam``."""

import numpy as np
import pytest

from minilottery.backend import to_device, to_numpy
from minilottery.optim import SGD, Adam, ReferenceAdam, ReferenceSGD

FAST = {"sgd": SGD, "adam": Adam}
REFERENCE = {"sgd": ReferenceSGD, "adam": ReferenceAdam}


class Arrays:
    """A model as an optimizer sees one: ``parameters()``, ``gradients()`` and ``masks()``, name -> array."""

    def __init__(self, params, masks):
        self.params, self.grads, self.mask_arrays = params, {}, masks

    def parameters(self):
        return self.params

    def gradients(self):
        return self.grads

    def masks(self):
        return self.mask_arrays


def _start(dtype, device="cpu"):
    """Parameters shaped like a dense weight, a bias and a conv weight; the two weights about 30% pruned, with
    pruned entries still non-zero (as when IMP attaches a mask before the weights are zeroed)."""
    rng = np.random.default_rng(0)
    shapes = {"0.W": (30, 20), "0.b": (20,), "1.W": (6, 4, 3, 3)}
    params = {name: rng.standard_normal(shape).astype(dtype) for name, shape in shapes.items()}
    masks = {name: (rng.random(params[name].shape) > 0.3).astype(dtype) for name in ("0.W", "1.W")}
    return Arrays({k: to_device(v, device) for k, v in params.items()},
                  {k: to_device(v, device) for k, v in masks.items()})


def _train(cls, opts, dtype, steps=6, device="cpu"):
    """``steps`` updates with a different gradient each step (noise plus a pull towards 0, so it also depends on
    the parameters the optimizer produced); returns host copies of the parameters and the state."""
    model = _start(dtype, device)
    opt = cls(model, 0.05, **opts)
    rng = np.random.default_rng(1)
    for _ in range(steps):
        for name, p in model.params.items():
            noise = to_device(rng.standard_normal(p.shape).astype(dtype), device)
            model.grads[name] = noise + 0.5 * p  # not masked: the optimizer must mask it itself
        opt.step()
    params = {k: to_numpy(v) for k, v in model.params.items()}
    state = {name: {key: value if key == "step" else to_numpy(value) for key, value in s.items()}
             for name, s in opt.state.items()}
    return params, state


CASES = [
    ("sgd", {}),
    ("sgd", {"weight_decay": 0.01}),
    ("sgd", {"momentum": 0.9}),
    ("sgd", {"momentum": 0.9, "weight_decay": 0.01}),
    ("sgd", {"momentum": 0.8, "nesterov": True}),
    ("sgd", {"momentum": 0.8, "nesterov": True, "weight_decay": 0.01}),
    ("adam", {}),
    ("adam", {"weight_decay": 0.01}),
    ("adam", {"betas": (0.8, 0.99), "eps": 1e-6}),
    ("adam", {"betas": (0.5, 0.9), "eps": 1e-3, "weight_decay": 0.01}),
]
IDS = [f"{kind}-{'-'.join(opts) or 'plain'}" for kind, opts in CASES]

# rtol, and an atol of that much times the largest |value|: a weight that lands near 0 keeps only the absolute
# precision of the O(1) numbers it was computed from. float64: rounding only; float32: a few float32 ulps.
TOLERANCES = {np.float64: 1e-12, np.float32: 1e-6}


def _assert_close(actual, expected, rtol, what):
    """Parameters and state of two runs agree to ``rtol`` (state keys and Adam's step counts exactly)."""
    (params_a, state_a), (params_e, state_e) = actual, expected
    assert params_a.keys() == params_e.keys() and state_a.keys() == state_e.keys(), what
    for name, value in params_e.items():
        np.testing.assert_allclose(params_a[name], value, rtol=rtol, atol=rtol * np.abs(value).max(),
                                   err_msg=f"{what}: {name}")
    for name, state in state_e.items():
        assert state_a[name].keys() == state.keys(), f"{what}: state keys of {name}"
        for key, value in state.items():
            if key == "step":
                assert state_a[name][key] == value, f"{what}: {name} step"
            else:
                np.testing.assert_allclose(state_a[name][key], value, rtol=rtol, atol=rtol * np.abs(value).max(),
                                           err_msg=f"{what}: state[{name!r}][{key!r}]")


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("kind,opts", CASES, ids=IDS)
def test_fast_equals_reference(kind, opts, dtype):
    fast = _train(FAST[kind], opts, dtype)
    reference = _train(REFERENCE[kind], opts, dtype)
    _assert_close(fast, reference, TOLERANCES[dtype], f"{kind} {opts}")
    start = _start(dtype).params
    for params, state in (fast, reference):
        for name, p in params.items():
            assert p.dtype == dtype, name
            assert not np.array_equal(p, start[name]), f"{name} did not move"
        for name, mask in _start(dtype).mask_arrays.items():
            pruned = mask == 0
            assert (params[name][pruned] == 0.0).all(), f"pruned weights of {name} are not 0.0"
            for key, value in state.get(name, {}).items():
                assert key == "step" or (value[pruned] == 0.0).all(), f"state[{name!r}][{key!r}] leaked"
                assert key == "step" or value.dtype == dtype, (name, key)


@pytest.mark.parametrize("kind,opts", [CASES[5], CASES[9]], ids=[IDS[5], IDS[9]])
def test_fast_equals_reference_on_device(device, kind, opts):
    """The reference also runs on the GPU (and the strict CuPy-like device), and agrees there."""
    fast = _train(FAST[kind], opts, np.float32, device=device)
    reference = _train(REFERENCE[kind], opts, np.float32, device=device)
    _assert_close(fast, reference, TOLERANCES[np.float32], f"{kind} {opts} on {device}")


@pytest.mark.parametrize("family", ["fast", "reference"])
@pytest.mark.parametrize("kind,opts", CASES, ids=IDS)
def test_every_option_on_device_gives_the_cpu_numbers(device, kind, opts, family):
    """Each optimizer, fast and reference, with each option (masked and unmasked parameters alike), run on
    device arrays, gives what the same optimizer gives on the CPU."""
    if device == "cpu":
        pytest.skip("the CPU is the reference: comparing it with itself proves nothing")
    cls = (FAST if family == "fast" else REFERENCE)[kind]
    on_cpu = _train(cls, opts, np.float32)
    on_dev = _train(cls, opts, np.float32, device=device)
    _assert_close(on_dev, on_cpu, TOLERANCES[np.float32], f"{cls.__name__} {opts} on {device}")


# The comparison can fail: each option, changed a little, moves the result well beyond the tolerance, so an
# optimizer that ignored it (or used it differently) would not pass test_fast_equals_reference.
CHANGES = [
    ("sgd", {"momentum": 0.9}, {"momentum": 0.89}),
    ("sgd", {"momentum": 0.9}, {"momentum": 0.9, "nesterov": True}),
    ("sgd", {"momentum": 0.9}, {"momentum": 0.9, "weight_decay": 1e-3}),
    ("adam", {}, {"betas": (0.89, 0.999)}),
    ("adam", {}, {"betas": (0.9, 0.99)}),
    ("adam", {}, {"eps": 1e-6}),
    ("adam", {}, {"weight_decay": 1e-3}),
]


@pytest.mark.parametrize("kind,opts,changed", CHANGES, ids=[f"{k}-{c}" for k, _, c in CHANGES])
def test_changing_an_option_changes_the_result(kind, opts, changed):
    reference = _train(REFERENCE[kind], opts, np.float64)
    for cls in (FAST[kind], REFERENCE[kind]):
        with pytest.raises(AssertionError):
            _assert_close(_train(cls, changed, np.float64), reference, TOLERANCES[np.float64], cls.__name__)


@pytest.mark.parametrize("kind,kwargs,pattern", [
    ("sgd", {"momentum": 1.0}, r"^momentum must be .*\[0\.0, 1\.0\)"),
    ("sgd", {"nesterov": True}, r"^nesterov=True needs momentum > 0"),
    ("adam", {"betas": (0.9, 1.0)}, r"^betas\[1\] must be"),
    ("adam", {"eps": 0.0}, r"^eps must be"),
])
def test_reference_takes_the_same_options(kind, kwargs, pattern):
    for cls in (FAST[kind], REFERENCE[kind]):
        with pytest.raises(ValueError, match=pattern):
            cls(_start(np.float32), 0.1, **kwargs)
