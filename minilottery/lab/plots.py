"""Figures of an IMP run, drawn from its run directory (format: ``minilottery/lab/runs.py`` and the design notes).

``plot_run(run_dir)`` writes five figures, each as PNG (150 dpi) and PDF, into ``run_dir/figures/``:

- ``accuracy_vs_weights``     test accuracy at early stop vs percent of weights remaining, one line per arm
                              (the paper's Figure 4 style; Frankle & Carbin 2019, Section 2).
- ``early_stop_vs_weights``   early-stop iteration vs percent of weights remaining (Figure 4, left column).
- ``learning_curves``         test accuracy vs training iteration at a few pruning levels, winning ticket solid,
                              random reinitialization dashed (Figure 3 style).
- ``first_layer_mask``        how many connections each input pixel keeps in LeNet's first layer (only when the
                              first prunable layer is Dense with 784 inputs).
- ``layer_percent_by_round``  percent of weights remaining in each layer, round by round.

A ``minilottery trials`` folder is drawn the same way from its aggregate: each point is the mean over the trials
with error bars from the minimum to the maximum (as the paper draws its five trials), the dense network's range
is a grey band, learning curves are means with the min-max range shaded, and the mask is the first trial's.

Every ``plot_*`` function takes already-loaded data (the summary dict of ``load_summary``, histories, masks: read
by ``minilottery.lab.plot_data``, whose loaders this module re-exports) and returns a ``matplotlib.figure.Figure``,
so a tutorial can call it on its own and show or save the result.
Figures are built with ``Figure()`` rather than ``pyplot``: no backend is selected and no global figure list
grows, so this module is safe to use inside Jupyter as well as in a headless run.

The figures are meant to be printed: large fonts, thick lines, and each line has its own marker and line style,
so they still read in grayscale.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from minilottery.files import atomic_savefig
from minilottery.lab import runs
from minilottery.lab.plot_data import (
    LEARNING_CURVE_TARGETS,
    arm_series,
    arm_spread,
    dense_spread,
    dense_value,
    first_layer_name,
    load_histories,
    load_masks,
    load_summary,
    mask_rounds,
    percent_by_round,
    select_rounds,
    trial_run_dirs,
)
from minilottery.lab.runs import FIGURES  # the run folder's layout names the figures
from minilottery.lab.tables import arms_in  # the tables' arm order

# One colour, line style and marker per arm, so the arms differ in grayscale too.
ARM_STYLE = {
    "ticket": {"label": "winning ticket (original init)", "color": "#1f5fa8", "linestyle": "-", "marker": "o"},
    "reinit": {"label": "random reinit", "color": "#d0571b", "linestyle": "--", "marker": "s"},
    "random_prune": {"label": "random pruning", "color": "#2b8a3e", "linestyle": ":", "marker": "^"},
}
# For lines that are not arms (rounds in the learning curves, layers): cycled together.
COLORS = ("#1f5fa8", "#d0571b", "#2b8a3e", "#7b3294", "#8c6d1f", "#c51b7d", "#404040")
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
LINESTYLES = ("-", "--", ":", "-.")
MARKER_EDGE = {"markeredgecolor": "white", "markeredgewidth": 0.8}  # markers stay apart where lines cross

# Print-readable defaults, applied while a figure is built and while it is saved.
RC = {
    "font.size": 13,
    "axes.titlesize": 14,
    "axes.labelsize": 14,
    "legend.fontsize": 11,
    "xtick.labelsize": 12,
    "ytick.labelsize": 12,
    "lines.linewidth": 2.5,
    "lines.markersize": 8,
    "axes.grid": True,
    "grid.alpha": 0.35,
    "grid.linestyle": "-",
    "legend.framealpha": 0.9,
}
DPI = 150
X_LABEL = "weights remaining (%, log scale)"

# ----------------------------------------------------------------------------------------------------------------
# Figures and their axes


def _fmt_percent(p: float) -> str:
    """100 -> "100", 51.2 -> "51.2", 0.56 -> "0.56": one decimal above 1%, two significant digits below."""
    if p >= 99.95:
        return "100"
    return f"{p:.1f}" if p >= 1 else f"{p:.2g}"


def _percent_ticks(percents, max_ticks: int = 8) -> list[float]:
    """Tick positions at the rounds' own percents, thinned to about ``max_ticks`` evenly spaced in log scale."""
    percents = sorted(set(percents), reverse=True)
    # Neighbouring ticks at least this factor apart: all rounds of a short run, every few rounds of a long one.
    min_ratio = (percents[0] / percents[-1]) ** (1 / (max_ticks - 1)) if len(percents) > max_ticks else 1.0
    ticks = []
    for p in percents:
        if not ticks or ticks[-1] / p >= min_ratio * 0.999:
            ticks.append(p)
    return ticks


