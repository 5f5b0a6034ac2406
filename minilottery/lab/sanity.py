"""Sanity checks and supermasks: what in a winning ticket makes it win?

A ticket is a mask m and the start weights θ0 it keeps. Each *variant* below changes one thing and keeps the
ticket's per-layer counts, so all have exactly the sparsity of the round (one exception, marked):

    ticket              m ⊙ θ0, as IMP found it
    shuffled            m shuffled within each layer ⊙ θ0: the layer's count, other positions (Frankle, Dziugaite,
                        Roy & Carbin, ICLR 2021, "Pruning neural networks at initialization: why are we missing the
                        mark?", Section 5; Su et al. 2020). These are exactly IMP's random-pruning control of the
                        round: the same generator, so the same masks as in the run.
    signed_constant     m ⊙ sign(θ0) σ_l, σ_l the standard deviation of layer l's θ0 (all its weights, kept or
                        not): θ0's signs with one magnitude per layer (Zhou, Lan, Liu & Yosinski, NeurIPS 2019,
                        "Deconstructing lottery tickets", Section 4)
    reinit_signs        m ⊙ sign(θ0)|θ0'|: a fresh draw θ0' (IMP's reinit control of the round) with θ0's signs
                        (Zhou et al., Section 4)

and masks chosen by other criteria (Zhou et al., Section 3), applied once to the run's dense network (round 0:
w0 = its start θ0, wf = its trained weights), keeping in every layer the ticket's count of highest scores
(``prune.keep_highest``), each ⊙ θ0:

    large_final         |wf|                 one-shot magnitude pruning: the ticket's criterion, applied once
    small_final         -|wf|                the inverted criterion: the smallest trained weights
    large_init          |w0|
    magnitude_increase  |wf| - |w0|
    movement            |wf - w0|
    large_final_same_sign  |wf| where sign(wf) = sign(w0), never elsewhere: Zhou et al.'s supermask; it keeps
                        at most the ticket's count (fewer where too few weights kept their sign)

Every variant is trained with the run's settings, and the test accuracy of its start weights ⊙ mask is measured
untrained as well (Zhou et al.'s supermask result: a good mask alone is far above chance). A ticket that wins
because of its positions suffers from ``shuffled``; one that wins because of its signs survives ``reinit_signs``.

The results go to ``OUT/sanity.json`` after every training (a killed run of it continues where it stopped) and to
one bar chart, ``OUT/figures/sanity_accuracy.{png,pdf}``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from minilottery.backend import to_device
from minilottery.checks import check_choices
from minilottery.imp import ARM_METRICS, train_arm
from minilottery.lab import runs
from minilottery.lab.instability import check_round, network, open_record
from minilottery.lab.transfer import SourceRun, arm_start_and_masks, check_target
from minilottery.prune import keep_highest, sparsity
from minilottery.training import evaluate

SANITY_FILE = "sanity.json"
FIGURE = "sanity_accuracy"
CRITERIA = ("large_final", "small_final", "large_init", "magnitude_increase", "movement", "large_final_same_sign")
VARIANTS = ("ticket", "shuffled", "signed_constant", "reinit_signs", *CRITERIA)
SIGNED_CONSTANT = "sign(θ0) times the standard deviation of the layer's θ0 (all its weights)"


# -- masks and weights of the variants --------------------------------------------------------------------------------


def criterion_scores(criterion: str, w0: np.ndarray, wf: np.ndarray) -> np.ndarray:
    """The score of every weight of one layer under ``criterion`` (``CRITERIA``); higher is kept first.

    Args:
        w0, wf: the layer's weights before and after training (host arrays of one shape).
    """
    if criterion == "large_final":
        return np.abs(wf)
    if criterion == "small_final":
        return -np.abs(wf)
    if criterion == "large_init":
        return np.abs(w0)
    if criterion == "magnitude_increase":
        return np.abs(wf) - np.abs(w0)
    if criterion == "movement":
        return np.abs(wf - w0)
    if criterion == "large_final_same_sign":  # -inf: kept only if the count needs it, which it never does here
        return np.where(np.sign(wf) == np.sign(w0), np.abs(wf), -np.inf)
    raise ValueError(f"unknown mask criterion {criterion!r}; criteria are {', '.join(CRITERIA)}")


def criterion_masks(criterion: str, w0: Mapping[str, np.ndarray], wf: Mapping[str, np.ndarray],
                    counts: Mapping[str, int]) -> dict[str, np.ndarray]:
    """Per-layer masks keeping ``counts[name]`` weights of highest ``criterion_scores`` (ties: the earlier position).

    For ``large_final_same_sign`` a layer keeps ``min(counts[name], weights whose sign did not change)``.
    """
    scores = {name: criterion_scores(criterion, w0[name], wf[name]) for name in counts}
    if criterion == "large_final_same_sign":
        counts = {name: min(count, int(np.isfinite(scores[name]).sum())) for name, count in counts.items()}
    return keep_highest(scores, counts)


def signed_constant(theta0: Mapping[str, np.ndarray], names: Sequence[str]) -> dict[str, np.ndarray]:
    """θ0 with each weight of ``names`` replaced by ``sign(w) * std(layer)`` (``SIGNED_CONSTANT``); the others
    (biases) as they are. One magnitude per layer, θ0's signs."""
    out = {name: w.copy() for name, w in theta0.items()}
    for name in names:
        w = theta0[name]
        out[name] = (np.sign(w) * w.std()).astype(w.dtype)
    return out


