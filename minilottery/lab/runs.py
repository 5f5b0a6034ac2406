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
    DIR/figures/                      plots (``minilottery plot``; FIGURES names them)
    DIR/.minilottery.lock             held by the process writing the run (``locked``): one writer at a time

``run_folder.py`` writes and resumes a run in this layout; this module owns the layout and reads it back
(``load_summary``, ``completed_rounds``, ``load_npz``), checking every file it reads. Every file is written
with ``minilottery.files`` (a fresh temporary file in the same folder, then ``os.replace``): a reader (or a
resumed run after ``kill -9``) sees either the old file or the new one, never a torn one, and a symlink at a
file's name is replaced, never written through.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from minilottery.files import atomic_savez, atomic_write_json, atomic_write_text, stale_temporaries
from minilottery.imp import ARM_METRICS
from minilottery.lab.tables import run_csv

DAMAGED_FIX = "use --overwrite to start the run again, or choose another --out"


class RunFileError(ValueError):
    """A file of a run folder is missing, unreadable or not what minilottery wrote (the message names it)."""


def load_npz(path: str | os.PathLike[str], expected: Mapping[str, tuple[int, ...]] | None = None,
             fix: str = DAMAGED_FIX) -> dict[str, np.ndarray]:
    """name -> array from an ``.npz`` file (read fully, so the file is closed on return).

    Args:
        expected: name -> shape the file must hold exactly (None: anything).
        fix: what the error message suggests.

    Raises:
        RunFileError: the file is missing, truncated, not an npz file, or lacks/mismatches ``expected``.
    """
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {name: f[name] for name in f.files}
    except FileNotFoundError:
        raise RunFileError(f"{path} is missing; {fix}") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:  # truncated, garbage, pickled objects
        raise RunFileError(f"{path} is damaged ({_reason(exc)}); {fix}") from None
    if expected is not None:
        _check_arrays(path, arrays, expected, fix)
    return arrays


def _check_arrays(path: Any, arrays: Mapping[str, np.ndarray], expected: Mapping[str, tuple[int, ...]],
                  fix: str) -> None:
    missing = sorted(set(expected) - set(arrays))
    extra = sorted(set(arrays) - set(expected))
    if missing or extra:
        parts = (([f"lacks {', '.join(missing)}"] if missing else [])
                 + ([f"has unknown {', '.join(extra)}"] if extra else []))
        raise RunFileError(f"{path} is not this run's file: it {' and '.join(parts)}; {fix}")
    for name, shape in expected.items():
        if tuple(arrays[name].shape) != tuple(shape):
            raise RunFileError(f"{path}: {name} has shape {tuple(arrays[name].shape)}, expected {tuple(shape)}; {fix}")


def read_json(path: str | os.PathLike[str], kind: type = object, fix: str = DAMAGED_FIX) -> Any:
    """The JSON content of ``path``, checked to be a ``kind`` (dict, list; object: anything).

    Raises:
        RunFileError: the file is missing, not JSON, or not a ``kind``.
    """
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except FileNotFoundError:
        raise RunFileError(f"{path} is missing; {fix}") from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise RunFileError(f"{path} is not valid JSON ({_reason(exc)}); {fix}") from None
    if kind is not object and not isinstance(value, kind):
        raise RunFileError(f"{path} holds a JSON {type(value).__name__}, expected a {kind.__name__}; {fix}")
    return value


def check_round_info(info: Any, path: Any, fix: str = DAMAGED_FIX) -> dict[str, Any]:
    """Checks that ``info`` has round.json's shape (the keys readers use); returns it.

    Raises:
        RunFileError: naming ``path`` and the first key that is missing or of the wrong type.
    """
    def bad(what: str) -> RunFileError:
        return RunFileError(f"{path} is not a round record: {what}; {fix}")

    if not isinstance(info, dict):
        raise bad(f"a JSON {type(info).__name__}, expected an object")
    for key, kinds in (("round", int), ("percent_remaining", (int, float)), ("arms", dict)):
        if not isinstance(info.get(key), kinds) or isinstance(info.get(key), bool):
            raise bad(f"'{key}' is {_show(info.get(key))}")
    if not 0 <= info["percent_remaining"] <= 100:
        raise bad(f"'percent_remaining' is {info['percent_remaining']}, expected 0..100")
    for arm, values in info["arms"].items():
        if not isinstance(values, dict):
            raise bad(f"arms.{arm} is {_show(values)}")
        for field in ARM_METRICS:
            value = values.get(field)
            if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
                raise bad(f"arms.{arm}.{field} is {_show(value)}")
    return info


