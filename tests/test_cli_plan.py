"""What ``imp``, ``trials`` and ``demo`` say before, while and after they run: the plan printed first, the rounds
read back from disk marked as such, the last line of an interrupted run (Ctrl-C or kill), and a finished run
extended by more rounds, which must equal the longer run made from the start without training its finished
rounds again.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import pytest

from minilottery.imp import run_imp
from minilottery.lab import runs
from minilottery.lab.cli import main
from minilottery.lab.commands import imp as imp_command
from minilottery.lab.progress import Plan, planned_percents
from minilottery.lab.run_folder import run_imp_in_folder
from minilottery.lab.trials import run_trials, trial_dir
from tests.helpers import (
    REPO,
    assert_same_dirs,
    assert_same_results,
    cli_paused_after_round,
    counting_trainings,
    read_until_paused,
    small_config,
    subprocess_env,
    synthetic_data,
    synthetic_loader,
)

ARGS = ["--model", "lenet_300_100", "--iterations", "12", "--eval-every", "4", "--controls", "reinit", "--threads", "1",
        "--no-progress"]
ESTIMATE = (r"about \d+ (s|min|h \d+ min) for {} trainings \(an estimate, extrapolated from 20 timed training steps "
            r"and one evaluation pass here\)")
HANG_GUARD = 120  # seconds: only keeps a broken test from hanging the suite; a healthy one never comes near it


@pytest.fixture
def synthetic(monkeypatch):
    """The commands read ``synthetic_data()`` instead of MNIST."""
    monkeypatch.setattr(imp_command, "load_data", synthetic_loader)


def plan_of(printed: str) -> tuple[str, dict[str, str]]:
    """The plan's first line, and its other lines as {"rounds": "2 after the dense round 0, ...", ...}."""
    lines = printed.splitlines()
    assert lines[0].startswith("plan: "), printed
    facts = {}
    for line in lines[1:]:
        if not line.startswith("  "):
            break
        key, value = line.split(None, 1)
        facts[key] = value
    return lines[0], facts


# -- the plan ---------------------------------------------------------------------------------------------------------


