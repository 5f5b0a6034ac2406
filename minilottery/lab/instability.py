"""Instability and linear mode connectivity (Frankle, Dziugaite, Roy & Carbin, ICML 2020).

Train two copies of one network from the same weights θk with two different data orders (the same masks, the same
everything else), and walk the straight line between the two results:

    θ(α) = (1 - α) θ_A + α θ_B,   α in [0, 1]

The network is *stable* to the noise of SGD at iteration k when the test error stays flat along that line (the two
copies end in one linearly connected valley) and *unstable* when it rises in the middle. The instability is the
height of that rise (Section 2 of the paper):

    instability = max over α of error(θ(α))  -  (error(θ_A) + error(θ_B)) / 2

Two masked networks interpolate into a masked network: a pruned weight is 0 at both ends, so it is
``(1 - α)·0 + α·0 = 0`` all along the path (and the evaluation keeps the masks as well).

For one round R of a finished IMP run, three *arms* are analysed (the same arms as ``lab.transfer``):

    dense    θ0 with every weight (the run's round 0)
    ticket   m_R ⊙ θ0: the round's winning ticket (θk instead of θ0 when the run rewound)
    reinit   m_R ⊙ θ0', IMP's reinit control of round R (the same fresh θ0' as in the run)

For each k of a sweep (e.g. 0, 100, 500), a *parent* trains from the arm's start weights to iteration k with the
run's own data order (the run's data seed, so for k > 0 its first k steps are exactly those of the arm in the run),
and two *children* train from the parent's θk for the remaining ``iterations - k`` steps, with data seeds
``seed + 1`` and ``seed + 2``. One parent run to the largest k serves every k (a snapshot at each). At k = 0 the
parent is the start itself. Each child starts a fresh optimizer (Adam's moments are not carried over from the
parent), as IMP's own rewinding does here (``imp.train_arm``).

The results go to ``OUT/instability.json`` after every (arm, k) (a killed analysis continues where it stopped when
run again) and to two figures in ``OUT/figures``: the test error along the path, one panel per k
(``instability_error_vs_alpha``), and the instability against k (``instability_vs_k``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from minilottery.backend import to_device
from minilottery.checks import check_choices, is_integer
from minilottery.imp import ARM_METRICS, IMPConfig, train_arm
from minilottery.lab import runs
from minilottery.lab.transfer import SourceRun, arm_start_and_masks, check_target
from minilottery.models import build_model
from minilottery.prune import masked_weights, sparsity
from minilottery.training import evaluate

INSTABILITY_FILE = "instability.json"
FIGURES = ("instability_error_vs_alpha", "instability_vs_k")
ARMS = ("dense", "ticket", "reinit")
CHILD_SEED_OFFSETS = (1, 2)  # the children's data orders: the run's data seed + 1 and + 2
DEFAULT_KS = (0, 100, 500)
DEFAULT_POINTS = 30


# -- the path between two networks ------------------------------------------------------------------------------------


def interpolate(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray], alpha: float) -> dict[str, np.ndarray]:
    """``(1 - alpha) * a + alpha * b`` for every parameter (host arrays of any shape; each keeps a's dtype).

    At alpha = 0 the result is exactly ``a`` and at alpha = 1 exactly ``b`` (a product with 0 or 1 is exact).
    """
    if a.keys() != b.keys():
        raise ValueError(f"cannot interpolate networks with other parameters: {sorted(a)} and {sorted(b)}")
    return {name: ((1.0 - alpha) * a[name] + alpha * b[name]).astype(a[name].dtype) for name in a}


def alphas(points: int) -> list[float]:
    """``points`` evenly spaced values of α from 0 to 1, both ends included."""
    if not is_integer(points) or points < 2:
        raise ValueError(f"--points must be an integer >= 2 (the two ends and the path between), got {points!r}")
    return [float(alpha) for alpha in np.linspace(0.0, 1.0, points)]


def network(config: IMPConfig, input_shape: tuple[int, ...], weights: Mapping[str, np.ndarray],
            masks: Mapping[str, np.ndarray], device: str = "cpu") -> Any:
    """The run's architecture holding ``weights`` with ``masks`` attached, on ``device``, ready to evaluate."""
    model = build_model(config.model, input_shape, seed=config.seed)
    model.load_state_dict(dict(weights))
    model.set_masks(dict(masks))
    return model.to(device)


def path_errors(model: Any, a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray], x: Any, y: Any,
                alpha_values: Sequence[float], batch_size: int | None = None) -> list[float]:
    """Test error (a fraction) of ``model`` holding ``interpolate(a, b, α)`` for every α of ``alpha_values``.

    Args:
        model: the network to load each point into (its masks stay attached: see ``network``).
        x: (N, C, H, W) images, y: (N,) labels, best already on the model's device (moved once, not per α).
    """
    errors = []
    for alpha in alpha_values:
        model.load_state_dict(interpolate(a, b, alpha))
        _, accuracy = evaluate(model, x, y, batch_size)
        errors.append(1.0 - accuracy)
    return errors


