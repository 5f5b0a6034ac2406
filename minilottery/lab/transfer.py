"""Ticket transfer: does a ticket found on one data set win on another?

Morcos, Yu, Paganini & Tian ("One ticket to win them all", NeurIPS 2019) found that tickets found on one image data
set train well on others. Here the question is asked of one IMP run on data set A (the *source*) and data set B
(the *target*, e.g. MNIST -> Fashion-MNIST). For each chosen round R of the source, with m_R its masks and θ0 its
start weights (θk when it rewound), four networks of the same architecture train on B with the source's training
settings:

    transfer      m_R ⊙ θ0: the source's ticket, masks and start weights exactly as found on A
    reinit        m_R with a fresh initialisation (the seed IMP's reinit control uses in round R)
    random_prune  random masks with m_R's per-layer counts, ⊙ θ0 (IMP's random-pruning control of round R)
    dense         θ0 with every weight (once, for all rounds)

and, when a run on B is given (``target_run``), B's own ticket of round R is read from it (``target_ticket``, not
retrained): a mask found on B itself, with the same θ0 when both runs used the same seed and model. Two runs with
the same pruning rates have the same per-layer counts in round R, so all five arms have the same sparsity.

The results go to ``OUT/transfer.json`` after every training (a killed transfer continues where it stopped when
run again) and to one figure, ``OUT/figures/transfer_accuracy_vs_weights.{png,pdf}``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from minilottery.imp import ARM_METRICS, RANDOM_PRUNE_STREAM, REINIT_SEED_OFFSET, IMPConfig, train_arm
from minilottery.lab import runs
from minilottery.models import build_model
from minilottery.prune import full_masks, random_prune, sparsity

TRANSFER_FILE = "transfer.json"
FIGURE = "transfer_accuracy_vs_weights"
ARMS = ("transfer", "reinit", "random_prune")  # trained on the target in every chosen round
TARGET_ARM = "target_ticket"  # read from the target's own run


@dataclasses.dataclass(frozen=True)
class SourceRun:
    """What transfer reads from a finished IMP run folder.

    Attributes:
        path: the run folder.
        config: its IMPConfig (model, seed, training settings, pruning rates).
        input_shape: (C, H, W) of the images its model was built for.
        start: name -> array the ticket trains from (θ0, or θk of a rewinding run).
        rounds: round.json of every completed round, round 0 first.
    """

    path: Path
    config: IMPConfig
    input_shape: tuple[int, ...]
    start: dict[str, np.ndarray]
    rounds: list[dict[str, Any]]

    @classmethod
    def read(cls, path: str | Path) -> SourceRun:
        path = Path(path)
        record = runs.read_json(path / "config.json", dict) if (path / "config.json").is_file() else None
        if not runs.is_run_record(record):
            raise ValueError(f"{path} is not a run folder of `minilottery imp` (no config.json of a run)")
        config = IMPConfig.from_dict(record)
        start_file = "theta0.npz" if config.rewind_iteration is None else "rewind.npz"
        return cls(path, config, tuple(record["data"]["shape"]), runs.load_npz(path / start_file),
                   runs.completed_rounds(path))

    def masks(self, index: int) -> dict[str, np.ndarray]:
        """The ticket's masks of round ``index`` (name -> bool array)."""
        return runs.load_npz(runs.round_dir(self.path, index) / "masks.npz")


def transfer_config(source: SourceRun, dataset: str) -> IMPConfig:
    """The source's config with the target's data set: every network here trains as the source's did."""
    return dataclasses.replace(source.config, dataset=dataset)


def check_target(source: SourceRun, data: Any, rounds: Sequence[int], target: SourceRun | None) -> None:
    """Raises ValueError (one line) when the source's model cannot take the target's images, a round is not in
    the source run, or the target run is not comparable (another model or training, other sparsities)."""
    shape = tuple(data.x_train.shape[1:])
    if shape != source.input_shape:
        raise ValueError(f"the source run's {source.config.model} takes {source.input_shape} images, but "
                         f"{data.name or 'the target data set'} has {shape}: choose a source run on images of the "
                         f"target's shape")
    done = len(source.rounds)
    missing = [r for r in rounds if not 1 <= r < done]
    if missing:
        raise ValueError(f"--rounds {','.join(map(str, missing))}: {source.path} has pruned rounds 1 to {done - 1}")
    if target is None:
        return
    if target.config.model != source.config.model or target.config.train != source.config.train:
        raise ValueError(f"--target-run {target.path} trained another model or with other settings than "
                         f"{source.path}; transfer compares runs of the same model and training")
    if target.config.dataset != data.name:
        raise ValueError(f"--target-run {target.path} is on {target.config.dataset}, not {data.name}")
    for r in rounds:
        if r >= len(target.rounds):
            raise ValueError(f"--target-run {target.path} has no round {r} (it has {len(target.rounds) - 1})")
        if target.rounds[r]["percent_remaining"] != source.rounds[r]["percent_remaining"]:
            raise ValueError(f"round {r} keeps {source.rounds[r]['percent_remaining']:.2f}% in {source.path} but "
                             f"{target.rounds[r]['percent_remaining']:.2f}% in {target.path}: other pruning rates")


