"""The compiled loops (minilottery.compiled) against their NumPy twins, which stay the specification.

Adam's fused loop must give ``Adam.step``'s NumPy passes bit for bit (the same float operations in the same
order), and so must its GPU kernel the CuPy passes (a test marked gpu); the sampled product and the CSR products
must give the NumPy gathers' and SciPy's numbers within float rounding (their sums run in another order), at
every batch size, whether compiled for that size or not; the max-pool loop must give ``MaxPool2d``'s window
passes, up to the sign of a zero.
Correctness only: no test here measures time. Under CI the ``fast`` extra is installed, so a missing Numba
fails these tests instead of skipping them.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from minilottery import compiled
from minilottery.backend import to_device, to_numpy
from minilottery.lab.sparse_training import sampled_product
from minilottery.layers import Dense, MaxPool2d, ReLU, Sequential
from minilottery.optim import Adam

if compiled._numba() is None:
    if os.environ.get("CI"):
        pytest.fail('Numba is missing under CI: install the fast extra (pip install -e ".[dev]")',
                    pytrace=False)
    pytest.skip("Numba is not installed (the fast extra)", allow_module_level=True)


def _adam_run(monkeypatch, switch: str, dtype, masked: bool, weight_decay: float, steps: int = 25,
              device: str = "cpu"):
    """Parameters and Adam state after ``steps`` steps of random gradients, with the compiled loops on or off."""
    monkeypatch.setenv(compiled.ENV_SWITCH, switch)
    rng = np.random.default_rng(7)
    model = Sequential(Dense(20, 30, rng=rng, dtype=dtype), ReLU(), Dense(30, 4, rng=rng, dtype=dtype))
    if masked:  # pruned weights left non-zero, so the loop must zero them itself
        model.set_masks({"0.W": rng.random((30, 20)) > 0.7, "2.W": rng.random((4, 30)) > 0.5})
    model.to(device)
    optimizer = Adam(model, lr=3e-2, weight_decay=weight_decay)
    for _ in range(steps):
        for layer in (model.layers[0], model.layers[2]):
            layer.grads = {key: to_device(rng.standard_normal(p.shape).astype(dtype), device)
                           for key, p in layer.params.items()}
        optimizer.step()
    return model, optimizer


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("masked", [True, False], ids=["masked", "unmasked"])
@pytest.mark.parametrize("weight_decay", [0.0, 1e-2], ids=["no-decay", "decay"])
def test_adam_loop_equals_numpy_passes_bit_for_bit(monkeypatch, dtype, masked, weight_decay):
    fused, fused_opt = _adam_run(monkeypatch, "1", dtype, masked, weight_decay)
    passes, passes_opt = _adam_run(monkeypatch, "0", dtype, masked, weight_decay)
    assert passes_opt._scratch != {}, "the NumPy passes did not run with the loops switched off"
    assert fused_opt._scratch == {}, "the compiled loop did not run"
    for name, value in passes.parameters().items():
        np.testing.assert_array_equal(fused.parameters()[name], value, err_msg=name)
        for key in ("m", "v"):
            np.testing.assert_array_equal(fused_opt.state[name][key], passes_opt.state[name][key],
                                          err_msg=f"{name} {key}")
        assert fused.parameters()[name].dtype == dtype


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("masked", [True, False], ids=["masked", "unmasked"])
@pytest.mark.parametrize("weight_decay", [0.0, 1e-2], ids=["no-decay", "decay"])
def test_gpu_adam_kernel_equals_cupy_passes_bit_for_bit(monkeypatch, dtype, masked, weight_decay):
    fused, fused_opt = _adam_run(monkeypatch, "1", dtype, masked, weight_decay, device="gpu")
    passes, passes_opt = _adam_run(monkeypatch, "0", dtype, masked, weight_decay, device="gpu")
    assert passes_opt._scratch != {}, "the CuPy passes did not run with the kernel switched off"
    assert fused_opt._scratch == {}, "the GPU kernel did not run"
    for name, value in passes.parameters().items():
        assert compiled.gpu_fits(value)
        np.testing.assert_array_equal(to_numpy(fused.parameters()[name]), to_numpy(value), err_msg=name)
        for key in ("m", "v"):
            np.testing.assert_array_equal(to_numpy(fused_opt.state[name][key]), to_numpy(passes_opt.state[name][key]),
                                          err_msg=f"{name} {key}")
        assert fused.parameters()[name].dtype == dtype
    if masked:
        for name, mask in fused.masks().items():
            pruned = to_numpy(mask) == 0
            assert pruned.any() and np.all(to_numpy(fused.parameters()[name])[pruned] == 0.0), name


def _stuck_run(monkeypatch, switch: str, masked: bool, weight_decay: float, beta1: float, eps: float,
               steps: int = 30, stuck_path: bool = True) -> list[dict[str, np.ndarray]]:
    """Copies of every parameter and Adam moment after each of ``steps`` steps in which half the weights have a
    zero gradient and most a subnormal first moment (as a pixel that is always 0 leaves them), a tenth a gradient
    so small that its square would be subnormal and a tenth one of 1e-15, the second moments from 0 and subnormal
    to 1e-6, and the weights themselves ranging from 0 and subnormals through 2**-60 to 1e30, inf and NaN.

    With the loop on, ``stuck_path`` picks its compiled variant: with the stuck-moment path (the moments are
    counted at the first step after they were set, as at a recount), or without it (as while a stale count of 0
    holds)."""
    monkeypatch.setenv(compiled.ENV_SWITCH, switch)
    rng = np.random.default_rng(11)
    model = Sequential(Dense(40, 50, rng=rng), ReLU(), Dense(50, 6, rng=rng))
    if masked:
        model.set_masks({"0.W": rng.random((50, 40)) > 0.3, "2.W": rng.random((6, 50)) > 0.3})
    optimizer = Adam(model, lr=1.2e-3, betas=(beta1, 0.999), eps=eps, weight_decay=weight_decay)
    layers = (model.layers[0], model.layers[2])
    for layer in layers:
        layer.grads = {key: np.zeros_like(p) for key, p in layer.params.items()}
    optimizer.step()  # makes the state
    gradient_kind = {}
    special = np.array([0.0, -0.0, 1e-41, -1e-45, 1e-25, 2.0**-60, -(2.0**-60), 2.0**-61, 1e30, np.inf, np.nan],
                       np.float32)
    for layer_index, layer in zip((0, 2), layers):
        for key, p in layer.params.items():
            name = f"{layer_index}.{key}"
            gradient_kind[name] = rng.choice(4, size=p.shape, p=[0.5, 0.1, 0.1, 0.3])  # zero, tiny, small, normal
            ulps = rng.choice([1, 2, 3, 4, 5, 9, 1000, 2**22, 2**23 - 1], size=p.shape)  # units of 2**-149
            subnormal = ulps.astype(np.int32).view(np.float32) * rng.choice(np.float32([-1, 1]), size=p.shape)
            state = optimizer.state[name]
            state["m"][...] = np.where(rng.random(p.shape) < 0.8, subnormal, state["m"])
            state["v"][...] = rng.choice(np.float32([0.0, 1e-41, 2.0**-115, 2.0**-98, 1e-30, 1e-6]), size=p.shape)
            odd = rng.random(p.shape) < 0.2
            p[odd] = rng.choice(special, size=int(odd.sum()))
    if stuck_path:
        optimizer._subnormal_moments.clear()  # the moments were set by hand: counted again at the next step
    else:
        adam_update = compiled.adam_update

        def without_the_path(*args, subnormal_moments, **kwargs):  # a count of 0, whatever the moments
            return adam_update(*args, subnormal_moments=0, **kwargs)
        monkeypatch.setattr(compiled, "adam_update", without_the_path)
    snapshots = []
    for _ in range(steps):
        for layer_index, layer in zip((0, 2), layers):
            layer.grads = {}
            for key, p in layer.params.items():
                kind = gradient_kind[f"{layer_index}.{key}"]
                # 1e-18: (d * d) * (1 - beta2) is subnormal; 1e-15: it is not, but it still moves a v of 1e-30
                scale = np.choose(kind, [0.0, 1e-18, 1e-15, 1e-3])
                grad = (rng.standard_normal(p.shape) * scale).astype(np.float32)
                layer.grads[key] = grad
        with np.errstate(all="ignore"):  # the inf and NaN weights
            optimizer.step()
        assert (optimizer._scratch == {}) == (switch == "1"), "the loop ran with the switch off, or not with it on"
        snapshots.append({f"{name} {key}": (optimizer.state[name][key] if key else value).copy()
                          for name, value in model.parameters().items() for key in ("", "m", "v")})
    return snapshots


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal bit for bit, the sign of a zero included; any NaN equals any NaN."""
    nan = np.isnan(a)
    return bool(np.array_equal(nan, np.isnan(b)) and np.array_equal(a[~nan].view(np.int32), b[~nan].view(np.int32)))