def instability(errors: Sequence[float]) -> float:
    """The error barrier of a path (Section 2): its highest error minus the mean of its two ends' errors.

    ``errors`` run from α = 0 to α = 1. It is 0 for a flat path and never negative (the ends are on the path).
    """
    return float(max(errors) - (errors[0] + errors[-1]) / 2.0)


# -- training the parent and the children -----------------------------------------------------------------------------


def child_seeds(config: IMPConfig) -> list[int]:
    """The two children's data seeds: the run's data seed plus ``CHILD_SEED_OFFSETS``."""
    return [config.train.seed + offset for offset in CHILD_SEED_OFFSETS]


def check_ks(ks: Sequence[int], iterations: int) -> list[int]:
    """The sorted distinct ks; each must be an integer in 0..iterations - 1 (the children need a step to train)."""
    bad = [k for k in ks if not is_integer(k) or not 0 <= k < iterations]
    if bad or not ks:
        raise ValueError(f"--k must be iterations in 0..{iterations - 1} (the run trains {iterations} iterations), "
                         f"got {','.join(map(str, bad)) or 'none'}")
    return sorted({int(k) for k in ks})


def spawn(config: IMPConfig, data: Any, start: Mapping[str, np.ndarray], masks: Mapping[str, np.ndarray],
          ks: Sequence[int], device: str = "cpu", progress: bool = True, desc: str = "") -> dict[int, list[Any]]:
    """Trains the parent to every k of ``ks`` and two children from each θk (module docstring).

    Returns:
        k -> [child A, child B], each an ``imp.ArmResult`` (its ``init_weights`` is θk, its ``final_weights`` the
        end of the path); the children train ``iterations - k`` steps with data seeds ``child_seeds(config)``.
    """
    ks = check_ks(ks, config.train.iterations)
    if ks[-1] == 0:  # k = 0 only: the start itself, no parent to train
        thetas = {0: masked_weights(start, masks)}
    else:  # one parent, with the run's data order, snapshotted at every k
        parent = dataclasses.replace(config, train=dataclasses.replace(config.train, iterations=ks[-1]))
        _, thetas = train_arm(parent, data, dict(start), dict(masks), device, progress, f"{desc} parent",
                              tuple(ks))
    children = {}
    for k in ks:
        children[k] = []
        for seed in child_seeds(config):
            child = dataclasses.replace(config, train=dataclasses.replace(
                config.train, iterations=config.train.iterations - k, seed=seed))
            result, _ = train_arm(child, data, thetas[k], dict(masks), device, progress,
                                  f"{desc} k={k} child seed {seed}")
            children[k].append(result)
    return children


# -- a run's round ----------------------------------------------------------------------------------------------------


def check_round(source: SourceRun, index: int) -> None:
    """Raises ValueError (one line) unless ``index`` is a pruned round the run completed."""
    done = len(source.rounds)
    if not is_integer(index) or not 1 <= index < done:
        raise ValueError(f"--round {index}: {source.path} has pruned rounds 1 to {done - 1}; choose one of them "
                         f"(round 0, the dense network, is analysed with every round)")


def check_arms(arms: Sequence[str]) -> None:
    """Raises ValueError (one line) unless ``arms`` names some of ``ARMS`` and nothing else."""
    check_choices("--arms", arms, ARMS)