def test_imp_prints_its_plan_before_it_trains(synthetic, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["imp", *ARGS, "--rounds", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    first, plan = plan_of(printed)
    assert first == "plan: lenet_300_100 on mnist (240 train / 60 val / 60 test examples)"
    last = runs.load_summary(out)["rounds"][-1]["percent_remaining"]
    assert plan["rounds"] == f"2 after the dense round 0, down to {last:.1f}% of the weights"
    assert plan["rounds"] == "2 after the dense round 0, down to 64.1% of the weights"
    assert plan["arms"] == "ticket, reinit (the controls train in rounds >= 1)"
    assert plan["training"] == "12 iterations per training, batch 60, adam at lr 0.0012, reset init"
    assert plan["trainings"] == "5 in all, none on disk yet"
    assert plan["device"] == f"cpu, 1 BLAS thread(s); writing {out}"
    assert re.fullmatch(ESTIMATE.format(5), plan["estimate"]), plan["estimate"]
    assert printed.index("estimate") < printed.index("round 0: 100.0% of weights remain")  # the plan comes first


def test_trials_and_demo_print_their_plans(synthetic, tmp_path, capsys, monkeypatch):
    trials = ["trials", *ARGS, "--rounds", "1", "--trials", "2", "--workers", "1"]
    assert main([*trials, "--out", str(tmp_path / "t")]) == 0
    _, plan = plan_of(capsys.readouterr().out)
    assert plan["trials"] == "2 (seeds 0..1), on this process"
    assert plan["trainings"] == "6 in all, none on disk yet"  # per trial: the dense ticket, then ticket and reinit
    assert plan["device"] == f"cpu, 1 BLAS thread(s) per trial; writing {tmp_path / 't'}"
    assert re.fullmatch(ESTIMATE.format(6), plan["estimate"]), plan["estimate"]

    class Stop(Exception):
        pass

    def stop(*args, **kwargs):
        raise Stop

    monkeypatch.setattr(imp_command, "run_imp_in_folder", stop)  # the demo's 37 trainings of 5000 steps: not here
    with pytest.raises(Stop):
        main(["demo", "--out", str(tmp_path / "demo"), "--threads", "1", "--no-progress"])
    _, plan = plan_of(capsys.readouterr().out)
    assert plan["rounds"] == "12 after the dense round 0, down to 7.0% of the weights"  # lenet-quick, as it says
    assert plan["arms"] == "ticket, reinit, random_prune (the controls train in rounds >= 1)"
    assert plan["training"].startswith("5000 iterations per training")
    assert plan["trainings"] == "37 in all, none on disk yet"
    assert plan["estimate"].startswith("about ") and "37 trainings" in plan["estimate"]


@pytest.mark.parametrize("options", [
    dict(rounds=3),
    dict(rounds=None, target_percent=60.0),
    dict(rounds=3, global_pruning=True),
    dict(rounds=None, target_percent=30.0, one_shot=True),
    dict(rounds=3, one_shot=True),
    dict(rounds=None, target_percent=30.0, one_shot=True, global_pruning=True),
    dict(rounds=2, prune_rate=0.5, output_rate=0.3),
], ids=["rounds", "target", "global", "one-shot to a target", "one-shot to rounds", "global one-shot", "rates"])
def test_the_planned_percents_are_the_ones_the_run_reaches(options):
    config = small_config(**options).validate()
    result = run_imp(config, synthetic_data(), progress=False)
    assert planned_percents(config, (1, 28, 28)) == pytest.approx([r.percent_remaining for r in result.rounds],
                                                                  abs=1e-9)


def test_the_estimate_spreads_over_the_workers_and_counts_only_what_is_left():
    config = small_config(rounds=2, controls=("reinit",))
    plan = Plan(config, synthetic_data(), [100.0, 80.0, 64.1], read_back=[3, 1, 0], device="cpu", threads=1,
                out="x", seconds_per_training=10.0, parallel=2, where="2 local processes")
    assert (plan.total, plan.done, plan.left) == (15, 6, 9)  # 5 per trial; on disk: 5 (complete) + 1 (round 0)
    assert plan.seconds == 45.0  # 9 trainings of 10 s on two workers: only two trials are left, both run at once
    assert "9 trainings, 2 at a time" in plan.lines()[-1]


# -- interrupting and continuing --------------------------------------------------------------------------------------


def interrupt_after_round(index: int, signum: int, command: list[str], prefix: list[str], tmp_path) -> tuple[int, str]:
    """Runs ``prefix + command`` in a child that pauses once round ``index`` is saved, sends it ``signum`` there;
    returns its exit code and stderr."""
    stderr_path = tmp_path / f"stderr.{signum}"
    with open(stderr_path, "w") as stderr:
        proc = subprocess.Popen([*prefix, *command], cwd=REPO, env=subprocess_env(), stdout=subprocess.PIPE,
                                stderr=stderr, text=True)
    try:
        read_until_paused(proc, stderr_path, HANG_GUARD)
        proc.send_signal(signum)
        proc.wait(HANG_GUARD)
    finally:
        proc.stdout.close()
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, stderr_path.read_text()


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["ctrl-c", "kill"])
def test_an_interrupted_run_says_how_to_continue_and_continues(signum, code, synthetic, tmp_path, capsys):
    out = tmp_path / "run"
    command = ["imp", *ARGS, "--rounds", "2", "--out", str(out)]
    returncode, stderr = interrupt_after_round(1, signum, command, cli_paused_after_round(1), tmp_path)
    assert returncode == code, stderr
    assert stderr.splitlines()[-1] == (f"minilottery imp: interrupted (what is done is kept in {out}); run the same "
                                       f"command again to continue")
    assert [r["round"] for r in runs.completed_rounds(out)] == [0, 1]

    assert main(command) == 0  # the same command again
    printed = capsys.readouterr().out
    _, plan = plan_of(printed)
    assert plan["trainings"] == "5 in all: 3 read back from disk (rounds 0-1), 2 to train"
    assert "round 0 (read back from disk): 100.0% of weights remain" in printed
    assert "round 1 (read back from disk): 80.0% of weights remain" in printed
    assert "\nround 2: 64.1% of weights remain" in printed  # trained now: not marked


def test_killed_trials_end_their_workers_and_say_how_to_continue(tmp_path):
    import psutil  # comes with distributed

    out = tmp_path / "trials"
    loader = "functools.partial(h.synthetic_load_data_paused_after_round, 1)"
    prefix = [sys.executable, "-c", "import functools, sys; import minilottery.lab.commands.imp as c; "
              f"import tests.helpers as h; c.load_data = {loader}; "
              "from minilottery.lab.cli import main; sys.exit(main(sys.argv[1:]))"]
    command = ["trials", *ARGS, "--rounds", "2", "--trials", "2", "--workers", "2", "--out", str(out)]
    stderr_path = tmp_path / "stderr"
    with open(stderr_path, "w") as stderr:
        proc = subprocess.Popen([*prefix, *command], cwd=REPO, env=subprocess_env(), stdout=subprocess.PIPE,
                                stderr=stderr, text=True)
    workers, alive = [], []
    try:
        read_until_paused(proc, stderr_path, HANG_GUARD)  # a worker saved round 1 of its trial and waits there
        workers = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGTERM)  # kill: only the parent gets it
        proc.wait(HANG_GUARD)
        _, alive = psutil.wait_procs(workers, timeout=HANG_GUARD)  # a hang guard only
    finally:
        proc.stdout.close()
        for process in [*alive, *([proc] if proc.poll() is None else [])]:
            process.kill()
    assert proc.returncode == 143, stderr_path.read_text()
    assert workers and not alive, "worker processes outlived their interrupted parent"
    # (multiprocessing's resource tracker may add a warning about the pool's semaphores after it)
    assert (f"minilottery trials: interrupted (what is done is kept in {out}); run the same command again to "
            f"continue") in stderr_path.read_text().splitlines()