@pytest.mark.parametrize("masked", [True, False], ids=["masked", "unmasked"])
@pytest.mark.parametrize("weight_decay", [0.0, 1e-2], ids=["no-decay", "decay"])
@pytest.mark.parametrize("beta1", [0.9, 0.5, 0.3])
@pytest.mark.parametrize("eps", [1e-8, 1e-30])  # a tiny eps and a subnormal second moment: a large update
@pytest.mark.parametrize("stuck_path", [True, False], ids=["stuck-path", "plain"])
def test_adam_loop_updates_stuck_subnormal_moments_bit_for_bit(monkeypatch, masked, weight_decay, beta1, eps,
                                                                stuck_path):
    # on the stuck path the loop computes these moments' decay in float64 and leaves their weights as they are
    # (avoiding the CPU's slow subnormal arithmetic); the passes, and the loop without the path, in float32
    fused = _stuck_run(monkeypatch, "1", masked, weight_decay, beta1, eps, stuck_path=stuck_path)
    monkeypatch.undo()
    passes = _stuck_run(monkeypatch, "0", masked, weight_decay, beta1, eps)
    for step, (fused_arrays, passes_arrays) in enumerate(zip(fused, passes), start=1):
        for name, value in passes_arrays.items():  # every step: a moment decayed to -0.0 is +0.0 a step later
            assert _same_bits(fused_arrays[name], value), f"step {step}: {name}"
    moments = [value for name, value in passes[-1].items() if name.endswith(" m")]
    stuck = sum(np.count_nonzero((moment != 0) & (np.abs(moment) < 2.0**-126)) for moment in moments)
    # with decay, d = wd * p is not 0 and the moments leave the subnormal range; with beta1 <= 0.5 they decay to 0
    if beta1 > 0.5 and weight_decay == 0:
        assert stuck > 100, "the run left too few subnormal moments to test the loop on"


