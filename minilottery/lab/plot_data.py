"""What the figures of ``minilottery.lab.plots`` draw, read from a run folder: no matplotlib here.

``load_summary`` gives the summary dict (a run's, or a ``minilottery trials`` folder's aggregate); the functions
below it pick out one arm's series, the dense network's value, and the rounds worth drawing. ``load_histories``
and ``load_masks`` read the per-round training curves and masks. The run folder's format belongs to
``minilottery.lab.runs``, a trials folder's to ``minilottery.lab.trials``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from minilottery.imp import ARMS
from minilottery.lab import runs

# Percent-remaining levels the paper's Figure 3 shows; the run's rounds closest to them are drawn.
LEARNING_CURVE_TARGETS = (100.0, 51.3, 21.1, 7.0, 3.6)

# -- loading -----------------------------------------------------------------------------------------------


def load_summary(run_dir: str | Path) -> dict:
    """``{"config": {...}, "rounds": [round.json contents, ...]}`` of a run folder, or of a ``trials`` folder
    the aggregate (mean, min, max) of its finished trials, also while others still run.

    Raises:
        ValueError: ``run_dir`` holds no run, or a damaged one (one line naming the file).
    """
    from minilottery.lab.trials import finished_trials_summary, is_trials_dir

    return finished_trials_summary(run_dir) if is_trials_dir(run_dir) else runs.load_summary(run_dir)


def trial_run_dirs(run_dir: str | Path) -> list[Path]:
    """The run directories behind ``run_dir``: its trials' folders (``minilottery trials``), else itself."""
    from minilottery.lab.trials import is_trials_dir, trial_dirs

    return list(trial_dirs(run_dir).values()) if is_trials_dir(run_dir) else [Path(run_dir)]


def load_histories(run_dir: str | Path, rounds=None, arms=ARMS) -> dict[int, dict[str, dict]]:
    """``{round: {arm: history}}`` from DIR/round_XXX/<arm>/metrics.json (arms without metrics are left out).

    A history is ``{"iteration": [...], "test_accuracy": [...], ...}`` as ``TrainResult.to_dict()`` writes it;
    accuracies are fractions in [0, 1]. For a trials folder, each history is the mean over the trials that
    have it, with ``test_accuracy_min`` and ``test_accuracy_max`` beside ``test_accuracy`` (the paper's
    error bars; the trials share the evaluation iterations, since they share the config).
    """
    sources = trial_run_dirs(run_dir)
    if sources != [Path(run_dir)]:
        return _mean_histories([_run_histories(path, rounds, arms) for path in sources])
    return _run_histories(run_dir, rounds, arms)


def _mean_histories(per_trial: list[dict[int, dict[str, dict]]]) -> dict[int, dict[str, dict]]:
    """The mean, min and max test accuracy per evaluation over trials (only evaluations all of them reached)."""
    merged: dict[int, dict[str, dict]] = {}
    for number in sorted({n for h in per_trial for n in h}):
        for arm in sorted({a for h in per_trial for a in h.get(number, {})}):
            found = [h[number][arm] for h in per_trial if arm in h.get(number, {})]
            length = min(len(f["iteration"]) for f in found)
            acc = np.array([f["test_accuracy"][:length] for f in found], dtype=float)  # (trials, evaluations)
            merged.setdefault(number, {})[arm] = {
                "iteration": found[0]["iteration"][:length],
                "test_accuracy": acc.mean(axis=0).tolist(),
                "test_accuracy_min": acc.min(axis=0).tolist(),
                "test_accuracy_max": acc.max(axis=0).tolist(),
            }
    return merged


def _run_histories(run_dir: str | Path, rounds, arms) -> dict[int, dict[str, dict]]:
    histories: dict[int, dict[str, dict]] = {}
    for number, path in _round_folders(run_dir, rounds):
        for arm in arms:
            metrics = path / arm / "metrics.json"
            if metrics.is_file():
                history = runs.read_json(metrics, dict).get("history")
                if not isinstance(history, dict) or not {"iteration", "test_accuracy"} <= set(history):
                    raise runs.RunFileError(f"{metrics} has no training history (iteration, test_accuracy); "
                                            f"{runs.DAMAGED_FIX}")
                histories.setdefault(number, {})[arm] = history
    return histories


def _round_folders(run_dir: str | Path, rounds=None) -> Iterator[tuple[int, Path]]:
    """(round number, DIR/round_XXX) of each round folder of a run, only the numbers in ``rounds`` if given."""
    for path in runs.round_dirs(run_dir):
        number = int(path.name[len("round_"):])
        if rounds is None or number in rounds:
            yield number, path