def check_summary(summary: Any, path: Any, fix: str = DAMAGED_FIX) -> dict[str, Any]:
    """Checks that ``summary`` has summary.json's shape: {"config": {...}, "rounds": [round.json, ...]}."""
    if not isinstance(summary, dict):
        raise RunFileError(f"{path} is not a run summary: a JSON {type(summary).__name__}, expected an object; {fix}")
    if not isinstance(summary.get("config"), dict) or not isinstance(summary.get("rounds"), list):
        raise RunFileError(f"{path} is not a run summary: it needs a 'config' object and a 'rounds' list; {fix}")
    for index, info in enumerate(summary["rounds"]):
        check_round_info(info, f"{path} (rounds[{index}])", fix)
    return summary


def round_dir(run_dir: str | os.PathLike[str], index: int) -> Path:
    """``DIR/round_007`` for round 7."""
    return Path(run_dir) / f"round_{index:03d}"


OWN_MASKS_ARMS = ("random_prune",)  # arms that train with masks of their own, saved in <arm>/masks.npz


def arm_masks_file(round_folder: str | os.PathLike[str], arm: str) -> Path:
    """Where the masks ``arm`` trained with are: its own ``<arm>/masks.npz`` (random pruning), else the round's
    ``masks.npz`` (the ticket's, which the other arms share)."""
    folder = Path(round_folder)
    return folder / arm / "masks.npz" if arm in OWN_MASKS_ARMS else folder / "masks.npz"


def round_dirs(run_dir: str | os.PathLike[str]) -> list[Path]:
    """Every ``round_NNN`` entry in DIR, in round order (complete or not; a symlink too, so it can be removed)."""
    found = [p for p in Path(run_dir).glob("round_*") if (p.is_dir() or p.is_symlink()) and p.name[6:].isdigit()]
    return sorted(found, key=lambda p: int(p.name[6:]))


