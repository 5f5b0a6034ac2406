"""Shared fixtures: seeding, the device under test (cpu, a CuPy-like strict backend, gpu when present)."""

from __future__ import annotations

import copy
import os

import numpy as np
import pytest

from minilottery import backend


@pytest.fixture(autouse=True)
def _seed_legacy_numpy():
    """Code under test takes explicit generators; seeding the legacy global one catches accidental use."""
    np.random.seed(12345)


def _gpu_available() -> bool:
    try:
        backend.get_backend("gpu")
    except backend.DeviceError:
        return False
    return True


@pytest.fixture(params=["cpu", "strict", pytest.param("gpu", marks=pytest.mark.gpu)])
def device(request):
    """Each test body that takes ``device`` runs on NumPy, on the strict CuPy-like backend, and on CuPy.

    The strict backend's arrays refuse implicit conversion to NumPy (as ``cupy.ndarray`` does), so a NumPy
    call that leaked into device code fails here on machines without a GPU. The gpu case is skipped where
    CuPy or a CUDA device is missing.
    """
    if request.param == "strict":
        from minilottery.testing.strict_backend import strict_device

        with strict_device() as name:
            yield name
    elif request.param == "gpu":
        if not _gpu_available():
            pytest.skip("CuPy or a CUDA device is not available")
        yield "gpu"
    else:
        yield "cpu"


@pytest.fixture(scope="session")
def mnist_data():
    """The full MNIST data set (from MINILOTTERY_DATA): skipped if absent, but a failure when CI is set."""
    from minilottery.data import DataError, load_mnist

    try:
        return load_mnist(download=False)
    except DataError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs MNIST (set MINILOTTERY_DATA): {exc}")
        pytest.skip(f"MNIST not available: {exc}")


def on_device(obj, device):
    """A copy of a layer/model (or an array) on ``device``; the host original is left as it was."""
    if hasattr(obj, "to"):
        return copy.deepcopy(obj).to(device)
    return backend.to_device(obj, device)