def first_layer_name(summary: dict) -> str | None:
    """Name of the first prunable layer (the lowest layer index, e.g. "1.W" for LeNet after Flatten)."""
    names = set()
    for rnd in summary.get("rounds", []):
        names.update(rnd.get("layers", {}))
    if not names:
        return None
    # "1.W" -> 1: the Sequential index orders the layers; a non-numeric prefix sorts last.
    return min(names, key=lambda n: (int(n.split(".")[0]) if n.split(".")[0].isdigit() else math.inf, n))


def load_masks(run_dir: str | Path, name: str, rounds=None) -> dict[int, np.ndarray]:
    """``{round: mask}`` of one parameter (e.g. "1.W") from DIR/round_XXX/masks.npz, as float 0/1 host arrays
    (for a trials folder: the first trial's)."""
    masks = {}
    for number, path in _round_folders(trial_run_dirs(run_dir)[0], rounds):
        if (path / "masks.npz").is_file():
            found = runs.load_npz(path / "masks.npz")
            if name in found:
                masks[number] = found[name].astype(np.float32)
    return masks


# -- reading the summary -----------------------------------------------------------------------------------


def _arm_rounds(summary: dict, arm: str, key: str) -> Iterator[tuple[dict, float]]:
    """(round, value) of every round where ``arm`` ran and has a finite value of ``key``."""
    for rnd in summary.get("rounds", []):
        value = rnd.get("arms", {}).get(arm, {}).get(key)
        if value is not None and np.isfinite(value):
            yield rnd, float(value)


def arm_series(summary: dict, arm: str, key: str) -> tuple[list[float], list[float]]:
    """``(percent_remaining, value)`` of ``key`` for every round where ``arm`` ran and has a value."""
    points = [(float(rnd["percent_remaining"]), value) for rnd, value in _arm_rounds(summary, arm, key)]
    return [p for p, _ in points], [value for _, value in points]


def arm_spread(summary: dict, arm: str, key: str) -> tuple[list[float], list[float]] | None:
    """``(minimum, maximum)`` over trials of ``key``, aligned with ``arm_series``; None for a single run."""
    spreads = [rnd.get("spread", {}).get(arm, {}).get(key) for rnd, _ in _arm_rounds(summary, arm, key)]
    if any(spread is None for spread in spreads):
        return None
    return [float(s["min"]) for s in spreads], [float(s["max"]) for s in spreads]


def _dense_round(summary: dict) -> dict:
    """Round 0 (the dense network, 100% of weights), or {} if the summary has none."""
    return next((rnd for rnd in summary.get("rounds", []) if rnd.get("round") == 0), {})


def dense_value(summary: dict, key: str) -> float | None:
    """``key`` of the dense network: the ticket arm of round 0 (100% of weights), or None if it is missing."""
    return _dense_round(summary).get("arms", {}).get("ticket", {}).get(key)


def dense_spread(summary: dict, key: str) -> dict | None:
    """``{"min", "max"}`` of the dense network's ``key`` over trials, or None (a single run, or missing)."""
    return _dense_round(summary).get("spread", {}).get("ticket", {}).get(key)


def percent_by_round(summary: dict | None) -> dict[int, float]:
    """``{round: percent of weights remaining}`` of every round in ``summary`` (None: {})."""
    return {r["round"]: float(r["percent_remaining"]) for r in (summary or {}).get("rounds", [])}


def select_rounds(summary: dict, targets=LEARNING_CURVE_TARGETS) -> list[int]:
    """Rounds whose percent remaining is closest (in log scale) to each target, without repeats, in order."""
    rounds = [(r["round"], float(r["percent_remaining"])) for r in summary.get("rounds", [])]
    rounds = [(number, p) for number, p in rounds if p > 0]  # 0% has no log: a network with no weight left
    chosen = []
    for target in targets:
        if not rounds:
            break
        number, _ = min(rounds, key=lambda rp: abs(math.log(rp[1] / target)))
        if number not in chosen:
            chosen.append(number)
    return sorted(chosen)


def mask_rounds(rounds: list[int], max_panels: int = 4) -> list[int]:
    """Up to ``max_panels`` rounds spread evenly over the pruned rounds, always ending with the last one."""
    pruned = [r for r in sorted(rounds) if r > 0] or sorted(rounds)
    if len(pruned) <= max_panels:
        return pruned
    picks = np.linspace(0, len(pruned) - 1, max_panels).round().astype(int)
    return [pruned[i] for i in sorted(set(picks))]