def run_instability(
    run: str | Path,
    data: Any,
    out_dir: str | Path,
    round_index: int,
    ks: Sequence[int] = DEFAULT_KS,
    points: int = DEFAULT_POINTS,
    arms: Sequence[str] = ARMS,
    *,
    device: str = "cpu",
    progress: bool = True,
    log: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """The instability of the dense network, round ``round_index``'s ticket and its reinit control at each k.

    Args:
        run: a finished ``minilottery imp`` run folder; every network trains with its settings.
        data: its ``Dataset`` (the test split is the one evaluated along the paths).
        out_dir: where ``instability.json`` goes. A folder holding the same analysis continues it (the
            (arm, k) pairs it has are not trained again); one holding another analysis is refused.
        ks: the iterations to spawn the two children from (each in 0..iterations - 1).
        points: the number of α values on each path, both ends included.
        arms: a subset of ``ARMS``.

    Returns:
        The content of ``instability.json``: the run, model, data set, round, its percent of weights, the
        α values, the data seeds, the config, and ``results``: one entry per (arm, k) with ``errors`` (one per
        α), ``instability`` and each child's ``ARM_METRICS``.
    """
    source = SourceRun.read(run)
    check_round(source, round_index)
    check_target(source, data, [round_index], None)  # images of the shape the run's model takes
    config = source.config
    ks = check_ks(ks, config.train.iterations)
    check_arms(arms)
    ticket_masks = source.masks(round_index)
    header = {"run": str(source.path), "model": config.model, "dataset": config.dataset, "round": round_index,
              "percent_remaining": source.rounds[round_index]["percent_remaining"], "alphas": alphas(points),
              "data_seeds": {"parent": config.train.seed, "children": child_seeds(config)},
              "config": config.to_dict()}
    out = Path(out_dir)
    x_test, y_test = to_device(data.x_test, device), to_device(data.y_test, device)  # once, not once per α
    with runs.locked(out):
        record = open_record(out / INSTABILITY_FILE, header, "instability analysis")
        for arm in [arm for arm in ARMS if arm in arms]:
            done = {row["k"] for row in record["results"] if row["arm"] == arm}
            todo = [k for k in ks if k not in done]
            if not todo:
                continue
            # The ticket is the transfer module's "transfer" arm: the round's masks and the run's start, as found.
            start, masks = arm_start_and_masks(source, "transfer" if arm == "ticket" else arm, round_index,
                                               ticket_masks)
            children = spawn(config, data, start, masks, todo, device, progress, f"round {round_index} {arm}")
            model = network(config, source.input_shape, start, masks, device)
            for k in todo:
                a, b = (child.final_weights for child in children[k])
                errors = path_errors(model, a, b, x_test, y_test, header["alphas"], config.train.eval_batch_size)
                row = {"arm": arm, "k": k, "percent_remaining": sparsity(masks)["percent"],
                       "instability": instability(errors), "errors": errors,
                       "children": [{name: child.metrics[name] for name in ARM_METRICS} for child in children[k]]}
                record["results"] = sorted([*record["results"], row], key=lambda r: (ARMS.index(r["arm"]), r["k"]))
                runs.atomic_write_json(out / INSTABILITY_FILE, record)
                if log is not None:
                    log(f"{arm} ({row['percent_remaining']:.1f}% of weights), k = {k}: instability "
                        f"{100 * row['instability']:.2f} points (errors at the ends {100 * errors[0]:.2f}% and "
                        f"{100 * errors[-1]:.2f}%, highest {100 * max(errors):.2f}%)")
    return record


def open_record(path: Path, header: dict[str, Any], what: str) -> dict[str, Any]:
    """The record at ``path`` to continue when its header equals ``header`` (a new one when there is none);
    a record of another analysis is refused in one line."""
    if not path.is_file():
        return {**header, "results": []}
    old = runs.read_json(path, dict)
    if any(old.get(key) != value for key, value in header.items()):
        raise ValueError(f"{path.parent} holds another {what} ({path}); choose another --out")
    return old


# -- the table and the figures ----------------------------------------------------------------------------------------


def format_instability(record: dict[str, Any]) -> str:
    """The analysis as a table: per arm and k, the two ends' test errors, the highest on the path, the instability,
    and how far the highest point rises above the higher end (0 when the highest point is an end: no barrier at all,
    the instability then being half the ends' difference); all in percentage points."""
    lines = [f"instability of {record['model']} on {record['dataset']} ({record['run']}, round {record['round']}: "
             f"{record['percent_remaining']:.2f}% of weights), {len(record['alphas'])} points per path; test error (%)",
             "  ".join([f"{'arm':<7}", f"{'weights':>8}", f"{'k':>6}", f"{'end A':>7}", f"{'end B':>7}",
                        f"{'highest':>8}", f"{'instability':>11}", f"{'above ends':>10}"])]
    for row in record["results"]:
        errors = row["errors"]
        lines.append("  ".join([f"{row['arm']:<7}", f"{row['percent_remaining']:>7.2f}%", f"{row['k']:>6,}",
                                f"{100 * errors[0]:>7.2f}", f"{100 * errors[-1]:>7.2f}",
                                f"{100 * max(errors):>8.2f}", f"{100 * row['instability']:>11.2f}",
                                f"{100 * (max(errors) - max(errors[0], errors[-1])):>10.2f}"]))
    return "\n".join(lines)


def _styles() -> dict[str, dict[str, Any]]:
    from minilottery.lab.plots import ARM_STYLE

    return {"dense": {"label": "dense network", "color": "0.35", "linestyle": (0, (6, 4)), "marker": "D"},
            "ticket": ARM_STYLE["ticket"], "reinit": ARM_STYLE["reinit"]}


def plot_instability(record: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Draws ``FIGURES`` into ``out_dir`` (.png and .pdf each): the test error along every path, one panel per k,
    and the instability against k, one line per arm. Returns the paths written."""
    import matplotlib
    from matplotlib.figure import Figure

    from minilottery.lab.plots import MARKER_EDGE, RC, save_figure

    styles = _styles()
    network_name = f"{record['model']} on {record['dataset']}, round {record['round']} " \
                   f"({record['percent_remaining']:.1f}% of weights)"
    ks = sorted({row["k"] for row in record["results"]})
    arms = [arm for arm in ARMS if any(row["arm"] == arm for row in record["results"])]
    paths = []
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(max(7.5, 4.2 * len(ks) + 1.0), 5.2), layout="constrained")
        axes = fig.subplots(1, max(len(ks), 1), squeeze=False, sharey=True)[0]
        for ax, k in zip(axes, ks):
            for row in record["results"]:
                if row["k"] == k:
                    ax.plot(record["alphas"], [100 * e for e in row["errors"]], markevery=max(len(row["errors"]) // 6,
                            1), **MARKER_EDGE, **styles[row["arm"]])
            ax.set_title(f"children from iteration k = {k:,}")
            ax.set_xlabel("α (0: child A, 1: child B)")
        axes[0].set_ylabel("test error (%)")
        axes[0].legend()
        fig.suptitle(f"Test error on the line between two children\n{network_name}")
        paths += save_figure(fig, out_dir, FIGURES[0])

        fig = Figure(figsize=(7.5, 5.0), layout="constrained")
        ax = fig.subplots()
        for arm in arms:
            rows = [row for row in record["results"] if row["arm"] == arm]
            ax.plot([row["k"] for row in rows], [100 * row["instability"] for row in rows], **MARKER_EDGE,
                    **styles[arm])
        ax.set_xlabel("iteration k the two copies start from")
        ax.set_ylabel("instability (percentage points)")
        ax.set_xticks(ks)
        ax.set_title(f"Instability to SGD noise\n{network_name}")
        ax.legend()
        paths += save_figure(fig, out_dir, FIGURES[1])
    return paths


__all__ = ["ARMS", "CHILD_SEED_OFFSETS", "DEFAULT_KS", "DEFAULT_POINTS", "FIGURES", "INSTABILITY_FILE", "alphas",
           "check_arms", "check_ks", "check_round", "child_seeds", "format_instability", "instability", "interpolate",
           "network", "open_record", "path_errors", "plot_instability", "run_instability", "spawn"]
