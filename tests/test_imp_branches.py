"""IMP branches the other tests do not reach: the stop when a round prunes nothing, one-shot global pruning to
the exact target, and resuming a run folder killed between a round's marker and its summary, or missing its
rewind point."""

from __future__ import annotations

import pytest

from minilottery.imp import run_imp, stop_reason
from minilottery.lab import runs
from minilottery.lab.run_folder import RunFolder, run_imp_in_folder
from minilottery.prune import global_magnitude_prune
from tests.helpers import assert_same_dirs, assert_same_results, counting_trainings, small_config, synthetic_data

TOTAL = 266200  # weights of lenet_300_100: 784*300 + 300*100 + 100*10


@pytest.fixture(scope="module")
def data():
    return synthetic_data()


def crash_at(index):
    def crash(rnd):
        if rnd.index == index:
            raise KeyboardInterrupt("simulated crash")
    return crash


# -- stopping -----------------------------------------------------------------------------------------------


def test_a_round_that_prunes_nothing_stops_the_run(data):
    # round(1e-6 * alive) is 0 in every layer: without the "stuck" stop, --target-percent 50 would never be met
    cfg = small_config(rounds=None, target_percent=50.0, prune_rate=1e-6, output_rate=1e-6, iterations=4)

    def guard(rnd):  # fail instead of looping forever if the stop is missing
        if rnd.index > 3:
            pytest.fail(f"IMP went on to round {rnd.index} although round 1 pruned no weight")

    with pytest.warns(UserWarning, match=r"^round 1 pruned no weight \(too few remain for --prune-rate 1e-06\); "
                                         r"stopping at 100\.00% remaining$"):
        result = run_imp(cfg, data, progress=False, on_round=guard)
    assert [r.index for r in result.rounds] == [0, 1]
    assert result.rounds[1].info["remaining"] == result.rounds[0].info["remaining"] == TOTAL
    infos = [r.info for r in result.rounds]
    assert stop_reason(cfg, infos) == "stuck" and stop_reason(cfg, infos[:1]) is None


# -- one-shot global pruning --------------------------------------------------------------------------------


@pytest.mark.parametrize("options, kept", [
    (dict(rounds=5, target_percent=12.5), 33275),  # 12.5% of 266200, exactly
    (dict(rounds=2), 170368),  # no target: what 2 rounds at 20% leave, 64% of 266200, exactly
])
def test_one_shot_global_pruning_keeps_exactly_the_target(data, options, kept):
    result = run_imp(small_config(one_shot=True, global_pruning=True, **options), data, progress=False)
    assert [r.index for r in result.rounds] == [0, 1]  # one pruning round, whatever --rounds says
    r0, r1 = result.rounds
    assert r1.info["remaining"] == kept == sum(int(m.sum()) for m in r1.masks.values())
    expected = global_magnitude_prune(r0.arms["ticket"].final_weights, r0.masks, 1.0 - kept / TOTAL)
    assert all((expected[n] == r1.masks[n]).all() for n in expected)
    layers = r1.info["layers"]  # one threshold over all layers: the layers keep different fractions
    assert len({layers[n]["percent"] for n in layers}) == len(layers)


# -- resuming a run folder ----------------------------------------------------------------------------------


def test_a_kill_between_a_rounds_marker_and_the_summary_is_repaired(data, tmp_path, monkeypatch):
    cfg = small_config(rounds=2, controls=("reinit",), iterations=8)
    whole = run_imp_in_folder(cfg, data, tmp_path / "whole", progress=False)
    out = tmp_path / "killed"
    summaries = {}  # round index -> (summary.json, summary.csv) as written once that round completed

    def record_then_crash(rnd):
        summaries[rnd.index] = ((out / "summary.json").read_bytes(), (out / "summary.csv").read_bytes())
        crash_at(1)(rnd)

    with pytest.raises(KeyboardInterrupt):
        run_imp_in_folder(cfg, data, out, progress=False, on_round=record_then_crash)

    def kill_before_the_summary(index):  # round ``index`` has its round.json, the summary is one round behind
        (out / "summary.json").write_bytes(summaries[index - 1][0])
        (out / "summary.csv").write_bytes(summaries[index - 1][1])
        assert [r["round"] for r in runs.read_json(out / "summary.json")["rounds"]] == list(range(index))
        assert [r["round"] for r in runs.completed_rounds(out)] == list(range(index + 1))

    kill_before_the_summary(1)
    with RunFolder(out, cfg, data):  # reopening alone brings the summary up to date
        pass
    assert runs.read_json(out / "summary.json")["rounds"] == runs.completed_rounds(out)
    assert (out / "summary.csv").read_bytes() == summaries[1][1]
    trained = counting_trainings(monkeypatch)
    resumed = run_imp_in_folder(cfg, data, out, progress=False)
    assert len(trained) == 2  # round 2's ticket and reinit: rounds 0 and 1 were read back
    assert_same_results(whole, resumed)
    assert_same_dirs(tmp_path / "whole", out)

    # killed the same way after the last round: the rerun trains nothing and only repairs the summary
    kill_before_the_summary(2)
    again = run_imp_in_folder(cfg, data, out, progress=False)
    assert len(trained) == 2
    assert_same_results(whole, again)
    assert_same_dirs(tmp_path / "whole", out)


def test_a_missing_rewind_point_is_named_and_overwrite_starts_again(data, tmp_path):
    cfg = small_config(rounds=2, reset="rewind:4", iterations=8)
    whole = run_imp_in_folder(cfg, data, tmp_path / "whole", progress=False)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_imp_in_folder(cfg, data, out, progress=False, on_round=crash_at(1))
    (out / "rewind.npz").unlink()  # round 2 would silently start from θ0 instead of θ4
    with pytest.raises(runs.RunFileError) as caught:
        run_imp_in_folder(cfg, data, out, progress=False)
    message = str(caught.value)
    assert "\n" not in message and str(out / "rewind.npz") in message and "--overwrite" in message, message
    assert [r["round"] for r in runs.completed_rounds(out)] == [0, 1]  # refused before changing anything
    again = run_imp_in_folder(cfg, data, out, progress=False, overwrite=True)
    assert_same_results(whole, again)
    assert_same_dirs(tmp_path / "whole", out)
