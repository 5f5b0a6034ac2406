"""Trials: K independent IMP runs on a process pool or a Dask cluster, aggregated to mean, min and max.

The parallel runs must give exactly the per-trial results of running the trials one after another (every
trial limits BLAS to one thread, so the products sum in the same order everywhere), a killed run must
resume, and the aggregation is checked on a hand-made example.
"""

from __future__ import annotations

import concurrent.futures
import fcntl
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import types

import numpy as np
import pytest

from minilottery.lab import runs, trials
from minilottery.lab.cli import main
from minilottery.lab.commands import imp as imp_command
from minilottery.lab.commands import trials as trials_command
from minilottery.lab.presets import config_from_options
from minilottery.lab.run_folder import RunFolder
from minilottery.lab.tables import trials_csv
from minilottery.lab.trials import (
    TrialTask,
    aggregate,
    run_trial,
    run_trials,
    trial_config,
    trial_dir,
    trials_complete,
)
from tests.helpers import (
    REPO,
    SYNTHETIC_CLI,
    assert_same_files,
    counting_trainings,
    read_until_paused,
    subprocess_env,
    synthetic_loader,
)

CONFIG = config_from_options(model="lenet_300_100", rounds=2, iterations=60, eval_every=20, controls="reinit", seed=3)
TRAININGS_PER_TRIAL = 5  # rounds 0, 1, 2 train the ticket; rounds 1 and 2 also the reinit control
HANG_GUARD = 120  # seconds: only keeps a broken test from hanging the suite; a healthy one never comes near it


def run_small(out, config=CONFIG, trials=2, **kwargs):
    options = {"workers": 1, "threads": 1, "progress": False, "log": None, **kwargs}
    return run_trials(config, trials, out, synthetic_loader, **options)


def trial_files(out, seeds) -> dict[str, object]:
    """Every trial's summary and arrays, keyed by path relative to its folder
    ('seed_3/round_001/ticket/final.npz:1.W')."""
    found = {}
    for seed in seeds:
        folder = trial_dir(out, seed)
        found[f"seed_{seed}/summary"] = runs.load_summary(folder)["rounds"]
        for path in sorted(folder.rglob("*.npz")):
            for name, array in runs.load_npz(path).items():
                found[f"{path.relative_to(out)}:{name}"] = array
    return found


def assert_same_trials(a, b, seeds):
    assert_same_files(trial_files(a, seeds), trial_files(b, seeds))


@pytest.fixture(scope="module")
def sequential(tmp_path_factory):
    out = tmp_path_factory.mktemp("sequential")
    return run_small(out)


# -- aggregation ------------------------------------------------------------------------------------


def _summary(seed, rounds):
    """A hand-made summary: rounds = [(percent, {arm: (stop, acc, final)}), ...]."""
    return {"config": {"model": "lenet_300_100", "seed": seed, "controls": ["reinit"]},
            "rounds": [{"round": i, "percent_remaining": p, "remaining": int(p * 10), "total": 1000,
                        "arms": {arm: dict(zip(("early_stop_iteration", "test_accuracy_at_early_stop",
                                                "final_test_accuracy"), v)) for arm, v in arms.items()}}
                       for i, (p, arms) in enumerate(rounds)]}


