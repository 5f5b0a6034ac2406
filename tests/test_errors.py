"""Every failure a user can cause ends in one line on stderr and a non-zero exit code, never a traceback.

The commands run in this process on tiny synthetic data (``commands.imp.load_data`` and MNIST's entry in
``minilottery.data.LOADERS`` replaced). Read-only folders and full disks are injected (the tests may run as root, where
``chmod`` stops nothing); a path under a regular file is real.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import errno
import json
import multiprocessing
import os
import pickle
import subprocess
import sys
import tempfile
import warnings

import pytest

import minilottery.files as files
import minilottery.lab.commands.bench as bench_command
import minilottery.lab.commands.imp as imp_command
from minilottery.data import LOADERS
from minilottery.lab.cli import main
from minilottery.training import NonFiniteLossError
from tests.helpers import REPO, make_fake_run, synthetic_data, synthetic_loader

TRAIN = ["train", "--iterations", "4", "--eval-every", "2", "--no-progress"]
IMP = ["imp", "--model", "lenet_300_100", "--rounds", "1", "--controls", "none", "--iterations", "4",
       "--eval-every", "2", "--no-progress"]
TRIALS = ["trials", *IMP[1:], "--trials", "2", "--workers", "2"]
DIVERGE = ["--optimizer", "sgd", "--lr", "1e30"]  # the loss is nan at iteration 2


class DataLoaded(Exception):
    """Raised by the stand-in loaders of tests where a bad option must fail before any data is loaded."""


def refuse_loading(*args, **kwargs):
    raise DataLoaded("the data was loaded: the bad option was not caught first")


@pytest.fixture
def synthetic(monkeypatch):
    """The train, imp, trials and demo commands get the small synthetic data set."""
    monkeypatch.setitem(LOADERS, "mnist", lambda data_dir=None: synthetic_data())
    monkeypatch.setattr(imp_command, "load_data", synthetic_loader)


@pytest.fixture
def no_data(monkeypatch):
    """Loading data is an error: the option must be refused before."""
    monkeypatch.setitem(LOADERS, "mnist", refuse_loading)
    monkeypatch.setattr(imp_command, "load_data", refuse_loading)


def error_line(capsys, command: str) -> str:
    """The one line on stderr, which must be ``minilottery <command>: error: ...``."""
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"minilottery {command}: error: "), err
    return err


# -- a training that diverges ------------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [TRAIN + DIVERGE, IMP + DIVERGE], ids=["train", "imp"])
def test_nan_loss_is_one_line(synthetic, argv, tmp_path, capsys):
    assert main([*argv, "--out", str(tmp_path / "out")]) == 1
    err = error_line(capsys, argv[0])
    assert "training loss became nan at iteration 2; lower --lr (now 1e+30)" in err


def test_nonfinite_loss_error_pickles():
    error = NonFiniteLossError("training loss became inf at iteration 7; lower --lr", 7)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is NonFiniteLossError and copy.iteration == 7 and str(copy) == str(error)


def raise_nonfinite(iteration: int) -> None:
    raise NonFiniteLossError(f"training loss became nan at iteration {iteration}; lower --lr", iteration)


def test_nonfinite_loss_error_crosses_a_spawned_process_pool():
    """Before: the parent could not unpickle the error, and the pool broke (BrokenProcessPool)."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        with pytest.raises(NonFiniteLossError) as info:
            pool.submit(raise_nonfinite, 7).result(timeout=120)
    assert info.value.iteration == 7 and "at iteration 7" in str(info.value)


def test_nan_trial_in_worker_processes_names_the_error(synthetic, tmp_path, capsys):
    assert main([*TRIALS, *DIVERGE, "--out", str(tmp_path / "out")]) == 1
    err = error_line(capsys, "trials")
    assert "failed: NonFiniteLossError: training loss became nan at iteration 2" in err, err


def test_a_warning_in_a_trial_worker_is_one_line(synthetic, tmp_path, capfd):
    assert main([*TRIALS, "--lr", "10", "--out", str(tmp_path / "out")]) == 0
    warned = [line for line in capfd.readouterr().err.splitlines() if "warning" in line]
    assert len(warned) == 4, warned  # 2 trials x 2 rounds, from the worker processes
    assert all(line.startswith("minilottery trials (seed_") and ": warning: final validation accuracy" in line
               and "at chance level" in line for line in warned), warned


# -- a training that diverges but stays finite -------------------------------------------------------------


def test_train_warns_at_chance_level():
    from minilottery.models import build_model
    from minilottery.training import ChanceLevelWarning, TrainConfig, train

    data = synthetic_data()
    with pytest.warns(ChanceLevelWarning, match=r"at chance level \(10 classes\).*lower --lr, now 10"):
        train(build_model("lenet_300_100"), data, TrainConfig(iterations=20, eval_every=10, lr=10.0), progress=False)
    with warnings.catch_warnings(record=True) as seen:  # a run that learns: no word
        warnings.simplefilter("always")
        train(build_model("lenet_300_100"), data, TrainConfig(iterations=20, eval_every=10), progress=False)
    assert not [w for w in seen if issubclass(w.category, ChanceLevelWarning)]