def reinit_with_signs(theta0: Mapping[str, np.ndarray], fresh: Mapping[str, np.ndarray],
                      names: Sequence[str]) -> dict[str, np.ndarray]:
    """``fresh`` (θ0') with each weight of ``names`` given the sign of θ0's: ``sign(θ0) * |θ0'|``."""
    out = {name: w.copy() for name, w in fresh.items()}
    for name in names:
        out[name] = (np.sign(theta0[name]) * np.abs(fresh[name])).astype(fresh[name].dtype)
    return out


def variant_networks(source: SourceRun, index: int, masks: Mapping[str, np.ndarray],
                     dense_final: Mapping[str, np.ndarray]) -> dict[str, tuple[dict[str, np.ndarray],
                                                                                dict[str, np.ndarray]]]:
    """variant -> (start weights, masks) of every ``VARIANTS`` in round ``index`` (module docstring).

    Args:
        source: the run (its start weights θ0, its config's seeds).
        masks: the round's ticket masks (``source.masks(index)``).
        dense_final: the run's trained dense network (round 0's ticket, ``final.npz``): wf of the criteria.
    """
    theta0 = source.start
    counts = {name: int(mask.sum()) for name, mask in masks.items()}
    fresh, _ = arm_start_and_masks(source, "reinit", index, masks)  # IMP's θ0' of this round
    _, shuffled = arm_start_and_masks(source, "random_prune", index, masks)  # IMP's random pruning of this round
    networks = {"ticket": (theta0, dict(masks)), "shuffled": (theta0, shuffled),
                "signed_constant": (signed_constant(theta0, list(masks)), dict(masks)),
                "reinit_signs": (reinit_with_signs(theta0, fresh, list(masks)), dict(masks))}
    for criterion in CRITERIA:
        networks[criterion] = (theta0, criterion_masks(criterion, theta0, dense_final, counts))
    return networks


def overlap(masks: Mapping[str, np.ndarray], ticket: Mapping[str, np.ndarray]) -> float:
    """The fraction of the ticket's kept weights that ``masks`` keeps too (1 for the ticket itself)."""
    shared = sum(int(np.count_nonzero(masks[name] & ticket[name])) for name in ticket)
    return shared / max(sum(int(np.count_nonzero(m)) for m in ticket.values()), 1)


# -- a run's rounds ---------------------------------------------------------------------------------------------------


def check_variants(variants: Sequence[str]) -> None:
    """Raises ValueError (one line) unless ``variants`` names some of ``VARIANTS`` and nothing else."""
    check_choices("--variants", variants, VARIANTS)


def run_sanity(
    run: str | Path,
    data: Any,
    out_dir: str | Path,
    rounds: Sequence[int],
    variants: Sequence[str] = VARIANTS,
    *,
    device: str = "cpu",
    progress: bool = True,
    log: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Trains every variant of each round of ``rounds`` of ``run`` and measures it untrained (module docstring).

    Args:
        run: a finished ``minilottery imp`` run folder; every network trains with its settings.
        data: its ``Dataset``.
        out_dir: where ``sanity.json`` goes; a folder holding the same run's sanity checks continues them (the
            variants it has are not trained again), one holding anything else is refused.
        rounds: pruned rounds of the run.
        variants: a subset of ``VARIANTS``.

    Returns:
        The content of ``sanity.json``: the run, model, data set, config, the dense network's untrained test
        accuracy, and ``results``: per round, its percent of weights and per variant its weights remaining,
        its overlap with the ticket, ``untrained_test_accuracy`` and the ``ARM_METRICS`` of its training.
    """
    source = SourceRun.read(run)
    rounds = sorted(set(rounds))
    for index in rounds:
        check_round(source, index)
    check_target(source, data, rounds, None)  # images of the shape the run's model takes
    check_variants(variants)
    config = source.config
    header = {"run": str(source.path), "model": config.model, "dataset": config.dataset,
              "signed_constant": SIGNED_CONSTANT, "criteria_from": "round 0: θ0 and the trained dense network",
              "config": config.to_dict()}
    x_test, y_test = to_device(data.x_test, device), to_device(data.y_test, device)
    out = Path(out_dir)

    def untrained(weights: Mapping[str, np.ndarray], masks: Mapping[str, np.ndarray]) -> float:
        model = network(config, source.input_shape, weights, masks, device)
        return evaluate(model, x_test, y_test, config.train.eval_batch_size)[1]

    with runs.locked(out):
        record = open_record(out / SANITY_FILE, header, "sanity check")
        dense_masks = {name: np.ones_like(mask) for name, mask in source.masks(0).items()}
        if "dense_untrained_test_accuracy" not in record:
            record["dense_untrained_test_accuracy"] = untrained(source.start, dense_masks)
        dense_final = runs.load_npz(runs.round_dir(source.path, 0) / "ticket" / "final.npz")
        for index in rounds:
            ticket = source.masks(index)
            row = _row(record, index, sparsity(ticket)["percent"])
            for variant, (start, masks) in variant_networks(source, index, ticket, dense_final).items():
                if variant not in variants or variant in row["variants"]:
                    continue
                result, _ = train_arm(config, data, start, masks, device, progress, f"round {index} {variant}")
                s = sparsity(masks)
                row["variants"][variant] = {"remaining": s["remaining"], "percent_remaining": s["percent"],
                                            "overlap_with_ticket": overlap(masks, ticket),
                                            "untrained_test_accuracy": untrained(start, masks),
                                            **{name: result.metrics[name] for name in ARM_METRICS}}
                runs.atomic_write_json(out / SANITY_FILE, record)
                if log is not None:
                    v = row["variants"][variant]
                    log(f"round {index} ({s['percent']:.2f}% of weights) {variant}: test accuracy "
                        f"{100 * v['test_accuracy_at_early_stop']:.2f}% trained (stop {v['early_stop_iteration']}), "
                        f"{100 * v['untrained_test_accuracy']:.2f}% untrained")
    return record


def _row(record: dict[str, Any], index: int, percent: float) -> dict[str, Any]:
    """Round ``index``'s entry of ``record["results"]`` (created in round order if missing)."""
    for row in record["results"]:
        if row["round"] == index:
            return row
    row = {"round": index, "percent_remaining": percent, "variants": {}}
    record["results"] = sorted([*record["results"], row], key=lambda r: r["round"])
    return row


