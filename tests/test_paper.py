"""check-paper: each claim measured on hand-made runs whose answers are known, and judged honestly."""

from __future__ import annotations

import pytest

from minilottery.lab.paper import CLAIMS, check, format_check, round_near

# LeNet-300-100's percent of weights remaining after rounds 0..15 (hidden layers 20%, output 10% per round).
PERCENTS = [100.0, 80.0, 64.1, 51.3, 41.1, 32.9, 26.4, 21.1, 16.9, 13.5, 10.9, 8.7, 7.0, 5.6, 4.5, 3.6]


def run(ticket_acc, ticket_stop, reinit_acc=None, reinit_stop=None, iterations=5000, seed=0, model="lenet_300_100"):
    """A summary: per round the ticket's (and from round 1 the reinit's) accuracy and early-stop iteration."""
    rounds = []
    for i, p in enumerate(PERCENTS[:len(ticket_acc)]):
        arms = {"ticket": {"early_stop_iteration": ticket_stop[i], "test_accuracy_at_early_stop": ticket_acc[i],
                           "final_test_accuracy": ticket_acc[i]}}
        if reinit_acc is not None and i > 0:
            arms["reinit"] = {"early_stop_iteration": reinit_stop[i], "test_accuracy_at_early_stop": reinit_acc[i],
                              "final_test_accuracy": reinit_acc[i]}
        rounds.append({"round": i, "percent_remaining": p, "remaining": int(p * 1000), "total": 100000, "arms": arms})
    config = {"model": model, "dataset": "mnist", "reset": "init", "one_shot": False, "global_pruning": False,
              "seed": seed, "controls": ["reinit"] if reinit_acc is not None else [],
              "train": {"iterations": iterations}}
    return {"config": config, "rounds": rounds}


def paper_like(seed=0, shift=0.0):
    """A run that behaves as the paper says: tickets faster and better down to 3.6%, reinit worse from 21.1%."""
    n = len(PERCENTS)
    ticket_acc = [0.980] + [0.9835 + shift] * 14 + [0.979]  # below dense only at the last round, 3.6%
    ticket_stop = [4000] + [3000] * 6 + [2480] + [3000] * 8  # 38% sooner at 21.1%
    reinit_acc = [None] + [0.981] * 6 + [0.978] * (n - 7)  # below dense from 21.1% on
    reinit_stop = [None] + [4000] * 6 + [6224] + [4500] * 8  # 6224 / 2480 = 2.51x at 21.1%
    return run(ticket_acc, ticket_stop, reinit_acc, reinit_stop, iterations=50_000, seed=seed)


def rows_by_key(summaries):
    return {r["key"]: r for r in check(summaries)}


def test_a_run_that_behaves_like_the_paper_agrees_with_every_claim():
    rows = rows_by_key([paper_like()])
    assert rows["faster_than_dense"]["ours"] == pytest.approx(38.0)
    assert rows["faster_than_reinit"]["ours"] == pytest.approx(2.51, abs=1e-3)
    assert rows["more_accurate"]["ours"] == pytest.approx(0.35)  # 98.35 - 98.0 points: "more than 0.3"
    assert rows["reinit_loses_from"]["ours"] == 21.1
    assert rows["ticket_holds_until"]["ours"] == 4.5 and rows["ticket_holds_until"]["bound"] == ""
    for key, row in rows.items():
        assert row["direction"] == "yes", key
        assert row["size"] == "yes", key
    text = format_check(check([paper_like()]), 1)
    assert "5 of 5 claims agree in direction and size" in text


def test_trials_ours_is_measured_on_the_mean_with_min_and_max_from_single_trials():
    rows = rows_by_key([paper_like(0, shift=-0.0025), paper_like(1, shift=0.0005)])
    more = rows["more_accurate"]
    assert (more["ours"] == pytest.approx(0.25) and more["low"] == pytest.approx(0.1)
            and more["high"] == pytest.approx(0.4))
    assert more["trials"] == 2 and more["direction_trials"] == 2
    assert more["direction"] == "yes" and more["size"] == "no"  # 0.25 is not "more than 0.3"


def test_a_run_against_the_paper_disagrees():
    # the ticket learns slower and is worse than the dense network; reinit never falls below it
    ticket = [0.980] + [0.975] * 15
    slow = [2000] + [4000] * 15
    rows = rows_by_key([run(ticket, slow, [None] + [0.985] * 15, [None] + [1000] * 15)])
    assert rows["faster_than_dense"]["direction"] == "no" and rows["faster_than_dense"]["ours"] == pytest.approx(-100.0)
    assert rows["faster_than_reinit"]["direction"] == "no"
    assert rows["more_accurate"]["direction"] == "no" and rows["more_accurate"]["size"] == "no"
    assert rows["reinit_loses_from"]["direction"] == "no" and rows["reinit_loses_from"]["bound"] == "<="
    assert rows["reinit_loses_from"]["size"] == "no"  # never below down to 3.6%: far from 21.1%
    assert rows["ticket_holds_until"]["ours"] == 100.0 and rows["ticket_holds_until"]["direction"] == "no"