def test_aggregate_mean_min_max_on_a_hand_made_example():
    a = _summary(0, [(100.0, {"ticket": (400, 0.90, 0.91)}),
                     (80.0, {"ticket": (300, 0.92, 0.93), "reinit": (500, 0.88, 0.89)})])
    b = _summary(1, [(100.0, {"ticket": (600, 0.94, 0.95)}),
                     (80.0, {"ticket": (200, 0.96, 0.97), "reinit": (700, 0.86, 0.85)})])
    c = _summary(2, [(100.0, {"ticket": (500, 0.92, 0.90)})])  # stopped after round 0
    agg = aggregate([a, b, c])
    assert agg["trials"] == [0, 1, 2] and agg["config"]["seed"] == 0
    r0, r1 = agg["rounds"]
    assert r0["percent_remaining"] == 100.0 and r1["percent_remaining"] == 80.0
    assert r0["arms"]["ticket"]["early_stop_iteration"] == pytest.approx(500.0)
    assert r0["arms"]["ticket"]["test_accuracy_at_early_stop"] == pytest.approx(0.92)
    assert r0["spread"]["ticket"]["test_accuracy_at_early_stop"] == {"min": 0.90, "max": 0.94}
    assert r0["spread"]["ticket"]["final_test_accuracy"] == {"min": 0.90, "max": 0.95}
    assert r0["spread"]["ticket"]["n"] == 3
    assert r1["spread"]["ticket"]["n"] == 2  # the third trial has no round 1
    assert r1["arms"]["ticket"]["early_stop_iteration"] == pytest.approx(250.0)
    assert r1["arms"]["reinit"]["final_test_accuracy"] == pytest.approx(0.87)
    assert r1["spread"]["reinit"]["early_stop_iteration"] == {"min": 500.0, "max": 700.0}
    lines = trials_csv(agg).splitlines()
    header = lines[0].split(",")
    assert header[:3] == ["round", "percent_remaining", "trials"]
    row = dict(zip(header, lines[2].split(",")))
    assert float(row["reinit_early_stop_iteration_mean"]) == 600.0 and row["trials"] == "2"
    assert float(row["ticket_test_accuracy_at_early_stop_min"]) == 0.92


def test_aggregate_needs_a_trial():
    with pytest.raises(ValueError, match="at least one"):
        aggregate([])


# -- where the trials run ---------------------------------------------------------------------------


def test_sequential_trials_use_their_own_seeds(sequential):
    assert sequential.seeds == [3, 4]
    for seed in (3, 4):
        config = runs.read_json(trial_dir(sequential.out_dir, seed) / "config.json")
        assert config["seed"] == seed and config["train"]["seed"] == seed
    # different seeds: different θ0 and different results
    t3 = runs.load_npz(trial_dir(sequential.out_dir, 3) / "theta0.npz")
    t4 = runs.load_npz(trial_dir(sequential.out_dir, 4) / "theta0.npz")
    assert not np.array_equal(t3["1.W"], t4["1.W"])
    summary = runs.read_json(sequential.out_dir / "summary.json")
    assert summary == sequential.summary and summary["trials"] == [3, 4]
    assert len(summary["rounds"]) == 3 and set(summary["rounds"][1]["arms"]) == {"ticket", "reinit"}
    assert trials_complete(sequential.out_dir)


def test_process_pool_gives_the_sequential_results(sequential, tmp_path):
    result = run_small(tmp_path, workers=2)
    assert_same_trials(sequential.out_dir, tmp_path, [3, 4])
    assert result.summary == sequential.summary


def test_dask_local_cluster_gives_the_sequential_results(sequential, tmp_path):
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        result = run_small(tmp_path, executor=client.get_executor(pure=False))
        ran_on = set(client.run(os.getpid).values())
    assert os.getpid() not in ran_on
    assert_same_trials(sequential.out_dir, tmp_path, [3, 4])
    assert result.summary == sequential.summary


def test_rerun_skips_finished_trials_and_adds_new_ones(tmp_path, monkeypatch):
    trained = counting_trainings(monkeypatch)  # this process's trainings: workers=1 runs the trials here
    opened = []  # the trial folders a run opens, and may write
    run_in_folder = trials.run_imp_in_folder

    def recorded(config, data, out, **options):
        opened.append(out.name)
        return run_in_folder(config, data, out, **options)

    monkeypatch.setattr(trials, "run_imp_in_folder", recorded)
    run_small(tmp_path, trials=1)
    assert len(trained) == TRAININGS_PER_TRIAL and opened == ["seed_3"]
    trained.clear()
    opened.clear()
    lines = []
    result = run_small(tmp_path, trials=2, log=lines.append)
    assert lines[0] == "1 of 2 trials already complete (seeds 3): skipped"
    assert len(trained) == TRAININGS_PER_TRIAL  # seed 4's trainings only: the finished seed 3 is not retrained ...
    assert opened == ["seed_4"]  # ... nor rewritten: its folder is not even opened
    assert result.summary["trials"] == [3, 4] and trials_complete(tmp_path)


