"""Iterative magnitude pruning: resets, rewinding, controls, one-shot/global options, the run directory, resume."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minilottery.imp import CONTROLS, IMPConfig, run_imp
from minilottery.lab import runs
from minilottery.lab.presets import PRESETS, config_from_options, from_preset
from minilottery.lab.run_folder import run_imp_in_folder
from minilottery.models import build_model
from minilottery.prune import check_nested, global_magnitude_prune, masked_weights
from minilottery.training import TrainConfig, train
from tests.helpers import (
    REPO,
    SYNTHETIC_CLI,
    assert_same_dirs,
    assert_same_results,
    cli_paused_after_round,
    counting_trainings,
    read_until_paused,
    small_config,
    synthetic_data,
)


@pytest.fixture(scope="module")
def data():
    return synthetic_data()


# -- the IMP loop --------------------------------------------------------------------------------------


def test_rounds_reset_to_theta0_with_nested_masks_and_controls(data, tmp_path):
    cfg = small_config(rounds=3, controls=("reinit", "random_prune"))
    result = run_imp_in_folder(cfg, data, tmp_path / "run", progress=False)
    theta0 = build_model("lenet_300_100", seed=0).state_dict()
    assert [r.index for r in result.rounds] == [0, 1, 2, 3]
    expected = {"1.W": 235200, "3.W": 30000, "5.W": 1000}
    for r in result.rounds:
        ticket = r.arms["ticket"]
        # Section 2 step 4: survivors start from θ0, the pruned from 0; biases from θ0
        assert all(np.array_equal(ticket.init_weights[n], theta0[n] * r.masks[n]) for n in r.masks)
        assert np.array_equal(ticket.init_weights["1.b"], theta0["1.b"])
        # pruned weights stay exactly 0 through training
        assert all(not np.any(ticket.final_weights[n][~r.masks[n]]) for n in r.masks)
        for name in expected:
            if r.index > 0:
                rate = 0.1 if name == "5.W" else 0.2
                expected[name] -= round(rate * expected[name])
            assert int(r.masks[name].sum()) == expected[name] == r.info["layers"][name]["remaining"]
        if r.index == 0:
            assert set(r.arms) == {"ticket"} and r.percent_remaining == 100.0
            continue
        assert check_nested(r.masks, result.rounds[r.index - 1].masks)
        # the ticket's masks prune the previous round's trained ticket
        assert set(r.arms) == {"ticket", "reinit", "random_prune"}
        reinit, rand = r.arms["reinit"], r.arms["random_prune"]
        assert all(np.array_equal(reinit.masks[n], r.masks[n]) for n in r.masks)
        assert not np.array_equal(reinit.init_weights["1.W"], ticket.init_weights["1.W"])
        assert all(int(rand.masks[n].sum()) == int(r.masks[n].sum()) for n in r.masks)
        assert not np.array_equal(rand.masks["1.W"], r.masks["1.W"])
        assert all(np.array_equal(rand.init_weights[n], theta0[n] * rand.masks[n]) for n in r.masks)
        # what is on disk is what is in memory
        folder = runs.round_dir(tmp_path / "run", r.index)
        assert all(np.array_equal(runs.load_npz(folder / "masks.npz")[n], r.masks[n]) for n in r.masks)
        assert all(np.array_equal(runs.load_npz(folder / "random_prune" / "masks.npz")[n], rand.masks[n])
                   for n in r.masks)
        assert runs.read_json(folder / "round.json") == r.info
    assert result.rounds[3].percent_remaining == pytest.approx(100.0 * sum(expected.values()) / 266200)
    summary = runs.load_summary(tmp_path / "run")
    assert summary["rounds"] == [r.info for r in result.rounds]
    csv_lines = (tmp_path / "run" / "summary.csv").read_text().splitlines()
    assert len(csv_lines) == 5 and csv_lines[0].startswith("round,percent_remaining,ticket_early_stop_iteration")
    assert csv_lines[1].endswith(",,,,,,")  # the controls do not run in round 0


def test_rewind_restores_the_weights_at_iteration_k(data, tmp_path):
    cfg = small_config(rounds=1, reset="rewind:5")
    result = run_imp_in_folder(cfg, data, tmp_path / "run", progress=False)
    model = build_model("lenet_300_100", seed=0)
    snapshot = train(model, data, cfg.train, snapshot_at=(5,), progress=False).snapshots[5]
    theta0 = build_model("lenet_300_100", seed=0).state_dict()
    assert np.array_equal(result.rounds[0].arms["ticket"].init_weights["1.W"], theta0["1.W"])
    r1 = result.rounds[1]
    assert all(np.array_equal(r1.arms["ticket"].init_weights[n], masked_weights(snapshot, r1.masks)[n])
               for n in snapshot)
    assert not np.array_equal(snapshot["1.W"], theta0["1.W"])
    saved = runs.load_npz(tmp_path / "run" / "rewind.npz")
    assert all(np.array_equal(saved[n], snapshot[n]) for n in snapshot)


def test_global_pruning_and_target_percent(data):
    result = run_imp(small_config(rounds=None, target_percent=70.0, global_pruning=True), data, progress=False)
    assert [r.index for r in result.rounds] == [0, 1, 2]  # 80%, then 64% <= 70%: stop
    r0, r1 = result.rounds[0], result.rounds[1]
    expected = global_magnitude_prune(r0.arms["ticket"].final_weights, r0.masks, 0.2)
    assert all(np.array_equal(expected[n], r1.masks[n]) for n in expected)
    assert r1.info["remaining"] == 266200 - round(0.2 * 266200)
    assert result.rounds[2].percent_remaining <= 70.0 < r1.percent_remaining


def test_one_shot_prunes_once_to_the_target(data):
    result = run_imp(small_config(rounds=5, target_percent=10.0, one_shot=True, controls=("reinit",)), data,
                     progress=False)
    assert [r.index for r in result.rounds] == [0, 1]
    r1 = result.rounds[1]
    assert r1.percent_remaining == pytest.approx(10.0, abs=0.01)
    assert r1.info["layers"]["5.W"]["percent"] > r1.info["layers"]["1.W"]["percent"]
    by_rounds = run_imp(small_config(rounds=2, one_shot=True), data, progress=False)
    assert by_rounds.rounds[1].info["layers"]["1.W"]["remaining"] == round(235200 * 0.64)


# -- resuming ---------------------------------------------------------------------------------------


def test_resume_after_a_crash_equals_an_uninterrupted_run(data, tmp_path):
    cfg = small_config(rounds=3, controls=("reinit", "random_prune"), reset="rewind:4")
    whole = run_imp_in_folder(cfg, data, tmp_path / "whole", progress=False)

    def crash(rnd):
        if rnd.index == 1:
            raise KeyboardInterrupt("simulated crash")

    with pytest.raises(KeyboardInterrupt):
        run_imp_in_folder(cfg, data, tmp_path / "resumed", progress=False, on_round=crash)
    assert [r["round"] for r in runs.completed_rounds(tmp_path / "resumed")] == [0, 1]
    seen = []
    resumed = run_imp_in_folder(cfg, data, tmp_path / "resumed", progress=False,
                                on_round=lambda r: seen.append(r.index))
    assert seen == [0, 1, 2, 3]
    assert_same_results(whole, resumed)
    assert_same_dirs(tmp_path / "whole", tmp_path / "resumed")

    # a round without its round.json marker is never trusted: its partial files are replaced
    folder = tmp_path / "resumed" / "round_002"
    (folder / "round.json").unlink()
    (folder / "junk.txt").write_text("half-written")
    runs.atomic_savez(folder / "ticket" / "final.npz", **{"1.W": np.zeros(3)})
    (tmp_path / "resumed" / ".summary.json.999.tmp").write_text("torn")
    again = run_imp_in_folder(cfg, data, tmp_path / "resumed", progress=False)
    assert not (folder / "junk.txt").exists() and not (tmp_path / "resumed" / ".summary.json.999.tmp").exists()
    assert_same_results(whole, again)
    assert_same_dirs(tmp_path / "whole", tmp_path / "resumed")


def test_a_different_config_is_refused_and_nothing_destroyed(data, tmp_path):
    out = tmp_path / "run"
    run_imp_in_folder(small_config(rounds=1), data, out, progress=False)
    (out / "notes.txt").write_text("mine")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(ValueError, match=r"different config \(differs in: iterations 12 vs 16\); use --overwrite"):
        run_imp_in_folder(small_config(rounds=1, iterations=16), data, out, progress=False)
    with pytest.raises(ValueError, match="data.train 240 vs 120"):
        run_imp_in_folder(small_config(rounds=1), data.subset(120), out, progress=False)
    with pytest.raises(ValueError, match="--prune-rate"):
        run_imp_in_folder(small_config(rounds=1, prune_rate=1.5), data, out, progress=False, overwrite=True)
    with pytest.raises(ValueError, match="--batch-size"):
        run_imp_in_folder(small_config(rounds=1, batch_size=1000), data, out, progress=False, overwrite=True)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    result = run_imp_in_folder(small_config(rounds=1, iterations=16), data, out, progress=False, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine"  # --overwrite clears only the run's own files
    assert runs.read_json(out / "config.json")["train"]["iterations"] == 16
    assert runs.load_summary(out)["rounds"] == [r.info for r in result.rounds]


def test_overwrite_with_the_same_config_continues_the_run(data, tmp_path, monkeypatch):
    out = tmp_path / "run"
    trained = counting_trainings(monkeypatch)
    first = run_imp_in_folder(small_config(rounds=1), data, out, progress=False, on_round=None)
    assert len(trained) == 2  # the dense round 0 and round 1's ticket
    marker = out / "round_001" / "round.json"
    written = marker.read_bytes()
    seen = []
    again = run_imp_in_folder(small_config(rounds=1), data, out, progress=False, overwrite=True, on_round=seen.append)
    assert [r.index for r in seen] == [0, 1]
    assert len(trained) == 2  # the finished rounds were read back, not trained again
    assert marker.read_bytes() == written
    assert_same_results(first, again)


@pytest.mark.parametrize("options, option", [
    (dict(prune_rate=0.0), "--prune-rate"), (dict(prune_rate=1.0), "--prune-rate"),
    (dict(output_rate=-0.1), "--output-rate"), (dict(reset="rewind:13"), "--reset rewind:13"),
    (dict(reset="rewind:-1"), "--reset"), (dict(reset="late"), "--reset"), (dict(rounds=0), "--rounds"),
    (dict(controls=("reinit", "shuffle")), "--controls"), (dict(target_percent=0), "--target-percent"),
    (dict(rounds=None), "--rounds or --target-percent"), (dict(model="vgg19"), "--model"),
    (dict(iterations=0), "--iterations"),
])
def test_bad_options_name_the_option(data, tmp_path, options, option):
    with pytest.raises(ValueError, match=option.replace("+", r"\+")):
        run_imp_in_folder(small_config(**options), data, tmp_path / "never", progress=False)
    assert not (tmp_path / "never").exists()


def test_runs_on_every_device_with_the_same_results(data, device):
    if device == "cpu":
        pytest.skip("the CPU is the reference: comparing it with itself proves nothing")
    cfg = small_config(rounds=1, iterations=4, controls=("random_prune",))
    on_device = run_imp(cfg, data, device=device, progress=False)
    on_cpu = run_imp(cfg, data, device="cpu", progress=False)
    assert all(np.array_equal(on_device.rounds[1].masks[n], on_cpu.rounds[1].masks[n]) or device == "gpu"
               for n in on_cpu.rounds[1].masks)
    assert on_device.rounds[1].info["layers"] == on_cpu.rounds[1].info["layers"]  # exact counts everywhere
    final = on_device.rounds[1].arms["ticket"].final_weights["1.W"]
    assert isinstance(final, np.ndarray)  # results come back as host arrays
    np.testing.assert_allclose(final, on_cpu.rounds[1].arms["ticket"].final_weights["1.W"], atol=1e-5)


def test_a_run_in_memory_equals_one_in_a_folder_and_in_any_store(data, tmp_path):
    cfg = small_config(rounds=2, controls=("reinit", "random_prune"), reset="rewind:4")
    in_memory = run_imp(cfg, data, progress=False)
    in_folder = run_imp_in_folder(cfg, data, tmp_path / "run", progress=False)
    assert in_memory.out_dir is None and in_folder.out_dir == tmp_path / "run"
    assert_same_results(in_memory, in_folder)

    class ListStore:  # the RunStore protocol kept in Python lists: run_imp needs nothing more
        def __init__(self):
            self.saved_theta0, self.saved_rewind, self.rounds = None, None, []

        def theta0(self, fresh):
            self.saved_theta0 = fresh if self.saved_theta0 is None else self.saved_theta0
            return self.saved_theta0

        def rewind(self):
            return self.saved_rewind

        def save_rewind(self, weights):
            self.saved_rewind = weights

        def load_round(self, index):
            return self.rounds[index] if index < len(self.rounds) else None

        def save_round(self, rnd):
            self.rounds.append(rnd)

    def crash(rnd):
        if rnd.index == 1:
            raise KeyboardInterrupt("simulated crash")

    store = ListStore()
    with pytest.raises(KeyboardInterrupt):
        run_imp(cfg, data, store=store, progress=False, on_round=crash)
    assert [r.index for r in store.rounds] == [0, 1]
    seen = []
    resumed = run_imp(cfg, data, store=store, progress=False, on_round=lambda r: seen.append(r.index))
    assert seen == [0, 1, 2] and [r.index for r in store.rounds] == [0, 1, 2]
    assert_same_results(in_memory, resumed)


def test_results_print_in_one_short_line(data):
    result = run_imp(small_config(rounds=1, controls=("reinit",)), data, progress=False)
    percent = result.rounds[1].percent_remaining
    assert repr(result) == "IMPResult(model='lenet_300_100', rounds=2)"
    assert repr(result.rounds[1]) == f"RoundResult(index=1, percent_remaining={percent:.1f}, arms=['ticket', 'reinit'])"
    ticket = result.rounds[1].arms["ticket"]
    assert repr(ticket) == (f"ArmResult(early_stop_iteration={ticket.metrics['early_stop_iteration']}, "
                            f"test_accuracy_at_early_stop={ticket.metrics['test_accuracy_at_early_stop']})")


def test_the_core_imports_nothing_of_the_lab():
    code = "import sys, minilottery.imp; print(sorted(m for m in sys.modules if m.startswith('minilottery.lab')))"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr


def test_presets_and_config_round_trip():
    quick = from_preset("lenet-quick").validate()
    assert (quick.model, quick.rounds, quick.prune_rate) == ("lenet_300_100", 12, 0.2)
    assert quick.controls == ("reinit", "random_prune")
    assert (quick.train.iterations, quick.train.lr, quick.train.batch_size) == (5000, 1.2e-3, 60)
    paper = from_preset("lenet-paper", iterations=100, seed=3).validate()
    assert paper.train.iterations == 100 and paper.train.seed == 3 and paper.seed == 3
    assert paper.controls == ("reinit", "random_prune") and paper.rounds == PRESETS["lenet-paper"]["rounds"]
    assert IMPConfig.from_dict(json.loads(json.dumps(paper.to_dict()))) == paper
    assert IMPConfig(controls="reinit, random_prune").controls == ("reinit", "random_prune")
    with pytest.raises(ValueError, match="--preset"):
        from_preset("lenet-huge")


# -- the command line -------------------------------------------------------------------------------

CLI_ARGS = ["imp", "--model", "lenet_300_100", "--rounds", "3", "--iterations", "150", "--eval-every", "50",
            "--controls", "reinit", "--lr", "1.2e-3", "--no-progress"]

def cli(prefix, args, **kwargs):
    env = {**os.environ, "PYTHONPATH": str(REPO), "MINILOTTERY_DEVICE": "cpu"}
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **kwargs}
    return subprocess.Popen([*prefix, *args], cwd=REPO, env=env, text=True, **pipes)


def kill_after_round_one_then_resume(prefix, args, out: Path, synthetic=True, timeout=120):
    """Runs the command until it has saved round 1 and pauses there (``pause_after_round``), kills it with -9,
    then runs it again with ``prefix``; returns the rounds completed at the kill and the rerun's stdout."""
    stderr_path = out.parent / f"{out.name}.stderr"
    with open(stderr_path, "w") as stderr:
        proc = cli(cli_paused_after_round(1, synthetic), [*args, "--out", str(out)], stderr=stderr)
    try:
        read_until_paused(proc, stderr_path)
        proc.send_signal(signal.SIGKILL)  # kill -9: no cleanup of any kind
        proc.wait()
    finally:
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    done = [r["round"] for r in runs.completed_rounds(out)]
    assert done == [0, 1]
    resumed = cli(prefix, [*args, "--out", str(out)])
    stdout, stderr = resumed.communicate(timeout=timeout)
    assert resumed.returncode == 0, stderr
    return done, stdout