def test_cli_shows_the_chance_level_warning_in_one_line(synthetic, tmp_path, capsys):
    assert main(["train", "--iterations", "20", "--eval-every", "10", "--no-progress", "--lr", "10",
                 "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("minilottery train: warning: final validation accuracy ") and "chance level" in err
    assert (tmp_path / "out" / "metrics.json").is_file()  # the numbers are still recorded


# -- files that cannot be written --------------------------------------------------------------------------


def failing_atomic_open(code: int):
    """A stand-in for ``files.atomic_open`` that fails like a read-only folder (naming the file) or a full
    disk (mid-write: no file named)."""
    @contextlib.contextmanager
    def atomic_open(path, binary=True):
        if code == errno.ENOSPC:
            raise OSError(code, os.strerror(code))
        raise OSError(code, os.strerror(code), str(path))
        yield  # never reached: makes this a generator
    return atomic_open


@pytest.mark.parametrize("code, expected", [
    (errno.EROFS, "metrics.json: Read-only file system; the file system is read-only"),
    (errno.EACCES, "metrics.json: Permission denied; check its permissions"),
    (errno.ENOSPC, "No space left on device; free some disk space"),
], ids=["EROFS", "EACCES", "ENOSPC"])
def test_train_write_failure_is_one_line(synthetic, monkeypatch, tmp_path, capsys, code, expected):
    monkeypatch.setattr(files, "atomic_open", failing_atomic_open(code))
    out = tmp_path / "out"
    assert main([*TRAIN, "--out", str(out)]) == 1
    err = error_line(capsys, "train")
    assert expected in err
    assert str(out) in err  # the file, or for a full disk the --out folder


def test_imp_write_failure_is_one_line(synthetic, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(files, "atomic_open", failing_atomic_open(errno.EROFS))
    assert main([*IMP, "--out", str(tmp_path / "out")]) != 0
    assert "Read-only file system" in error_line(capsys, "imp")


def test_unwritable_out_fails_before_the_data_is_loaded(no_data, monkeypatch, tmp_path, capsys):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(kwargs.get("dir")))

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
    assert main([*TRAIN, "--out", str(tmp_path / "out")]) != 0
    err = error_line(capsys, "train")
    assert f"--out {tmp_path / 'out'} cannot be written (Read-only file system)" in err


@pytest.mark.parametrize("argv", [TRAIN, IMP, TRIALS, ["demo", "--no-progress"]],
                         ids=["train", "imp", "trials", "demo"])
@pytest.mark.parametrize("where", ["file", "under_file"])
def test_out_on_a_file_fails_before_the_data_is_loaded(no_data, tmp_path, capsys, argv, where):
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    out = afile if where == "file" else afile / "run"
    assert main([*argv, "--out", str(out)]) != 0
    err = error_line(capsys, argv[0])
    assert f"--out {out} " in err and "a file, not a folder" in err
    assert afile.read_text() == "not a folder"


# -- empty options -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv, message", [
    ([*IMP, "--controls", "", "--out", "{tmp}/o"], "--controls is empty (''); give comma-separated arms"),
    ([*IMP, "--controls", " , ", "--out", "{tmp}/o"], "or 'none' for no control arm"),
    ([*TRIALS, "--scheduler", "", "--out", "{tmp}/o"], "--scheduler is empty"),
    ([*TRAIN, "--out", ""], "--out is empty"),
    ([*IMP, "--out", ""], "--out is empty"),
    ([*TRIALS, "--out", ""], "--out is empty"),
    (["demo", "--out", ""], "--out is empty"),
], ids=["controls", "controls-commas", "scheduler", "train-out", "imp-out", "trials-out", "demo-out"])
def test_empty_options_are_refused(no_data, monkeypatch, tmp_path, capsys, argv, message):
    monkeypatch.chdir(tmp_path)  # an --out "" that got through would write here
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    assert message in error_line(capsys, argv[0])
    assert list(tmp_path.iterdir()) == []


def test_plot_refuses_an_empty_out(monkeypatch, tmp_path, capsys):
    run = tmp_path / "run"
    make_fake_run(run)
    monkeypatch.chdir(tmp_path)
    assert main(["plot", str(run), "--out", ""]) == 2
    assert "--out is empty" in error_line(capsys, "plot")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


# -- bench sizes -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("option, value, message", [
    ("--batch-size", "100000000", "--batch-size must be an integer >= 1 and <= 55,000, got 100000000"),
    ("--eval-batch-size", "100000000", "--eval-batch-size must be an integer >= 1 and <= 10,000"),
    ("--repeats", "1000000000", "--repeats must be an integer >= 1 and <= 10,000"),
    ("--warmup", "1000000000", "--warmup must be an integer >= 0 and <= 10,000"),
    ("--peak-size", "1000000", "--peak-size must be an integer >= 16 and <= 16,384"),
])
def test_bench_sizes_are_bounded(monkeypatch, capsys, option, value, message):
    monkeypatch.setattr(bench_command, "run_bench", refuse_loading)  # nothing may be measured
    assert main(["bench", option, value]) == 2
    assert message in error_line(capsys, "bench")