def test_bounds_are_judged_as_bounds():
    # reinit still improving at the last iteration (5000): the ratio is only a lower bound
    ticket_acc = [0.980] + [0.982] * 12
    rows = rows_by_key([run(ticket_acc, [4000] + [2000] * 12, [None] + [0.97] * 12, [None] + [5000] * 12)])
    speed = rows["faster_than_reinit"]
    assert speed["bound"] == ">=" and speed["ours"] == pytest.approx(2.5) and speed["size"] == "yes"
    assert "lower bound" in speed["note"]
    # the ticket never falls below dense in a run that ends at 7.0%: "at most 7.0", which cannot decide
    holds = rows["ticket_holds_until"]
    assert holds["bound"] == "<=" and holds["ours"] == 7.0 and holds["direction"] == "yes" and holds["size"] == "yes"
    short = rows_by_key([run([0.980, 0.982, 0.983], [4000, 3000, 3000])])
    assert short["ticket_holds_until"]["direction"] == "unknown" and short["ticket_holds_until"]["size"] == "unknown"


def test_levels_the_run_does_not_reach_are_not_measured():
    rows = rows_by_key([run([0.98, 0.98, 0.98, 0.98], [4000] * 4)])
    assert rows["faster_than_dense"]["ours"] is None and rows["faster_than_dense"]["direction"] == "n/a"
    assert rows["faster_than_dense"]["note"] == "not reached: the run's rounds end at 51.3%"
    assert "--controls reinit" in rows_by_key([run([0.98] * 9, [4000] * 9)])["faster_than_reinit"]["note"]
    assert "not measured" in format_check(check([run([0.98] * 4, [4000] * 4)]), 1)


def test_round_near_uses_a_log_scale_tolerance():
    summary = run([0.98] * 16, [4000] * 16)
    assert round_near(summary, 21.1)["percent_remaining"] == 21.1
    assert round_near(summary, 20.0)["percent_remaining"] == 21.1
    assert isinstance(round_near(run([0.98] * 3, [1] * 3), 21.1), str)


def test_only_lenet_on_mnist_is_checked():
    with pytest.raises(ValueError, match="LeNet-300-100 on MNIST"):
        check([run([0.9] * 3, [1] * 3, model="conv2")])
    with pytest.raises(ValueError, match="no completed trial"):
        check([])


def test_every_claim_cites_the_paper():
    assert len(CLAIMS) == 5
    for claim in CLAIMS:
        assert claim.where.startswith("Section 2") and "Figure" in claim.where and claim.paper > 0


def test_levels_ignore_a_noisy_dip_that_recovers():
    run_ = paper_like()
    rounds = run_["rounds"]
    rounds[1]["arms"]["ticket"]["test_accuracy_at_early_stop"] = 0.979  # below dense (0.980) at 80%, then back
    rounds[2]["arms"]["reinit"]["test_accuracy_at_early_stop"] = 0.979  # reinit below at 64.1%, then back
    rows = rows_by_key([run_])
    assert rows["ticket_holds_until"]["ours"] == 4.5
    assert rows["reinit_loses_from"]["ours"] == 21.1
    rounds[-1]["arms"]["reinit"]["test_accuracy_at_early_stop"] = 0.985  # back above dense at the end: not lost
    assert rows_by_key([run_])["reinit_loses_from"]["bound"] == "<="


def test_a_control_censored_in_some_trials_is_noted():
    stopped = paper_like(0)
    stopped["rounds"][7]["arms"]["reinit"]["early_stop_iteration"] = 50_000  # still improving at the end
    row = rows_by_key([stopped, paper_like(1)])["faster_than_reinit"]
    assert row["bound"] == "" and row["note"].startswith("in 1 of 2 trials the control was still improving")


def test_noise_the_paper_inside_the_trials_range_and_the_trials_that_agree_in_size():
    rows = rows_by_key([paper_like(0, shift=-0.0025), paper_like(1, shift=0.0005)])  # 0.10 and 0.40 points
    more = rows["more_accurate"]
    assert more["size"] == "no" and more["size_trials"] == 1  # the mean (0.25) is short, one trial passes 0.3
    assert more["noise"] == "inside"  # 0.3 lies in [0.10, 0.40]: a gap our own trials span
    text = format_check(check([paper_like(0, shift=-0.0025), paper_like(1, shift=0.0005)]), 2)
    assert "size: no (1/2 trials)" in text
    assert "noise: the paper's 0.30 lies inside our trials' [0.10, 0.40]: consistent with our noise" in text


def test_noise_the_paper_outside_the_trials_range():
    rows = rows_by_key([paper_like(0, shift=-0.0030), paper_like(1, shift=-0.0025), paper_like(2, shift=-0.0028)])
    more = rows["more_accurate"]
    assert more["size"] == "no" and more["size_trials"] == 0 and more["noise"] == "outside"
    assert rows["faster_than_dense"]["noise"] == "inside"  # every trial measures exactly 38.0: [38.0, 38.0]
    assert rows["faster_than_dense"]["size_trials"] == 3
    text = format_check(check([paper_like(0, shift=-0.0030), paper_like(1, shift=-0.0025)]), 2)
    assert "noise: the paper's 0.30 lies outside our trials' [0.05, 0.10]: a difference beyond our noise" in text


def test_noise_of_a_single_trial_and_of_a_claim_not_measured():
    rows = rows_by_key([paper_like()])
    assert all(row["noise"] == "one trial" and row["size_trials"] == 1 for row in rows.values())
    text = format_check(check([paper_like()]), 1)
    assert text.count("noise: one trial, no spread") == 5
    short = rows_by_key([run([0.98] * 4, [4000] * 4)])["faster_than_dense"]
    assert short["noise"] == "n/a" and short["size_trials"] == 0
    rows = check([run([0.98] * 4, [4000] * 4)])
    assert format_check(rows, 1).count("   noise:") == sum(row["ours"] is not None for row in rows) < len(rows)
