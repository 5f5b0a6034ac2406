"""Ticket transfer (lab/transfer.py): the source's masks and start weights exactly, the target's data, the
controls of the same sparsity, the target's own ticket read from its run, resuming, and one-line refusals."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from minilottery.data import LOADERS, Dataset
from minilottery.lab import runs, transfer
from minilottery.lab.cli import main
from minilottery.lab.run_folder import run_imp_in_folder
from minilottery.models import build_model
from minilottery.prune import sparsity
from tests.helpers import small_config, synthetic_data

SOURCE = synthetic_data(seed=0)
TARGET = dataclasses.replace(synthetic_data(seed=7), name="fashion-mnist")  # other images and labels, the same shape


@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("source") / "run"
    run_imp_in_folder(small_config(rounds=2, controls=()), SOURCE, out, progress=False)
    return out


@pytest.fixture(scope="module")
def target_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("target") / "run"
    run_imp_in_folder(dataclasses.replace(small_config(rounds=2, controls=()), dataset="fashion-mnist"), TARGET, out,
                      progress=False)
    return out


def spy_on_training(monkeypatch) -> list[tuple]:
    """Records (desc, start, masks, data) of every network transfer trains, and trains it."""
    calls = []
    train_arm = transfer.train_arm

    def recorded(config, data, start, masks, device, progress, desc):
        calls.append((desc, start, masks, data))
        return train_arm(config, data, start, masks, device, progress, desc)

    monkeypatch.setattr(transfer, "train_arm", recorded)
    return calls


def test_transfer_trains_the_source_ticket_exactly_on_the_target_data(source_run, tmp_path, monkeypatch):
    calls = spy_on_training(monkeypatch)
    record = transfer.run_transfer(source_run, TARGET, tmp_path / "t", [2], progress=False, log=None)
    theta0 = runs.load_npz(source_run / "theta0.npz")
    masks = runs.load_npz(source_run / "round_002" / "masks.npz")
    trained = {desc: (start, arm_masks, data) for desc, start, arm_masks, data in calls}
    assert list(trained) == ["round 0 dense", "round 2 transfer", "round 2 reinit", "round 2 random_prune"]
    assert all(data is TARGET for _, _, data in trained.values())
    start, arm_masks, _ = trained["round 2 transfer"]
    assert start.keys() == theta0.keys() and all(np.array_equal(start[n], theta0[n]) for n in theta0)
    assert arm_masks.keys() == masks.keys() and all(np.array_equal(arm_masks[n], masks[n]) for n in masks)
    # reinit: the same masks, IMP's fresh θ0' of round 2; random_prune: θ0, random masks of the same counts
    start, arm_masks, _ = trained["round 2 reinit"]
    fresh = build_model("lenet_300_100", (1, 28, 28), seed=0 + 1000 + 2).state_dict()
    assert all(np.array_equal(start[n], fresh[n]) for n in fresh) and not np.array_equal(start["1.W"], theta0["1.W"])
    assert all(np.array_equal(arm_masks[n], masks[n]) for n in masks)
    start, arm_masks, _ = trained["round 2 random_prune"]
    assert all(np.array_equal(start[n], theta0[n]) for n in theta0)
    assert sparsity(arm_masks)["layers"] == sparsity(masks)["layers"] and not np.array_equal(arm_masks["1.W"],
                                                                                           masks["1.W"])
    assert all(trained["round 0 dense"][1][n].all() for n in masks)  # dense: every weight kept

    assert [row["round"] for row in record["rounds"]] == [0, 2]
    assert record["rounds"][1]["percent_remaining"] == runs.completed_rounds(source_run)[2]["percent_remaining"]
    assert set(record["rounds"][1]["arms"]) == set(transfer.ARMS)
    assert record["target"] == {"dataset": "fashion-mnist", "run": None}
    assert record["config"]["dataset"] == "fashion-mnist"
    assert runs.read_json(tmp_path / "t" / transfer.TRANSFER_FILE) == record


def test_a_rerun_continues_and_adds_the_target_ticket(source_run, target_run, tmp_path, monkeypatch):
    out = tmp_path / "t"
    transfer.run_transfer(source_run, TARGET, out, [1], progress=False, log=None)
    calls = spy_on_training(monkeypatch)
    record = transfer.run_transfer(source_run, TARGET, out, [1], target_run=target_run, progress=False, log=None)
    assert calls == []  # every network of round 1 was trained already
    own = runs.completed_rounds(target_run)[1]["arms"]["ticket"]
    assert record["rounds"][1]["arms"][transfer.TARGET_ARM] == {k: own[k] for k in transfer.ARM_METRICS}
    text = transfer.format_transfer(record)
    assert "target_ticket" in text and f"{100 * own['test_accuracy_at_early_stop']:.2f}%" in text
    paths = transfer.plot_transfer(record, tmp_path / "figures")
    assert sorted(p.name for p in paths) == [f"{transfer.FIGURE}.pdf", f"{transfer.FIGURE}.png"]


def test_images_of_another_shape_are_refused_in_one_line(source_run, tmp_path, monkeypatch, capsys):
    rng = np.random.default_rng(0)
    colour = Dataset(*(rng.random((4, 3, 32, 32), dtype=np.float32), np.arange(4) % 10) * 3, name="cifar10")
    with pytest.raises(ValueError, match=r"takes \(1, 28, 28\) images, but cifar10 has \(3, 32, 32\)"):
        transfer.run_transfer(source_run, colour, tmp_path / "t", [1], progress=False, log=None)
    monkeypatch.setitem(LOADERS, "cifar10", lambda data_dir=None: colour)
    code = main(["transfer", str(source_run), "--dataset", "cifar10", "--out", str(tmp_path / "cli"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("minilottery transfer: error: the source run's lenet_300_100 takes (1, 28, 28) images")
    assert not (tmp_path / "cli" / transfer.TRANSFER_FILE).exists()


@pytest.mark.parametrize("argv, message", [
    (["--rounds", "5"], "--rounds 5: .* has pruned rounds 1 to 2"),
    ([], "give the target data set: --dataset NAME or --target-run RUN"),
])
def test_bad_options_are_refused_in_one_line(source_run, tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.setitem(LOADERS, "mnist", lambda data_dir=None: TARGET)
    dataset = ["--dataset", "mnist"] if argv else []
    code = main(["transfer", str(source_run), *dataset, *argv, "--out", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert re.search(message, err), err


def test_a_target_run_with_other_sparsities_is_refused(source_run, tmp_path):
    other = tmp_path / "other"
    run_imp_in_folder(dataclasses.replace(small_config(rounds=1, controls=(), prune_rate=0.5), dataset="fashion-mnist"),
                      TARGET, other, progress=False)
    with pytest.raises(ValueError, match="round 1 keeps 80.*% in .* but 50.*% in .*: other pruning rates"):
        transfer.run_transfer(source_run, TARGET, tmp_path / "t", [1], target_run=other, progress=False, log=None)


def test_a_folder_that_is_not_a_run_is_refused(tmp_path):
    with pytest.raises(ValueError, match="is not a run folder of `minilottery imp`"):
        transfer.SourceRun.read(tmp_path)