# -- extending a finished run -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("shorter, longer", [
    (dict(rounds=2), dict(rounds=4)),
    (dict(rounds=None, target_percent=70.0), dict(rounds=None, target_percent=45.0)),
], ids=["rounds", "target-percent"])
def test_a_finished_run_extended_equals_the_longer_run_from_the_start(shorter, longer, tmp_path, monkeypatch):
    data = synthetic_data()
    same = dict(controls=("reinit", "random_prune"), reset="rewind:4")
    whole = run_imp_in_folder(small_config(**longer, **same), data, tmp_path / "whole", progress=False)
    assert len(whole.rounds) == 5
    finished = run_imp_in_folder(small_config(**shorter, **same), data, tmp_path / "extended", progress=False)
    assert len(finished.rounds) == 3
    trained, seen = counting_trainings(monkeypatch), []
    extended = run_imp_in_folder(small_config(**longer, **same), data, tmp_path / "extended", progress=False,
                                 on_round=lambda r: seen.append(("trained", r.index)),
                                 on_read_back=lambda r: seen.append(("read back", r.index)))
    assert len(trained) == 6 and all(re.match(r"round [34]", label) for label in trained), trained  # 2 rounds x 3 arms
    assert seen == [("read back", 0), ("read back", 1), ("read back", 2), ("trained", 3), ("trained", 4)]
    assert_same_results(whole, extended)
    assert_same_dirs(tmp_path / "whole", tmp_path / "extended")  # config.json records the longer run's config