def test_adam_update_counts_subnormal_moments_when_asked():
    rng = np.random.default_rng(12)
    param, m, v = (rng.standard_normal(1000).astype(np.float32) for _ in range(3))
    v = np.abs(v)
    m[:300] = np.float32(2.0**-140)  # subnormal, with a zero gradient: they stay subnormal
    m[300:310] = np.float32(2.0**-149)  # the smallest subnormal: times 0.9 it rounds to itself
    grad = rng.standard_normal(1000).astype(np.float32)
    grad[:310] = 0
    scalars = dict(weight_decay=0.0, beta1=0.9, beta2=0.999, eps_hat=1e-8, step_size=1e-3)
    count = compiled.adam_update(param, grad, None, m, v, **scalars, subnormal_moments=None)
    assert count == np.count_nonzero((m != 0) & (np.abs(m) < 2.0**-126)) == 310
    assert compiled.adam_update(param, grad, None, m, v, **scalars, subnormal_moments=7) == 7  # not counted
    as_float64 = (param.astype(np.float64), grad.astype(np.float64), None, m.astype(np.float64), v.astype(np.float64))
    assert compiled.adam_update(*as_float64, **scalars, subnormal_moments=None) is None  # no path, nothing counted


def test_the_stuck_moment_path_is_on_for_float32_training_only():
    def on(dtype, beta1=0.9, beta2=0.999, step_size=1e-3):
        scalars = np.array((0.0, beta1, 1 - beta1, beta2, 1 - beta2, 1e-8, step_size), dtype)
        return compiled._stuck_moments(scalars)[0] == 1.0
    assert on(np.float32)
    assert not on(np.float32, beta2=1.0)  # no threshold for a gradient's square to fall under
    assert on(np.float32, step_size=2.0**-26)
    assert not on(np.float32, step_size=2.0**-27)  # the bound would not be a normal float32
    assert not on(np.float64)  # a float64 moment's decay is not exact in float64
    assert not on(np.float32, beta1=0.0) and not on(np.float32, beta1=1.0)