def test_another_config_is_refused_before_anything_runs(sequential, tmp_path):
    run_small(tmp_path, trials=1)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    other = config_from_options(model="lenet_300_100", rounds=2, iterations=80, eval_every=20, controls="reinit",
                                seed=3)
    with pytest.raises(ValueError, match="differs in: iterations 60 vs 80"):
        run_small(tmp_path, config=other, trials=2)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    assert not trial_dir(tmp_path, 4).exists()


@pytest.mark.parametrize("kwargs, message", [({"trials": 0}, "--trials"), ({"workers": 0}, "--workers"),
                                             ({"threads": 0}, "--threads")])
def test_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        run_small(tmp_path / "x", **kwargs)
    assert not (tmp_path / "x").exists()


# -- a failing trial, two runners of one trial, workers of a dead parent ----------------------------


class RunsUntilAFailure(concurrent.futures.Executor):
    """Runs each task in this process as it is submitted until one fails, and holds every later one unstarted:
    so a test sees what the caller does with the trials still waiting when one fails."""

    def __init__(self):
        self.failed = False
        self.held: list[concurrent.futures.Future] = []

    def submit(self, fn, /, *args, **kwargs):
        future = concurrent.futures.Future()
        if self.failed:
            self.held.append(future)
            return future
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:
            future.set_exception(exc)
            self.failed = True
        return future


def trial_failing_for(seed: int, ran: list[int]):
    """A stand-in for ``trials.run_trial``: records each trial's seed in ``ran``, raises for ``seed``, and
    returns a one-round summary for the others."""
    def run_one(task):
        ran.append(task.config["seed"])
        if task.config["seed"] == seed:
            raise ArithmeticError("overflow in the trial")
        return _summary(task.config["seed"], [(100.0, {"ticket": (10, 0.5, 0.5)})])
    return run_one


def test_a_failing_trial_is_named_and_the_waiting_ones_never_start(tmp_path, monkeypatch):
    ran = []
    monkeypatch.setattr(trials, "run_trial", trial_failing_for(4, ran))
    executor = RunsUntilAFailure()
    with pytest.raises(RuntimeError) as info:
        run_small(tmp_path, trials=4, executor=executor)
    assert str(info.value) == "trial seed 4 failed: ArithmeticError: overflow in the trial"
    assert ran == [3, 4]
    assert len(executor.held) == 2 and all(future.cancelled() for future in executor.held)  # seeds 5 and 6
    assert not (tmp_path / "summary.json").exists()


class Stopped(Exception):
    """The first runner of a trial stopping mid-run (as a killed one would)."""


