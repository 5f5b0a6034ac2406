"""``minilottery doctor``: passes on a working CPU install, runs the device path on the strict backend, and names each
planted problem (a wrong backward, a NumPy call on device arrays, a device that computes other numbers, a corrupt
data file, an old dependency, no CuPy) on one line with its fix, exiting 1."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from minilottery import backend, compiled
from minilottery.data import DATASETS, FILES_OF
from minilottery.lab import doctor
from minilottery.lab.cli import main
from minilottery.layers import Dense, ReLU
from minilottery.testing.strict_backend import strict_device, strict_xp
from tests.helpers import write_mnist

STATUSES = ("ok", "note", "problem")


def run_doctor(capsys, *argv: str) -> tuple[int, list[str]]:
    """``minilottery doctor ARGV`` in this process: (exit code, printed lines; the last is the summary)."""
    code = main(["doctor", *argv])
    captured = capsys.readouterr()
    assert captured.err == ""
    return code, captured.out.splitlines()


def line_of(lines: list[str], name: str) -> str:
    """The one line that checks ``name`` (e.g. "gradient Dense")."""
    (line,) = [line for line in lines if line.split(maxsplit=1)[-1].startswith(f"{name}: ")]
    return line


def status_of(lines: list[str], name: str) -> str:
    """The status of the one line that checks ``name``: "ok", "note" or "problem"."""
    return line_of(lines, name).split()[0]


def test_doctor_passes_on_the_cpu(capsys, private_cache):
    code, lines = run_doctor(capsys, "--device", "cpu")
    *checks, summary = lines
    assert code == 0, lines
    assert all(line.split()[0] in ("ok", "note") for line in checks), lines
    assert summary.startswith("doctor: no problems,") and summary.split()[-4:-2] == ["cpu", "in"]
    for name in ("python", "minilottery", "numpy", "scipy", "matplotlib", "safetensors", "blas", "data root",
                 "gradient Dense", "gradient Conv2d stride 1", "gradient masked network", "train step lenet_300_100",
                 "train step conv2"):
        assert status_of(lines, name) == "ok", name
    assert status_of(lines, "gpu") == "note"  # the GPU is not checked unless asked for
    assert all(status_of(lines, f"data {name}") in ("ok", "note") for name in DATASETS)


def test_doctor_runs_the_device_path_on_the_strict_backend(capsys, private_cache):
    code, lines = run_doctor(capsys, "--device", "strict")
    assert code == 0, lines
    for name in ("cupy", "cuda device", "nvrtc", "cublas", "curand"):  # said, not silently passed
        assert line_of(lines, name).startswith(f"note    {name}: not applicable on the strict test device")
    gradients = [line for line in lines if line.split(maxsplit=1)[-1].startswith("gradient ")]
    assert len(gradients) == 10 and all(line.startswith("ok") and "(float64, strict)" in line for line in gradients)
    for model in ("lenet_300_100", "conv2"):
        line = line_of(lines, f"train step {model}")
        assert line.startswith("ok") and "on strict;" in line and "match the CPU's" in line
    assert lines[-1].startswith("doctor: no problems,") and " on strict in " in lines[-1]


def test_a_numpy_call_on_device_arrays_passes_on_the_cpu_and_is_caught_on_the_strict_backend(monkeypatch):
    def leaky_backward(self, dout):
        return np.multiply(dout, self._positive)  # np.* instead of xp: fine on the CPU, a TypeError on the GPU

    monkeypatch.setattr(ReLU, "backward", leaky_backward)
    assert all(check.status == doctor.OK for check in doctor.gradient_checks("cpu"))
    with strict_device() as device:
        checks = {check.name: check for check in doctor.gradient_checks(device)}
    for name in ("gradient ReLU", "gradient masked network"):
        assert checks[name].status == doctor.PROBLEM and "TypeError" in checks[name].detail
        assert "python -m pytest tests/test_gradcheck.py -k strict" in checks[name].fix
    assert checks["gradient Dense"].status == doctor.OK


def test_a_wrong_backward_is_a_problem_with_its_fix(monkeypatch):
    dense_backward = Dense.backward

    def one_percent_off(self, dout, input_grad=True):
        dx = dense_backward(self, dout, input_grad)
        self.grads["W"] = self.grads["W"] * 1.01
        return dx

    monkeypatch.setattr(Dense, "backward", one_percent_off)
    checks = {check.name: check for check in doctor.gradient_checks("cpu")}
    problems = sorted(name for name, check in checks.items() if check.status == doctor.PROBLEM)
    assert problems == ["gradient Dense", "gradient masked network"]
    line = checks["gradient Dense"].line()
    assert line.startswith("problem gradient Dense: the gradient of W is off by 5.0e-03 (relative;")
    assert line.endswith("fix: run `python -m pytest tests/test_gradcheck.py -k cpu` in the checkout and report its "
                         "failure")


def test_a_device_that_computes_other_numbers_fails_the_training_step(monkeypatch):
    """A device library whose exp is 0.1% off (a broken GPU library, say): its training step no longer matches."""
    exact_exp = strict_xp.exp
    with strict_device() as device:
        monkeypatch.setattr(strict_xp, "exp", lambda x, *args, **kwargs: exact_exp(x, *args, **kwargs) * 1.001)
        checks = doctor.training_step_checks(device)
    for check in checks:
        assert check.status == doctor.PROBLEM, check
        assert "strict and cpu differ in the" in check.detail and "times the float32 tolerance" in check.detail
        assert "tests/test_training.py -k strict" in check.fix


def test_a_corrupt_data_file_is_a_problem_and_a_missing_data_set_a_note(tmp_path, private_cache, capsys):
    (tmp_path / "mnist").mkdir()
    write_mnist(tmp_path / "mnist")  # small files in MNIST's format: not the published checksums
    code, lines = run_doctor(capsys, "--data-dir", str(tmp_path), "--device", "cpu")
    assert code == 1
    (problem,) = [line for line in lines if line.startswith("problem")]
    assert problem.startswith(f"problem data mnist: {tmp_path / 'mnist'}/")
    assert "is corrupt or not the expected file" in problem
    assert problem.endswith("run `minilottery data download --force`")
    # --data-dir without a fashion-mnist/ folder is read as the data set's own folder (minilottery.data.paths)
    assert line_of(lines, "data fashion-mnist") == (f"note    data fashion-mnist: not in {tmp_path}; "
                                                   f"`minilottery data download --dataset fashion-mnist` fetches it")
    assert lines[-1].startswith("doctor: 1 problem(s),")


def test_a_partial_data_set_names_the_missing_files(tmp_path, private_cache):
    (tmp_path / "mnist").mkdir()
    write_mnist(tmp_path / "mnist")
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    check = doctor.dataset_check("mnist", str(tmp_path))
    assert check.status == doctor.PROBLEM
    assert "t10k-labels-idx1-ubyte.gz is not in" in check.detail and "run `minilottery data download`" in check.detail


def test_every_data_set_has_its_files():
    assert set(FILES_OF) == set(DATASETS)


def test_an_old_or_missing_dependency_is_a_problem_with_the_install_hint(monkeypatch):
    monkeypatch.setattr(doctor, "_requirements", lambda: [("numpy", "99.0"), ("no_such_package_here", "1.0")])
    checks = {check.name: check for check in doctor.version_checks()}
    expected = f"problem numpy: {np.__version__}, minilottery needs >= 99.0; fix: pip install -e ."
    assert checks["numpy"].line() == expected
    assert checks["no_such_package_here"].status == doctor.PROBLEM
    assert "ModuleNotFoundError" in checks["no_such_package_here"].detail
    assert checks["no_such_package_here"].fix == "pip install -e ."
    assert checks["python"].status == checks["minilottery"].status == doctor.OK


def test_without_cupy_the_gpu_doctor_prints_one_line_with_the_install_hint(monkeypatch, capsys, private_cache):
    monkeypatch.delitem(backend._backends, "gpu", raising=False)  # forget a GPU backend made earlier (restored after)
    monkeypatch.setitem(sys.modules, "cupy", None)  # `import cupy` raises ImportError
    code, lines = run_doctor(capsys, "--device", "gpu")
    assert code == 1
    (problem,) = [line for line in lines if line.startswith("problem")]
    assert problem.startswith("problem cupy: the GPU was requested but CuPy is not installed (")
    assert problem.endswith(f"; fix: {backend.GPU_INSTALL_HINT}, or use --device cpu")
    assert not [line for line in lines if line.split(maxsplit=1)[1].startswith(("gradient ", "train step "))]
    assert lines[-1].startswith("doctor: 1 problem(s),")


def test_the_install_hints_use_the_checkout():
    from minilottery.lab.commands.trials import DASK_MISSING

    assert backend.GPU_INSTALL_HINT == 'pip install -e ".[gpu]"'
    assert DASK_MISSING.endswith('pip install -e ".[dask]"')


def test_help_shows_the_defaults_and_hides_the_test_device(capsys):
    with pytest.raises(SystemExit):
        main(["doctor", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--device {cpu,gpu}" in out and "(default: $MINILOTTERY_DEVICE, else cpu)" in out
    assert "(default: $MINILOTTERY_DATA, else the checkout's data/, else the user cache)" in out
    assert "strict" not in out


def test_a_bad_device_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["doctor", "--device", "tpu"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == ("minilottery doctor: error: argument --device: expected cpu "
                                                        "or gpu, got 'tpu'")


@pytest.mark.gpu
def test_doctor_passes_on_the_gpu(capsys, private_cache):
    code, lines = run_doctor(capsys, "--device", "gpu")
    assert code == 0, lines
    for name in ("cupy", "cuda device", "nvrtc", "cublas", "curand", "gradient Conv2d stride 1",
                 "train step lenet_300_100", "train step conv2"):
        assert status_of(lines, name) == "ok", name
    assert "on gpu;" in line_of(lines, "train step conv2")


def test_winograd_check_proves_the_path_or_notes_its_absence(monkeypatch):
    monkeypatch.setenv(compiled.ENV_SWITCH, "0")
    off = doctor.winograd_check()
    assert off.status == "note" and "im2col" in off.detail, off.line()
    monkeypatch.setenv(compiled.ENV_SWITCH, "1")
    if compiled._numba() is None:
        return
    assert doctor.winograd_check().status == "ok"
    output = compiled.winograd_output
    monkeypatch.setattr(compiled, "winograd_output", lambda *args: output(*args) * np.float32(1.001))
    broken = doctor.winograd_check()
    assert broken.status == "problem" and "differs" in broken.detail, broken.line()


def test_compiled_check_proves_the_loop_or_notes_its_absence(monkeypatch):
    monkeypatch.setenv(compiled.ENV_SWITCH, "0")
    off = doctor.compiled_check()
    assert off.status == "note" and "NumPy passes" in off.detail
    monkeypatch.setenv(compiled.ENV_SWITCH, "1")
    if compiled._numba() is not None:
        on = doctor.compiled_check()
        assert on.status == "ok" and "equals its NumPy passes" in on.detail, on.line()
        monkeypatch.setattr(compiled, "mask_is_ones", lambda mask: True)
        broken = doctor.compiled_check()
        assert broken.status == "problem" and "mask of ones" in broken.detail, broken.line()