@contextlib.contextmanager
def _drawing(figsize=(7.5, 5.0), ncols=1) -> Iterator[tuple[Figure, list]]:
    """A new figure and its row of ``ncols`` axes, built and drawn on under the print-readable ``RC``."""
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=figsize, layout="constrained")
        yield fig, list(fig.subplots(1, ncols, squeeze=False)[0])


def _cycled(i: int) -> dict:
    """The colour and marker of the ``i``-th line that is not an arm (rounds, layers)."""
    return {"color": COLORS[i % len(COLORS)], "marker": MARKERS[i % len(MARKERS)]}


def _style_axes(ax) -> None:
    """Fix the font sizes on the axes itself, so they hold when the figure is drawn outside ``rc_context``."""
    ax.tick_params(which="both", labelsize=RC["xtick.labelsize"])
    ax.xaxis.label.set_size(RC["axes.labelsize"])
    ax.yaxis.label.set_size(RC["axes.labelsize"])
    ax.title.set_size(RC["axes.titlesize"])


def percent_x_axis(ax, percents) -> None:
    """Log-scaled, reversed percent axis (100 on the left, as in the paper) with ticks at the rounds' percents."""
    ax.set_xscale("log")
    percents = [p for p in percents if p > 0] or [100.0]  # 0% has no place on a log axis
    ticks = _percent_ticks(percents)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda p, _: _fmt_percent(p)))
    ax.xaxis.set_minor_locator(NullLocator())
    lo, hi = min(percents), max(percents)
    pad = max(1.04, (hi / lo) ** 0.05)  # 5% of the log range on each side
    if hi / lo < 1.01:
        pad = 1.5  # a single round: give the lone point some room
    ax.set_xlim(hi * pad, lo / pad)  # reversed: 100% on the left, pruning proceeds to the right
    ax.set_xlabel(X_LABEL)
    ax.grid(True, which="major", alpha=RC["grid.alpha"])


def _title(summary: dict, what: str) -> str:
    config = summary.get("config", {})
    model, dataset = config.get("model"), config.get("dataset")
    network = f"{model} on {dataset}" if model and dataset else model
    trials = summary.get("trials")
    if trials:  # a second line: the title is long
        return f"{what}\n({network}, mean of {len(trials)} trials, min-max range)"
    return f"{what} ({network})" if network else what


def _arm_lines(ax, summary: dict, key: str, scale: float) -> list[float]:
    """One line per arm of ``key`` (times ``scale``) vs percent remaining; returns every percent drawn."""
    percents = []
    for i, arm in enumerate(arms_in(summary)):
        xs, ys = arm_series(summary, arm, key)
        spread = arm_spread(summary, arm, key)
        drawable = [j for j, x in enumerate(xs) if x > 0]  # a log axis has no 0%: those rounds are left out
        xs, ys = [xs[j] for j in drawable], [ys[j] for j in drawable]
        if spread is not None:
            spread = ([spread[0][j] for j in drawable], [spread[1][j] for j in drawable])
        if not xs:
            continue
        style = ARM_STYLE.get(arm, {"label": arm, "linestyle": "-.", **_cycled(i)})
        if spread is None:
            ax.plot(xs, [y * scale for y in ys], **MARKER_EDGE, **style)
        else:  # trials: the mean, with error bars from the minimum to the maximum, as in the paper
            below = [scale * (y - lo) for y, lo in zip(ys, spread[0])]
            above = [scale * (hi - y) for y, hi in zip(ys, spread[1])]
            ax.errorbar(xs, [y * scale for y in ys], yerr=[below, above], capsize=4, elinewidth=1.3, **MARKER_EDGE,
                        **style)
        percents.extend(xs)
    return percents