def completed_rounds(run_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The ``round.json`` of rounds 0, 1, 2, ... up to the first round that is missing it (checked: a damaged
    round.json raises RunFileError naming it)."""
    rounds = []
    for index, path in enumerate(round_dirs(run_dir)):
        marker = path / "round.json"
        if path.is_symlink() or path.name != round_dir(run_dir, index).name or not marker.is_file():
            break
        rounds.append(check_round_info(read_json(marker), marker))
    return rounds


def write_summary(run_dir: str | os.PathLike[str], config: Mapping[str, Any], rounds: list[Mapping[str, Any]]) -> None:
    """Rewrites DIR/summary.json and DIR/summary.csv from the completed rounds."""
    atomic_write_json(Path(run_dir) / "summary.json", {"config": dict(config), "rounds": list(rounds)})
    atomic_write_text(Path(run_dir) / "summary.csv", run_csv({"config": dict(config), "rounds": list(rounds)}))


def load_summary(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """``{"config": {...}, "rounds": [round.json, ...]}`` of a run: summary.json, or, if that is missing or
    damaged, assembled from DIR/config.json and the completed rounds' round.json files.

    Raises:
        RunFileError (a ValueError): DIR holds no IMP run, or its files are damaged (the message names the file).
    """
    run_dir = Path(run_dir)
    summary_file = run_dir / "summary.json"
    has_config = (run_dir / "config.json").is_file()
    if summary_file.is_file():
        try:
            return check_summary(read_json(summary_file), summary_file)
        except RunFileError:
            if not has_config:  # nothing to rebuild it from
                raise
    if not has_config:
        raise RunFileError(f"{run_dir} is not a minilottery run directory (no summary.json or config.json); "
                           f"make one with `minilottery imp --out {run_dir}`")
    return {"config": read_json(run_dir / "config.json", dict), "rounds": completed_rounds(run_dir)}


# What an IMP run writes in DIR. Clearing a run removes these names and nothing else: a folder that is not a
# run keeps every file, and a symlink among them is unlinked, never followed.
RUN_FILES = ("theta0.npz", "rewind.npz", "summary.json", "summary.csv")
FIGURES_FOLDER = "figures"
FIGURES = (  # the figures ``minilottery.lab.plots`` draws into DIR/figures, each as PNG and PDF
    "accuracy_vs_weights",
    "early_stop_vs_weights",
    "learning_curves",
    "first_layer_mask",
    "layer_percent_by_round",
)
LOCK_FILE = ".minilottery.lock"
TRIALS_FILE = "trials.json"  # marks a ``minilottery trials`` folder (``trials.py``), which an IMP run must not use
CONFIG_KEYS = ("model", "dataset", "train", "seed", "data")  # what makes a config.json this program's


def is_run_record(record: Any) -> bool:
    """Whether a parsed config.json is one this program wrote (an IMP run record)."""
    return isinstance(record, dict) and all(key in record for key in CONFIG_KEYS) and isinstance(record["train"], dict)


def remove_run(run_dir: str | os.PathLike[str]) -> None:
    """Deletes an IMP run's own files from DIR: every round folder, θ0, the rewind point, the summaries, the
    figures folder, temporaries, and config.json LAST (so an interrupted removal still reads as a run and can
    be removed again). Other files in DIR stay; a symlink is unlinked, never followed.

    Raises:
        RunFileError: DIR/config.json is not a run record this program wrote (nothing is removed).
    """
    run_dir = Path(run_dir)
    config = run_dir / "config.json"
    if config.is_symlink() or not is_run_record(read_json(config, fix="choose another --out")):
        raise RunFileError(f"{config} is not a minilottery run record, so nothing in {run_dir} is deleted; "
                           f"choose another --out")
    for path in [*round_dirs(run_dir), run_dir / FIGURES_FOLDER]:
        remove_folder(path)
    for path in [*(run_dir / name for name in RUN_FILES), *stale_temporaries(run_dir), config]:
        if path.is_symlink() or path.is_file():
            path.unlink()


def remove_folder(path: Path) -> None:
    """Deletes a folder of a run (a round, the figures): a symlink is only unlinked, and ``shutil.rmtree``
    unlinks the links inside rather than following them."""
    if path.is_symlink():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def check_real_folder(folder: str | os.PathLike[str], run_dir: str | os.PathLike[str]) -> Path:
    """Raises RunFileError if ``folder`` or a folder between it and ``run_dir`` is a symlink: a run writes
    only inside its own folder, never through a link to somewhere else. Returns ``folder``."""
    folder, run_dir = Path(folder), Path(run_dir)
    for path in [folder, *folder.parents]:
        if path == run_dir or path in run_dir.parents:
            break
        if path.is_symlink():
            raise RunFileError(f"{path} is a symlink; minilottery writes only inside the run folder {run_dir}: "
                               f"remove the link or choose another folder")
    return folder


@contextlib.contextmanager
def locked(run_dir: str | os.PathLike[str], what: str = "--out") -> Iterator[None]:
    """Holds an exclusive lock on DIR while a run writes it; a second writer fails at once with one line.

    The lock is ``fcntl.flock`` on DIR/.minilottery.lock, which holds the holder's pid while it runs. The
    kernel releases it when its holder dies, even by ``kill -9``, so a lock never outlives a crash. Where
    ``fcntl`` does not exist (Windows), runs are not locked.

    Raises:
        RunFileError: another process holds the lock ("already being written by ... (pid N)").
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    path = Path(run_dir) / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise RunFileError(f"{run_dir} is already being written by another minilottery process (pid {holder}); "
                               f"wait for it to finish or choose another {what}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # no pid left behind once the run lets go
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _show(value: Any) -> str:
    return "missing" if value is None else f"{type(value).__name__} {json.dumps(value)[:40]}"


__all__ = [
    "TRIALS_FILE", "RunFileError", "atomic_write_text", "atomic_write_json", "atomic_savez", "load_npz", "read_json",
    "check_round_info", "check_summary", "OWN_MASKS_ARMS", "arm_masks_file", "round_dir", "round_dirs",
    "completed_rounds",
    "write_summary", "load_summary", "is_run_record", "remove_run", "remove_folder", "check_real_folder", "locked",
]
