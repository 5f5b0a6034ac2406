"""The results of a run as text: the table ``minilottery report`` prints, and the CSV files.

A summary is ``{"config": {...}, "rounds": [round.json, ...]}`` (``runs.load_summary``); a trials folder's
aggregate (``trials.aggregate``) has the same shape, with each round's min and max in ``"spread"``. Here is
the one place that turns either into text:

* ``format_table``: the aligned table, one row per round, three columns per arm;
* ``run_csv``: DIR/summary.csv of one run: ``round, percent_remaining, <arm>_<metric>, ...``;
* ``trials_csv``: OUT/summary.csv of trials: ``round, percent_remaining, trials, <arm>_<metric>_<mean|min|max>``;
* ``format_csv``: whichever of the two the summary is (``minilottery report --csv``).

Accuracies stay fractions in the CSV files; the table shows them as percent. An arm that did not run in a
round (the controls skip round 0) is an empty CSV cell and a "-" in the table.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from typing import Any

from minilottery.imp import ARM_METRICS, ARMS

STATS = ("mean", "min", "max")  # per metric in a trials CSV

ARM_TITLES = {"ticket": "winning ticket", "reinit": "random reinit", "random_prune": "random pruning"}
# (column title, key in round.json's arms entry, how to show it)
ARM_COLUMNS = (
    ("stop iter", "early_stop_iteration", lambda v: f"{round(v):,}"),  # a mean over trials is not whole
    ("acc@stop %", "test_accuracy_at_early_stop", lambda v: f"{100.0 * v:.2f}"),
    ("final %", "final_test_accuracy", lambda v: f"{100.0 * v:.2f}"),
)
SPREAD_KEYS = ("early_stop_iteration", "test_accuracy_at_early_stop")  # trials: [min, max] shown for these
MISSING = "-"
GAP = "   "  # between arm groups


def arms_in(summary: dict) -> list[str]:
    """The arms that ran in at least one round: the known ones in paper order, then any others."""
    seen = []
    for rnd in summary.get("rounds", []):
        for arm in rnd.get("arms", {}):
            if arm not in seen:
                seen.append(arm)
    return [a for a in ARMS if a in seen] + [a for a in seen if a not in ARMS]


# -- CSV --------------------------------------------------------------------------------------------


def is_trials_summary(summary: Mapping[str, Any]) -> bool:
    """True for a trials aggregate (its rounds carry the min and max over trials in "spread")."""
    return any("spread" in r for r in summary.get("rounds", []))


def format_csv(summary: Mapping[str, Any]) -> str:
    """The summary as CSV with the columns of its summary.csv: ``trials_csv`` for trials, else ``run_csv``."""
    return trials_csv(summary) if is_trials_summary(summary) else run_csv(summary)


def run_csv(summary: Mapping[str, Any]) -> str:
    """DIR/summary.csv: one row per round; per arm its ``ARM_METRICS`` (empty where the arm did not run)."""
    arms = csv_arms(summary)
    header = ["round", "percent_remaining"] + [f"{arm}_{key}" for arm in arms for key in ARM_METRICS]
    rows = []
    for r in summary["rounds"]:
        row = [r["round"], repr(float(r["percent_remaining"]))]
        for arm in arms:
            values = r["arms"].get(arm) or {}
            row += [_cell(values.get(key)) for key in ARM_METRICS]
        rows.append(row)
    return _csv(header, rows)


def trials_csv(summary: Mapping[str, Any]) -> str:
    """OUT/summary.csv of trials: per round and arm, each metric's mean, min and max over the trials."""
    arms = csv_arms(summary)
    header = ["round", "percent_remaining", "trials"]
    header += [f"{arm}_{key}_{stat}" for arm in arms for key in ARM_METRICS for stat in STATS]
    rows = []
    for r in summary["rounds"]:
        row = [r["round"], repr(float(r["percent_remaining"])), max(s["n"] for s in r["spread"].values())]
        for arm in arms:
            for key in ARM_METRICS:
                spread = (r["spread"].get(arm) or {}).get(key) or {}
                row += [_cell(r["arms"].get(arm, {}).get(key)), _cell(spread.get("min")), _cell(spread.get("max"))]
        rows.append(row)
    return _csv(header, rows)