def test_bench_refuses_what_does_not_fit_in_memory(monkeypatch, capsys):
    from minilottery.lab import bench

    monkeypatch.setattr(bench, "available_memory", lambda device: 2**30)  # 1 GiB free
    monkeypatch.setattr(bench, "machine_info", refuse_loading)  # the check comes before anything else
    assert main(["bench", "--models", "conv2", "--batch-size", "1000", "--no-sparse"]) == 2
    err = error_line(capsys, "bench")
    assert "--batch-size 1,000: conv2's training step would need about " in err
    assert "more than the 1.0 GiB available on the cpu; use a smaller --batch-size" in err
    bench.check_memory(bench.BenchConfig().validate(), "cpu", available=2**31)  # the defaults fit in 2 GiB


# -- run folders of the wrong shape, and plotting 0% -------------------------------------------------------


SHAPES = {
    "list": [],
    "round-without-keys": {"config": {"model": "lenet_300_100"}, "rounds": [{"round": 0}]},
    "arms-not-a-dict": {"config": {"model": "lenet_300_100"},
                        "rounds": [{"round": 0, "percent_remaining": 100.0, "arms": [1, 2]}]},
}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("command", ["report", "plot", "check-paper"])
def test_summary_of_the_wrong_shape_is_one_line(tmp_path, capsys, command, shape):
    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps(SHAPES[shape]))
    extra = ["--out", str(tmp_path / "figures")] if command == "plot" else []
    assert main([command, str(run), *extra]) != 0
    assert str(run) in error_line(capsys, command)


def test_plot_a_run_pruned_to_zero_percent(tmp_path, capsys):
    run = tmp_path / "run"
    make_fake_run(run)

    def to_zero(rnd):
        if rnd["round"] == 4:
            rnd["percent_remaining"] = 0.0
            for layer in rnd["layers"].values():
                layer.update(remaining=0, percent=0.0)
        return rnd

    for path in run.glob("round_*/round.json"):
        path.write_text(json.dumps(to_zero(json.loads(path.read_text()))))
    summary = json.loads((run / "summary.json").read_text())
    summary["rounds"] = [to_zero(r) for r in summary["rounds"]]
    (run / "summary.json").write_text(json.dumps(summary))

    assert main(["plot", str(run), "--out", str(tmp_path / "figures")]) == 0, capsys.readouterr().err
    assert (tmp_path / "figures" / "accuracy_vs_weights.png").stat().st_size > 1000
    assert (tmp_path / "figures" / "layer_percent_by_round.png").stat().st_size > 1000
    assert main(["report", str(run)]) == 0 and "    4        0.0" in capsys.readouterr().out


# -- the CLI itself ----------------------------------------------------------------------------------------


def test_cli_errors_are_one_line_and_exit_codes_hold(monkeypatch, tmp_path, capsys):
    import minilottery.lab.commands.report as report_command

    def multi_line(args):
        raise ValueError("the first line\n  the second line\n")

    monkeypatch.setattr(report_command, "run", multi_line)
    assert main(["report", str(tmp_path)]) == 2
    assert capsys.readouterr().err == "minilottery report: error: the first line; the second line\n"

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(report_command, "run", interrupted)
    assert main(["report", str(tmp_path)]) == 130
    assert capsys.readouterr().err == "minilottery report: interrupted\n"
    with pytest.raises(SystemExit) as usage:  # argparse: usage errors exit with 2
        main(["report"])
    assert usage.value.code == 2


# -- tutorials ---------------------------------------------------------------------------------------------


def run_python(args, **kwargs):
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))  # this checkout's package
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=path)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=120, **kwargs)


def test_tutorial_ends_in_one_line_on_a_user_error(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("")
    done = run_python([str(REPO / "tutorials" / "01_arrays_and_backend.py"), "--quick",
                       "--figures", str(afile / "figures")])
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("01_arrays_and_backend.py: error: "), done.stderr
    assert "Not a directory" in done.stderr


def test_tutorial_ends_in_one_line_on_missing_data(tmp_path):
    script = ("import sys; sys.argv = ['05_train_lenet.py', '--figures', sys.argv[1]]; "
              "from minilottery.lab.tutorial import parse_args; parse_args('Doc.', '05_train_lenet.py'); "
              "from minilottery.data import DataError; "
              "raise DataError('MNIST is not in /nowhere\\nrun: minilottery data download')")
    done = run_python(["-c", script, str(tmp_path)])
    assert done.returncode == 1
    assert done.stderr == "05_train_lenet.py: error: MNIST is not in /nowhere; run: minilottery data download\n"


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_written_files_get_the_permissions_open_would_give(tmp_path, umask):
    previous = os.umask(umask)
    try:
        path = files.atomic_write_bytes(tmp_path / "ticket.bin", b"x")
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # mkstemp alone would give 0o600 for both
