"""Shared fixtures: seeding, the device under test (cpu, a CuPy-like strict backend, gpu when present).

GPU tests (the ``device`` fixture's gpu case and tests marked ``gpu``) are skipped where CuPy or a CUDA device is
missing, and fail instead when ``MINILOTTERY_REQUIRE_GPU=1`` is set (on a GPU runner, so a broken CuPy install
cannot pass as a run of skips).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from minilottery import backend
from tests.helpers import LEGACY_RANDOM, refuse_legacy


@pytest.fixture(autouse=True)
def _refuse_legacy_random(monkeypatch):
    """Every call of np.random.rand, np.random.seed, ... fails the test instead of going unnoticed."""
    for name in LEGACY_RANDOM:
        monkeypatch.setattr(np.random, name, refuse_legacy(name))


def _gpu_available() -> bool:
    try:
        backend.get_backend("gpu")
    except backend.DeviceError:
        return False
    return True


_NO_GPU = "CuPy or a CUDA device is not available"


def _gpu_required() -> bool:
    return os.environ.get("MINILOTTERY_REQUIRE_GPU") == "1"


def _skip_or_fail_without_gpu() -> None:
    """Skips the test when there is no GPU, or fails it when ``MINILOTTERY_REQUIRE_GPU=1`` asks for one."""
    if _gpu_available():
        return
    if _gpu_required():
        pytest.fail(f"MINILOTTERY_REQUIRE_GPU=1 but {_NO_GPU}", pytrace=False)
    pytest.skip(_NO_GPU)


def pytest_collection_modifyitems(items):
    """Tests marked ``gpu`` are skipped where there is no GPU (unless MINILOTTERY_REQUIRE_GPU=1, see below).

    The ``device`` fixture's gpu case skips itself, so that the skip is reported at the test's own line.
    """
    gpu_items = [item for item in items
                 if item.get_closest_marker("gpu") is not None and "device" not in item.fixturenames]
    if gpu_items and not _gpu_required() and not _gpu_available():
        for item in gpu_items:
            item.add_marker(pytest.mark.skip(reason=_NO_GPU))


def pytest_runtest_setup(item):
    """With MINILOTTERY_REQUIRE_GPU=1, a test marked ``gpu`` fails before its fixtures run when there is no GPU."""
    if item.get_closest_marker("gpu") is not None and _gpu_required():
        _skip_or_fail_without_gpu()


@pytest.fixture(params=["cpu", "strict", pytest.param("gpu", marks=pytest.mark.gpu)])
def device(request):
    """Each test body that takes ``device`` runs on NumPy, on the strict CuPy-like backend, and on CuPy.

    The strict backend's arrays refuse implicit conversion to NumPy (as ``cupy.ndarray`` does), so a NumPy
    call that leaked into device code fails here on machines without a GPU. The gpu case is skipped where
    CuPy or a CUDA device is missing (a failure when ``MINILOTTERY_REQUIRE_GPU=1``).
    """
    if request.param == "strict":
        from minilottery.testing.strict_backend import strict_device

        with strict_device() as name:
            yield name
    elif request.param == "gpu":
        _skip_or_fail_without_gpu()
        yield "gpu"
    else:
        yield "cpu"


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    """Verification records of read-only data folders go to this test's own cache folder, not the user's."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))


@pytest.fixture
def no_data_variable(monkeypatch):
    """MINILOTTERY_DATA unset: data folders are only those the test names."""
    monkeypatch.delenv("MINILOTTERY_DATA", raising=False)


def _real_data(name: str):
    """The real data set ``name``, never downloaded: skipped if absent, but a failure when CI is set."""
    from minilottery.data import LOADERS, DataError

    try:
        return LOADERS[name](download=False)
    except DataError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs {name} (set MINILOTTERY_DATA to the data root): {exc}")
        pytest.skip(f"{name} not available: {exc}")


@pytest.fixture(scope="session")
def mnist_data():
    """The full MNIST data set (from MINILOTTERY_DATA): skipped if absent, but a failure when CI is set."""
    return _real_data("mnist")


@pytest.fixture(scope="session")
def fashion_mnist_data():
    """The full Fashion-MNIST data set (MINILOTTERY_DATA/fashion-mnist): skipped if absent, a failure under CI."""
    return _real_data("fashion-mnist")
