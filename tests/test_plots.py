"""Figures and the results table, drawn from a small fake run directory in the exact IMP format and from
hand-made trials; every figure's drawn data is read back from its axes and compared with the run's values."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from minilottery.lab import plots
from minilottery.lab.cli import main
from minilottery.lab.commands.report import format_csv, format_table
from minilottery.lab.trials import aggregate
from tests.helpers import FAKE_ROUNDS, LENET_SHAPES, make_fake_run


@pytest.fixture(scope="module")
def fake_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("run")
    make_fake_run(run_dir)
    return run_dir


# -- reading the drawn data back from a figure ---------------------------------------------------------------


def _lines(ax) -> dict[str, tuple[list[float], list[float]]]:
    """label -> (x, y) of every labelled line drawn on ``ax`` (error-bar and helper lines are unlabelled)."""
    return {line.get_label(): (list(line.get_xdata()), list(line.get_ydata()))
            for line in ax.get_lines() if not line.get_label().startswith("_")}


def _errorbars(ax) -> dict[str, tuple[list[float], list[float], list[float], list[float]]]:
    """label -> (x, y, lower end, upper end) of every error-bar line on ``ax``, read from the drawn bars."""
    found = {}
    for bars in ax.containers:
        line, _, (segments,) = bars.lines  # the data line, the caps, the vertical bars
        ends = segments.get_segments()  # one [[x, low], [x, high]] per point
        assert [float(end[0][0]) for end in ends] == list(line.get_xdata())  # each bar stands at its point
        found[bars.get_label()] = (list(line.get_xdata()), list(line.get_ydata()),
                                   [float(end[0][1]) for end in ends], [float(end[1][1]) for end in ends])
    return found


def _band(collection, xs) -> tuple[list[float], list[float]]:
    """(lower, upper) edge at each of ``xs`` of a ``fill_between`` band, from its polygon's vertices."""
    vertices = np.concatenate([path.vertices for path in collection.get_paths()])  # (points, 2)
    edges = [vertices[vertices[:, 0] == x, 1] for x in xs]
    return [float(e.min()) for e in edges], [float(e.max()) for e in edges]


def _arm_values(summary: dict, arm: str, key: str, scale: float) -> tuple[list[float], list[float]]:
    """(percent remaining, scale * value) of every round where ``arm`` ran, straight from the summary dict."""
    rounds = [r for r in summary["rounds"] if arm in r["arms"]]
    return [r["percent_remaining"] for r in rounds], [scale * r["arms"][arm][key] for r in rounds]


def check_metric_figures(figures: dict, summary: dict) -> None:
    """accuracy_vs_weights and early_stop_vs_weights draw each arm's values and the dense one (a single run)."""
    for name, key, scale in (("accuracy_vs_weights", "test_accuracy_at_early_stop", 100.0),
                             ("early_stop_vs_weights", "early_stop_iteration", 1.0)):
        lines = _lines(figures[name].axes[0])
        assert set(lines) == {"winning ticket (original init)", "random reinit", "dense network"}, name
        assert lines["winning ticket (original init)"] == _arm_values(summary, "ticket", key, scale), name
        assert lines["random reinit"] == _arm_values(summary, "reinit", key, scale), name
        dense = scale * summary["rounds"][0]["arms"]["ticket"][key]
        assert lines["dense network"][1] == [dense, dense], name


def check_learning_curves(fig, run_dir: Path, rounds: list[int]) -> None:
    """One line per (round, arm) with metrics.json, the ticket solid and the reinit dashed, y = 100 * accuracy."""
    expected = []
    for number in rounds:
        for arm, style in (("ticket", "-"), ("reinit", "--")):
            path = run_dir / f"round_{number:03d}" / arm / "metrics.json"
            if path.is_file():
                history = json.loads(path.read_text())["history"]
                expected.append((history["iteration"], [100.0 * a for a in history["test_accuracy"]], style))
    drawn = [(list(line.get_xdata()), list(line.get_ydata()), line.get_linestyle()) for line in fig.axes[0].lines]
    assert drawn == expected


def check_first_layer_mask(fig, run_dir: Path, name: str, rounds: list[int]) -> None:
    """Each panel shows the connections kept per input pixel: the column sums of that round's mask, 28 x 28."""
    panels = [ax for ax in fig.axes if ax.images]  # the colour bars are axes without images
    assert [ax.get_title().split("\n")[0] for ax in panels] == [f"round {r}" for r in rounds]
    for ax, number in zip(panels, rounds):
        mask = np.load(run_dir / f"round_{number:03d}" / "masks.npz")[name]  # (300, 784) bool
        np.testing.assert_array_equal(ax.images[0].get_array(), mask.sum(axis=0).reshape(28, 28))