def test_a_second_runner_of_a_trial_waits_for_the_first_then_resumes_it(sequential, tmp_path, monkeypatch):
    """Two runners of one trial (a resumed run and a trial its killed parent left running, say): the second
    waits on the trial's lock until the first lets go, then continues where the first stopped, with the
    results of an uninterrupted run."""
    task = TrialTask(trial_config(CONFIG, 3).to_dict(), str(trial_dir(tmp_path, 3)), synthetic_loader, threads=1)
    paused, release = threading.Event(), threading.Event()
    save_round = RunFolder.save_round

    def first_stops_after_round_1(self, rnd):
        save_round(self, rnd)
        if threading.current_thread().name == "first" and rnd.index == 1:
            paused.set()
            release.wait()
            raise Stopped("the first runner stopped after round 1")

    monkeypatch.setattr(RunFolder, "save_round", first_stops_after_round_1)
    outcomes = {}

    def runner():
        try:
            outcomes[threading.current_thread().name] = run_trial(task)
        except Exception as exc:
            outcomes[threading.current_thread().name] = exc

    first, second = (threading.Thread(target=runner, name=name, daemon=True) for name in ("first", "second"))
    first.start()
    assert paused.wait(HANG_GUARD)  # the first runner holds the trial, its round 1 saved
    with open(tmp_path / ".seed_3.lock", "a") as probe, pytest.raises(BlockingIOError):
        fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the trial's lock is taken: a second runner must wait
    second.start()
    release.set()
    first.join(HANG_GUARD)
    second.join(HANG_GUARD)
    assert isinstance(outcomes["first"], Stopped), outcomes
    assert outcomes["second"] == sequential.summaries[3], outcomes["second"]
    assert_same_trials(sequential.out_dir, tmp_path, [3])


def test_a_pool_worker_ends_as_soon_as_its_parents_end_of_the_pipe_closes(monkeypatch):
    """The watcher each pool worker starts: the kernel closes the parent's end of the pipe when the parent dies,
    and the worker ends at once (here os._exit only records its code, so that pytest goes on)."""
    codes, ended = [], threading.Event()
    monkeypatch.setattr(os, "_exit", lambda code: (codes.append(code), ended.set()))
    lifeline, held_by_parent = multiprocessing.Pipe(duplex=False)
    trials._exit_with_parent(lifeline)
    assert not ended.is_set()  # the parent's end is open: the watcher waits
    held_by_parent.close()
    assert ended.wait(HANG_GUARD), "the watcher did not end the worker when the parent's end closed"
    assert codes == [1]
    lifeline.close()


# -- kill -9 and resume -----------------------------------------------------------------------------

# The child runs CONFIG's two trials on two worker processes, each of which pauses for good once its trial has
# saved round 1; the test kill -9s the parent there. argv: OUT, CONFIG as JSON.
KILL_SCRIPT = ("import functools, json, sys; from minilottery.imp import IMPConfig; "
               "from minilottery.lab.trials import run_trials; "
               "from tests.helpers import synthetic_loader_paused_after_round as loader; "
               "run_trials(IMPConfig.from_dict(json.loads(sys.argv[2])), 2, sys.argv[1], functools.partial(loader, 1), "
               "workers=2, threads=1, progress=False, log=None)")


def test_killed_trials_run_resumes_with_the_same_results(sequential, tmp_path):
    import psutil  # comes with distributed

    killed, stderr_path = tmp_path / "killed", tmp_path / "killed.stderr"
    with open(stderr_path, "w") as stderr:
        proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(killed), json.dumps(CONFIG.to_dict())],
                                cwd=REPO, env=subprocess_env(), stdout=subprocess.PIPE, stderr=stderr, text=True)
    workers, alive = [], []
    try:
        read_until_paused(proc, stderr_path)  # a worker has saved round 1 of its trial and waits there
        workers = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGKILL)  # kill -9 of the parent: no cleanup of any kind
        proc.wait()
        # The workers end as soon as the parent dies (their lifeline pipe closes); the bound is a hang guard only.
        _, alive = psutil.wait_procs(workers, timeout=HANG_GUARD)
    finally:
        proc.stdout.close()
        for process in alive:
            process.kill()
    assert workers and not alive, "worker processes outlived their killed parent"
    assert not trials_complete(killed)

    run_small(killed, workers=2)  # the same run again
    assert_same_trials(sequential.out_dir, killed, [3, 4])  # as uninterrupted, one trial after the other
    assert runs.read_json(killed / "summary.json") == runs.read_json(sequential.out_dir / "summary.json")


# -- the command line -------------------------------------------------------------------------------

