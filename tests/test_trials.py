"""Trials: K independent IMP runs on a process pool or a Dask cluster, aggregated to mean, min and max.

The parallel runs must give exactly the per-trial results of running the trials one after another (every
trial limits BLAS to one thread, so the products sum in the same order everywhere), a killed run must
resume, and the aggregation is checked on a hand-made example.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from minilottery.lab import runs
from minilottery.lab.presets import config_from_options
from minilottery.lab.tables import trials_csv
from minilottery.lab.trials import aggregate, run_trials, trial_dir, trials_complete
from tests.helpers import REPO, SYNTHETIC_CLI, assert_same_files, synthetic_loader

CONFIG = config_from_options(model="lenet_300_100", rounds=2, iterations=60, eval_every=20, controls="reinit", seed=3)


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


def test_rerun_skips_finished_trials_and_adds_new_ones(tmp_path):
    run_small(tmp_path, trials=1)
    before = {p: p.stat().st_mtime_ns for p in trial_dir(tmp_path, 3).rglob("*") if p.is_file()}
    lines = []
    result = run_small(tmp_path, trials=2, log=lines.append)
    assert lines[0] == "1 of 2 trials already complete (seeds 3): skipped"
    assert {p: p.stat().st_mtime_ns for p in trial_dir(tmp_path, 3).rglob("*") if p.is_file()} == before
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


# -- kill -9 and resume -----------------------------------------------------------------------------

KILL_CONFIG = dict(model="lenet_300_100", rounds=5, iterations=200, eval_every=50, controls="reinit", seed=0)
KILL_SCRIPT = ("import sys; from minilottery.lab.presets import config_from_options; "
               "from tests.test_trials import run_small, KILL_CONFIG; "
               "run_small(sys.argv[1], config=config_from_options(**KILL_CONFIG), workers=2)")


def test_killed_trials_run_resumes_with_the_same_results(tmp_path):
    import psutil  # comes with distributed

    killed = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(REPO), "MINILOTTERY_DEVICE": "cpu"}
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(killed)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(killed.glob("seed_*/round_001/round.json")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no trial finished round 1 in time"
        time.sleep(0.02)
    workers = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGKILL)  # kill -9 of the parent: no cleanup of any kind
    proc.wait()
    _, alive = psutil.wait_procs(workers, timeout=20)
    assert not alive, "worker processes outlived their killed parent"
    assert not trials_complete(killed)

    config = config_from_options(**KILL_CONFIG)
    run_small(killed, config=config, workers=2)  # the same command again
    run_small(tmp_path / "whole", config=config)  # uninterrupted, one trial after the other
    assert_same_trials(tmp_path / "whole", killed, [0, 1])
    assert runs.read_json(killed / "summary.json") == runs.read_json(tmp_path / "whole" / "summary.json")


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
    (["--scheduler", "127.0.0.1:1"], "--scheduler 127.0.0.1:1: cannot reach a Dask scheduler"),
])
def test_cli_errors_are_one_line(tmp_path, extra, message):
    done = cli([*CLI_ARGS, *extra, "--out", str(tmp_path / "x")])
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert message in done.stderr


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