def check_layer_percent(fig, summary: dict) -> None:
    """One line per layer (percent of its weights left, by round) and the whole network's."""
    lines = _lines(fig.axes[0])
    numbers = [r["round"] for r in summary["rounds"]]
    for name, shape in LENET_SHAPES.items():
        label = f"{name} ({int(np.prod(shape)):,} weights)"
        assert lines[label] == (numbers, [r["layers"][name]["percent"] for r in summary["rounds"]]), name
    assert lines["whole network"] == (numbers, [r["percent_remaining"] for r in summary["rounds"]])
    assert len(lines) == len(LENET_SHAPES) + 1


def test_plot_run_writes_all_figures(fake_run, tmp_path, monkeypatch):
    figures, save = {}, plots.save_figure
    monkeypatch.setattr(plots, "save_figure", lambda fig, out, name: save(figures.setdefault(name, fig), out, name))
    paths = plots.plot_run(fake_run, tmp_path / "figs")
    summary = json.loads((fake_run / "summary.json").read_text())
    assert sorted(figures) == sorted(plots.FIGURES)
    check_metric_figures(figures, summary)
    check_learning_curves(figures["learning_curves"], fake_run, [0, 3, 4])  # closest to 100, 51.3, 21.1 .. 3.6%
    check_first_layer_mask(figures["first_layer_mask"], fake_run, "1.W", [1, 2, 3, 4])
    check_layer_percent(figures["layer_percent_by_round"], summary)
    assert sorted(p.name for p in paths) == sorted(f"{n}.{e}" for n in plots.FIGURES for e in ("png", "pdf"))
    for path in paths:
        assert path.stat().st_size > 1000, path
        if path.suffix == ".png":
            image = matplotlib.image.imread(path)
            assert image.ndim == 3 and image.shape[2] in (3, 4) and min(image.shape[:2]) > 300, image.shape
        else:
            assert path.read_bytes()[:5] == b"%PDF-"


def test_plot_run_default_dir_and_summary_fallback(tmp_path):
    """Without summary.json (a run in progress) the rounds come from round_*/round.json."""
    summary = make_fake_run(tmp_path)
    (tmp_path / "summary.json").unlink()
    assert plots.load_summary(tmp_path)["rounds"] == summary["rounds"]
    paths = plots.plot_run(tmp_path)
    assert all(p.parent == tmp_path / "figures" for p in paths) and len(paths) == 10


def test_plots_handle_ticket_only_and_single_round(fake_run):
    summary = plots.load_summary(fake_run)
    one = {"config": {}, "rounds": [summary["rounds"][0]]}  # the dense network only, no control arm
    dense = summary["rounds"][0]["arms"]["ticket"]
    figures = {"accuracy": plots.plot_accuracy_vs_weights(one), "stop": plots.plot_early_stop_vs_weights(one),
               "layers": plots.plot_layer_percent_by_round(one), "curves": plots.plot_learning_curves(one, {})}
    for fig in figures.values():
        fig.savefig(io.BytesIO(), format="png")
    accuracy = 100.0 * dense["test_accuracy_at_early_stop"]
    assert _lines(figures["accuracy"].axes[0]) == {"winning ticket (original init)": ([100.0], [accuracy]),
                                                   "dense network": ([0, 1], [accuracy, accuracy])}
    stop = dense["early_stop_iteration"]
    assert _lines(figures["stop"].axes[0]) == {"winning ticket (original init)": ([100.0], [stop]),
                                               "dense network": ([0, 1], [stop, stop])}
    check_layer_percent(figures["layers"], one)
    curves = figures["curves"].axes[0]
    assert len(curves.lines) == 0 and [t.get_text() for t in curves.texts] == ["no learning curves in this run"]
    ticket_only = {"config": {}, "rounds": [dict(r, arms={"ticket": r["arms"]["ticket"]}) for r in summary["rounds"]]}
    assert plots.arms_in(ticket_only) == ["ticket"]
    fig = plots.plot_accuracy_vs_weights(ticket_only)
    fig.savefig(io.BytesIO(), format="png")
    lines = _lines(fig.axes[0])
    assert set(lines) == {"winning ticket (original init)", "dense network"}
    ticket = _arm_values(summary, "ticket", "test_accuracy_at_early_stop", 100.0)
    assert lines["winning ticket (original init)"] == ticket
    # A conv first layer has no 28x28 picture.
    assert plots.plot_first_layer_mask({1: np.ones((8, 1, 3, 3))}) is None


# -- trials: the mean with error bars from the minimum to the maximum ------------------------------------------