CLI_ARGS = ["trials", "--model", "lenet_300_100", "--rounds", "2", "--iterations", "60", "--eval-every", "20",
            "--controls", "reinit", "--trials", "2", "--seed", "3", "--threads", "1", "--no-progress"]


def cli(args, prefix=None, timeout=180):
    env = {**os.environ, "PYTHONPATH": str(REPO), "MINILOTTERY_DEVICE": "cpu"}
    prefix = prefix or [sys.executable, "-c", SYNTHETIC_CLI]
    return subprocess.run([*prefix, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def test_cli_trials_report_plot_and_check_paper(sequential, tmp_path):
    out = tmp_path / "cli"
    done = cli([*CLI_ARGS, "--workers", "2", "--out", str(out)])
    assert done.returncode == 0, done.stderr
    assert "on 2 local processes" in done.stdout and "mean over 2 trials (seeds 3, 4)" in done.stdout
    assert "trial seed 3 done" in done.stdout and "trial seed 4 done" in done.stdout
    for name in ("accuracy_vs_weights", "early_stop_vs_weights", "learning_curves"):
        assert (out / "figures" / f"{name}.png").is_file()
    assert_same_trials(sequential.out_dir, out, [3, 4])

    report = cli(["report", str(out)])
    assert report.returncode == 0 and "[" in report.stdout and "mean over 2 trials" in report.stdout
    csv_text = cli(["report", str(out), "--csv"]).stdout
    assert csv_text.startswith("round,percent_remaining,trials,ticket_early_stop_iteration_mean")
    check = cli(["check-paper", str(out)])
    assert check.returncode == 0, check.stderr
    assert "not reached: the run's rounds end at 64.1%" in check.stdout and "2 trials" in check.stdout

    again = cli([*CLI_ARGS, "--workers", "2", "--out", str(out)])
    assert again.returncode == 0 and "2 of 2 trials already complete (seeds 3, 4): skipped" in again.stdout


@pytest.mark.parametrize("extra, message", [
    (["--trials", "0"], "--trials must be an integer >= 1, got 0"),
    (["--iterations", "0"], "--iterations must be an integer >= 1, got 0"),
])
def test_cli_errors_are_one_line(tmp_path, extra, message):
    done = cli([*CLI_ARGS, *extra, "--out", str(tmp_path / "x")])
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert message in done.stderr


def test_cli_unreachable_scheduler_is_one_line(tmp_path, monkeypatch, capsys):
    pytest.importorskip("distributed")
    monkeypatch.setattr(trials_command, "CONNECT_TIMEOUT", "0.5s")  # Dask retries a refused port until then
    assert main([*CLI_ARGS, "--scheduler", "127.0.0.1:1", "--out", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err == ("minilottery trials: error: --scheduler 127.0.0.1:1: cannot reach a Dask "
                                       "scheduler there (Timed out trying to connect to tcp://127.0.0.1:1 after "
                                       "0.5 s)\n")


def test_cli_scheduler_without_dask_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed: ImportError, as when not installed
    assert main([*CLI_ARGS, "--scheduler", "10.0.0.5:8786", "--out", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err == f"minilottery trials: error: {trials_command.DASK_MISSING}\n"


class FakeDaskClient:
    """Stands in for ``distributed.Client``: records how it was made and whether it was closed; its executor is
    ``executor``, a ``RunsUntilAFailure``."""

    made: list[FakeDaskClient] = []

    def __init__(self, address, timeout):
        self.address, self.timeout, self.closed, self.executor_options = address, timeout, False, None
        self.executor = RunsUntilAFailure()
        FakeDaskClient.made.append(self)

    def get_executor(self, **options):
        self.executor_options = options
        return self.executor

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.closed = True


def fake_dask(monkeypatch) -> list[FakeDaskClient]:
    """Makes ``from distributed import Client`` give ``FakeDaskClient``; returns the clients made from now on."""
    monkeypatch.setattr(FakeDaskClient, "made", [])
    monkeypatch.setitem(sys.modules, "distributed", types.SimpleNamespace(Client=FakeDaskClient))
    return FakeDaskClient.made


class Captured(Exception):
    """Stops the command at ``run_trials``, whose arguments it carries."""


def capture_run_trials(monkeypatch):
    def captured(config, count, out_dir, loader, **options):
        raise Captured({"trials": count, **options})
    monkeypatch.setattr(trials, "run_trials", captured)


def test_cli_scheduler_runs_the_trials_on_the_clusters_executor(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(imp_command, "load_data", synthetic_loader)  # the plan reads the data before the trials run
    clients = fake_dask(monkeypatch)
    capture_run_trials(monkeypatch)
    with pytest.raises(Captured) as info:
        main([*CLI_ARGS, "--threads", "2", "--scheduler", "10.0.0.5:8786", "--out", str(tmp_path / "x")])
    (client,) = clients
    assert (client.address, client.timeout) == ("10.0.0.5:8786", trials_command.CONNECT_TIMEOUT)
    assert client.executor_options == {"pure": False}  # a result is never reused by its arguments' hash
    passed = info.value.args[0]
    assert passed["executor"] is client.executor and passed["threads"] == 2 and passed["trials"] == 2
    assert client.closed  # the client closes when the command ends, even by an error
    printed = capsys.readouterr().out  # the plan
    assert "on Dask scheduler 10.0.0.5:8786" in printed and "2 BLAS thread(s) per trial" in printed


def test_cli_a_failing_trial_exits_1_naming_its_seed(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(imp_command, "load_data", synthetic_loader)
    clients = fake_dask(monkeypatch)
    ran = []
    monkeypatch.setattr(trials, "run_trial", trial_failing_for(3, ran))
    assert main([*CLI_ARGS, "--scheduler", "10.0.0.5:8786", "--out", str(tmp_path / "x")]) == 1
    assert capsys.readouterr().err == ("minilottery trials: error: trial seed 3 failed: ArithmeticError: overflow in "
                                       "the trial\n")
    assert ran == [3] and [future.cancelled() for future in clients[0].executor.held] == [True]  # seed 4


@pytest.mark.parametrize("cores, threads, count, workers", [
    (8, 2, 3, 3),  # the trials fit: one process each
    (8, 2, 5, 4),  # 4 processes x 2 threads fill the 8 cores
    (2, 1, 5, 2),
    (1, 4, 3, 1),  # never fewer than one
    (None, 1, 3, 1),  # os.cpu_count() does not know: one
])
def test_default_workers_fit_the_trials_and_the_cores(monkeypatch, cores, threads, count, workers):
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    assert trials_command.default_workers(count, threads) == workers


@pytest.mark.parametrize("options, workers", [([], 3), (["--trials", "5"], 4), (["--workers", "1"], 1)])
def test_cli_workers_default_to_the_cores_over_threads(tmp_path, monkeypatch, options, workers):
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    capture_run_trials(monkeypatch)
    with pytest.raises(Captured) as info:
        main([*CLI_ARGS, "--trials", "3", "--threads", "2", *options, "--out", str(tmp_path / "x")])
    assert info.value.args[0]["workers"] == workers and info.value.args[0]["executor"] is None


@pytest.mark.mnist
def test_cli_trials_on_mnist_workers_read_the_data(mnist_data, tmp_path):
    out = tmp_path / "mnist"
    done = cli(["trials", "--model", "lenet_300_100", "--rounds", "1", "--iterations", "30", "--eval-every", "30",
                "--controls", "none", "--trials", "2", "--workers", "2", "--no-progress", "--out", str(out)],
               prefix=[sys.executable, "-m", "minilottery"])
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trials"] == [0, 1] and summary["rounds"][1]["spread"]["ticket"]["n"] == 2
    assert runs.read_json(trial_dir(out, 0) / "config.json")["data"]["train"] == 55_000
