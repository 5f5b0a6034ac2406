"""Instability analysis (lab/instability.py): the path's ends are the two trained children exactly, masked weights
stay 0 along it, a network with itself is stable, the parent and children train from the right weights with the
right data orders, and the command runs end to end with one-line refusals."""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pytest

from minilottery.data import LOADERS
from minilottery.imp import train_arm
from minilottery.lab import instability, runs
from minilottery.lab.cli import main
from minilottery.lab.run_folder import run_imp_in_folder
from minilottery.lab.transfer import SourceRun
from minilottery.prune import masked_weights
from tests.helpers import small_config, synthetic_data

DATA = synthetic_data(seed=0)
# Half the test images are pure noise, so that every network has a test error well above 0 and two networks that
# learned the same classes still differ in it (they guess differently on the noise).
_NOISE = np.random.default_rng(5).random(DATA.x_test.shape, dtype=np.float32)  # (60, 1, 28, 28)
NOISY = dataclasses.replace(DATA, x_test=np.where(np.arange(len(DATA.y_test))[:, None, None, None] % 2 == 0,
                                                  DATA.x_test, _NOISE))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    run_imp_in_folder(small_config(rounds=2, controls=("reinit",)), DATA, out, progress=False)
    return out


@pytest.fixture(scope="module")
def source(run_dir):
    return SourceRun.read(run_dir)


def ticket_of(source, index=2):
    masks = source.masks(index)
    return source.start, masks


def test_interpolation_keeps_its_ends_exactly_and_masked_weights_at_zero():
    rng = np.random.default_rng(0)
    mask = rng.random((30, 20)) < 0.3
    a = {"1.W": (rng.standard_normal((30, 20)) * mask).astype(np.float32), "1.b": rng.standard_normal(30, np.float32)}
    b = {"1.W": (rng.standard_normal((30, 20)) * mask).astype(np.float32), "1.b": rng.standard_normal(30, np.float32)}
    for name in a:
        np.testing.assert_array_equal(instability.interpolate(a, b, 0.0)[name], a[name])
        np.testing.assert_array_equal(instability.interpolate(a, b, 1.0)[name], b[name])
    for alpha in instability.alphas(7)[1:-1]:
        point = instability.interpolate(a, b, alpha)
        assert point["1.W"].dtype == np.float32
        assert np.all(point["1.W"][~mask] == 0) and np.any(point["1.W"][mask] != 0)
        np.testing.assert_allclose(point["1.b"], (1 - alpha) * a["1.b"] + alpha * b["1.b"], rtol=1e-6)
    assert instability.alphas(3) == [0.0, 0.5, 1.0]


def test_instability_is_the_highest_error_above_the_mean_of_the_ends():
    assert instability.instability([0.1, 0.25, 0.4, 0.3]) == pytest.approx(0.4 - 0.2)
    assert instability.instability([0.2, 0.2, 0.2]) == 0.0
    assert instability.instability([0.1, 0.05, 0.3]) == pytest.approx(0.1)  # the higher end is the highest point


def test_the_path_ends_are_the_two_trained_children_and_a_network_with_itself_is_stable(source):
    start, masks = ticket_of(source)
    children = instability.spawn(source.config, NOISY, start, masks, [0], progress=False)[0]
    a, b = (child.final_weights for child in children)
    assert not np.array_equal(a["1.W"], b["1.W"])  # two data orders, two networks
    for child in children:  # a masked network trains into a masked network: the path stays masked
        assert all(np.all(child.final_weights[name][~masks[name]] == 0) for name in masks)
    model = instability.network(source.config, source.input_shape, start, masks)
    alphas = instability.alphas(5)
    errors = instability.path_errors(model, a, b, NOISY.x_test, NOISY.y_test, alphas)
    # the ends are the children: their errors exactly as their own training measured them at its last step
    assert errors[0] == 1.0 - children[0].metrics["final_test_accuracy"]
    assert errors[-1] == 1.0 - children[1].metrics["final_test_accuracy"]
    assert 0 < errors[0] < 1 and errors[0] != errors[-1] and instability.instability(errors) >= 0
    same = instability.path_errors(model, a, a, NOISY.x_test, NOISY.y_test, alphas)
    assert instability.instability(same) == 0.0 and same == [errors[0]] * len(alphas)