# Three trials' (early-stop iteration, accuracy at early stop) per round and arm. The accuracies are multiples of
# 1/256 whose mean is one too, so every mean, min and max, and 100 times it, is exact in binary floating point.
TRIAL_ARMS = [
    {0: {"ticket": (4000, 248)}, 1: {"ticket": (3000, 250), "reinit": (5000, 240)}},
    {0: {"ticket": (4600, 250)}, 1: {"ticket": (3600, 254), "reinit": (5300, 241)}},
    {0: {"ticket": (5800, 255)}, 1: {"ticket": (4800, 255), "reinit": (6200, 248)}},
]
TRIAL_PERCENTS = (100.0, 80.0)


def _trial_summary(seed: int, arms: dict) -> dict:
    """One trial's summary (the shape ``runs.load_summary`` reads) from {round: {arm: (stop, accuracy * 256)}}."""
    return {"config": {"model": "lenet_300_100", "seed": seed, "controls": ["reinit"]},
            "rounds": [{"round": r, "percent_remaining": TRIAL_PERCENTS[r],
                        "arms": {arm: {"early_stop_iteration": stop, "test_accuracy_at_early_stop": acc / 256,
                                       "final_test_accuracy": acc / 256} for arm, (stop, acc) in by_arm.items()}}
                       for r, by_arm in arms.items()]}


@pytest.fixture(scope="module")
def trials_summary() -> dict:
    return aggregate([_trial_summary(seed, arms) for seed, arms in enumerate(TRIAL_ARMS)])


def test_trials_error_bars_span_min_to_max(trials_summary):
    """Each point is the mean over the three trials, its bar runs from their minimum to their maximum."""
    bars = _errorbars(plots.plot_accuracy_vs_weights(trials_summary).axes[0])
    assert bars == {  # (percent, mean, min, max) of 248, 250, 255 / 256 and of 250, 254, 255 / 256, times 100
        "winning ticket (original init)": ([100.0, 80.0], [100 * 251 / 256, 100 * 253 / 256],
                                           [100 * 248 / 256, 100 * 250 / 256], [100 * 255 / 256, 100 * 255 / 256]),
        "random reinit": ([80.0], [100 * 243 / 256], [100 * 240 / 256], [100 * 248 / 256]),
    }
    bars = _errorbars(plots.plot_early_stop_vs_weights(trials_summary).axes[0])
    assert bars == {"winning ticket (original init)": ([100.0, 80.0], [4800.0, 3800.0], [4000.0, 3000.0],
                                                       [5800.0, 4800.0]),
                    "random reinit": ([80.0], [5500.0], [5000.0], [6200.0])}


def test_trials_dense_line_is_the_mean_and_its_band_the_range(trials_summary):
    ax = plots.plot_accuracy_vs_weights(trials_summary).axes[0]
    assert _lines(ax)["dense network"][1] == [100 * 251 / 256] * 2
    (band,) = ax.patches
    assert (band.get_y(), band.get_y() + band.get_height()) == (100 * 248 / 256, 100 * 255 / 256)
    assert "mean of 3 trials, min-max range" in ax.get_title()


# Three trials' test accuracy * 256 at iterations 0, 50, 100, per round and arm; the third trial's round 1
# ticket stopped after two evaluations, so the mean there covers only the first two.
TRIAL_CURVES = [
    {0: {"ticket": [26, 230, 248]}, 1: {"ticket": [26, 240, 250], "reinit": [25, 200, 210]}},
    {0: {"ticket": [25, 233, 250]}, 1: {"ticket": [26, 242, 254], "reinit": [25, 203, 213]}},
    {0: {"ticket": [27, 236, 255]}, 1: {"ticket": [26, 244], "reinit": [25, 206, 216]}},
]


def test_trials_learning_curves_are_means_with_min_max_bands(tmp_path, trials_summary):
    (tmp_path / "trials.json").write_text(json.dumps({"config": {}, "seeds": [0, 1, 2]}))
    for seed, rounds in enumerate(TRIAL_CURVES):
        for number, arms in rounds.items():
            for arm, acc in arms.items():
                folder = tmp_path / f"seed_{seed}" / f"round_{number:03d}" / arm
                folder.mkdir(parents=True)
                history = {"iteration": [0, 50, 100][:len(acc)], "test_accuracy": [a / 256 for a in acc]}
                (folder / "metrics.json").write_text(json.dumps({"history": history}))
    histories = plots.load_histories(tmp_path)
    expected = [  # (round, arm) -> iterations, mean, min, max (times 256)
        ([0, 50, 100], [26, 233, 251], [25, 230, 248], [27, 236, 255], "-"),  # round 0, ticket
        ([0, 50], [26, 242], [26, 240], [26, 244], "-"),  # round 1, ticket: the evaluations all three reached
        ([0, 50, 100], [25, 203, 213], [25, 200, 210], [25, 206, 216], "--"),  # round 1, reinit
    ]
    ax = plots.plot_learning_curves(trials_summary, histories, rounds=[0, 1]).axes[0]
    assert len(ax.lines) == len(ax.collections) == len(expected)
    for line, band, (its, mean, low, high, style) in zip(ax.lines, ax.collections, expected):
        assert list(line.get_xdata()) == its and line.get_linestyle() == style
        assert list(line.get_ydata()) == [100.0 * (a / 256) for a in mean]
        assert _band(band, its) == ([100.0 * (a / 256) for a in low], [100.0 * (a / 256) for a in high])


