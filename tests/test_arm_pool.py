"""A round's arms trained at the same time in worker processes (``ArmPool``, ``imp --workers``): the same run as
one process trains, bit for bit, and the command line around it."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minilottery.imp import IMPConfig, run_imp, train_arms_in_turn
from minilottery.lab import runs, threads
from minilottery.lab.arm_pool import ArmPool
from minilottery.lab.progress import Plan
from minilottery.training import TrainConfig
from tests.helpers import SYNTHETIC_CLI, synthetic_data, synthetic_loader

pytestmark = pytest.mark.filterwarnings("ignore::minilottery.training.ChanceLevelWarning")

CONFIG = IMPConfig(rounds=2, controls=("reinit", "random_prune"), reset="rewind:20",
                   train=TrainConfig(iterations=60, eval_every=20, lr=2e-3))


def run_cli(argv: list[str]) -> subprocess.CompletedProcess:
    """The ``minilottery`` command in a fresh interpreter, on the synthetic data (so are its worker processes)."""
    return subprocess.run([sys.executable, "-c", SYNTHETIC_CLI, *argv], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1], timeout=600)


def _same_rounds(a, b):
    assert len(a.rounds) == len(b.rounds)
    for ra, rb in zip(a.rounds, b.rounds):
        assert set(ra.arms) == set(rb.arms)
        for arm in ra.arms:
            untimed = [{k: v for k, v in r.arms[arm].metrics.items() if k != "seconds"} for r in (ra, rb)]
            assert untimed[0] == untimed[1], (ra.index, arm)
            for name, value in ra.arms[arm].final_weights.items():
                np.testing.assert_array_equal(rb.arms[arm].final_weights[name], value, err_msg=f"{arm} {name}")


def test_arms_in_workers_equal_arms_in_turn_bit_for_bit():
    data = synthetic_data()
    with threads.limit(1):  # the workers' count: sums over another thread count round differently
        in_turn = run_imp(CONFIG, data, progress=False)
    with ArmPool(2, synthetic_loader, threads=1) as pool:
        in_workers = run_imp(CONFIG, data, progress=False, train_arms=pool)
    _same_rounds(in_turn, in_workers)  # rewind:20 also carries round 0's snapshot back from a worker


def test_in_turn_is_the_default_hook():
    data = synthetic_data()
    config = dataclasses.replace(CONFIG, rounds=1, controls=("reinit",), reset="init")
    _same_rounds(run_imp(config, data, progress=False),
                 run_imp(config, data, progress=False, train_arms=train_arms_in_turn))


def test_a_pool_outside_its_with_block_says_how_to_use_it():
    with pytest.raises(RuntimeError, match="inside `with ArmPool"):
        ArmPool(2, synthetic_loader)(CONFIG, None, {}, "cpu", False)


def test_the_plan_counts_a_round_as_its_arms_turns():
    data = synthetic_data()
    config = dataclasses.replace(CONFIG, rounds=4)  # 5 rounds: 1 + 4 x 3 trainings
    plan = Plan(config, data, [100.0, 80, 64, 51, 41], [0], "cpu", 1, "out", seconds_per_training=10.0)
    assert plan.seconds == 130.0  # 13 trainings, in turn
    assert dataclasses.replace(plan, arm_workers=2).seconds == 10.0 * (1 + 4 * 2)  # 3 arms on 2: two turns
    assert dataclasses.replace(plan, arm_workers=3).seconds == 10.0 * 5
    assert dataclasses.replace(plan, arm_workers=3, read_back=[2]).seconds == 10.0 * 3  # rounds 2-4 left
    assert "each round's arms 3 at a time on 3 processes" in dataclasses.replace(plan, arm_workers=3)._estimate()


def test_imp_workers_on_the_command_line(tmp_path):
    """``imp --workers 2`` in a fresh interpreter (its workers load the synthetic data by name): the run equals
    the same command with ``--workers 1``."""
    argv = ["imp", "--rounds", "1", "--controls", "reinit", "--iterations", "40", "--eval-every", "20",
            "--no-progress"]
    one = run_cli([*argv, "--out", str(tmp_path / "one"), "--workers", "1"])
    two = run_cli([*argv, "--out", str(tmp_path / "two"), "--workers", "2"])
    assert one.returncode == 0 and two.returncode == 0, two.stderr
    assert "each round's arms 2 at a time on 2 processes" in two.stdout
    for round_dir in ("round_000", "round_001"):
        assert (runs.read_json(tmp_path / "one" / round_dir / "round.json")
                == runs.read_json(tmp_path / "two" / round_dir / "round.json"))


def test_workers_must_be_a_positive_count(tmp_path):
    bad = run_cli(["imp", "--rounds", "1", "--out", str(tmp_path / "x"), "--workers", "0"])
    assert bad.returncode != 0 and "--workers" in bad.stderr and bad.stderr.count("\n") == 1, bad.stderr
    assert not (tmp_path / "x").exists()
