"""``minilottery report DIR``: the results of an IMP run as a table, one row per pruning round.

For each round: the percent of weights remaining and, per arm (winning ticket, random reinit, random pruning),
the early-stop iteration (minimum validation loss), the test accuracy there and the final test accuracy. For a
``minilottery trials`` folder each cell is the mean over the trials with [min, max] beside it.
``--csv`` prints the same numbers as CSV (the columns of DIR/summary.csv), ``--json`` the whole summary.
"""

from __future__ import annotations

import argparse
import csv
import io
import json

ARM_TITLES = {"ticket": "winning ticket", "reinit": "random reinit", "random_prune": "random pruning"}
# (column title, key in round.json's arms entry, how to show it)
ARM_COLUMNS = (
    ("stop iter", "early_stop_iteration", lambda v: f"{round(v):,}"),  # a mean over trials is not whole
    ("acc@stop %", "test_accuracy_at_early_stop", lambda v: f"{100.0 * v:.2f}"),
    ("final %", "final_test_accuracy", lambda v: f"{100.0 * v:.2f}"),
)
SPREAD_KEYS = ("early_stop_iteration", "test_accuracy_at_early_stop")  # trials: [min, max] shown for these
CSV_KEYS = ("early_stop_iteration", "test_accuracy_at_early_stop", "final_test_accuracy")
MISSING = "-"
GAP = "   "  # between arm groups


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("report", help="print the results table of an IMP run",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", metavar="DIR", help="run directory written by `minilottery imp`")
    fmt = parser.add_mutually_exclusive_group()
    fmt.add_argument("--csv", action="store_true", help="print CSV (accuracies as fractions) instead of a table")
    fmt.add_argument("--json", action="store_true", help="print the run's summary as JSON")
    parser.set_defaults(func=run)
    return parser


def _arms(summary: dict) -> list[str]:
    from minilottery.lab.plots import arms_in  # the same arm order as the figures

    return arms_in(summary)


def format_table(summary: dict) -> str:
    """The summary as an aligned text table: round, % weights remaining, then per arm three columns.

    summary: ``{"config": {...}, "rounds": [round.json contents, ...]}``. Accuracies (fractions in the JSON)
    are shown as percent; an arm that did not run in a round (control arms skip round 0) shows "-".
    """
    rounds = summary.get("rounds", [])
    arms = _arms(summary)
    head = ["round", "weights %"]
    rows = [[str(r["round"]), f"{float(r['percent_remaining']):.1f}"] for r in rounds]
    for arm in arms:
        head += [title for title, _, _ in ARM_COLUMNS]
        for row, rnd in zip(rows, rounds):
            entry = rnd.get("arms", {}).get(arm, {})
            spread = rnd.get("spread", {}).get(arm, {})  # trials: the min and max around each mean
            row += [_cell(entry.get(key), spread.get(key) if key in SPREAD_KEYS else None, show)
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
    if any("spread" in r for r in rounds):
        out.append(f"mean over {len(summary.get('trials', []))} trials (seeds "
                   f"{', '.join(str(s) for s in summary.get('trials', []))}); [min, max] in brackets")
    out.append("stop iter: early-stop iteration (minimum validation loss)")
    out.append("acc@stop: test accuracy there; final: test accuracy at the last iteration")
    return "\n".join(out)


def _cell(value, spread, show) -> str:
    """"98.20", or for trials "98.20 [98.05, 98.31]" (mean [min, max]); "-" where the arm did not run."""
    if value is None:
        return MISSING
    if not spread:
        return show(value)
    return f"{show(value)} [{show(spread['min'])}, {show(spread['max'])}]"


def format_csv(summary: dict) -> str:
    """The summary as CSV with the columns of DIR/summary.csv (accuracies as fractions, empty where missing)."""
    arms = _arms(summary)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["round", "percent_remaining"] + [f"{arm}_{key}" for arm in arms for key in CSV_KEYS])
    for rnd in summary.get("rounds", []):
        row = [rnd["round"], rnd["percent_remaining"]]
        for arm in arms:
            entry = rnd.get("arms", {}).get(arm, {})
            row += ["" if entry.get(key) is None else entry[key] for key in CSV_KEYS]
        writer.writerow(row)
    return buffer.getvalue()


def run(args: argparse.Namespace) -> int:
    from minilottery.lab.commands._checks import reading_run
    from minilottery.lab.plots import load_summary  # ValueError, one line, when DIR is not a run directory

    with reading_run(args.run_dir):  # a summary of the wrong shape: one line, not a traceback
        summary = load_summary(args.run_dir)
        if args.json:
            text = json.dumps(summary, indent=2) + "\n"
        elif args.csv and any("spread" in r for r in summary.get("rounds", [])):  # trials: mean, min and max
            from minilottery.lab.trials import aggregate_csv

            text = aggregate_csv(summary)
        elif args.csv:
            text = format_csv(summary)
        else:
            text = format_table(summary) + "\n"
    print(text, end="")
    return 0