def test_cli_kill_9_mid_run_then_rerun_completes(tmp_path):
    prefix = [sys.executable, "-c", SYNTHETIC_CLI]
    done, stdout = kill_after_round_one_then_resume(prefix, CLI_ARGS, tmp_path / "killed")
    assert len(done) < 4  # killed mid-run, not after the end
    assert "round 3:" in stdout and "figures:" in stdout
    whole = cli(prefix, [*CLI_ARGS, "--out", str(tmp_path / "whole")])
    _, stderr = whole.communicate(timeout=120)
    assert whole.returncode == 0, stderr
    assert runs.load_summary(tmp_path / "killed") == runs.load_summary(tmp_path / "whole")
    assert_same_dirs(tmp_path / "whole", tmp_path / "killed")

    # the same command with another config is refused in one line, and DIR is left as it was
    before = {p: p.read_bytes() for p in (tmp_path / "whole").rglob("*") if p.is_file()}
    changed = [a if a != "150" else "200" for a in CLI_ARGS]
    refused = cli(prefix, [*changed, "--out", str(tmp_path / "whole")])
    _, stderr = refused.communicate(timeout=60)
    assert refused.returncode == 2 and stderr.count("\n") == 1
    assert "differs in: iterations 150 vs 200" in stderr and "--overwrite" in stderr
    assert {p: p.read_bytes() for p in (tmp_path / "whole").rglob("*") if p.is_file()} == before