def test_arrays_the_gpu_kernel_does_not_take_go_the_numpy_way():
    a = np.zeros((4, 6), np.float32)
    assert not compiled.gpu_fits(a, a.copy())  # host arrays: the Numba loop or the NumPy passes


def test_adam_loop_keeps_pruned_weights_and_state_exactly_zero(monkeypatch):
    model, optimizer = _adam_run(monkeypatch, "1", np.float32, masked=True, weight_decay=1e-2)
    for name, mask in model.masks().items():
        pruned = mask == 0
        assert pruned.any()
        assert np.all(model.parameters()[name][pruned] == 0.0)
        assert np.all(optimizer.state[name]["m"][pruned] == 0.0)
        assert np.all(optimizer.state[name]["v"][pruned] == 0.0)
        assert np.all(model.parameters()[name][~pruned] != 0.0)


def test_arrays_the_loops_do_not_take_go_the_numpy_way():
    a = np.zeros((4, 6), np.float32)
    assert compiled.fits(a, a.copy())
    assert not compiled.fits(a, a.T)  # not C-contiguous
    assert not compiled.fits(a, a.astype(np.float64))  # mixed dtypes
    assert not compiled.fits(a.astype(np.int32))
    assert not compiled.fits(a.view(np.ma.MaskedArray))  # a subclass (the strict test backend is one too)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sampled_product_loop_equals_numpy_gathers(dtype):
    rng = np.random.default_rng(3)
    dout_t, x_t = rng.standard_normal((30, 60)).astype(dtype), rng.standard_normal((50, 60)).astype(dtype)
    kept = np.flatnonzero(rng.random(30 * 50) < 0.1)
    rows, cols = kept // 50, kept % 50
    loop = compiled.sampled_product(dout_t, x_t, rows, cols)
    gathers = sampled_product(dout_t, x_t, rows, cols)
    dense = (dout_t @ x_t.T)[rows, cols]
    assert loop.dtype == dtype and loop.shape == rows.shape
    tolerance = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(loop, gathers, **tolerance)
    np.testing.assert_allclose(loop, dense, **tolerance)


