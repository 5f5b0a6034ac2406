"""Sparse training (minilottery.lab.sparse_training) against its specification, the masked dense layers.

A step of the sparse network must give the masked dense model's step: the same loss, the same gradient at every
kept weight, the same updated weights, the same optimizer state (exactly 0 at every pruned weight) and step count,
within float rounding (the sums run in another order). Correctness only: no test here measures time.
"""

from __future__ import annotations

import copy
import subprocess
import sys

import numpy as np
import pytest

from minilottery import backend, compiled
from minilottery.lab.bench_sparse import magnitude_masks
from minilottery.lab.sparse_training import (
    GATHER_DENSITY,
    SPARSE_DENSITY,
    SPARSE_MIN_WEIGHTS,
    SparseDense,
    SparseKernels,
    SparseSequential,
    choose_kernels,
    sampled_product,
    sparse_network,
)
from minilottery.layers import Conv2d, Dense, Dropout, Flatten, MaxPool2d, ReLU, Sequential
from minilottery.models import build_model
from minilottery.optim import make_optimizer
from minilottery.training import TrainConfig, train, train_step
from tests.helpers import synthetic_data

pytestmark = pytest.mark.filterwarnings("ignore::minilottery.training.ChanceLevelWarning")

# What "auto" chooses for LeNet's 1,000-weight output layer after sparse hidden layers: sparse with the compiled
# loops (the transposes between the layouts cost more than its products), dense without them
SMALL_AFTER_SPARSE = "sparse" if compiled.enabled() else "dense"

