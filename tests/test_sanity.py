"""Sanity checks and supermasks (lab/sanity.py): every variant keeps the ticket's per-layer counts, shuffling moves
the kept positions, the sign-keeping variants keep θ0's signs (one magnitude per layer for the signed constant),
every criterion keeps what its score says, and the command runs end to end with one-line refusals."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from minilottery.data import LOADERS
from minilottery.lab import runs, sanity
from minilottery.lab.cli import main
from minilottery.lab.run_folder import run_imp_in_folder
from minilottery.lab.transfer import SourceRun
from minilottery.models import build_model
from minilottery.prune import sparsity
from tests.helpers import small_config, synthetic_data

DATA = synthetic_data(seed=0)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    run_imp_in_folder(small_config(rounds=2, controls=("reinit", "random_prune")), DATA, out, progress=False)
    return out


@pytest.fixture(scope="module")
def variants(run_dir):
    """Round 2's variants: (source, ticket masks, the trained dense network, variant -> (start, masks))."""
    source = SourceRun.read(run_dir)
    ticket = source.masks(2)
    dense_final = runs.load_npz(runs.round_dir(run_dir, 0) / "ticket" / "final.npz")
    return source, ticket, dense_final, sanity.variant_networks(source, 2, ticket, dense_final)


def counts(masks):
    return {name: layer["remaining"] for name, layer in sparsity(masks)["layers"].items()}


def test_every_variant_but_the_supermask_keeps_the_tickets_per_layer_counts(variants):
    _, ticket, _, networks = variants
    assert list(networks) == list(sanity.VARIANTS)
    for variant, (_, masks) in networks.items():
        if variant == "large_final_same_sign":  # at most the ticket's count: only weights that kept their sign
            assert all(counts(masks)[n] <= counts(ticket)[n] for n in ticket)
        else:
            assert counts(masks) == counts(ticket), variant


def test_shuffled_masks_move_the_kept_weights_within_each_layer(variants, run_dir):
    _, ticket, _, networks = variants
    shuffled = networks["shuffled"][1]
    assert counts(shuffled) == counts(ticket)
    assert all(not np.array_equal(shuffled[n], ticket[n]) for n in ticket)
    own = runs.load_npz(runs.round_dir(run_dir, 2) / "random_prune" / "masks.npz")  # IMP's control of the round
    assert all(np.array_equal(shuffled[n], own[n]) for n in own)


def test_the_signed_constant_has_theta0s_signs_and_one_magnitude_per_layer(variants):
    source, ticket, _, networks = variants
    start, masks = networks["signed_constant"]
    assert all(np.array_equal(masks[n], ticket[n]) for n in ticket)
    for name, w0 in source.start.items():
        if name not in ticket:  # biases stay as they were
            np.testing.assert_array_equal(start[name], w0)
            continue
        assert start[name].dtype == w0.dtype
        np.testing.assert_array_equal(np.sign(start[name]), np.sign(w0))
        np.testing.assert_allclose(np.unique(np.abs(start[name])), [w0.std()], rtol=1e-6)


def test_the_reinitialisation_keeps_theta0s_signs_and_the_fresh_magnitudes(variants):
    source, ticket, _, networks = variants
    start, masks = networks["reinit_signs"]
    fresh = build_model("lenet_300_100", (1, 28, 28), seed=0 + 1000 + 2).state_dict()  # IMP's θ0' of round 2
    assert all(np.array_equal(masks[n], ticket[n]) for n in ticket)
    for name in ticket:
        np.testing.assert_array_equal(np.sign(start[name]), np.sign(source.start[name]))
        np.testing.assert_array_equal(np.abs(start[name]), np.abs(fresh[name]))
    assert not np.array_equal(np.abs(start["1.W"]), np.abs(source.start["1.W"]))


@pytest.mark.parametrize("criterion", sanity.CRITERIA)
def test_every_criterion_keeps_exactly_the_count_of_highest_scores(criterion):
    rng = np.random.default_rng(1)
    w0 = {"1.W": rng.standard_normal((20, 30)).astype(np.float32), "3.W": rng.standard_normal((10, 20))}
    wf = {name: (w + rng.standard_normal(w.shape)).astype(w.dtype) for name, w in w0.items()}
    w0["5.W"] = rng.standard_normal((4, 5))
    wf["5.W"] = np.where(np.arange(20).reshape(4, 5) < 3, w0["5.W"], -w0["5.W"])  # only 3 weights keep their sign
    wanted = {"1.W": 123, "3.W": 7, "5.W": 10}
    masks = sanity.criterion_masks(criterion, w0, wf, wanted)
    for name, count in wanted.items():
        score = sanity.criterion_scores(criterion, w0[name], wf[name])
        kept, dropped = score[masks[name]], score[~masks[name]]
        assert kept.min() >= dropped.max(), (criterion, name)  # nothing dropped scores above anything kept
        if criterion == "large_final_same_sign":
            same = np.sign(wf[name]) == np.sign(w0[name])
            assert masks[name].sum() == min(count, same.sum()) and not np.any(masks[name] & ~same)
        else:
            assert masks[name].sum() == count, (criterion, name)


