"""Figures and the results table, drawn from a small fake run directory in the exact IMP format."""

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

# LeNet-300-100 after Flatten: Dense layers at Sequential indices 1, 3, 5.
SHAPES = {"1.W": (300, 784), "3.W": (100, 300), "5.W": (10, 100)}
RATES = {"1.W": 0.2, "3.W": 0.2, "5.W": 0.1}  # the paper's per-round pruning rates (output layer at half)
ROUNDS = 4


def _history(final_acc: float, iterations: int = 1000, every: int = 50) -> dict:
    it = list(range(0, iterations + 1, every))
    # Rises from chance (10%) towards final_acc; losses fall accordingly.
    acc = [0.1 + (final_acc - 0.1) * (1 - np.exp(-i / 60)) for i in it]
    loss = [float(2.3 * np.exp(-i / 200) + 0.05) for i in it]
    return {"iteration": it, "train_loss": loss, "val_loss": loss, "val_accuracy": acc, "test_loss": loss,
            "test_accuracy": acc}


def _arm(stop: int, acc: float, final: float) -> dict:
    return {"early_stop_iteration": stop, "test_accuracy_at_early_stop": acc, "final_test_accuracy": final}


def make_fake_run(run_dir: Path, rounds: int = ROUNDS, missing_reinit_round: int = 2, random_prune=False) -> dict:
    """A run directory as `minilottery imp` writes it (ticket + reinit; reinit missing in one round)."""
    rng = np.random.default_rng(0)
    run_dir.mkdir(parents=True, exist_ok=True)
    config = {"model": "lenet_300_100", "rounds": rounds, "arms": ["ticket", "reinit"]}
    (run_dir / "config.json").write_text(json.dumps(config))
    # Pixels near the centre are more likely to keep their connections, as in trained LeNets.
    yy, xx = np.mgrid[:28, :28]
    centre = np.exp(-((yy - 13.5) ** 2 + (xx - 13.5) ** 2) / 80.0).reshape(784)  # (28, 28) -> (784,)
    scores = {n: rng.random(s) for n, s in SHAPES.items()}
    scores["1.W"] = scores["1.W"] * (0.3 + centre)  # (300, 784) * (784,)
    done = []
    for r in range(rounds + 1):
        masks, layers = {}, {}
        for name, shape in SHAPES.items():
            keep = round(np.prod(shape) * (1 - RATES[name]) ** r)
            threshold = np.sort(scores[name].ravel())[::-1][keep - 1]
            masks[name] = scores[name] >= threshold
            layers[name] = {"remaining": int(masks[name].sum()), "total": int(np.prod(shape)),
                            "percent": 100.0 * masks[name].mean()}
        total = sum(v["total"] for v in layers.values())
        percent = 100.0 * sum(v["remaining"] for v in layers.values()) / total
        # The ticket learns faster and better down to ~20%, then degrades (the paper's Figure 4 shape).
        better, worse = min(r, 6), max(0, r - 12)
        arms = {"ticket": _arm(5000 - 500 * better + 600 * worse, 0.978 + 0.002 * better - 0.003 * worse,
                               0.979 + 0.001 * better - 0.003 * worse)}
        if r >= 1 and r != missing_reinit_round:
            arms["reinit"] = _arm(5000 + 800 * r, 0.975 - 0.004 * r, 0.976 - 0.004 * r)
        if r >= 1 and random_prune:
            arms["random_prune"] = _arm(5000 + 900 * r, 0.975 - 0.005 * r, 0.976 - 0.005 * r)
        round_json = {"round": r, "percent_remaining": percent, "layers": layers, "arms": arms}
        rdir = run_dir / f"round_{r:03d}"
        rdir.mkdir()
        np.savez(rdir / "masks.npz", **masks)
        for arm, result in arms.items():
            (rdir / arm).mkdir()
            metrics = dict(result, history=_history(result["final_test_accuracy"]))
            (rdir / arm / "metrics.json").write_text(json.dumps(metrics))
        (rdir / "round.json").write_text(json.dumps(round_json))
        done.append(round_json)
    summary = {"config": config, "rounds": done}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    return summary


@pytest.fixture(scope="module")
def fake_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("run")
    make_fake_run(run_dir)
    return run_dir


def test_plot_run_writes_all_figures(fake_run, tmp_path):
    paths = plots.plot_run(fake_run, tmp_path / "figs")
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
    make_fake_run(tmp_path)
    (tmp_path / "summary.json").unlink()
    assert len(plots.load_summary(tmp_path)["rounds"]) == ROUNDS + 1
    paths = plots.plot_run(tmp_path)
    assert all(p.parent == tmp_path / "figures" for p in paths) and len(paths) == 10


def test_plots_handle_ticket_only_and_single_round(fake_run):
    summary = plots.load_summary(fake_run)
    one = {"config": {}, "rounds": [summary["rounds"][0]]}  # the dense network only, no control arm
    for fig in (plots.plot_accuracy_vs_weights(one), plots.plot_early_stop_vs_weights(one),
                plots.plot_layer_percent_by_round(one), plots.plot_learning_curves(one, {})):
        fig.savefig(io.BytesIO(), format="png")
    ticket_only = {"config": {}, "rounds": [dict(r, arms={"ticket": r["arms"]["ticket"]}) for r in summary["rounds"]]}
    assert plots.arms_in(ticket_only) == ["ticket"]
    plots.plot_accuracy_vs_weights(ticket_only).savefig(io.BytesIO(), format="png")
    # A conv first layer has no 28x28 picture.
    assert plots.plot_first_layer_mask({1: np.ones((8, 1, 3, 3))}) is None


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
    assert [int(r["round"]) for r in rows] == list(range(ROUNDS + 1))
    assert float(rows[1]["ticket_test_accuracy_at_early_stop"]) == pytest.approx(0.98)
    assert rows[2]["reinit_early_stop_iteration"] == "" and rows[3]["reinit_early_stop_iteration"] == "7400"
    assert format_csv(plots.load_summary(fake_run)).count("\n") == ROUNDS + 2


def test_report_json(fake_run, capsys):
    assert main(["report", str(fake_run), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["rounds"]) == ROUNDS + 1


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