# -- the table and the figure -----------------------------------------------------------------------------------------


def format_sanity(record: dict[str, Any]) -> str:
    """Per round, each variant's weights, overlap with the ticket, trained test accuracy at early stop (and that
    iteration) and untrained test accuracy."""
    lines = [f"sanity checks of {record['model']} on {record['dataset']} ({record['run']}); the dense network's "
             f"untrained test accuracy: {100 * record['dense_untrained_test_accuracy']:.2f}%"]
    for row in record["results"]:
        lines.append(f"round {row['round']} ({row['percent_remaining']:.2f}% of weights)")
        lines.append("  ".join([f"{'variant':<22}", f"{'weights':>8}", f"{'overlap':>8}", f"{'trained (stop)':>17}",
                                f"{'untrained':>9}"]))
        for variant in VARIANTS:
            v = row["variants"].get(variant)
            if v is None:
                continue
            trained = f"{100 * v['test_accuracy_at_early_stop']:.2f}% ({v['early_stop_iteration']:,})"
            lines.append("  ".join([f"{variant:<22}", f"{v['percent_remaining']:>7.2f}%",
                                    f"{100 * v['overlap_with_ticket']:>7.1f}%", f"{trained:>17}",
                                    f"{100 * v['untrained_test_accuracy']:>8.2f}%"]))
    return "\n".join(lines)


def plot_sanity(record: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """A bar chart, one panel per round: each variant's test accuracy trained (at early stop) and untrained,
    with chance level dashed; written as ``FIGURE`` .png and .pdf into ``out_dir``."""
    import matplotlib
    from matplotlib.figure import Figure

    from minilottery.lab.plots import ARM_STYLE, RC, save_figure

    rows = record["results"]
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(7.5 * max(len(rows), 1), 5.5), layout="constrained")
        axes = fig.subplots(1, max(len(rows), 1), squeeze=False, sharey=True)[0]
        for ax, row in zip(axes, rows):
            names = [v for v in VARIANTS if v in row["variants"]]
            x = np.arange(len(names))
            trained = [100 * row["variants"][v]["test_accuracy_at_early_stop"] for v in names]
            untrained = [100 * row["variants"][v]["untrained_test_accuracy"] for v in names]
            ax.bar(x - 0.2, trained, 0.4, label="trained", color=ARM_STYLE["ticket"]["color"])
            ax.bar(x + 0.2, untrained, 0.4, label="untrained (start ⊙ mask)", color=ARM_STYLE["reinit"]["color"],
                   hatch="//", edgecolor="white")
            ax.axhline(10.0, color="0.35", linestyle=(0, (6, 4)), linewidth=1.5, label="chance (10 classes)")
            ax.set_xticks(x, names, rotation=40, ha="right")
            ax.set_ylim(0, 100)
            ax.set_title(f"round {row['round']}: {row['percent_remaining']:.1f}% of weights")
        axes[0].set_ylabel("test accuracy (%)")
        fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=3)
        fig.suptitle(f"Sanity checks and supermasks ({record['model']} on {record['dataset']})")
        paths = save_figure(fig, out_dir, FIGURE)
    return paths


__all__ = ["CRITERIA", "FIGURE", "SANITY_FILE", "SIGNED_CONSTANT", "VARIANTS", "check_variants", "criterion_masks",
           "criterion_scores", "format_sanity", "overlap", "plot_sanity", "reinit_with_signs", "run_sanity",
           "signed_constant", "variant_networks"]