def plot_accuracy_vs_weights(summary: dict) -> Figure:
    """Test accuracy at early stop (%) vs percent of weights remaining, one line per arm (Figure 4 style)."""
    return _metric_vs_weights(summary, "test_accuracy_at_early_stop", 100.0, "test accuracy at early stop (%)",
                              "Accuracy as the network is pruned")


def plot_early_stop_vs_weights(summary: dict) -> Figure:
    """Early-stop iteration (minimum validation loss) vs percent of weights remaining, one line per arm."""
    fig = _metric_vs_weights(summary, "early_stop_iteration", 1.0, "early-stop iteration\n(min. validation loss)",
                             "How fast the network learns")
    fig.axes[0].set_ylim(bottom=0)
    return fig


def _metric_vs_weights(summary: dict, key: str, scale: float, ylabel: str, title: str) -> Figure:
    """One line per arm of ``key`` (times ``scale``) vs % of weights remaining, the dense value dashed."""
    with _drawing() as (fig, (ax,)):
        percents = _arm_lines(ax, summary, key, scale)
        dense = dense_value(summary, key)
        if dense is not None:
            ax.axhline(scale * dense, color="0.35", linestyle=(0, (6, 4)), linewidth=1.5, label="dense network")
            spread = dense_spread(summary, key)
            if spread is not None:  # trials: the dense network's min-max band
                ax.axhspan(scale * spread["min"], scale * spread["max"], color="0.35", alpha=0.12, linewidth=0)
        percent_x_axis(ax, percents or [100.0])
        ax.set_ylabel(ylabel)
        ax.set_title(_title(summary, title))
        ax.legend(loc="best")
        _style_axes(ax)
    return fig