def test_the_parent_trains_to_k_with_the_run_order_and_the_children_with_seeds_plus_one_and_two(source, monkeypatch):
    calls = []

    def recorded(config, data, start, masks, device, progress, desc, snapshot_at=()):
        calls.append((desc, config.train.iterations, config.train.seed, snapshot_at, start))
        return train_arm(config, data, start, masks, device, progress, desc, snapshot_at)

    monkeypatch.setattr(instability, "train_arm", recorded)
    start, masks = ticket_of(source)
    config = source.config  # 12 iterations, data seed 0
    children = instability.spawn(config, DATA, start, masks, [4, 0], progress=False, desc="t")
    assert [(desc, its, seed, snap) for desc, its, seed, snap, _ in calls] == [
        ("t parent", 4, 0, (0, 4)),
        ("t k=0 child seed 1", 12, 1, ()), ("t k=0 child seed 2", 12, 2, ()),
        ("t k=4 child seed 1", 8, 1, ()), ("t k=4 child seed 2", 8, 2, ())]
    theta0 = masked_weights(start, masks)
    parent = dataclasses.replace(config, train=dataclasses.replace(config.train, iterations=4))
    theta4 = train_arm(parent, DATA, start, masks, "cpu", False, "")[0].final_weights  # 4 steps, the run's order
    for k, expected in ((0, theta0), (4, theta4)):
        for child in children[k]:
            assert all(np.array_equal(child.init_weights[n], expected[n]) for n in expected), k
    assert not np.array_equal(theta4["1.W"], theta0["1.W"])


def test_the_analysis_of_a_run_records_every_arm_and_k_and_continues(run_dir, tmp_path, monkeypatch):
    out = tmp_path / "out"
    record = instability.run_instability(run_dir, NOISY, out, 2, [0, 4], points=4, progress=False, log=None)
    assert [(row["arm"], row["k"]) for row in record["results"]] == [
        (arm, k) for arm in instability.ARMS for k in (0, 4)]
    assert record["data_seeds"] == {"parent": 0, "children": [1, 2]} and record["alphas"] == [0.0, 1 / 3, 2 / 3, 1.0]
    percents = {row["arm"]: row["percent_remaining"] for row in record["results"]}
    assert percents["dense"] == 100.0 and percents["ticket"] == percents["reinit"] == record["percent_remaining"]
    for row in record["results"]:
        assert len(row["errors"]) == 4 and row["instability"] == instability.instability(row["errors"])
        assert row["errors"][-1] == 1.0 - row["children"][1]["final_test_accuracy"]
    assert json.loads((out / instability.INSTABILITY_FILE).read_text()) == record

    monkeypatch.setattr(instability, "train_arm", lambda *a, **k: pytest.fail("trained again"))
    again = instability.run_instability(run_dir, NOISY, out, 2, [4, 0], points=4, progress=False, log=None)
    assert again == record
    with pytest.raises(ValueError, match="holds another instability analysis"):
        instability.run_instability(run_dir, NOISY, out, 2, [0], points=5, progress=False, log=None)
    text = instability.format_instability(record)
    assert "instability" in text and len(text.splitlines()) == 2 + len(record["results"])
    paths = instability.plot_instability(record, tmp_path / "figures")
    assert sorted(p.name for p in paths) == sorted(f"{f}.{e}" for f in instability.FIGURES for e in ("png", "pdf"))


def test_the_command_runs_end_to_end(run_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(LOADERS, "mnist", lambda data_dir=None: NOISY)
    out = tmp_path / "cli"
    code = main(["instability", str(run_dir), "--round", "1", "--k", "0", "--points", "3", "--arms", "ticket",
                 "--out", str(out), "--no-progress"])
    printed = capsys.readouterr().out
    assert code == 0
    record = runs.read_json(out / instability.INSTABILITY_FILE)
    assert [(row["arm"], row["k"]) for row in record["results"]] == [("ticket", 0)]
    assert "round 1" in printed and "figures/instability_vs_k.png" in printed
    assert all((out / "figures" / f"{name}.png").is_file() for name in instability.FIGURES)


@pytest.mark.parametrize("argv, message", [
    (["--round", "3"], r"--round 3: .* has pruned rounds 1 to 2"),
    (["--round", "0"], r"--round 0: .* has pruned rounds 1 to 2"),
    (["--round", "1", "--k", "12"], r"--k must be iterations in 0\.\.11 .*got 12"),
    (["--round", "1", "--points", "1"], r"--points must be an integer >= 2"),
    (["--round", "1", "--arms", "ticket,lucky"], r"--arms lucky: expected some of dense,ticket,reinit"),
])
def test_bad_options_are_refused_in_one_line(run_dir, tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.setitem(LOADERS, "mnist", lambda data_dir=None: pytest.fail("data loaded before the options were "
                                                                             "checked"))
    code = main(["instability", str(run_dir), *argv, "--out", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("minilottery instability: error: ")
    assert re.search(message, err), err


def test_a_folder_that_is_not_a_run_is_refused_in_one_line(tmp_path, capsys):
    code = main(["instability", str(tmp_path), "--round", "1", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "is not a run folder of `minilottery imp`" in err