def test_switch_and_description(monkeypatch):
    monkeypatch.setenv(compiled.ENV_SWITCH, "0")
    assert not compiled.enabled()
    assert compiled.describe().startswith(f"off ({compiled.ENV_SWITCH}=0")
    monkeypatch.setenv(compiled.ENV_SWITCH, "1")
    assert compiled.enabled()
    assert compiled.describe().startswith("on (Numba ")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_csr_loops_equal_scipy_products(dtype):
    import scipy.sparse

    rng = np.random.default_rng(5)
    weight = rng.standard_normal((40, 70)) * (rng.random((40, 70)) < 0.08)
    matrix = scipy.sparse.csr_matrix(weight.astype(dtype))
    indptr, cols, values = matrix.indptr, matrix.indices, matrix.data
    x_t, d_t = rng.standard_normal((70, 60)).astype(dtype), rng.standard_normal((40, 60)).astype(dtype)
    forward = compiled.csr_times(indptr, cols, values, x_t, 40)
    backward = compiled.csr_transposed_times(indptr, cols, values, d_t, 70)
    assert forward.dtype == backward.dtype == dtype
    tolerance = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(forward, matrix @ x_t, **tolerance)
    np.testing.assert_allclose(backward, matrix.T @ d_t, **tolerance)
    np.testing.assert_allclose(forward, weight.astype(dtype) @ x_t, **tolerance)


@pytest.mark.parametrize("batch", [1, 7, 60, compiled.EXACT_BATCH_MAX, compiled.EXACT_BATCH_MAX + 13])
def test_loops_agree_at_every_batch_size(batch):
    """Up to EXACT_BATCH_MAX the loops are compiled for the batch size; above it one version reads it at run time.
    Rows keeping 0% to 30% of 30 weights exercise the CSR loop's groups of four and the remainder after them."""
    import scipy.sparse

    rng = np.random.default_rng(batch)
    weight = rng.standard_normal((12, 30)) * (rng.random((12, 30)) < np.linspace(0.0, 0.3, 12)[:, None])
    matrix = scipy.sparse.csr_matrix(weight.astype(np.float32))
    rows, cols = np.nonzero(weight)
    x_t = rng.standard_normal((30, batch)).astype(np.float32)
    d_t = rng.standard_normal((12, batch)).astype(np.float32)
    tolerance = dict(rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(compiled.csr_times(matrix.indptr, matrix.indices, matrix.data, x_t, 12),
                               matrix @ x_t, **tolerance)
    np.testing.assert_allclose(compiled.csr_transposed_times(matrix.indptr, matrix.indices, matrix.data, d_t, 30),
                               matrix.T @ d_t, **tolerance)
    np.testing.assert_allclose(compiled.sampled_product(d_t, x_t, rows, cols),
                               sampled_product(d_t, x_t, rows, cols), **tolerance)


def test_loops_refuse_arrays_of_two_batch_sizes():
    rows = cols = np.zeros(3, dtype=np.int64)
    with pytest.raises(ValueError, match="differ in the batch"):
        compiled.sampled_product(np.ones((4, 60), np.float32), np.ones((5, 61), np.float32), rows, cols)


# -- max pooling: the compiled pass against MaxPool2d's passes over the window offsets ------------------------

POOL_LAYOUTS = {  # (N, C, H, W) values stored NCHW, channel-major (a Conv2d's output) and channels-last
    "nchw": lambda a: np.ascontiguousarray(a),
    "channel_major": lambda a: np.ascontiguousarray(a.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3),
    "channels_last": lambda a: np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2),
}


def _pool_run(monkeypatch, switch: str, x, dout, kernel, stride):
    monkeypatch.setenv(compiled.ENV_SWITCH, switch)
    pool = MaxPool2d(kernel, stride)
    out = pool.forward(x)
    argmax = pool._cache[2]
    return out, argmax, pool.backward(dout)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", sorted(POOL_LAYOUTS))
@pytest.mark.parametrize("shape,kernel,stride", [((3, 4, 8, 8), 2, None), ((2, 3, 7, 9), 2, None),
                                                 ((2, 3, 9, 7), (3, 2), None), ((2, 3, 9, 9), 3, 2)],
                         ids=["2x2", "2x2-uncovered-edges", "3x2", "3x3-stride-2-overlapping"])
