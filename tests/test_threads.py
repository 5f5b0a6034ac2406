"""BLAS threads: every computing command takes ``--threads N``, and the thread count decides the results.

The reproducibility contract (README, "Threads and reproducibility"): the same seed, thread count, BLAS library
and kind of machine give bit-identical results, and a trial of ``trials --workers W`` equals ``imp`` at the same
``--threads``. A different thread count sums the products in another order, so it may differ in the last bits.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from minilottery.lab import runs, threads
from minilottery.lab.cli import build_parser, main
from minilottery.lab.presets import config_from_options
from minilottery.lab.run_folder import run_imp_in_folder
from minilottery.lab.trials import run_trials, trial_config, trial_dir
from minilottery.models import build_model
from minilottery.training import TrainConfig, train
from tests.helpers import REPO, SYNTHETIC_CLI, assert_same_files, synthetic_data, synthetic_loader

CONFIG = config_from_options(model="lenet_300_100", rounds=1, iterations=20, eval_every=10, controls=(), seed=3)


@pytest.fixture(autouse=True)
def _restore_blas_threads(monkeypatch):
    """Every test leaves the process's BLAS thread count as it found it, and starts without the variable."""
    monkeypatch.delenv(threads.ENV, raising=False)
    with threadpool_limits(limits=None, user_api="blas"):  # on exit: the thread counts from before
        yield