@pytest.mark.mnist
def test_cli_on_mnist_kill_9_then_resume(mnist_data, tmp_path):
    args = ["imp", "--model", "lenet_300_100", "--rounds", "2", "--iterations", "60", "--eval-every", "30",
            "--controls", "none", "--no-progress"]
    prefix = [sys.executable, "-m", "minilottery"]
    done, _ = kill_after_round_one_then_resume(prefix, args, tmp_path / "killed", synthetic=False)
    assert len(done) < 3  # killed mid-run, not after the end
    whole = cli(prefix, [*args, "--out", str(tmp_path / "whole")])
    _, stderr = whole.communicate(timeout=300)
    assert whole.returncode == 0, stderr
    assert runs.load_summary(tmp_path / "killed") == runs.load_summary(tmp_path / "whole")
    assert runs.read_json(tmp_path / "whole" / "config.json")["data"]["train"] == 55000


def test_presets_and_options_derive_from_the_papers_defaults():
    paper = from_preset("lenet-paper")
    assert paper.train == TrainConfig() and paper.rounds == 20 and paper.controls == CONTROLS
    assert dataclasses.replace(from_preset("lenet-quick"), rounds=20, train=TrainConfig()) == paper
    assert all("lr" not in preset and "optimizer" not in preset for preset in PRESETS.values())
    conv = config_from_options(model="conv2", rounds=1)  # no preset: the network's own paper settings
    assert (conv.dataset, conv.train.iterations, conv.train.lr) == ("cifar10", 20_000, 2e-4)