def test_max_pool_loop_equals_the_window_passes(monkeypatch, dtype, layout, shape, kernel, stride):
    rng = np.random.default_rng(3)
    x = np.maximum(rng.standard_normal(shape), 0).astype(dtype)  # after a ReLU: windows of tied zeros
    x[0, 0, 0, :4] = 1.5  # a tie between two non-zero maxima
    x = POOL_LAYOUTS[layout](x)
    out_shape = MaxPool2d(kernel, stride).forward(x).shape  # (N, C, OH, OW)
    dout = rng.standard_normal(out_shape).astype(dtype)
    fused_out, fused_argmax, fused_dx = _pool_run(monkeypatch, "1", x, dout, kernel, stride)
    out, argmax, dx = _pool_run(monkeypatch, "0", x, dout, kernel, stride)
    np.testing.assert_array_equal(fused_out, out)
    np.testing.assert_array_equal(fused_argmax, argmax)
    np.testing.assert_array_equal(fused_dx, dx)  # -0.0 == 0.0 here: the sign of a zero may differ
    assert fused_out.dtype == dtype and fused_dx.dtype == dtype
    assert fused_dx.strides == dx.strides and fused_out.strides == out.strides  # the same memory layout


def test_max_pool_loop_ran_and_propagates_nan_as_the_passes_do(monkeypatch):
    x = np.zeros((1, 1, 4, 4), np.float32)
    x[0, 0, 0, 1] = np.nan  # window (0, 0): a NaN after the first offset
    x[0, 0, 2, 2], x[0, 0, 3, 3] = 2.0, np.nan  # window (1, 1): a maximum, then a NaN
    calls, max_pool = [], compiled.max_pool
    monkeypatch.setattr(compiled, "max_pool", lambda *a: calls.append(a) or max_pool(*a))
    fused, fused_argmax, _ = _pool_run(monkeypatch, "1", x, np.ones((1, 1, 2, 2), np.float32), 2, None)
    assert calls, "the compiled loop did not run"
    passes, argmax, _ = _pool_run(monkeypatch, "0", x, np.ones((1, 1, 2, 2), np.float32), 2, None)
    np.testing.assert_array_equal(fused, passes)  # NaN where the passes have NaN
    assert np.isnan(fused[0, 0, 0, 0]) and np.isnan(fused[0, 0, 1, 1])
    np.testing.assert_array_equal(fused_argmax, argmax)


# -- the product with a mostly-zero input (Dense in evaluation) ---------------------------------------------------


def _mostly_zero_input(rng, rows: int, columns: int, dtype) -> np.ndarray:
    """(rows, columns) with 0 to 9 non-zero entries per row (every count of the loop's groups of four and the
    remainder after them), one row all zero and one row with every entry non-zero."""
    x = np.zeros((rows, columns), dtype)
    for n in range(rows):
        kept = rng.choice(columns, size=n % 10, replace=False)
        x[n, kept] = rng.standard_normal(len(kept))
    x[-1] = rng.standard_normal(columns)
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("outputs", [1, 7, 300])
def test_sparse_input_loop_equals_the_dense_product(dtype, outputs):
    rng = np.random.default_rng(11)
    x = _mostly_zero_input(rng, 40, 30, dtype)
    weight = rng.standard_normal((outputs, 30)).astype(dtype)
    product = compiled.sparse_input_times(x, weight)
    assert product.dtype == dtype and product.shape == (40, outputs) and product.flags.c_contiguous
    tolerance = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(product, x @ weight.T, **tolerance)
    np.testing.assert_array_equal(product[0], 0.0)  # a row of zeros: nothing added
    # small integers multiply and add exactly in any order: equal bit for bit
    whole = np.rint(x * 4), np.rint(weight * 4)
    np.testing.assert_array_equal(compiled.sparse_input_times(*whole), whole[0] @ whole[1].T)


def test_sparse_input_loop_propagates_nan_and_inf_of_the_input():
    x = np.zeros((3, 5), np.float32)
    x[0, 2], x[1, 4] = np.nan, np.inf
    weight = np.ones((2, 5), np.float32)
    product = compiled.sparse_input_times(x, weight)
    assert np.isnan(product[0]).all() and np.isposinf(product[1]).all()
    np.testing.assert_array_equal(product[2], 0.0)