def numpy_blas_threads() -> int:
    """The thread count of NumPy's BLAS as threadpoolctl reads it from the library."""
    (count,) = {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas" and "numpy" in i["filepath"]}
    return count


# -- the option and the variable --------------------------------------------------------------------

COMMANDS = {
    "demo": ["demo"],
    "train": ["train", "--out", "x"],
    "imp": ["imp", "--out", "x"],
    "trials": ["trials", "--out", "x"],
    "transfer": ["transfer", "source-run", "--dataset", "mnist", "--out", "x"],
    "bench": ["bench"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_computing_command_takes_threads(command, capsys):
    parser = build_parser()
    assert parser.parse_args([*COMMANDS[command], "--threads", "3"]).threads == 3
    assert parser.parse_args(COMMANDS[command]).threads is None  # None: $MINILOTTERY_THREADS, else the default
    with pytest.raises(SystemExit):
        parser.parse_args([*COMMANDS[command], "--threads", "0"])
    assert "--threads: must be an integer >= 1 (BLAS threads per process, e.g. 1), got '0'" in capsys.readouterr().err


def test_trials_keeps_blas_threads_as_a_hidden_alias(capsys):
    parser = build_parser()
    assert parser.parse_args(["trials", "--out", "x", "--blas-threads", "2"]).threads == 2
    with pytest.raises(SystemExit):
        parser.parse_args(["trials", "--help"])
    help_text = capsys.readouterr().out
    assert "--threads" in help_text and "--blas-threads" not in help_text


def test_resolve_order_and_validation(monkeypatch):
    assert threads.resolve() == threads.DEFAULT == 1
    monkeypatch.setenv(threads.ENV, "3")
    assert threads.resolve() == 3
    assert threads.resolve(2) == 2  # the option beats the variable
    for bad in ("0", "two", "-1", "1.5"):
        monkeypatch.setenv(threads.ENV, bad)
        with pytest.raises(ValueError, match=f"^{threads.ENV} must be an integer >= 1.*got '{bad}'") as info:
            threads.resolve()
        assert "\n" not in str(info.value)
    for bad in (0, -2, True, 1.0):
        with pytest.raises(ValueError, match="^--threads must be an integer >= 1, got"):
            threads.resolve(bad)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_bad_variable_stops_each_command_with_one_line(command, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv(threads.ENV, "many")
    argv = [tmp_path / "out" if a == "x" else a for a in COMMANDS[command]]
    if command == "demo":
        argv += ["--out", str(tmp_path / "out")]
    assert main([str(a) for a in argv]) != 0
    err = capsys.readouterr().err
    assert threads.ENV in err and "'many'" in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()  # nothing was started


# -- applying and recording the count ---------------------------------------------------------------


def test_limit_sets_the_count_inside_and_restores_it_after():
    before = numpy_blas_threads()
    with threads.limit(1) as n:
        assert n == 1 and numpy_blas_threads() == 1
        with threads.limit(2):
            assert numpy_blas_threads() == 2
        assert numpy_blas_threads() == 1
    assert numpy_blas_threads() == before


def test_limit_without_a_count_uses_the_variable(monkeypatch):
    monkeypatch.setenv(threads.ENV, "2")
    with threads.limit() as n:
        assert n == 2 and numpy_blas_threads() == 2


def test_describe_names_the_count_and_library():
    with threads.limit(1):
        info = threads.describe()
    assert info["threads"] == 1
    blas = next(i for i in threadpool_info() if i["user_api"] == "blas" and "numpy" in i["filepath"])
    assert info["blas"] == f"{blas['internal_api']} {blas['version']} ({blas['threading_layer']})"


def test_difference_warns_only_when_the_settings_changed():
    now = {"threads": 1, "blas": "openblas 0.3.27 (pthreads)", "architecture": "Haswell"}
    assert threads.difference(now, dict(now)) is None
    assert threads.difference(None, now) is None  # a run recorded before threads were recorded
    message = threads.difference({**now, "threads": 2}, now)
    assert "threads 2 now 1" in message and "--threads 2" in message and "\n" not in message


def test_tutorials_keep_the_limit_after_parse_args(monkeypatch, tmp_path):
    from minilottery.lab.tutorial import parse_args

    wanted = 2 if numpy_blas_threads() == 1 else 1
    monkeypatch.setattr(sys, "argv", ["01_x.py", "--threads", str(wanted), "--figures", str(tmp_path)])
    args = parse_args("Title.\n", "01_x.py")
    assert args.threads == wanted and numpy_blas_threads() == wanted


# -- the results ------------------------------------------------------------------------------------


def _train(data, n: int) -> dict[str, np.ndarray]:
    with threads.limit(n):
        model = build_model("lenet_300_100", (1, 28, 28), seed=5)
        train(model, data, TrainConfig(iterations=40, eval_every=20, seed=5), progress=False)
    return model.state_dict()


@pytest.mark.parametrize("n", [1, 2])
def test_the_same_thread_count_gives_bit_identical_training(n):
    data = synthetic_data()
    a, b = _train(data, n), _train(data, n)
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def run_files(folder: Path) -> dict[str, object]:
    """A run folder's completed rounds (no timings in them) and every array it saved, by relative path."""
    found: dict[str, object] = {"rounds": runs.load_summary(folder)["rounds"]}
    for path in sorted(folder.rglob("*.npz")):
        for name, array in runs.load_npz(path).items():
            found[f"{path.relative_to(folder)}:{name}"] = array
    return found


def assert_same_run(a: Path, b: Path) -> None:
    assert_same_files(run_files(a), run_files(b))


@pytest.mark.parametrize("n, seeds", [(1, [3, 4]), (2, [3])])  # 2 x 2 threads on 2 cores is slow: one trial
def test_trials_on_a_process_pool_equal_imp_at_the_same_thread_count(n, seeds, tmp_path):
    run_trials(CONFIG, len(seeds), tmp_path / "trials", synthetic_loader, workers=2, threads=n, progress=False,
               log=None)
    data = synthetic_data()
    for seed in seeds:
        with threads.limit(n):
            run_imp_in_folder(trial_config(CONFIG, seed), data, tmp_path / f"imp_{seed}", progress=False)
        assert_same_run(trial_dir(tmp_path / "trials", seed), tmp_path / f"imp_{seed}")


def test_imp_and_trials_commands_agree_by_default(tmp_path):
    """The issue's report: ``imp --seed s`` and the same trial in ``trials --workers 2``, neither given --threads."""
    env = {k: v for k, v in os.environ.items() if k != threads.ENV}
    env.update(PYTHONPATH=str(REPO), MINILOTTERY_DEVICE="cpu")
    experiment = ["--model", "lenet_300_100", "--rounds", "1", "--iterations", "30", "--eval-every", "10",
                  "--controls", "none", "--seed", "3", "--no-progress"]
    procs = [subprocess.Popen([sys.executable, "-c", SYNTHETIC_CLI, *argv], cwd=REPO, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # both at once: one thread each
             for argv in (["imp", *experiment, "--out", str(tmp_path / "imp")],
                          ["trials", *experiment, "--trials", "1", "--workers", "2",
                           "--out", str(tmp_path / "trials")])]
    for proc in procs:
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
    assert_same_run(trial_dir(tmp_path / "trials", 3), tmp_path / "imp")