def test_the_criteria_rank_what_their_names_say():
    w0 = {"W": np.array([[0.1, -0.5, 0.3, -0.2]], dtype=np.float32)}
    wf = {"W": np.array([[0.2, -0.1, -0.35, 0.45]], dtype=np.float32)}
    expected = {"large_final": [0, 0, 1, 1], "small_final": [1, 1, 0, 0], "large_init": [0, 1, 1, 0],
                "magnitude_increase": [1, 0, 0, 1], "movement": [0, 1, 1, 1],
                "large_final_same_sign": [1, 1, 0, 0]}  # only positions 0 and 1 kept their sign
    for criterion, kept in expected.items():
        count = 3 if criterion == "movement" else 2
        mask = sanity.criterion_masks(criterion, w0, wf, {"W": count})["W"]
        assert mask[0].astype(int).tolist() == kept, criterion


def test_one_shot_magnitude_pruning_of_the_dense_network_is_imps_first_round(run_dir):
    """large_final ranks the trained dense network exactly as IMP's first round did: the same masks."""
    source = SourceRun.read(run_dir)
    dense_final = runs.load_npz(runs.round_dir(run_dir, 0) / "ticket" / "final.npz")
    ticket = source.masks(1)
    masks = sanity.variant_networks(source, 1, ticket, dense_final)["large_final"][1]
    assert all(np.array_equal(masks[n], ticket[n]) for n in ticket)


def test_the_checks_of_a_run_record_every_variant_and_continue(run_dir, tmp_path, monkeypatch):
    out = tmp_path / "out"
    record = sanity.run_sanity(run_dir, DATA, out, [2], ["ticket", "shuffled", "large_final_same_sign"],
                               progress=False, log=None)
    row = record["results"][0]
    assert row["round"] == 2 and list(row["variants"]) == ["ticket", "shuffled", "large_final_same_sign"]
    ticket = row["variants"]["ticket"]
    assert ticket["overlap_with_ticket"] == 1.0 and ticket["percent_remaining"] == row["percent_remaining"]
    run_ticket = runs.completed_rounds(run_dir)[2]["arms"]["ticket"]  # the ticket trains exactly as in the run
    assert ticket["test_accuracy_at_early_stop"] == run_ticket["test_accuracy_at_early_stop"]
    assert 0 <= record["dense_untrained_test_accuracy"] <= 1
    assert all(0 <= v["untrained_test_accuracy"] <= 1 for v in row["variants"].values())
    assert json.loads((out / sanity.SANITY_FILE).read_text()) == record

    monkeypatch.setattr(sanity, "train_arm", lambda *a, **k: pytest.fail("trained again"))
    assert sanity.run_sanity(run_dir, DATA, out, [2], ["ticket", "shuffled"], progress=False, log=None) == record
    text = sanity.format_sanity(record)
    assert "large_final_same_sign" in text and f"{100 * ticket['untrained_test_accuracy']:.2f}%" in text
    paths = sanity.plot_sanity(record, tmp_path / "figures")
    assert sorted(p.name for p in paths) == [f"{sanity.FIGURE}.pdf", f"{sanity.FIGURE}.png"]


def test_the_command_runs_end_to_end(run_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(LOADERS, "mnist", lambda data_dir=None: DATA)
    out = tmp_path / "cli"
    code = main(["sanity", str(run_dir), "--round", "1", "--variants", "ticket,signed_constant", "--out", str(out),
                 "--no-progress"])
    printed = capsys.readouterr().out
    assert code == 0
    record = runs.read_json(out / sanity.SANITY_FILE)
    assert list(record["results"][0]["variants"]) == ["ticket", "signed_constant"]
    assert "sanity checks of lenet_300_100 on mnist" in printed and "figures/sanity_accuracy.png" in printed
    assert (out / "figures" / f"{sanity.FIGURE}.png").is_file()


@pytest.mark.parametrize("argv, message", [
    (["--round", "3"], r"--round 3: .* has pruned rounds 1 to 2"),
    (["--round", "1", "--variants", "ticket,lucky"], r"--variants lucky: expected some of ticket,shuffled,"),
])
def test_bad_options_are_refused_in_one_line(run_dir, tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.setitem(LOADERS, "mnist", lambda data_dir=None: pytest.fail("data loaded before the options were "
                                                                             "checked"))
    code = main(["sanity", str(run_dir), *argv, "--out", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert re.search(message, err), err


def test_round_0_and_unknown_variants_are_refused_by_the_library(run_dir, tmp_path):
    with pytest.raises(ValueError, match=r"--round 0: .* has pruned rounds 1 to 2"):
        sanity.run_sanity(run_dir, DATA, tmp_path / "o", [0], progress=False, log=None)
    with pytest.raises(ValueError, match=r"--variants \(none\): expected some of"):
        sanity.run_sanity(run_dir, DATA, tmp_path / "o", [1], [], progress=False, log=None)