def arm_start_and_masks(source: SourceRun, arm: str, index: int, masks: dict[str, np.ndarray]) -> tuple[
        dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(start weights, masks) of ``arm`` in round ``index``, whose ticket masks are ``masks`` (``source.masks``):
    see the module docstring. ``index`` 0 is dense."""
    config = source.config
    if arm == "dense":
        return source.start, full_masks(masks)
    if arm == "transfer":
        return source.start, masks
    if arm == "reinit":  # the fresh θ0' of IMP's reinit control in this round
        fresh = build_model(config.model, source.input_shape, seed=config.seed + REINIT_SEED_OFFSET + index)
        return fresh.state_dict(), masks
    if arm == "random_prune":  # IMP's random masks of this round: the ticket's per-layer counts
        return source.start, random_prune(masks, np.random.default_rng([config.seed, RANDOM_PRUNE_STREAM, index]))
    raise ValueError(f"unknown transfer arm {arm!r}; arms are dense, {', '.join(ARMS)}")


def run_transfer(
    source_run: str | Path,
    data: Any,
    out_dir: str | Path,
    rounds: Sequence[int] | None = None,
    *,
    target_run: str | Path | None = None,
    device: str = "cpu",
    progress: bool = True,
    log: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Trains the source run's tickets of ``rounds`` on ``data`` beside the controls (module docstring).

    Args:
        source_run: a finished ``minilottery imp`` run folder (the source data set's).
        data: the target ``Dataset``; its images must have the shape the source's model takes.
        out_dir: where ``transfer.json`` and the figure go. A folder holding a transfer of the same source,
            target and rounds continues it; of another one is refused.
        rounds: the source's rounds to transfer (default: every pruned round it completed).
        target_run: a run on the target data set (same model and training): its tickets are the
            ``target_ticket`` arm.

    Returns:
        The content of ``transfer.json``: ``{"source", "target", "config", "rounds"}``, ``rounds`` a list of
        ``{"round", "percent_remaining", "arms": {arm: ARM_METRICS}}`` with round 0 the dense network.
    """
    source = SourceRun.read(source_run)
    target = SourceRun.read(target_run) if target_run is not None else None
    rounds = sorted(set(rounds)) if rounds else list(range(1, len(source.rounds)))
    check_target(source, data, rounds, target)
    config = transfer_config(source, data.name)
    out = Path(out_dir)
    header = {"source": {"run": str(source.path), "dataset": source.config.dataset},
              "target": {"dataset": data.name, "run": None if target is None else str(target.path)},
              "config": config.to_dict()}
    with runs.locked(out):
        record = _open_record(out, header)
        done = {(row["round"], arm) for row in record["rounds"] for arm in row["arms"]}
        for index in [0, *rounds]:
            ticket_masks = source.masks(index)  # read once per round
            for arm in ("dense",) if index == 0 else ARMS:
                key = "ticket" if arm == "dense" else arm  # round 0's one network, as in an IMP summary
                if (index, key) in done:
                    continue
                start, masks = arm_start_and_masks(source, arm, index, ticket_masks)
                result, _ = train_arm(config, data, start, masks, device, progress, f"round {index} {arm}")
                metrics = {name: result.metrics[name] for name in ARM_METRICS}
                _add(record, index, masks, key, metrics)
                runs.atomic_write_json(out / TRANSFER_FILE, record)
                if log is not None:
                    log(f"round {index} ({sparsity(masks)['percent']:.1f}% of weights) {arm} on {data.name}: "
                        f"test accuracy {100 * metrics['test_accuracy_at_early_stop']:.2f}% "
                        f"(stop {metrics['early_stop_iteration']})")
        if target is not None:
            for index in rounds:
                _add_metrics(record, index, TARGET_ARM, target.rounds[index]["arms"]["ticket"])
            runs.atomic_write_json(out / TRANSFER_FILE, record)
    return record


def _open_record(out: Path, header: dict[str, Any]) -> dict[str, Any]:
    """The transfer.json to continue (same source, target data set and config; a target run may be added), else
    a new one; another transfer's folder is refused."""
    path = out / TRANSFER_FILE
    if not path.is_file():
        return {**header, "rounds": []}
    old = runs.read_json(path, dict)
    same = (old.get("source") == header["source"] and old.get("config") == header["config"]
            and (old.get("target") or {}).get("dataset") == header["target"]["dataset"])
    if not same:
        raise ValueError(f"{out} holds another transfer ({path}); choose another --out")
    if header["target"]["run"] is not None:
        old["target"]["run"] = header["target"]["run"]
    return old


def _add(record: dict[str, Any], index: int, masks: dict[str, np.ndarray], arm: str, metrics: dict[str, Any]) -> None:
    row = _row(record, index)
    row.setdefault("percent_remaining", sparsity(masks)["percent"])
    row["arms"][arm] = metrics


def _add_metrics(record: dict[str, Any], index: int, arm: str, metrics: dict[str, Any]) -> None:
    _row(record, index)["arms"][arm] = {name: metrics[name] for name in ARM_METRICS}


def _row(record: dict[str, Any], index: int) -> dict[str, Any]:
    """Round ``index``'s entry of ``record["rounds"]`` (created in round order if missing)."""
    for row in record["rounds"]:
        if row["round"] == index:
            return row
    row = {"round": index, "arms": {}}
    record["rounds"] = sorted([*record["rounds"], row], key=lambda r: r["round"])
    return row


def format_transfer(record: dict[str, Any]) -> str:
    """The transfer as a table: per round, each arm's test accuracy at early stop (and that iteration)."""
    arms = [arm for arm in (*ARMS, TARGET_ARM) if any(arm in row["arms"] for row in record["rounds"][1:])]
    dense = record["rounds"][0]["arms"]["ticket"] if record["rounds"] and record["rounds"][0]["round"] == 0 else None
    lines = [f"{record['source']['dataset']} tickets ({record['source']['run']}) trained on "
             f"{record['target']['dataset']}: test accuracy at early stop (iteration)"]
    if dense is not None:
        lines.append(f"dense network: {_cell(dense)}")
    lines.append("  ".join([f"{'round':>5}", f"{'weights':>8}", *(f"{arm:>20}" for arm in arms)]))
    for row in record["rounds"]:
        if row["round"] == 0:
            continue
        cells = [_cell(row["arms"][arm]) if arm in row["arms"] else "-" for arm in arms]
        lines.append("  ".join([f"{row['round']:>5}", f"{row['percent_remaining']:>7.1f}%",
                                *(f"{cell:>20}" for cell in cells)]))
    return "\n".join(lines)


def _cell(metrics: dict[str, Any]) -> str:
    return f"{100 * metrics['test_accuracy_at_early_stop']:.2f}% ({metrics['early_stop_iteration']:,})"


def plot_transfer(record: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """One curve per arm of test accuracy (at early stop) against the percent of weights remaining, with the dense
    network as a dashed line; written as ``FIGURE`` .png and .pdf into ``out_dir``."""
    import matplotlib.pyplot as plt

    from minilottery.lab.plots import ARM_STYLE, RC, percent_x_axis, save_figure

    styles = {"transfer": {**ARM_STYLE["ticket"], "label": f"{record['source']['dataset']} ticket, transferred"},
              "reinit": {**ARM_STYLE["reinit"], "label": "transferred masks, random reinit"},
              "random_prune": ARM_STYLE["random_prune"],
              TARGET_ARM: {"label": f"{record['target']['dataset']}'s own ticket", "color": "#7b3294",
                           "linestyle": "-.", "marker": "D"}}
    pruned = [row for row in record["rounds"] if row["round"] > 0]
    with plt.rc_context(RC):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for arm, style in styles.items():
            points = [(row["percent_remaining"], 100 * row["arms"][arm]["test_accuracy_at_early_stop"])
                      for row in pruned if arm in row["arms"]]
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, **style)
        dense = [row for row in record["rounds"] if row["round"] == 0]
        if dense:
            accuracy = 100 * dense[0]["arms"]["ticket"]["test_accuracy_at_early_stop"]
            ax.axhline(accuracy, color="0.35", linestyle=(0, (6, 4)), linewidth=1.5, label="dense network")
        percent_x_axis(ax, [row["percent_remaining"] for row in pruned])  # as the IMP figures: sparser rightwards
        ax.set_ylabel(f"test accuracy on {record['target']['dataset']} (%)")
        ax.set_title(f"{record['source']['dataset']} -> {record['target']['dataset']}")
        ax.legend()
        fig.tight_layout()
        paths = save_figure(fig, out_dir, FIGURE)
        plt.close(fig)
    return paths


__all__ = ["ARMS", "FIGURE", "TARGET_ARM", "TRANSFER_FILE", "SourceRun", "arm_start_and_masks", "check_target",
           "format_transfer", "plot_transfer", "run_transfer", "transfer_config"]