def test_reading_a_run_needs_no_matplotlib(fake_run):
    code = ("import sys\n"
            "from minilottery.lab import plot_data, tables\n"
            f"summary = plot_data.load_summary({str(fake_run)!r})\n"
            "assert tables.arms_in(summary) == ['ticket', 'reinit']\n"
            "assert 'matplotlib' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_dense_value_and_spread_come_from_round_0():
    summary = {"rounds": [{"round": 1, "arms": {"ticket": {"acc": 0.5}}},
                          {"round": 0, "arms": {"ticket": {"acc": 0.9}}, "spread": {"ticket": {"acc": {"min": 0.8}}}}]}
    assert plots.dense_value(summary, "acc") == 0.9 and plots.dense_spread(summary, "acc") == {"min": 0.8}
    assert plots.dense_value({"rounds": []}, "acc") is None and plots.dense_spread(summary, "loss") is None


def test_select_rounds_picks_closest_existing(fake_run):
    summary = plots.load_summary(fake_run)
    # Rounds are at 100, 80.x, 64.x, 51.x, 41.x %: closest to 100, 51.3, 21.1, 7, 3.6 are rounds 0, 3, 4.
    assert plots.select_rounds(summary) == [0, 3, 4]


def test_report_table_shows_the_numbers(fake_run):
    summary = plots.load_summary(fake_run)
    table = format_table(summary)
    lines = table.splitlines()
    assert "winning ticket" in lines[0] and "random reinit" in lines[0]
    row1 = lines[3].split()  # round 1: title line, header line, round 0, round 1
    pct = summary["rounds"][1]["percent_remaining"]
    assert row1 == ["1", f"{pct:.1f}", "4,500", "98.00", "98.00", "5,800", "97.10", "97.20"]
    row0 = lines[2].split()
    assert row0[-3:] == ["-", "-", "-"]  # controls do not run at round 0
    assert lines[4].split()[-3:] == ["-", "-", "-"]  # reinit missing in round 2
    # Columns line up: every data row has the same length as the header.
    assert len({len(line) for line in lines[1:7]}) == 1


def test_report_csv_parses(fake_run, capsys):
    assert main(["report", str(fake_run), "--csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [int(r["round"]) for r in rows] == list(range(FAKE_ROUNDS + 1))
    assert float(rows[1]["ticket_test_accuracy_at_early_stop"]) == pytest.approx(0.98)
    assert rows[2]["reinit_early_stop_iteration"] == "" and rows[3]["reinit_early_stop_iteration"] == "7400"
    assert format_csv(plots.load_summary(fake_run)).count("\n") == FAKE_ROUNDS + 2


def test_report_json(fake_run, capsys):
    assert main(["report", str(fake_run), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["rounds"]) == FAKE_ROUNDS + 1


def _cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "minilottery", *args], capture_output=True, text=True, timeout=60)


def test_cli_report_and_plot(fake_run, tmp_path):
    done = _cli("report", str(fake_run))
    assert done.returncode == 0, done.stderr
    assert "winning ticket" in done.stdout and "98.00" in done.stdout
    done = _cli("plot", str(fake_run), "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.split()) == 10 and all(Path(p).is_file() for p in done.stdout.split())


@pytest.mark.parametrize("command", ["report", "plot"])
def test_cli_not_a_run_dir(tmp_path, command):
    done = _cli(command, str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "is not a minilottery run directory" in done.stderr and done.stdout == ""
    done = _cli(command, str(tmp_path / "missing"))
    assert done.returncode == 2 and "is not a minilottery run directory" in done.stderr


def test_titles_name_the_network_and_its_data_set():
    summary = {"config": {"model": "lenet_300_100", "dataset": "fashion-mnist"}}
    assert plots._title(summary, "Accuracy") == "Accuracy (lenet_300_100 on fashion-mnist)"
    assert plots._title({"config": {"model": "conv2"}}, "Accuracy") == "Accuracy (conv2)"  # older summaries
    trials = {**summary, "trials": [0, 1]}
    assert plots._title(trials, "Accuracy") == ("Accuracy\n(lenet_300_100 on fashion-mnist, mean of 2 trials, "
                                                "min-max range)")