def test_sparse_input_is_chosen_for_mostly_zero_inputs_only(monkeypatch):
    monkeypatch.setattr(compiled, "blas_core", lambda: "Haswell")  # where the loop outruns BLAS
    rng = np.random.default_rng(2)
    rows = compiled.SPARSE_INPUT_MIN_ROWS
    weight = rng.standard_normal((8, 100)).astype(np.float32)
    x = np.zeros((rows, 100), np.float32)
    x[:, :25] = 1.0  # exactly the threshold's 25% non-zero
    assert compiled.SPARSE_INPUT_DENSITY == 0.25
    assert compiled.sparse_input_pays(x, weight)
    x[0, 25] = 1.0  # one entry more
    assert not compiled.sparse_input_pays(x, weight)
    x[0, 25] = -0.0  # a negative zero counts as non-zero (its bits), so it errs towards the dense product
    assert not compiled.sparse_input_pays(x, weight)
    x[0, 25] = 0.0
    assert not compiled.sparse_input_pays(x[:-1], weight)  # too few rows
    assert not compiled.sparse_input_pays(x.astype(np.float64), weight)  # mixed dtypes
    assert not compiled.sparse_input_pays(np.asfortranarray(x), weight)  # not C-contiguous
    assert compiled.sparse_input_pays(x.astype(np.float64), weight.astype(np.float64))
    # a weight too large to copy transposed in the cache (Conv-2's first dense layer) keeps the matrix product
    outputs = compiled.SPARSE_INPUT_MAX_WEIGHTS // 100
    assert compiled.sparse_input_pays(x, np.zeros((outputs, 100), np.float32))
    assert not compiled.sparse_input_pays(x, np.zeros((outputs + 1, 100), np.float32))
    for core in compiled.BLAS_CORES_FASTER_THAN_SPARSE_INPUT:  # OpenBLAS's AVX-512 kernels keep the product
        monkeypatch.setattr(compiled, "blas_core", lambda core=core: core)
        assert not compiled.sparse_input_pays(x, weight)
    monkeypatch.setattr(compiled, "blas_core", lambda: "")  # another BLAS: the loop
    assert compiled.sparse_input_pays(x, weight)


def test_blas_core_names_openblas_core():
    core = compiled.blas_core()
    assert isinstance(core, str)
    from threadpoolctl import threadpool_info

    if any(info.get("internal_api") == "openblas" for info in threadpool_info()):
        assert core  # NumPy's wheels link OpenBLAS, which names the kernels it picked


def test_dense_evaluates_a_mostly_zero_input_by_its_non_zero_entries(monkeypatch):
    monkeypatch.setattr(compiled, "blas_core", lambda: "Haswell")  # where the loop outruns BLAS
    rng = np.random.default_rng(4)
    layer = Dense(30, 7, rng=rng)
    layer.set_mask("W", rng.random((7, 30)) > 0.3)
    layer.params["b"] = rng.standard_normal(7).astype(np.float32)
    x = _mostly_zero_input(rng, compiled.SPARSE_INPUT_MIN_ROWS + 6, 30, np.float32)
    calls, times = [], compiled.sparse_input_times
    monkeypatch.setattr(compiled, "sparse_input_times", lambda *a: calls.append(a) or times(*a))
    training = layer.forward(x)  # training: always the dense product
    assert not calls
    layer.training = False
    evaluation = layer.forward(x)
    assert len(calls) == 1, "evaluation did not take the sparse-input product"
    np.testing.assert_allclose(evaluation, training, rtol=2e-5, atol=2e-5)
    monkeypatch.setenv(compiled.ENV_SWITCH, "0")
    np.testing.assert_array_equal(layer.forward(x), training)  # switched off: the dense product
    assert len(calls) == 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [1, compiled.MASK_BLOCK - 1, compiled.MASK_BLOCK, 3 * compiled.MASK_BLOCK + 7])