def csv_arms(summary: Mapping[str, Any]) -> list[str]:
    """The arms a CSV has columns for: "ticket" and the config's controls (in its order, so every round of a
    run has the same columns from round 0 on), then any other arm a round names (in ``ARMS`` order first)."""
    named = ["ticket", *summary.get("config", {}).get("controls", ())]
    seen = [arm for r in summary.get("rounds", []) for arm in r.get("arms", {})]
    return list(dict.fromkeys(named + [arm for arm in ARMS if arm in seen] + seen))


def _cell(value: Any) -> Any:
    return "" if value is None else value


def _csv(header: list[str], rows: Iterable[list[Any]]) -> str:
    """The one CSV writer: a header, then the rows, "\\n" line ends."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


# -- the table --------------------------------------------------------------------------------------


def format_table(summary: Mapping[str, Any]) -> str:
    """The summary as an aligned text table: round, % weights remaining, then per arm three columns.

    Accuracies (fractions in the JSON) are shown as percent; an arm that did not run in a round (control arms
    skip round 0) shows "-". For trials each cell is the mean with [min, max] beside it.
    """

    rounds = summary.get("rounds", [])
    arms = arms_in(summary)
    head = ["round", "weights %"]
    rows = [[str(r["round"]), f"{float(r['percent_remaining']):.1f}"] for r in rounds]
    for arm in arms:
        head += [title for title, _, _ in ARM_COLUMNS]
        for row, rnd in zip(rows, rounds):
            entry = rnd.get("arms", {}).get(arm, {})
            spread = rnd.get("spread", {}).get(arm, {})  # trials: the min and max around each mean
            row += [_table_cell(entry.get(key), spread.get(key) if key in SPREAD_KEYS else None, show)
                    for _, key, show in ARM_COLUMNS]
    widths = [max(len(line[i]) for line in [head] + rows) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        base = "  ".join(c.rjust(w) for c, w in zip(cells[:2], widths[:2]))
        groups = []
        for a in range(len(arms)):
            k = 2 + 3 * a
            groups.append("  ".join(c.rjust(w) for c, w in zip(cells[k : k + 3], widths[k : k + 3])))
        return GAP.join([base] + groups).rstrip()

    # Arm titles centred over their three columns.
    title_cells = [" " * len("  ".join(" " * w for w in widths[:2]))]
    for a, arm in enumerate(arms):
        width = len("  ".join(" " * w for w in widths[2 + 3 * a : 5 + 3 * a]))
        title = ARM_TITLES.get(arm, arm)
        title_cells.append(f" {title} ".center(width, "-") if width >= len(title) + 2 else title.ljust(width))
    out = [GAP.join(title_cells).rstrip(), line(head)]
    out += [line(row) for row in rows]
    if not rounds:
        out.append("(no completed round yet)")
    if is_trials_summary(summary):
        out.append(f"mean over {len(summary.get('trials', []))} trials (seeds "
                   f"{', '.join(str(s) for s in summary.get('trials', []))}); [min, max] in brackets")
    out.append("stop iter: early-stop iteration (minimum validation loss)")
    out.append("acc@stop: test accuracy there; final: test accuracy at the last iteration")
    return "\n".join(out)


def _table_cell(value, spread, show) -> str:
    """"98.20", or for trials "98.20 [98.05, 98.31]" (mean [min, max]); "-" where the arm did not run."""
    if value is None:
        return MISSING
    if not spread:
        return show(value)
    return f"{show(value)} [{show(spread['min'])}, {show(spread['max'])}]"


__all__ = ["csv_arms", "format_csv", "format_table", "is_trials_summary", "run_csv", "trials_csv"]