@pytest.mark.parametrize("first, then, differs", [
    (dict(rounds=2), dict(rounds=4, iterations=16), "iterations 12 vs 16, rounds 2 vs 4"),
    (dict(rounds=2), dict(rounds=1), "rounds 2 vs 1"),
    (dict(rounds=2), dict(rounds=4, target_percent=50.0), "target_percent (none) vs 50.0"),
    (dict(rounds=None, target_percent=50.0), dict(rounds=None, target_percent=60.0), "target_percent 50.0 vs 60.0"),
    (dict(rounds=1, one_shot=True), dict(rounds=2, one_shot=True), "rounds 1 vs 2"),
], ids=["another option too", "fewer rounds", "a target added", "a higher target", "one-shot"])
def test_anything_but_going_further_is_refused_and_changes_nothing(first, then, differs, tmp_path, monkeypatch):
    data, out = synthetic_data(), tmp_path / "run"
    run_imp_in_folder(small_config(**first), data, out, progress=False)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    trained = counting_trainings(monkeypatch)
    with pytest.raises(ValueError, match=rf"{out} was made with a different config \(differs in: .*"
                                         rf"{re.escape(differs)}.*\); use --overwrite to replace it"):
        run_imp_in_folder(small_config(**then), data, out, progress=False)
    assert not trained
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_a_run_continued_under_other_blas_settings_can_still_be_continued_and_extended(tmp_path, monkeypatch):
    data, out = synthetic_data(), tmp_path / "run"
    run_imp_in_folder(small_config(rounds=1), data, out, progress=False)
    record = runs.read_json(out / "config.json")
    record["resumed_with"] = [{**record["environment"], "threads": 2}]  # as a continuation with --threads 2 leaves it
    runs.atomic_write_json(out / "config.json", record)
    trained = counting_trainings(monkeypatch)
    run_imp_in_folder(small_config(rounds=1), data, out, progress=False)  # the same run: nothing to do
    run_imp_in_folder(small_config(rounds=2), data, out, progress=False)  # extended by one round
    assert trained == ["round 2/2 ticket"]
    assert runs.read_json(out / "config.json")["resumed_with"] == record["resumed_with"]  # the record is kept


def test_trials_with_more_rounds_extend_every_trial(synthetic, tmp_path, capsys):
    longer = small_config(rounds=3, controls=("reinit",))
    whole = run_trials(longer, 2, tmp_path / "whole", synthetic_loader, workers=1, threads=1, progress=False,
                       log=None)
    extended = tmp_path / "extended"
    assert main(["trials", *ARGS, "--rounds", "1", "--trials", "2", "--workers", "1", "--out", str(extended)]) == 0
    capsys.readouterr()
    assert main(["trials", *ARGS, "--rounds", "3", "--trials", "2", "--workers", "1", "--out", str(extended)]) == 0
    _, plan = plan_of(capsys.readouterr().out)
    assert plan["trainings"] == "14 in all: 6 read back from disk, 8 to train"
    for seed in whole.seeds:
        assert_same_dirs(trial_dir(tmp_path / "whole", seed), trial_dir(extended, seed))
    assert runs.read_json(extended / "summary.json") == runs.read_json(tmp_path / "whole" / "summary.json")
    assert runs.read_json(extended / "trials.json")["config"] == longer.to_dict()  # the new config, recorded



def test_estimate_leaves_out_what_a_training_does_once(monkeypatch):
    """A cost paid once, at the first evaluation (CuPy compiling its kernels on a GPU), is not scaled up to every
    evaluation of a training: with a first call that sleeps ``once`` seconds, the estimate of a training of 12
    iterations (3 evaluations, a few milliseconds each) stays under ``once``; scaled, it would be 3 times it."""
    from minilottery.lab import progress

    once, calls, evaluate = 2.0, [], progress.evaluate

    def slow_first_call(*args, **kwargs):
        if not calls:
            time.sleep(once)
        calls.append(args)
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(progress, "evaluate", slow_first_call)
    seconds = progress.time_training(small_config(), synthetic_data(), "cpu", steps=2)
    assert len(calls) >= 3  # the warm-up and the timed validation and test passes
    assert seconds < once
