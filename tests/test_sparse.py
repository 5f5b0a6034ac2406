"""Sparse inference (minilottery.lab.sparse): a CSR export must compute what the masked dense model computes."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse

from minilottery import backend
from minilottery.lab.bench_sparse import magnitude_masks
from minilottery.lab.sparse import SparseModel, dense_parameters, dense_to_csr
from minilottery.layers import Conv2d, Dense, Dropout, Flatten, MaxPool2d, ReLU, Sequential
from minilottery.models import build_model


def _assert_same(model, sparse, x):
    dense = backend.to_numpy(model.eval().forward(x))  # (N, 10)
    got = backend.to_numpy(sparse.forward(x))
    assert got.shape == dense.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, dense, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(backend.to_numpy(sparse.predict(x)), dense.argmax(axis=1))


@pytest.mark.parametrize("fraction", [1.0, 0.1, 0.036, 0.01])
def test_lenet_sparse_matches_dense(fraction):
    model = build_model("lenet_300_100", seed=1)
    masks = magnitude_masks(model, fraction)
    model.set_masks(masks)
    x = np.random.default_rng(0).random((700, 1, 28, 28), dtype=np.float32)
    sparse = SparseModel.from_model(model)
    _assert_same(model, sparse, x)
    # exactly one stored entry per kept weight, and the stored values are W * mask
    assert sparse.nnz() == {name: int(mask.sum()) for name, mask in masks.items()}
    for name, weight in dense_parameters(sparse).items():
        np.testing.assert_array_equal(weight, model.parameters()[name] * masks[name])


def test_csr_counts_kept_zero_weights():
    weight = np.arange(12, dtype=np.float32).reshape(3, 4)  # weight[0, 0] is exactly 0.0 but kept
    mask = np.zeros((3, 4), dtype=np.float32)
    mask[0, 0] = mask[0, 3] = mask[2, 1] = 1
    csr = dense_to_csr(weight, mask)
    assert isinstance(csr, scipy.sparse.csr_matrix)
    assert csr.nnz == 3 and csr.dtype == np.float32 and csr.indices.dtype == np.int32
    np.testing.assert_array_equal(csr.toarray(), weight * mask)
    assert dense_to_csr(weight).nnz == 12  # no mask: every weight is kept


def _small_conv(rng):
    return Sequential(
        Conv2d(1, 4, 3, padding=1, rng=rng), ReLU(), MaxPool2d(2), Flatten(),
        Dense(4 * 4 * 4, 16, rng=rng), ReLU(), Dropout(0.5, rng=rng), Dense(16, 10, rng=rng),
    )


def test_small_conv_model_sparse_matches_dense():
    rng = np.random.default_rng(3)
    model = _small_conv(rng)
    model.set_masks({"0.W": (rng.random((4, 1, 3, 3)) > 0.3).astype(np.float32),
                     "4.W": (rng.random((16, 64)) > 0.8).astype(np.float32),
                     "7.W": (rng.random((10, 16)) > 0.5).astype(np.float32)})
    model.train()  # the export is for inference whatever the model's mode: Dropout must do nothing
    sparse = SparseModel.from_model(model)
    x = rng.random((37, 1, 8, 8), dtype=np.float32)
    _assert_same(model, sparse, x)
    assert set(sparse.nnz()) == {"4.W", "7.W"}  # the convolution stays dense


def test_blocks_threads_and_input_dtype_do_not_change_results():
    model = build_model("lenet_300_100", seed=2)
    model.set_masks(magnitude_masks(model, 0.05))
    x = np.random.default_rng(1).random((1000, 784))  # float64, already flat
    whole = SparseModel.from_model(model, block_size=None).forward(x)
    assert whole.dtype == np.float32  # float64 input is computed in the weights' float32
    for block, workers in [(1, 1), (128, 1), (300, 2)]:
        got = SparseModel.from_model(model, block_size=block, workers=workers).forward(x)
        np.testing.assert_allclose(got, whole, rtol=1e-5, atol=1e-6)


def test_export_is_a_snapshot_and_bad_settings_fail():
    model = build_model("lenet_300_100", seed=0)
    sparse = SparseModel.from_model(model)
    x = np.random.default_rng(0).random((5, 1, 28, 28), dtype=np.float32)
    before = sparse.forward(x)
    model.set_parameter("1.W", np.zeros((300, 784), dtype=np.float32))
    np.testing.assert_array_equal(sparse.forward(x), before)
    with pytest.raises(ValueError, match="block_size must be an integer >= 1, got 0; or None"):
        SparseModel.from_model(model, block_size=0)
    with pytest.raises(ValueError, match="block_size must be an integer >= 1, got 2.5"):
        SparseModel.from_model(model, block_size=2.5)
    with pytest.raises(ValueError, match="workers must be an integer >= 1, got 0"):
        SparseModel.from_model(model, workers=0)
    with pytest.raises(ValueError, match="Sequential"):
        SparseModel.from_model(object())


def test_other_devices_are_refused_with_the_fix():
    from minilottery.testing.strict_backend import strict_device

    with strict_device() as name:
        model = build_model("lenet_300_100").to(name)
        with pytest.raises(ValueError, match="model.to\\('cpu'\\)"):
            SparseModel.from_model(model)


def test_cpu_path_never_imports_cupy():
    code = ("import sys, numpy as np\n"
            "from minilottery.models import build_model\n"
            "from minilottery.lab.sparse import SparseModel\n"
            "import minilottery.lab.bench, minilottery.lab.bench_sparse\n"
            "SparseModel.from_model(build_model('lenet_300_100')).predict(np.zeros((2, 1, 28, 28), np.float32))\n"
            "assert 'cupy' not in sys.modules and 'cupyx' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.gpu
def test_gpu_sparse_matches_dense():
    try:
        backend.get_backend("gpu")
    except backend.DeviceError:
        pytest.skip("CuPy or a CUDA device is not available")
    model = build_model("lenet_300_100", seed=1)
    masks = magnitude_masks(model, 0.036)
    model.set_masks(masks)
    model.to("gpu")
    sparse = SparseModel.from_model(model)
    assert type(sparse.to_csr_dict()["1.W"]).__module__.startswith("cupyx")
    x = backend.to_device(np.random.default_rng(0).random((500, 1, 28, 28), dtype=np.float32), "gpu")
    _assert_same(model, sparse, x)
    assert sparse.nnz() == {name: int(mask.sum()) for name, mask in masks.items()}


def test_thread_pool_is_made_once_and_reused():
    from minilottery.lab.sparse import _thread_pool

    assert _thread_pool(2) is _thread_pool(2)
    assert _thread_pool(3) is not _thread_pool(2)