# Within float rounding: float64 agrees to ~1e-12, float32 to a few units in the last place of the largest entry.
TOLERANCE = {np.float64: dict(rtol=1e-9, atol=1e-12), np.float32: dict(rtol=2e-5, atol=2e-6)}
OPTIMIZERS = {
    "adam": ("adam", 1e-3, {}),
    "adam_wd": ("adam", 1e-3, {"weight_decay": 0.01}),
    "sgd_nesterov_wd": ("sgd", 0.05, {"momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
}


def _lenet(fraction: float, dtype=np.float64) -> Sequential:
    """LeNet-300-100 pruned by magnitude to ``fraction`` (the output layer at half the rate), with biases that are
    not zero (as after training), so that a bias left out of a step shows in that step."""
    model = build_model("lenet_300_100", seed=4, dtype=dtype)
    model.set_masks(magnitude_masks(model, fraction))
    rng = np.random.default_rng(5)
    for name in ("1.b", "3.b", "5.b"):
        model.set_parameter(name, 0.1 * rng.standard_normal(model.parameters()[name].shape))
    return model


def _conv_net(dtype=np.float64) -> Sequential:
    """A small network with two masked convolutions (which stay dense) and three masked dense layers, a Dropout
    between two of them (its draws need the batch-major layout) and ReLUs between the others."""
    rng = np.random.default_rng(3)
    model = Sequential(
        Conv2d(1, 4, 3, padding=1, rng=rng), ReLU(), Conv2d(4, 4, 3, padding=1, rng=rng), ReLU(), MaxPool2d(2),
        Flatten(), Dense(4 * 4 * 4, 32, rng=rng), ReLU(), Dropout(0.3, rng=np.random.default_rng(9)),
        Dense(32, 16, rng=rng), ReLU(), Dense(16, 10, rng=rng),
    ).astype(dtype)
    model.set_masks({"0.W": rng.random((4, 1, 3, 3)) > 0.3, "2.W": rng.random((4, 4, 3, 3)) > 0.5,
                     "6.W": rng.random((32, 64)) > 0.9, "9.W": rng.random((16, 32)) > 0.8,
                     "11.W": rng.random((10, 16)) > 0.5})
    return model


def _batches(shape, count, dtype, seed=0, n=60):
    rng = np.random.default_rng(seed)
    return [(rng.random((n, *shape)).astype(dtype), rng.integers(0, 10, n).astype(np.int64)) for _ in range(count)]


def _host(a):
    return backend.to_numpy(a)


def _assert_close(got, want, dtype, what):
    got, want = _host(got), _host(want)
    scale = max(1.0, float(np.abs(want).max())) if want.size else 1.0
    tol = TOLERANCE[dtype]
    np.testing.assert_allclose(got, want, rtol=tol["rtol"], atol=tol["atol"] * scale, err_msg=what)


def _assert_steps_match(dense, network, dense_opt, sparse_opt, dtype):
    """The dense model and the sparse network after the same steps: weights, gradients, optimizer state."""
    grads, state = dense.gradients(), dense_opt.state
    for index, layer in network.named_layers():
        for key in layer.params:
            name = f"{index}.{key}"
            assert sparse_opt.state[name].get("step") == state[name].get("step"), name  # Adam's t (SGD: none)
            if not (isinstance(layer, SparseDense) and key == "W"):
                _assert_close(network.gradients()[name], grads[name], dtype, name)
                continue
            kept = (_host(layer.rows), _host(layer.cols))
            mask = _host(dense.masks()[name]) != 0
            assert mask.sum() == layer.nnz and mask[kept].all()
            # the specification itself: dense training keeps pruned gradients, weights and state exactly 0
            assert not _host(grads[name])[~mask].any() and not _host(dense.parameters()[name])[~mask].any()
            _assert_close(layer.grads["W"], _host(grads[name])[kept], dtype, f"{name} gradient")
            weight = _host(layer.dense_weight())
            assert not weight[~mask].any()  # exactly 0.0 at every pruned position
            _assert_close(weight, dense.parameters()[name], dtype, f"{name} weight")
            for key_state, value in sparse_opt.state[name].items():
                if key_state == "step":
                    continue
                assert value.shape == (layer.nnz,)  # state for the kept weights only
                full = np.zeros(mask.shape, dtype=_host(value).dtype)
                full[kept] = _host(value)  # the pruned weights' state is (implicitly) exactly 0
                dense_value = _host(state[name][key_state])
                assert not dense_value[~mask].any(), f"{name} {key_state}: dense state at pruned weights"
                _assert_close(full, dense_value, dtype, f"{name} {key_state}")
    for name, value in network.state_dict().items():  # the dense model's shapes, the same numbers
        _assert_close(value, dense.state_dict()[name], dtype, f"state_dict {name}")


def _run_both(dense, batches, optimizer, dtype, device="cpu", steps_between_checks=1):
    name, lr, options = OPTIMIZERS[optimizer]
    dense.to(device)
    sparse_model = copy.deepcopy(dense)
    network = sparse_network(sparse_model, choose_kernels(sparse_model, "on"))
    dense_opt, sparse_opt = make_optimizer(name, dense, lr, **options), make_optimizer(name, network, lr, **options)
    for i, (x, y) in enumerate(batches):
        x, y = backend.to_device(x, device), backend.to_device(y, device)
        dense_loss = train_step(dense, dense_opt, x, y)
        sparse_loss = train_step(network, sparse_opt, x, y)
        _assert_close(sparse_loss, dense_loss, dtype, f"loss of step {i + 1}")
        if (i + 1) % steps_between_checks == 0:
            _assert_steps_match(dense, network, dense_opt, sparse_opt, dtype)
    return network, sparse_model


# -- one step and several steps, LeNet-300-100 ----------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_lenet_one_step_matches_dense(dtype, optimizer):
    _run_both(_lenet(0.036, dtype), _batches((1, 28, 28), 1, dtype), optimizer, dtype)


@pytest.mark.parametrize("dtype, optimizer", [(np.float64, "adam"), (np.float64, "sgd_nesterov_wd"),
                                              (np.float32, "sgd_nesterov_wd")])
@pytest.mark.parametrize("fraction", [1.0, 0.07, 0.012])
def test_lenet_several_steps_match_dense(dtype, optimizer, fraction):
    """Six steps. float32 with SGD only: Adam divides each update by the gradient's own size, so a gradient near
    float32 rounding level (a sum that cancels) may move by a visible fraction of lr when the sum is reordered
    (float64 Adam here, float32 Adam in one step and in the training runs below)."""
    network, _ = _run_both(_lenet(fraction, dtype), _batches((1, 28, 28), 6, dtype, seed=1), optimizer, dtype)
    assert network.layers[1].gathered_gradient == (fraction <= GATHER_DENSITY)  # both ways to the gradient


def test_conv_net_steps_match_dense_and_convolutions_stay_dense():
    network, _ = _run_both(_conv_net(), _batches((1, 8, 8), 4, np.float64, seed=2, n=7), "sgd_nesterov_wd",
                           np.float64)
    assert [type(layer).__name__ for layer in network.layers if layer.params] == \
        ["Conv2d", "Conv2d", "SparseDense", "SparseDense", "SparseDense"]
    assert network.kernels == {"0.W": "dense", "2.W": "dense", "6.W": "sparse", "9.W": "sparse", "11.W": "sparse"}
    # ReLUs pass the feature-major layout on, a Dropout does not (its draws follow the batch-major shape)
    layouts = [(layer.feature_major_input, layer.feature_major_output)
               for layer in network.layers if isinstance(layer, SparseDense)]
    assert layouts == [(False, False), (False, True), (True, False)]


def test_unmasked_and_partly_sparse_networks(monkeypatch):
    """An unmasked Dense layer trains sparse with every weight kept; under "auto" the dense layers stay the
    model's own (masked) objects and train in place, beside the sparse ones."""
    monkeypatch.setenv(compiled.ENV_SWITCH, "0")  # so that "auto" keeps the small output layer dense
    dense = _lenet(0.036)
    dense.set_masks({"5.W": None})
    model = copy.deepcopy(dense)
    kernels = choose_kernels(model, "auto")
    assert kernels == {"1.W": "sparse", "3.W": "sparse", "5.W": "dense"}
    network = sparse_network(model, kernels)
    assert network.layers[5] is model.layers[5] and network.layers[0] is model.layers[0]
    assert sparse_network(model, choose_kernels(model, "on")).layers[5].nnz == 100 * 10
    dense_opt, sparse_opt = make_optimizer("adam", dense, 1e-3), make_optimizer("adam", network, 1e-3)
    for x, y in _batches((1, 28, 28), 3, np.float64):
        train_step(dense, dense_opt, x, y)
        train_step(network, sparse_opt, x, y)
    _assert_steps_match(dense, network, dense_opt, sparse_opt, np.float64)
    network.write_back(model)
    for name, value in model.state_dict().items():
        _assert_close(value, dense.state_dict()[name], np.float64, name)


def test_a_replaced_or_cast_parameter_reaches_the_product():
    """The CSR matrix reads the layer's values array itself; after ``set_parameter``-style replacement or
    ``astype`` the products are rebuilt, never left reading a stale copy."""
    model = _lenet(0.1)
    network = sparse_network(model, choose_kernels(model, "on"))
    x = np.random.default_rng(0).random((5, 1, 28, 28))
    layer = network.layers[1]
    before = network.forward(x)
    layer.params["W"] *= 2.0  # in place: the same array
    doubled = network.forward(x)
    layer.params["W"] = layer.params["W"] / 2.0  # a new array
    np.testing.assert_allclose(network.forward(x), before, rtol=1e-12)
    assert not np.allclose(doubled, before)
    network.astype(np.float32)
    assert network.forward(x.astype(np.float32)).dtype == np.float32


# -- the sampled product ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("block", [1, 7, 4096, None])
def test_sampled_product_is_the_dense_product_at_the_kept_positions(block):
    """The gathers, in blocks of any size (the layers of the tests above use them below ``GATHER_DENSITY`` and
    the dense product read at the kept positions above it)."""
    rng = np.random.default_rng(0)
    dout_t, x_t = rng.standard_normal((30, 11)), rng.standard_normal((50, 11))  # (out, N), (in, N)
    rows, cols = np.nonzero(rng.random((30, 50)) < 0.2)
    got = sampled_product(dout_t, x_t, rows, cols, block=block)
    np.testing.assert_allclose(got, (dout_t @ x_t.T)[rows, cols], rtol=1e-12, atol=1e-12)
    assert got.shape == rows.shape


# -- the training loop's hook --------------------------------------------------------------------------------


def _short_run(fraction, kernels, dtype=np.float32, **options):
    model = _lenet(fraction, dtype)
    config = TrainConfig(iterations=12, eval_every=4, **options)
    result = train(model, synthetic_data(), config, snapshot_at=(0, 5), progress=False, kernels=kernels)
    return model, result


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_a_short_training_run_matches_dense(optimizer):
    options = {"optimizer": optimizer, "lr": 1e-3 if optimizer == "adam" else 0.05}
    dense_model, dense = _short_run(0.036, None, **options)
    model, sparse = _short_run(0.036, SparseKernels("on"), **options)
    assert dense.kernels == {} and "kernels" not in dense.to_dict()  # the specification records nothing
    assert sparse.kernels == {"1.W": "sparse", "3.W": "sparse", "5.W": "sparse"}
    assert sparse.to_dict()["kernels"] == sparse.kernels  # recorded in metrics.json
    assert sparse.history["iteration"] == dense.history["iteration"] == [4, 8, 12]
    for key, values in dense.history.items():
        np.testing.assert_allclose(sparse.history[key], values, rtol=1e-5, atol=1e-6, err_msg=key)
    assert (sparse.early_stop_iteration, sparse.final_test_accuracy) == \
        (dense.early_stop_iteration, dense.final_test_accuracy)
    masks = dense_model.masks()
    for name, mask in model.masks().items():  # the model's masks are untouched ...
        np.testing.assert_array_equal(mask, masks[name])
    for name, value in model.state_dict().items():  # ... and it holds the trained weights, 0 where pruned
        np.testing.assert_allclose(value, dense_model.state_dict()[name], rtol=1e-5, atol=1e-6, err_msg=name)
        if name in masks:
            assert not value[masks[name] == 0].any()
    for iteration in (0, 5):  # snapshots in the dense model's shapes
        for name, value in dense.snapshots[iteration].items():
            np.testing.assert_allclose(sparse.snapshots[iteration][name], value, rtol=1e-5, atol=1e-6)


def test_auto_and_off_record_their_choice():
    _, auto = _short_run(0.036, SparseKernels("auto"))
    assert auto.kernels == {"1.W": "sparse", "3.W": "sparse", "5.W": SMALL_AFTER_SPARSE}  # output: 1,000 weights
    _, dense_round = _short_run(1.0, SparseKernels("auto"))
    assert dense_round.kernels == {"1.W": "dense", "3.W": "dense", "5.W": "dense"}
    _, off = _short_run(0.036, SparseKernels("off"))
    assert off.kernels == {"1.W": "dense", "3.W": "dense", "5.W": "dense"}


def test_the_trained_weights_come_back_even_when_training_fails():
    model = _lenet(0.036)
    before = model.state_dict()
    hook = SparseKernels("on")
    with pytest.raises(RuntimeError, match="stop"), hook(model) as network:
        optimizer = make_optimizer("adam", network, 1e-3)
        train_step(network, optimizer, *_batches((1, 28, 28), 1, np.float64)[0])
        raise RuntimeError("stop")
    assert not np.allclose(model.state_dict()["1.W"], before["1.W"])  # the step reached the model


# -- choosing the kernels ------------------------------------------------------------------------------------


def test_a_small_layer_stays_dense_without_the_compiled_loops(monkeypatch):
    model = build_model("lenet_300_100", seed=0)
    model.set_masks({"1.W": np.zeros((300, 784), bool), "3.W": np.zeros((100, 300), bool)})
    monkeypatch.setenv(compiled.ENV_SWITCH, "0")
    assert choose_kernels(model, "auto") == {"1.W": "sparse", "3.W": "sparse", "5.W": "dense"}
    if compiled._numba() is not None:
        monkeypatch.setenv(compiled.ENV_SWITCH, "1")
        assert choose_kernels(model, "auto") == {"1.W": "sparse", "3.W": "sparse", "5.W": "sparse"}


def test_choose_kernels_by_density_threshold():
    model = build_model("lenet_300_100", seed=0)
    rng = np.random.default_rng(0)
    at_threshold = np.zeros(300 * 784, dtype=bool)
    at_threshold[:round(SPARSE_DENSITY * 300 * 784)] = True  # exactly the threshold's fraction (rounded)
    model.set_masks({"1.W": rng.permutation(at_threshold).reshape(300, 784),
                     "3.W": rng.random((100, 300)) < min(1.0, SPARSE_DENSITY * 1.5)})
    kept = int(np.count_nonzero(model.masks()["1.W"])) / (300 * 784)
    assert choose_kernels(model, "auto", threshold=kept) == {"1.W": "sparse", "3.W": "dense", "5.W": "dense"}
    assert choose_kernels(model, "auto", threshold=kept * 0.999)["1.W"] == "dense"
    assert choose_kernels(model, "on") == {"1.W": "sparse", "3.W": "sparse", "5.W": "sparse"}
    model.set_masks({"5.W": np.zeros((10, 100), bool)})  # keeps nothing, but its 1,000 weights are too few ...
    assert SPARSE_MIN_WEIGHTS > 1000
    # ... to gain by themselves: it runs sparse only after a sparse layer, and only with the compiled loops
    assert choose_kernels(model, "auto", threshold=kept) == {"1.W": "sparse", "3.W": "dense", "5.W": "dense"}
    assert choose_kernels(model, "auto", threshold=1.0) == {"1.W": "sparse", "3.W": "sparse",
                                                             "5.W": SMALL_AFTER_SPARSE}
    assert set(choose_kernels(model, "off").values()) == {"dense"}
    conv = build_model("conv2", input_shape=(3, 8, 8))
    conv.set_masks({"0.W": np.zeros((64, 3, 3, 3), bool)})
    assert choose_kernels(conv, "on")["0.W"] == "dense"  # convolutions are never sparse


def test_bad_settings_are_one_line_errors():
    with pytest.raises(ValueError, match="--sparse-kernels must be one of auto, on, off, got 'yes'"):
        SparseKernels("yes")
    with pytest.raises(ValueError, match="threshold must be"):
        SparseKernels("auto", threshold=1.5)
    model = _lenet(0.1)
    network = sparse_network(model, choose_kernels(model, "on"))
    with pytest.raises(ValueError, match="expected 784 input features"):
        network.forward(np.zeros((2, 1, 27, 27)))
    with pytest.raises(ValueError, match="layer 0 \\(Conv2d.*cannot run sparse: only Dense layers can"):
        sparse_network(_conv_net(), {"0.W": "sparse"})


# -- devices -----------------------------------------------------------------------------------------------------


def test_steps_on_device_match_dense(device):
    """On the strict CuPy-like backend (gather/scatter products, NumPy leaking into device code fails) and on
    the GPU (cuSPARSE): sparse steps against dense steps on the same device; "auto" stays dense off the CPU."""
    network, model = _run_both(_lenet(0.036, np.float32), _batches((1, 28, 28), 3, np.float32), "adam",
                               np.float32, device=device)
    assert backend.device_of(network.layers[1].params["W"]) == device
    if device != "cpu":
        assert set(choose_kernels(model, "auto").values()) == {"dense"}


def test_cpu_path_never_imports_cupy():
    code = ("import sys, numpy as np\n"
            "from minilottery.models import build_model\n"
            "from minilottery.optim import make_optimizer\n"
            "from minilottery.training import train_step\n"
            "from minilottery.lab.sparse_training import choose_kernels, sparse_network\n"
            "m = build_model('lenet_300_100'); n = sparse_network(m, choose_kernels(m, 'on'))\n"
            "train_step(n, make_optimizer('adam', n, 1e-3), np.zeros((2, 1, 28, 28), np.float32), np.zeros(2, int))\n"
            "assert 'cupy' not in sys.modules and 'cupyx' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_sparse_sequential_is_a_sequential():
    model = _lenet(0.5)
    network = sparse_network(model, choose_kernels(model, "on"))
    assert isinstance(network, SparseSequential) and isinstance(network, Sequential)
    assert list(network.parameters()) == list(model.parameters())  # the dense model's names
    assert network.parameters()["1.W"].shape == (network.layers[1].nnz,)
    assert "SparseDense(784, 300, nnz=117600, 50.0%)" in repr(network)


def test_the_benchmark_runs_and_reports_what_auto_chose():
    """``bench_sparse_training`` (the timings behind ``SPARSE_DENSITY``): its rows and table, no timing asserted."""
    from minilottery.lab.bench_config import BenchConfig
    from minilottery.lab.bench_sparse import bench_sparse_training, format_training

    result = bench_sparse_training("cpu", BenchConfig(sparse_repeats=1), fractions=(0.036,))
    (row,) = result["rows"]
    assert row["auto_kernels"] == {"1.W": "sparse", "3.W": "sparse", "5.W": SMALL_AFTER_SPARSE}
    assert all(row[f"{side}_ms{clock}"] > 0 for side in ("dense", "sparse", "auto") for clock in ("", "_cpu"))
    table = format_training(result)
    sparse_layers = "1.W,3.W,5.W" if SMALL_AFTER_SPARSE == "sparse" else "1.W,3.W"
    assert len(table) == 3 and table[2].split()[0] == "3.6%" and table[2].endswith(sparse_layers)
