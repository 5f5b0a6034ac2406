import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from minilottery import backend


def test_import_minilottery_never_imports_cupy():
    code = "import sys, minilottery, minilottery.layers, minilottery.lab.cli; print('cupy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_cpu_is_numpy_and_moves_are_free():
    a = np.arange(6, dtype=np.float32)
    assert backend.get_array_module(a) is np
    assert backend.to_device(a, "cpu") is a
    assert backend.to_numpy(a) is a
    backend.synchronize("cpu")


def test_env_var_chooses_default_device(monkeypatch):
    monkeypatch.setattr(backend, "_default", None)
    monkeypatch.setenv("MINILOTTERY_DEVICE", "cpu")
    assert backend.default_device() == "cpu"
    monkeypatch.setenv("MINILOTTERY_DEVICE", "tpu")
    with pytest.raises(ValueError, match="MINILOTTERY_DEVICE"):
        backend.default_device()


def test_use_sets_default(monkeypatch):
    monkeypatch.setattr(backend, "_default", None)
    backend.use("cpu")
    assert backend.default_device() == "cpu"
    with pytest.raises(ValueError, match="unknown device"):
        backend.use("tpu")


def test_gpu_without_cupy_is_one_clear_line():
    # A fresh interpreter in which 'import cupy' fails, whatever this machine has installed.
    code = (
        "import sys; sys.modules['cupy'] = None\n"
        "from minilottery import backend\n"
        "try:\n    backend.use('gpu')\nexcept backend.DeviceError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    message = out.stdout.strip()
    assert "\n" not in message
    assert 'pip install -e ".[gpu]"' in message


def test_cli_gpu_without_cupy_prints_one_line_not_a_traceback():
    code = ("import sys; sys.modules['cupy'] = None\nfrom minilottery.lab.cli import main\n"
            "sys.exit(main(['demo', '--device', 'gpu']))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert 'pip install -e ".[gpu]"' in out.stderr


def test_scatter_add_accumulates_repeats(device):
    a = backend.to_device(np.zeros(4, dtype=np.float32), device)
    idx = backend.to_device(np.array([0, 2, 2, 3]), device)
    vals = backend.to_device(np.array([1, 2, 3, 4], dtype=np.float32), device)
    backend.scatter_add(a, idx, vals)
    np.testing.assert_array_equal(backend.to_numpy(a), [1, 0, 5, 4])


def test_round_trip(device):
    a = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    d = backend.to_device(a, device)
    assert backend.device_of(d) == device
    back = backend.to_numpy(d)
    assert isinstance(back, np.ndarray) and back.dtype == np.float32
    np.testing.assert_array_equal(back, a)


_GPU_TESTS = textwrap.dedent("""
    import sys

    sys.modules["cupy"] = None  # this interpreter has no CuPy, whatever the machine has

    import pytest


    @pytest.mark.gpu
    def test_marked_gpu():
        pass


    def test_on_each_device(device):
        pass
""")


def _run_gpu_tests(tmp_path, require_gpu):
    """Runs _GPU_TESTS with this suite's conftest in a fresh pytest; returns (exit code, output)."""
    root = Path(__file__).resolve().parent.parent
    (tmp_path / "test_gpu_only.py").write_text(_GPU_TESTS)
    env = {key: value for key, value in os.environ.items() if key != "MINILOTTERY_REQUIRE_GPU"}
    if require_gpu:
        env["MINILOTTERY_REQUIRE_GPU"] = "1"
    command = [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", "-p", "tests.conftest",
               "-c", str(root / "pyproject.toml"), str(tmp_path / "test_gpu_only.py")]
    out = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
    return out.returncode, out.stdout + out.stderr


def test_gpu_tests_skip_without_a_gpu(tmp_path):
    code, output = _run_gpu_tests(tmp_path, require_gpu=False)
    assert code == 0, output
    assert "2 passed, 2 skipped" in output


def test_require_gpu_turns_gpu_skips_into_failures(tmp_path):
    code, output = _run_gpu_tests(tmp_path, require_gpu=True)
    assert code == 1, output
    assert "2 passed" in output and "2 error" in output and "skipped" not in output, output
    reason = "MINILOTTERY_REQUIRE_GPU=1 but CuPy or a CUDA device is not available"
    assert output.count(reason) >= 2, output


def test_legacy_global_random_functions_raise_in_tests():
    from tests.helpers import LEGACY_RANDOM, LegacyRandomUsed

    assert {"seed", "rand", "randn", "permutation", "shuffle", "normal", "choice"} <= set(LEGACY_RANDOM)
    with pytest.raises(LegacyRandomUsed, match="np.random.permutation draws from the global generator"):
        np.random.permutation(3)
    assert np.random.default_rng(0).permutation(3).shape == (3,)  # explicit generators work