def test_mask_check_answers_as_numpy_for_any_entry_in_any_block(dtype, size):
    ones = np.ones((size,), dtype)
    assert compiled.mask_is_ones(ones) and compiled.mask_is_ones(ones.reshape(size, 1))
    # one other value at each place the loop reads differently: first entry, a block's last, the tail's last
    for where in sorted({0, min(size, compiled.MASK_BLOCK) - 1, size // 2, size - 1}):
        for other in (0.0, -0.0, -1.0, 0.5, 1.0 + np.finfo(dtype).eps, np.nan, np.inf):
            mask = ones.copy()
            mask[where] = other
            assert compiled.mask_is_ones(mask) == bool((mask == 1).all()) is False


def test_mask_check_is_false_where_it_cannot_look(monkeypatch):
    ones = np.ones((6, 4), np.float32)
    assert not compiled.mask_is_ones(ones.T)  # not C-contiguous: not checked, so multiplied
    monkeypatch.setenv(compiled.ENV_SWITCH, "0")
    assert not compiled.mask_is_ones(ones)


def test_dense_skips_a_mask_of_ones_and_multiplies_a_pruned_one(monkeypatch):
    rng = np.random.default_rng(11)
    x, dout = rng.standard_normal((5, 8)).astype(np.float32), rng.standard_normal((5, 3)).astype(np.float32)

    def run(mask):
        layer = Dense(8, 3, rng=np.random.default_rng(2))
        layer.set_mask("W", mask)
        y = layer.forward(x)
        dx = layer.backward(dout)
        return layer, y, dx

    ones = np.ones((3, 8), np.float32)
    layer, y, dx = run(ones)
    assert layer.masked_param("W") is layer.params["W"]  # skipped: the parameter itself
    monkeypatch.setenv(compiled.ENV_SWITCH, "0")
    plain, y_multiplied, dx_multiplied = run(ones)
    assert plain.masked_param("W") is not plain.params["W"]  # multiplied, as everywhere the loops do not run
    for ours, multiplied in ((y, y_multiplied), (dx, dx_multiplied), (layer.grads["W"], plain.grads["W"])):
        np.testing.assert_array_equal(ours, multiplied)  # the same bits: a mask of ones changes none
    monkeypatch.setenv(compiled.ENV_SWITCH, "1")
    pruned = ones.copy()
    pruned[1, 5] = 0.0
    layer, _, _ = run(pruned)
    assert layer.grads["W"][1, 5] == 0.0 and layer.masked_param("W")[1, 5] == 0.0
    assert layer.params["W"][1, 5] != 0.0


def test_backward_masks_by_what_the_forward_pass_checked():
    rng = np.random.default_rng(12)
    x, dout = rng.standard_normal((5, 8)).astype(np.float32), rng.standard_normal((5, 3)).astype(np.float32)
    layer = Dense(8, 3, rng=rng)
    layer.set_mask("W", np.ones((3, 8), np.float32))
    layer.forward(x)
    pruned = np.ones((3, 8), np.float32)
    pruned[2, 1] = 0.0
    layer.set_mask("W", pruned)  # a new mask object after the forward pass: backward checks it afresh
    layer.backward(dout)
    assert layer.grads["W"][2, 1] == 0.0
    layer.forward(x)
    layer.backward(dout)
    assert layer.grads["W"][2, 1] == 0.0 and np.count_nonzero(layer.grads["W"]) == 23
    layer.set_mask("W", np.ones((3, 8), np.float32))
    layer.forward(x)
    layer.masks["W"][2, 1] = 0.0  # written in place after a forward pass that found ones: that pass used W whole,
    layer.backward(dout)  # and its gradient is that of what it computed
    assert layer.grads["W"][2, 1] != 0.0
