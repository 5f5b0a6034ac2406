"""The on-disk record of an IMP run, written so that an interrupted run never leaves a half-written file.

Layout of a run directory DIR (``minilottery imp --out DIR``)::

    DIR/config.json                   the full IMP config (preset values resolved) and the data set's sizes
    DIR/theta0.npz                    θ0, the initial weights every round resets to (written first)
    DIR/rewind.npz                    the weights at iteration K of the dense run (``--reset rewind:K`` only)
    DIR/round_000/masks.npz           the ticket's masks of this round (name -> bool array)
    DIR/round_000/<arm>/init.npz      the weights the arm started from
    DIR/round_000/<arm>/final.npz     the trained weights
    DIR/round_000/<arm>/metrics.json  the arm's TrainResult.to_dict()
    DIR/round_000/<arm>/masks.npz     only for random_prune: its own random masks
    DIR/round_000/round.json          written LAST: a round counts as done only when this file exists
    DIR/summary.json, summary.csv     every completed round so far, rewritten after each round
    DIR/figures/                      plots (``minilottery plot``)

Every file is written with ``minilottery.files`` (a fresh temporary file in the same folder, then
``os.replace``): a reader (or a resumed run after ``kill -9``) sees either the old file or the new one,
never a torn one, and a symlink at a file's name is replaced, never written through.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from minilottery.files import TMP_SUFFIX, atomic_savez, atomic_write_json, atomic_write_text, stale_temporaries

ARMS = ("ticket", "reinit", "random_prune")
ARM_FIELDS = ("early_stop_iteration", "test_accuracy_at_early_stop", "final_test_accuracy")
def load_npz(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """name -> array from an ``.npz`` file (read fully, so the file is closed on return)."""
    with np.load(path, allow_pickle=False) as f:
        return {name: f[name] for name in f.files}


def read_json(path: str | os.PathLike[str]) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def round_dir(run_dir: str | os.PathLike[str], index: int) -> Path:
    """``DIR/round_007`` for round 7."""
    return Path(run_dir) / f"round_{index:03d}"


def round_dirs(run_dir: str | os.PathLike[str]) -> list[Path]:
    """Every ``round_NNN`` folder in DIR, in round order (complete or not)."""
    found = [p for p in Path(run_dir).glob("round_*") if p.is_dir() and p.name[6:].isdigit()]
    return sorted(found, key=lambda p: int(p.name[6:]))


def completed_rounds(run_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The ``round.json`` of rounds 0, 1, 2, ... up to the first round that is missing it."""
    rounds = []
    for index, path in enumerate(round_dirs(run_dir)):
        marker = path / "round.json"
        if path.name != round_dir(run_dir, index).name or not marker.is_file():
            break
        rounds.append(read_json(marker))
    return rounds


def summary_csv(config: Mapping[str, Any], rounds: list[Mapping[str, Any]]) -> str:
    """summary.csv's text: one row per round; per arm its three numbers (empty where the arm did not run)."""
    arms = ["ticket", *config.get("controls", ())]
    header = ["round", "percent_remaining"] + [f"{arm}_{field}" for arm in arms for field in ARM_FIELDS]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for r in rounds:
        row = [r["round"], repr(float(r["percent_remaining"]))]
        for arm in arms:
            values = r["arms"].get(arm)
            row += ["" if values is None else values[field] for field in ARM_FIELDS]
        writer.writerow(row)
    return out.getvalue()


def write_summary(run_dir: str | os.PathLike[str], config: Mapping[str, Any], rounds: list[Mapping[str, Any]]) -> None:
    """Rewrites DIR/summary.json and DIR/summary.csv from the completed rounds."""
    atomic_write_json(Path(run_dir) / "summary.json", {"config": dict(config), "rounds": list(rounds)})
    atomic_write_text(Path(run_dir) / "summary.csv", summary_csv(config, rounds))


def load_summary(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """``{"config": {...}, "rounds": [round.json, ...]}`` of a run: summary.json, or, if that is missing or
    unreadable, assembled from DIR/config.json and the completed rounds' round.json files.

    Raises:
        ValueError: DIR holds no IMP run (no summary.json and no config.json).
    """
    run_dir = Path(run_dir)
    try:
        return read_json(run_dir / "summary.json")
    except (FileNotFoundError, json.JSONDecodeError):
        pass
    if not (run_dir / "config.json").is_file():
        raise ValueError(f"{run_dir} holds no IMP run (no summary.json or config.json); "
                         f"make one with `minilottery imp --out {run_dir}`")
    return {"config": read_json(run_dir / "config.json"), "rounds": completed_rounds(run_dir)}


# The files and folders an IMP run owns in DIR; clearing a run removes these and nothing else.
RUN_FILES = ("config.json", "theta0.npz", "rewind.npz", "summary.json", "summary.csv")
RUN_FOLDERS = ("figures",)


def run_file_paths(run_dir: str | os.PathLike[str]) -> list[Path]:
    """The paths of a run's own files and folders that exist in DIR (rounds, figures, temporaries included)."""
    run_dir = Path(run_dir)
    paths = [run_dir / name for name in RUN_FILES + RUN_FOLDERS if (run_dir / name).exists()]
    paths += round_dirs(run_dir)
    paths += stale_temporaries(run_dir)  # left by a killed run
    return paths


def remove_paths(paths: list[Path]) -> None:
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


__all__ = [
    "ARMS", "atomic_write_text", "atomic_write_json", "atomic_savez", "load_npz", "read_json", "round_dir",
    "round_dirs", "completed_rounds", "summary_csv", "write_summary", "load_summary", "run_file_paths",
    "remove_paths",
]
