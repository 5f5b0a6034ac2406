"""Run folders on real machines: files written safely, folders that own their files, one writer at a time,
damaged files named in one line, and report/plot on trials still in progress."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minilottery.lab import runs
from minilottery.lab.plots import load_summary, plot_run, save_figure
from minilottery.lab.run_folder import run_imp_in_folder
from minilottery.lab.trials import run_trials
from tests.helpers import REPO, small_config, synthetic_data, synthetic_loader


@pytest.fixture(scope="module")
def data():
    return synthetic_data()


@pytest.fixture(scope="module")
def finished_run(data, tmp_path_factory):
    """A complete 2-round run with the reinit control, made once and copied by the tests that change it."""
    out = tmp_path_factory.mktemp("run") / "run"
    run_imp_in_folder(small_config(rounds=2, controls=("reinit", "random_prune")), data, out, progress=False)
    return out


def copy_run(source: Path, target: Path) -> Path:
    subprocess.run(["cp", "-a", str(source), str(target)], check=True)
    return target


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "minilottery", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "MINILOTTERY_DEVICE": "cpu"})


# -- one way to write a file ---------------------------------------------------------------------------------


def test_a_symlink_at_the_target_or_a_temporary_name_is_never_written_through(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "summary.json").symlink_to(victim)
    for pid in {os.getpid(), os.getppid()}:  # the temporary names an attacker could predict
        (folder / f".summary.json.{pid}.tmp").symlink_to(victim)
    runs.atomic_write_json(folder / "summary.json", {"rounds": []})
    assert victim.read_text() == "precious"
    assert (not (folder / "summary.json").is_symlink()
            and json.loads((folder / "summary.json").read_text()) == {"rounds": []})


def test_figures_are_written_atomically_and_never_through_a_symlink(tmp_path):
    from matplotlib.figure import Figure

    fig = Figure()
    fig.add_subplot().plot([1, 2, 3])
    victim = tmp_path / "victim.png"
    victim.write_bytes(b"precious")
    out = tmp_path / "figures"
    out.mkdir()
    (out / "curve.png").symlink_to(victim)
    save_figure(fig, out, "curve")
    assert victim.read_bytes() == b"precious" and not (out / "curve.png").is_symlink()
    good = (out / "curve.pdf").read_bytes()

    def torn(file, **kwargs):  # a full disk in the middle of a PDF
        file.write(b"%PDF-1.4 half")
        raise OSError(28, "No space left on device")

    fig.savefig = torn
    with pytest.raises(OSError):
        save_figure(fig, out, "curve")
    assert (out / "curve.pdf").read_bytes() == good  # the old figure, whole
    assert sorted(p.name for p in out.iterdir()) == ["curve.pdf", "curve.png"]  # no temporary left


def test_plot_refuses_a_figures_folder_that_is_a_symlink(finished_run, tmp_path):
    run = copy_run(finished_run, tmp_path / "run")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.rmtree(run / "figures", ignore_errors=True)  # the fixture drew none
    (run / "figures").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(ValueError, match="figures is a symlink"):
        plot_run(run)
    assert list(elsewhere.iterdir()) == []


# -- run folders own their files -----------------------------------------------------------------------------


def test_overwrite_never_deletes_a_folder_that_is_not_a_run(data, tmp_path):
    foreign = tmp_path / "project"
    (foreign / "figures").mkdir(parents=True)
    (foreign / "config.json").write_text(json.dumps({"learning_rate": 0.1}))
    (foreign / "figures" / "mine.png").write_bytes(b"mine")
    before = {p: p.read_bytes() for p in foreign.rglob("*") if p.is_file()}
    with pytest.raises(ValueError, match="not written by minilottery"):
        run_imp_in_folder(small_config(rounds=1), data, foreign, progress=False, overwrite=True)
    assert {p: p.read_bytes() for p in foreign.rglob("*") if p.is_file()} == before


def test_overwrite_unlinks_a_symlinked_figures_folder_without_following_it(finished_run, data, tmp_path):
    run = copy_run(finished_run, tmp_path / "run")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.png").write_bytes(b"keep")
    shutil.rmtree(run / "figures", ignore_errors=True)  # the fixture drew none
    (run / "figures").symlink_to(elsewhere, target_is_directory=True)
    (run / "notes.txt").write_text("mine")
    run_imp_in_folder(small_config(rounds=1, iterations=16), data, run, progress=False, overwrite=True)
    assert (elsewhere / "keep.png").read_bytes() == b"keep"
    assert not (run / "figures").exists() and (run / "notes.txt").read_text() == "mine"
    assert [r["round"] for r in runs.completed_rounds(run)] == [0, 1]
    assert runs.read_json(run / "config.json")["train"]["iterations"] == 16


def test_imp_refuses_a_trials_folder_and_trials_an_imp_folder(finished_run, data, tmp_path):
    trials_out = tmp_path / "trials"
    run_trials(small_config(rounds=1), 1, trials_out, synthetic_loader, workers=1, progress=False, log=None)
    summary = (trials_out / "summary.json").read_bytes()
    with pytest.raises(ValueError, match="holds a `minilottery trials` run"):
        run_imp_in_folder(small_config(rounds=1), data, trials_out, progress=False, overwrite=True)
    assert (trials_out / "summary.json").read_bytes() == summary and not (trials_out / "config.json").exists()

    run = copy_run(finished_run, tmp_path / "run")
    before = (run / "summary.json").read_bytes()
    with pytest.raises(ValueError, match="holds a `minilottery imp` run"):
        run_trials(small_config(rounds=1), 1, run, synthetic_loader, workers=1, progress=False, log=None)
    assert (run / "summary.json").read_bytes() == before and not (run / "trials.json").exists()


def test_a_second_writer_is_refused_with_the_first_ones_pid(data, tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from minilottery.lab import runs\n"
         "with runs.locked(sys.argv[1]):\n    print('ready', flush=True); time.sleep(60)", str(out)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(ValueError,
                           match=rf"already being written by another minilottery process \(pid {holder.pid}\)"):
            run_imp_in_folder(small_config(rounds=1), data, out, progress=False)
        assert not (out / "config.json").exists()  # refused before touching anything
    finally:
        holder.kill()
        holder.wait()
    run_imp_in_folder(small_config(rounds=1), data, out, progress=False)  # the kernel released the dead holder's lock
    assert [r["round"] for r in runs.completed_rounds(out)] == [0, 1]


# -- damaged run files: one line naming the file ---------------------------------------------------------------


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def drop_array(path: Path) -> None:
    arrays = runs.load_npz(path)
    arrays.pop(sorted(arrays)[0])
    np.savez(path, **arrays)


def wrong_shape(path: Path) -> None:
    arrays = runs.load_npz(path)
    name = sorted(arrays)[0]
    arrays[name] = arrays[name][:-1]
    np.savez(path, **arrays)


DAMAGE = {
    "truncated theta0.npz": ("theta0.npz", truncate),
    "garbage final.npz": ("round_001/ticket/final.npz", lambda p: p.write_bytes(b"not a zip file")),
    "missing final.npz": ("round_001/ticket/final.npz", Path.unlink),
    "init.npz without an array": ("round_001/reinit/init.npz", drop_array),
    "masks.npz of the wrong shape": ("round_001/masks.npz", wrong_shape),
    "config.json that is a list": ("config.json", lambda p: p.write_text("[1, 2]")),
    "garbage round.json": ("round_000/round.json", lambda p: p.write_text("{\"round\": 0, \"arms\"")),
    "round.json of the wrong shape": ("round_001/round.json", lambda p: p.write_text('{"round": "one"}')),
    "garbage metrics.json": ("round_001/ticket/metrics.json", lambda p: p.write_text("\x00\x01")),
}


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_a_damaged_run_file_is_named_and_overwrite_starts_again(kind, finished_run, data, tmp_path):
    relative, damage = DAMAGE[kind]
    run = copy_run(finished_run, tmp_path / "run")
    damage(run / relative)
    cfg = small_config(rounds=2, controls=("reinit", "random_prune"))
    with pytest.raises(ValueError) as caught:
        run_imp_in_folder(cfg, data, run, progress=False)
    message = str(caught.value)
    assert "\n" not in message and str(run / relative) in message, message
    if kind != "config.json that is a list":  # a config.json that is not ours is never replaced
        assert "--overwrite" in message
        again = run_imp_in_folder(cfg, data, run, progress=False, overwrite=True)
        assert [r.index for r in again.rounds] == [0, 1, 2]
        assert [r["round"] for r in runs.completed_rounds(run)] == [0, 1, 2]


@pytest.mark.parametrize("command", ["report", "plot", "check-paper"])
@pytest.mark.parametrize("content", ["[]", '{"config": {}, "rounds": [{"round": 0}]}', '{"rounds": 3}'])
def test_summaries_of_the_wrong_shape_end_in_one_line(command, content, tmp_path):
    (tmp_path / "summary.json").write_text(content)
    done = cli(command, str(tmp_path))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and str(tmp_path / "summary.json") in done.stderr, done.stderr


# -- report and plot on a trials folder in progress ------------------------------------------------------------


def test_report_and_plot_read_a_trials_folder_in_progress(tmp_path):
    out = tmp_path / "trials"
    cfg = small_config(rounds=2, controls=("reinit",))
    run_trials(cfg, 2, out, synthetic_loader, workers=1, progress=False, log=None)
    # seed 1 was interrupted during its last round; the aggregate of the finished trials is not written yet
    shutil.rmtree(out / "seed_1" / "round_002")
    (out / "summary.json").unlink()
    summary = load_summary(out)
    assert summary["trials"] == [0] and [r["round"] for r in summary["rounds"]] == [0, 1, 2]
    done = cli("report", str(out))
    assert done.returncode == 0 and "mean over 1 trials (seeds 0)" in done.stdout, done.stderr
    done = cli("plot", str(out), "--out", str(tmp_path / "figures"))
    assert done.returncode == 0 and (tmp_path / "figures" / "accuracy_vs_weights.png").is_file(), done.stderr


# -- the settings a run's numbers depend on are recorded -----------------------------------------------------


def test_the_thread_count_is_recorded_and_a_resume_with_another_warns(data, tmp_path):
    from threadpoolctl import threadpool_limits

    out = tmp_path / "run"
    with threadpool_limits(limits=1, user_api="blas"):
        run_imp_in_folder(small_config(rounds=1), data, out, progress=False)
    recorded = runs.read_json(out / "config.json")["environment"]
    assert recorded["threads"] == 1 and recorded["blas"]
    with threadpool_limits(limits=1, user_api="blas"):  # the same settings: silent
        run_imp_in_folder(small_config(rounds=2), data, out, progress=False, overwrite=True)
    with threadpool_limits(limits=2, user_api="blas"), pytest.warns(RuntimeWarning, match="--threads 1 to match"):
        run_imp_in_folder(small_config(rounds=2), data, out, progress=False)
    record = runs.read_json(out / "config.json")
    assert record["environment"] == recorded and [e["threads"] for e in record["resumed_with"]] == [2]


def test_a_run_recorded_with_a_fixed_evaluation_batch_continues_under_the_budget(data, tmp_path):
    """Runs made before 0.3 record "eval_batch_size": 100; the default is now None (a memory budget). That says how
    to evaluate, not what the run is: the run continues, while another iteration count is still refused."""
    out = tmp_path / "run"
    run_imp_in_folder(small_config(rounds=1, eval_batch_size=100), data, out, progress=False)
    assert runs.read_json(out / "config.json")["train"]["eval_batch_size"] == 100
    result = run_imp_in_folder(small_config(rounds=2), data, out, progress=False)  # eval_batch_size None
    assert len(result.rounds) == 3
    with pytest.raises(ValueError, match="differs in: iterations 12 vs 13"):
        run_imp_in_folder(small_config(rounds=2, iterations=13), data, out, progress=False)