def plot_learning_curves(summary: dict, histories: dict[int, dict[str, dict]], rounds=None) -> Figure:
    """Test accuracy (%) vs training iteration at a few rounds (Figure 3 style).

    histories: ``{round: {arm: history}}`` as ``load_histories`` returns. rounds: which rounds to draw
    (default: those closest to 100, 51.3, 21.1, 7.0 and 3.6% of weights). Winning tickets are solid lines;
    randomly reinitialized networks at the same round are dashed, in the same colour and marker.
    """
    percent = percent_by_round(summary)
    if rounds is None:
        rounds = select_rounds(summary)
    rounds = [r for r in rounds if r in histories and "ticket" in histories[r]]
    with _drawing(figsize=(8.0, 5.2)) as (fig, (ax,)):
        handles, visible = [], []
        dashed_drawn = False
        for i, number in enumerate(rounds):
            style = _cycled(i)
            label = f"{_fmt_percent(percent[number])}%" if number in percent else f"round {number}"
            for arm, linestyle in (("ticket", "-"), ("reinit", "--")):
                history = histories[number].get(arm)
                if not history or not history.get("iteration"):
                    continue
                it = np.asarray(history["iteration"], dtype=float)
                acc = 100.0 * np.asarray(history["test_accuracy"], dtype=float)
                visible.append(acc[it >= 0.2 * it.max()])  # for the y range: skip the first steps
                ax.plot(it, acc, linestyle=linestyle, markevery=max(1, len(it) // 8), **MARKER_EDGE, **style)
                if "test_accuracy_min" in history:  # trials: shade from the minimum to the maximum
                    ax.fill_between(it, 100.0 * np.asarray(history["test_accuracy_min"], dtype=float),
                                    100.0 * np.asarray(history["test_accuracy_max"], dtype=float),
                                    color=style["color"], alpha=0.15, linewidth=0)
                dashed_drawn |= arm == "reinit"
            handles.append(Line2D([], [], linestyle="-", label=label, **style))
        if dashed_drawn:
            handles.append(Line2D([], [], color="0.3", linestyle="-", label="winning ticket"))
            handles.append(Line2D([], [], color="0.3", linestyle="--", label="random reinit"))
        if visible:
            # The first iterations sit near chance (10%); zoom on the trained range as the paper does.
            values = np.concatenate(visible)
            lo, hi = float(values.min()), float(values.max())
            pad = max(0.5, 0.08 * (hi - lo))
            ax.set_ylim(max(0.0, lo - pad), min(100.0, hi + pad))
        else:
            ax.text(0.5, 0.5, "no learning curves in this run", transform=ax.transAxes, ha="center")
        ax.set_xlabel("training iteration")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(_title(summary, "Learning curves at several pruning levels"))
        if handles:
            ax.legend(handles=handles, title="weights remaining", loc="best", ncols=2 if dashed_drawn else 1)
        _style_axes(ax)
    return fig


def plot_first_layer_mask(masks: dict[int, np.ndarray], summary: dict | None = None, name: str = "") -> Figure | None:
    """How many connections each input pixel keeps in the first layer, as 28x28 images, one panel per round.

    masks: ``{round: mask}`` of a Dense layer, each (out_features, 784) with 0/1 entries. Returns None when the
    layer is not a Dense layer on 28x28 inputs (e.g. a conv first layer), where such a picture means nothing.
    Each panel has its own colour scale (0 to its maximum), since later rounds keep far fewer connections.
    """
    masks = {r: m for r, m in masks.items() if m.ndim == 2 and m.shape[1] == 28 * 28}
    if not masks:
        return None
    percent = percent_by_round(summary)
    shown = mask_rounds(list(masks))
    with _drawing(figsize=(3.6 * len(shown) + 0.6, 4.0), ncols=len(shown)) as (fig, axes):
        for ax, number in zip(axes, shown):
            mask = masks[number]
            kept = mask.sum(axis=0).reshape(28, 28)  # (out, 784) -> (784,) -> (28, 28): connections per pixel
            image = ax.imshow(kept, cmap="viridis", vmin=0, vmax=max(1.0, float(kept.max())), interpolation="nearest")
            layer_pct = 100.0 * mask.mean()
            total = f", {_fmt_percent(percent[number])}% overall" if number in percent else ""
            ax.set_title(f"round {number}\n{_fmt_percent(layer_pct)}% of layer{total}", fontsize=RC["font.size"])
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            bar = fig.colorbar(image, ax=ax, shrink=0.85)
            bar.ax.tick_params(labelsize=RC["xtick.labelsize"] - 1)
        axes[0].set_ylabel("28 x 28 input pixels", fontsize=RC["axes.labelsize"])
        out = next(iter(masks.values())).shape[0]
        fig.suptitle(f"First layer{' ' + name if name else ''}: connections kept per input pixel "
                     f"(of {out})", fontsize=RC["axes.titlesize"])
    return fig


def plot_layer_percent_by_round(summary: dict) -> Figure:
    """Percent of weights remaining in each layer vs round, log y; the whole network as a thick gray line."""
    rounds = summary.get("rounds", [])
    with _drawing() as (fig, (ax,)):
        names = []
        for rnd in rounds:
            names.extend(n for n in rnd.get("layers", {}) if n not in names)
        for i, name in enumerate(names):
            points = [(r["round"], r["layers"][name]) for r in rounds if name in r.get("layers", {})]
            xs = [x for x, _ in points]
            ys = [_on_log_axis(info["percent"]) for _, info in points]
            total = points[0][1].get("total")
            label = f"{name} ({total:,} weights)" if total else name
            ax.plot(xs, ys, linestyle=LINESTYLES[i % len(LINESTYLES)], label=label, **MARKER_EDGE, **_cycled(i))
        if rounds:
            ax.plot([r["round"] for r in rounds], [_on_log_axis(r["percent_remaining"]) for r in rounds], color="0.45",
                    linewidth=5, alpha=0.6, zorder=0, label="whole network")
        ax.set_yscale("log")
        _plain_log_labels(ax.yaxis, [r["percent_remaining"] for r in rounds] or [100.0])
        ax.set_xlabel("pruning round")
        ax.set_ylabel("weights remaining (%, log scale)")
        if rounds:
            numbers = [r["round"] for r in rounds]
            step = max(1, math.ceil(len(numbers) / 12))  # at most ~12 integer ticks
            ax.set_xticks(numbers[::step])
        ax.set_title(_title(summary, "Weights remaining in each layer"))
        ax.legend(loc="best")
        _style_axes(ax)
    return fig


def _on_log_axis(percent: float) -> float:
    """``percent``, or nan (not drawn: the line ends there) for 0%, which a log axis cannot show."""
    return float(percent) if percent > 0 else math.nan


def _plain_log_labels(axis, values) -> None:
    """Label a log axis with plain percents (100, 50, 20) instead of 10^2; within one decade label 2..9 too."""
    values = [v for v in values if v > 0] or [100.0]  # a layer pruned to 0% has no place on a log axis
    span = max(values) / min(values)
    labelled = set(range(2, 10)) if span < 10 else {2, 5}

    def minor(p, _):
        digit = round(p / 10 ** math.floor(math.log10(p) + 1e-9))  # 40 -> 4, 0.5 -> 5
        return f"{p:g}" if digit in labelled else ""

    axis.set_major_formatter(FuncFormatter(lambda p, _: f"{p:g}"))
    axis.set_minor_formatter(FuncFormatter(minor))


def save_figure(fig: Figure, out_dir: str | Path, name: str) -> list[Path]:
    """Write ``fig`` as out_dir/name.png (150 dpi) and out_dir/name.pdf; returns the two paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    with matplotlib.rc_context(RC):
        for ext in ("png", "pdf"):
            path = out_dir / f"{name}.{ext}"
            paths.append(atomic_savefig(fig, path, dpi=DPI))
    return paths


def plot_run(run_dir: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """Draw every figure of a run directory into ``out_dir`` (default DIR/figures); returns the files written.

    Figures that do not apply are skipped: ``first_layer_mask`` for a network whose first layer is not a
    Dense layer on 28x28 inputs, ``learning_curves`` when no round has its metrics.json.
    """
    run_dir = Path(run_dir)
    summary = load_summary(run_dir)
    if not summary.get("rounds"):
        raise ValueError(f"{run_dir} has no completed round yet; run `minilottery imp` until round 0 finishes")
    # The default folder is the run's own: refuse a symlink there rather than write through it.
    out_dir = Path(out_dir) if out_dir is not None else runs.check_real_folder(run_dir / runs.FIGURES_FOLDER, run_dir)
    written = []
    written += save_figure(plot_accuracy_vs_weights(summary), out_dir, "accuracy_vs_weights")
    written += save_figure(plot_early_stop_vs_weights(summary), out_dir, "early_stop_vs_weights")
    histories = load_histories(run_dir, rounds=select_rounds(summary))
    if histories:
        written += save_figure(plot_learning_curves(summary, histories), out_dir, "learning_curves")
    name = first_layer_name(summary)
    if name is not None:
        shown = mask_rounds([r["round"] for r in summary["rounds"]])
        fig = plot_first_layer_mask(load_masks(run_dir, name, rounds=shown), summary, name)
        if fig is not None:
            written += save_figure(fig, out_dir, "first_layer_mask")
    written += save_figure(plot_layer_percent_by_round(summary), out_dir, "layer_percent_by_round")
    return written


__all__ = [  # the loaders and readers of ``plot_data`` stay importable from here, where they always were
    "ARM_STYLE", "COLORS", "FIGURES", "LEARNING_CURVE_TARGETS", "MARKERS", "arm_series", "arm_spread", "arms_in",
    "dense_spread", "dense_value", "first_layer_name", "load_histories", "load_masks", "load_summary", "mask_rounds",
    "plot_accuracy_vs_weights", "plot_early_stop_vs_weights", "plot_first_layer_mask", "plot_layer_percent_by_round",
    "plot_learning_curves", "plot_run", "save_figure", "select_rounds", "trial_run_dirs",
]
