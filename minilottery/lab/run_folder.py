"""An IMP run recorded in a folder, so that it survives an interruption (even ``kill -9``) and continues.

``run_imp_in_folder(config, data, DIR)`` is ``minilottery.imp.run_imp`` with a ``RunFolder`` as its store:
every round is written to DIR as it completes (the layout is in ``runs.py``), and running it again reads the
completed rounds back and trains only the rest, with the same results an uninterrupted run gives::

    from minilottery.data import load_mnist
    from minilottery.lab.presets import from_preset
    from minilottery.lab.run_folder import run_imp_in_folder
    result = run_imp_in_folder(from_preset("lenet-quick"), load_mnist(), "runs/lenet-quick")

What the folder guards against:

* another config: DIR holding a run made with other options or other data is refused, naming what differs,
  unless ``overwrite`` (which removes the run's own files and nothing else). One change is not another run but
  the same one asked to go further: a larger ``rounds`` or a lower ``target_percent`` (``extends``). The rounds
  on disk are then exactly the first rounds of the longer run, so it continues after them and records the new
  config;
* damaged files: every file of the completed rounds is read and checked (names and shapes) before any
  training, so a damaged one is named now, not after hours; ``overwrite`` starts the run again;
* half-done work: temporary files and round folders without their round.json marker are discarded;
* two writers: a lock (``runs.locked``) lets one process write DIR at a time;
* a changed machine: the BLAS library and thread count are recorded (results depend on them); continuing
  under other settings warns and is recorded too.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from minilottery.backend import get_backend
from minilottery.files import stale_temporaries
from minilottery.imp import ARMS, ArmResult, IMPConfig, IMPResult, RoundResult, run_imp, stop_reason
from minilottery.lab import runs, threads
from minilottery.models import build_model, weight_names
from minilottery.training import check_data


def run_imp_in_folder(
    config: IMPConfig,
    data: Any,
    out_dir: str | Path,
    *,
    overwrite: bool = False,
    device: str | None = None,
    progress: bool = True,
    on_round: Callable[[RoundResult], None] | None = None,
    on_read_back: Callable[[RoundResult], None] | None = None,
    kernels: Callable[[Any], Any] | None = None,
    train_arms: Callable[..., Any] | None = None,
) -> IMPResult:
    """``run_imp`` recorded in ``out_dir``: a new run starts there, an interrupted (or extended) one continues.

    Args:
        config, data, device, progress, on_round, kernels, train_arms: as ``run_imp`` takes them.
        on_read_back: called instead of ``on_round`` with each round read back from ``out_dir`` rather than
            trained (None: ``on_round`` is called for those rounds too).
        out_dir: the run folder (created if new).
        overwrite: replace a run in ``out_dir`` made with a different config, or a damaged one (only the
            run's own files).

    Returns:
        The ``IMPResult``, with ``out_dir`` set.

    Raises:
        ValueError: an invalid config, ``out_dir`` holding another config's run (without ``overwrite``), a
            damaged run file (``runs.RunFileError``, naming it), or another process writing ``out_dir``;
            all before anything in ``out_dir`` is changed.
    """
    config.validate()
    check_data(data, config.train.batch_size)
    device = get_backend(device).name  # an unusable device fails here, before anything is written
    with RunFolder(out_dir, config, data, overwrite) as store:
        read_back = len(store.finished)  # rounds 0 .. read_back - 1 come from the folder

        def report(rnd: RoundResult) -> None:
            call = on_read_back if rnd.index < read_back and on_read_back is not None else on_round
            if call is not None:
                call(rnd)

        result = run_imp(config, data, store=store, device=device, progress=progress, on_round=report,
                         kernels=kernels, train_arms=train_arms)
    result.out_dir = store.path
    return result


class RunFolder:
    """The ``RunStore`` of ``minilottery.imp`` in a folder DIR: checks it against the config, then reads and
    writes rounds. Use it as ``with RunFolder(DIR, config, data, overwrite) as store: run_imp(..., store=store)``.

    Creating it only checks (and writes nothing): the config against a run already in DIR. Entering it takes
    DIR's lock (``runs.locked``: one writer at a time), checks again, and validates every file of the completed
    rounds (names and shapes), so that a damaged file is named now, not after hours of training; only then does
    it change DIR: it replaces a run that ``overwrite`` allows replacing, and discards what an interrupted run
    left half-done: temporary files and every round folder from the first one without its round.json marker on.
    """

    def __init__(self, path: str | Path, config: IMPConfig, data: Any, overwrite: bool = False) -> None:
        self.path = Path(path)
        self.config = config
        self.overwrite = overwrite
        self.record = run_record(config, data)
        architecture = build_model(config.model, tuple(data.x_train.shape[1:]), seed=config.seed)
        self.shapes = {name: tuple(value.shape) for name, value in architecture.parameters().items()}
        self.mask_shapes = {name: self.shapes[name] for name in weight_names(architecture)}
        _check_run_dir(self.path, self.record, overwrite)  # before the lock file is created
        self._lock = contextlib.ExitStack()
        self._theta0: dict[str, np.ndarray] | None = None  # each file of the completed rounds is read once
        self._rewind: dict[str, np.ndarray] | None = None
        self.finished: list[RoundResult] = []  # the rounds completed before this run started
        self.done: list[dict[str, Any]] = []  # round.json of every completed round, new ones included

    def __enter__(self) -> RunFolder:
        self._lock.enter_context(runs.locked(self.path))
        try:
            self._open()
        except BaseException:
            self._lock.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self._lock.close()

    def _open(self) -> None:
        diffs = _check_run_dir(self.path, self.record, self.overwrite)  # again: DIR is ours only now
        # From here on DIR is ours to change. --overwrite replaces a run of another config, or a damaged one;
        # an intact run of the same config is this run, which continues.
        replace = bool(diffs)
        if not diffs and (self.path / "config.json").is_file():
            try:
                self.finished = self._read_finished()
            except runs.RunFileError:
                if not self.overwrite:
                    raise
                replace = True
        if replace:
            runs.remove_run(self.path)
            self._theta0, self._rewind, self.finished = None, None, []
        self.record["environment"] = self._environment()
        runs.atomic_write_json(self.path / "config.json", self.record)
        self.done = [rnd.info for rnd in self.finished]
        for stale in runs.round_dirs(self.path)[len(self.done):]:  # rounds without their round.json marker
            runs.remove_folder(stale)
        for temporary in stale_temporaries(self.path):
            temporary.unlink()
        if self.done:  # a run killed between a round's marker and its summary: bring the summary up to date
            runs.write_summary(self.path, self.record, self.done)

    def _environment(self) -> dict[str, Any]:
        """The BLAS library and thread count the run started with (results depend on them: README,
        "Threads and reproducibility"); continuing under other settings warns and is recorded too."""
        current = threads.describe()
        config_file = self.path / "config.json"
        if not config_file.is_file():
            return current
        old = runs.read_json(config_file, dict)
        recorded = old.get("environment")
        message = threads.difference(recorded, current)
        if message:
            warnings.warn(f"{self.path}: {message}", RuntimeWarning, stacklevel=5)  # the caller of run_imp_in_folder
            self.record["resumed_with"] = [*old.get("resumed_with", []), current]
        elif "resumed_with" in old:
            self.record["resumed_with"] = old["resumed_with"]
        return recorded or current

    def _read_finished(self) -> list[RoundResult]:
        """Reads every file the resumed run will use, so that a damaged one is named (RunFileError) before any
        training; returns the completed rounds."""
        done = runs.completed_rounds(self.path)
        if done or (self.path / "theta0.npz").exists():
            self._theta0 = runs.load_npz(self.path / "theta0.npz", self.shapes)
        if done and self.config.rewind_iteration is not None:
            self._rewind = runs.load_npz(self.path / "rewind.npz", self.shapes)
        return [self._load_round(index, info) for index, info in enumerate(done)]

    def _load_round(self, index: int, info: dict[str, Any]) -> RoundResult:
        """Round ``index`` (its round.json: ``info``) read back, every array checked by name and shape."""
        folder = runs.round_dir(self.path, index)
        masks = runs.load_npz(folder / "masks.npz", self.mask_shapes)
        arms = {}
        for name in info["arms"]:
            if name not in ARMS:
                raise runs.RunFileError(f"{folder / 'round.json'} names an unknown arm {name!r}; {runs.DAMAGED_FIX}")
            own_masks = name in runs.OWN_MASKS_ARMS  # the other arms train with the ticket's masks
            arm_masks = runs.load_npz(runs.arm_masks_file(folder, name), self.mask_shapes) if own_masks else masks
            metrics = runs.read_json(folder / name / "metrics.json", dict)
            if not isinstance(metrics.get("history"), dict):
                raise runs.RunFileError(f"{folder / name / 'metrics.json'} has no training history; {runs.DAMAGED_FIX}")
            arms[name] = ArmResult(arm_masks, runs.load_npz(folder / name / "init.npz", self.shapes),
                                   runs.load_npz(folder / name / "final.npz", self.shapes), metrics)
        return RoundResult(index, masks, arms, info)

    # -- the RunStore interface ---------------------------------------------------------------------------

    def theta0(self, fresh: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """θ0 from DIR/theta0.npz, writing ``fresh`` there first if the run is new."""
        if self._theta0 is None:
            runs.atomic_savez(self.path / "theta0.npz", **fresh)
            self._theta0 = runs.load_npz(self.path / "theta0.npz", self.shapes)
        return self._theta0

    def rewind(self) -> dict[str, np.ndarray] | None:
        """DIR/rewind.npz once round 0 of a ``reset="rewind:K"`` run is complete, else None."""
        return self._rewind

    def save_rewind(self, weights: dict[str, np.ndarray]) -> None:
        runs.atomic_savez(self.path / "rewind.npz", **weights)

    def load_round(self, index: int) -> RoundResult | None:
        """A round completed before this run started (read and checked on opening), else None."""
        return self.finished[index] if index < len(self.finished) else None

    def save_round(self, rnd: RoundResult) -> None:
        """Writes every file of the round, then round.json (the completion marker), then the summary."""
        folder = runs.round_dir(self.path, rnd.index)
        runs.atomic_savez(runs.check_real_folder(folder, self.path) / "masks.npz", **rnd.masks)
        for name, arm in rnd.arms.items():
            arm_dir = runs.check_real_folder(folder / name, self.path)
            runs.atomic_savez(arm_dir / "init.npz", **arm.init_weights)
            runs.atomic_savez(arm_dir / "final.npz", **arm.final_weights)
            runs.atomic_write_json(arm_dir / "metrics.json", arm.metrics)
            if name in runs.OWN_MASKS_ARMS:
                runs.atomic_savez(runs.arm_masks_file(folder, name), **arm.masks)
        runs.atomic_write_json(folder / "round.json", rnd.info)
        self.done.append(rnd.info)
        runs.write_summary(self.path, self.record, self.done)


# -- what a folder holds ------------------------------------------------------------------------------


def run_record(config: IMPConfig, data: Any) -> dict[str, Any]:
    """DIR/config.json's content: the config and the data set's name and split sizes."""
    return {**config.to_dict(), "data": _describe(data, config.dataset)}


def run_status(path: str | Path, config: IMPConfig, data: Any, overwrite: bool = False) -> str:
    """What ``run_imp_in_folder(config, data, path)`` would find there, without changing anything.

    Returns:
        "new" (nothing of a run there yet, or one that ``overwrite`` will replace), "partial" (this run,
        interrupted or extended: it will continue) or "complete" (this run, finished: it only reloads).

    Raises:
        As ``rounds_on_disk``.
    """
    done = rounds_on_disk(path, config, data, overwrite)
    return "complete" if stop_reason(config, done) is not None else "partial" if done else "new"


def rounds_on_disk(path: str | Path, config: IMPConfig, data: Any, overwrite: bool = False) -> list[dict[str, Any]]:
    """The round.json of every round ``run_imp_in_folder(config, data, path)`` will read back instead of
    training (empty: a new run, or one that ``overwrite`` replaces), without changing anything.

    Raises:
        ValueError: ``path`` is a file or a trials folder, or holds a run of another config (and ``overwrite``
        is False), or files that minilottery did not write.
    """
    path = Path(path)
    record = run_record(config.validate(), data)
    if not _usable_out(path).is_dir():
        return []
    if _check_run_dir(path, record, overwrite) or not (path / "config.json").is_file():
        return []
    return runs.completed_rounds(path)


def _usable_out(path: Path) -> Path:
    """Raises ValueError when ``path`` cannot hold an IMP run: a file, or a ``minilottery trials`` folder."""
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {path} is a file; give a folder (new or holding this run)")
    if (path / runs.TRIALS_FILE).exists():
        raise ValueError(f"--out {path} holds a `minilottery trials` run; continue it with `minilottery trials`, "
                         f"or give `imp` another --out")
    return path


def _check_run_dir(path: Path, record: dict[str, Any], overwrite: bool) -> list[str]:
    """Raises ValueError unless DIR is new, holds this run (or a run that ``record`` extends), or ``overwrite``
    allows replacing it; returns how the run there differs from ``record`` (empty: the same run, one that
    ``record`` extends, or nothing there)."""
    _usable_out(path)
    config_file = path / "config.json"
    if config_file.is_file() or config_file.is_symlink():
        old = runs.read_json(config_file, fix="choose another --out")
        if config_file.is_symlink() or not runs.is_run_record(old):
            raise ValueError(f"{config_file} was not written by minilottery (it is not an IMP run record); "
                             f"choose another --out: nothing in {path} is replaced, even with --overwrite")
        diffs = [] if extends(old, record) else _differences(old, record)
        if diffs and not overwrite:
            raise ValueError(f"{path} was made with a different config (differs in: {', '.join(diffs)}); "
                             f"use --overwrite to replace it or choose another --out")
        return diffs
    found = [p.name for p in runs.round_dirs(path)] + [n for n in runs.RUN_FILES if (path / n).exists()]
    if found:
        raise ValueError(f"{path} holds files named like a run's ({', '.join(found[:3])}) but no config.json; "
                         f"minilottery will not delete them, even with --overwrite: choose another --out")
    return []


EXTENDING = ("rounds", "target_percent")  # the options whose change asks a run to go further


def extends(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether the config.json ``new`` is the run ``old`` asked to go further: nothing changed but a larger
    ``rounds`` (None: no limit) or a lower ``target_percent`` (None: no target), so that the new run stops no
    earlier than the old one, and every round the old one completed is a round the new one trains the same way
    (nothing in a round depends on where the run will stop). One-shot runs are never extended: their single
    pruning step aims at where ``rounds`` or ``target_percent`` would get."""
    a, b = _flatten(old), _flatten(new)
    changed = {key for key in set(a) | set(b) if a.get(key) != b.get(key)}
    if not changed or not changed <= set(EXTENDING) or b.get("one_shot"):
        return False
    rounds, target = (a.get("rounds"), b.get("rounds")), (a.get("target_percent"), b.get("target_percent"))
    more_rounds = rounds[1] is None or (rounds[0] is not None and rounds[1] >= rounds[0])
    lower_target = target[1] is None or (target[0] is not None and target[1] <= target[0])
    return more_rounds and lower_target


def _describe(data: Any, name: str) -> dict[str, Any]:
    """The data set's name and split sizes: a run resumed on other data would not be the same run."""
    return {"name": getattr(data, "name", "") or name, "train": len(data.y_train), "val": len(data.y_val),
            "test": len(data.y_test), "shape": list(data.x_train.shape[1:])}


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """["iterations 2000 vs 3000", ...]: the flattened keys whose values differ (old value first)."""
    a, b = _flatten(old), _flatten(new)
    changed = [key for key in sorted(set(a) | set(b)) if a.get(key) != b.get(key)]
    return [f"{key} {_show(a.get(key))} vs {_show(b.get(key))}" for key in changed]


# Train options that say how, not what: a run folder continues under another value (runs made before 0.3 record an
# evaluation batch of 100; the default now comes from a memory budget, which changes only the mean loss's last bits)
HOW_NOT_WHAT = ("eval_batch_size",)


def _flatten(d: dict[str, Any]) -> dict[str, Any]:
    """Nested config -> flat names: the train options under their own names (``iterations``), clashes and
    the data description prefixed (``train.seed``, ``data.train``). What config.json records about the machines
    the run ran on (``environment``, ``resumed_with``) is left out: it is not part of the config; nor are the
    options of ``HOW_NOT_WHAT``."""
    flat = {k: v for k, v in d.items() if not isinstance(v, dict) and k != "resumed_with"}  # a record, not config
    for k, v in (d.get("train") or {}).items():
        if k in HOW_NOT_WHAT:
            continue
        flat[f"train.{k}" if k in flat else k] = v
    for k, v in (d.get("data") or {}).items():
        flat[f"data.{k}"] = v
    return flat


def _show(value: Any) -> str:
    return "(none)" if value is None else json.dumps(value) if isinstance(value, (list, dict)) else str(value)


__all__ = ["EXTENDING", "RunFolder", "extends", "rounds_on_disk", "run_imp_in_folder", "run_record", "run_status"]
