"""The paper's quantitative claims about LeNet-300-100 on MNIST, kept as data, and how a run compares with them.

Frankle & Carbin (2019), Section 2 ("Winning tickets in fully-connected networks"), Figures 3 and 4, state
(for iterative pruning, reset to θ0, averaged over five trials):

* winning tickets reach early stopping sooner than the dense network: 38% earlier at 21.1% of the weights;
* at 21.1% they reach it 2.51x sooner than the same tickets randomly reinitialised;
* at 13.5% they are more than 0.3 percentage points more accurate than the dense network;
* randomly reinitialised tickets lose accuracy (fall, and stay, below the dense network) from 21.1% on;
* winning tickets stay at least as accurate as the dense network down to about 3.6% of the weights.

``check(summaries)`` measures each claim's quantity in every trial of a run and judges, honestly:

* **direction**: does the mean over trials point the same way as the paper (and in how many trials)?
* **size**: is the mean within a factor of 2 of the paper's number? For "more than X" claims: is it more than X?
  A quantity that hits the end of the run (a control still improving at the last iteration, a ticket that never
  falls below the dense network) is only a bound; it is judged as the bound it is ("unknown" when the bound
  cannot decide), and marked so.

"Ours" is measured on the mean over the trials, round by round, as the paper reads its numbers off averaged
curves; each trial is also measured alone, for the [min, max] and for how many trials point the paper's way.

**Noise**: a size that disagrees on the mean may still be within what our trials scatter over. Beside each size
verdict: how many trials agree in size alone, and whether the paper's number lies inside the trials' [min, max]
(``noise`` "inside": the paper's value is one our own trials reach, so the gap is consistent with our noise) or
outside it ("outside": every trial lands on the same side of the paper's number, a difference larger than our
spread; with 3 trials that still happens by chance 1 time in 4 when the trials scatter evenly around it).
One trial has no spread: its ``noise`` is "one trial".

Each claim is measured at the round whose percent of weights remaining is nearest (in log scale) to the
paper's, if one is within 15%; otherwise it is "not reached" by this run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

NEAR = 1.15  # a round counts as "at 21.1%" when its percent is within this factor of 21.1
SIZE_FACTOR = 2.0  # size agrees when ours is within this factor of the paper's number


@dataclass(frozen=True)
class Value:
    """One trial's measurement of a claim: the number, and whether the run's end made it only a bound."""

    number: float
    bound: str = ""  # "", ">=" (at least: a control stopped at the last iteration) or "<=" (at most)


@dataclass(frozen=True)
class Claim:
    """One quantitative statement of the paper.

    Attributes:
        key: short identifier.
        text: the statement, in our words.
        where: section and figure of the paper.
        paper: the paper's number, in ``unit``.
        unit: "%", "x", "points" or "% weights".
        kind: "about" (size agrees within a factor of 2 either way), "more than" (ours must exceed it), or
            "level" (a percent of weights remaining, within a factor of 2).
        direction: in words, the way the paper's effect points; ``holds(value)`` tests a measurement for it
            (None: a bound that cannot tell).
        measure: one trial's summary -> Value, or a str saying why it cannot be measured.
    """

    key: str
    text: str
    where: str
    paper: float
    unit: str
    kind: str
    direction: str
    holds: Callable[[Value], bool | None]
    measure: Callable[[dict], Value | str]
    effect: Callable[[float], float] = lambda v: v  # the size compared with the paper's (e.g. ratio - 1)


# -- reading a summary ------------------------------------------------------------------------------


def round_near(summary: dict, percent: float) -> dict | str:
    """The round nearest to ``percent`` % of weights remaining (log scale), or why there is none."""
    rounds = [r for r in summary.get("rounds", []) if r["round"] > 0]
    if not rounds:
        return "the run has no pruned round"
    best = min(rounds, key=lambda r: abs(math.log(r["percent_remaining"] / percent)))
    if abs(math.log(best["percent_remaining"] / percent)) > math.log(NEAR):
        reached = min(r["percent_remaining"] for r in rounds)
        return f"not reached: the run's rounds end at {reached:.1f}%" if reached > percent else \
            f"no round near {percent}%"
    return best


def _arm(rnd: dict, arm: str) -> dict | str:
    entry = rnd.get("arms", {}).get(arm)
    return entry if entry else f"the run has no {arm} arm (run with --controls reinit)"


def _dense(summary: dict) -> dict:
    return summary["rounds"][0]["arms"]["ticket"]


def _last_iteration(summary: dict) -> int:
    return int(summary["config"]["train"]["iterations"])


# -- the claims' measurements -----------------------------------------------------------------------


def _faster_than_dense(summary: dict) -> Value | str:
    rnd = round_near(summary, 21.1)
    if isinstance(rnd, str):
        return rnd
    ticket, dense = rnd["arms"]["ticket"]["early_stop_iteration"], _dense(summary)["early_stop_iteration"]
    return Value(100.0 * (1.0 - ticket / max(dense, 1)))


def _faster_than_reinit(summary: dict) -> Value | str:
    rnd = round_near(summary, 21.1)
    if isinstance(rnd, str):
        return rnd
    reinit = _arm(rnd, "reinit")
    if isinstance(reinit, str):
        return reinit
    ticket = rnd["arms"]["ticket"]["early_stop_iteration"]
    censored = reinit["early_stop_iteration"] >= _last_iteration(summary)  # still improving when training ended
    return Value(reinit["early_stop_iteration"] / max(ticket, 1), ">=" if censored else "")


def _more_accurate(summary: dict) -> Value | str:
    rnd = round_near(summary, 13.5)
    if isinstance(rnd, str):
        return rnd
    key = "test_accuracy_at_early_stop"
    return Value(100.0 * (rnd["arms"]["ticket"][key] - _dense(summary)[key]))


def _reinit_loses_from(summary: dict) -> Value | str:
    """The largest percent remaining from which on reinit stays below the dense network (to the run's end).

    "From which on" rather than "first below": one noisy round of the dense-like early reinit networks dipping
    under the dense network is not the drop-off the paper describes.
    """
    key = "test_accuracy_at_early_stop"
    dense = _dense(summary)[key]
    rounds = [r for r in summary["rounds"][1:] if "reinit" in r["arms"]]
    if not rounds:
        return "the run has no reinit arm (run with --controls reinit)"
    below = _tail(rounds, lambda r: r["arms"]["reinit"][key] < dense)
    if not below:
        return Value(rounds[-1]["percent_remaining"], "<=")  # not below at the end: only at or past it, if ever
    return Value(below[0]["percent_remaining"])


def _ticket_holds_until(summary: dict) -> Value | str:
    """The smallest percent remaining at which the ticket is at least as accurate as the dense network before
    it falls below it for good (the run's last round, as a bound, if it never does)."""
    key = "test_accuracy_at_early_stop"
    dense = _dense(summary)[key]
    rounds = summary["rounds"][1:]
    if not rounds:
        return "the run has no pruned round"
    below = _tail(rounds, lambda r: r["arms"]["ticket"][key] < dense)
    if not below:
        return Value(rounds[-1]["percent_remaining"], "<=")  # still holding at the run's last round
    held = rounds[:len(rounds) - len(below)]
    return Value(held[-1]["percent_remaining"] if held else 100.0)


def _tail(rounds: list[dict], test: Callable[[dict], bool]) -> list[dict]:
    """The longest run of rounds at the end of ``rounds`` that all pass ``test``."""
    n = 0
    while n < len(rounds) and test(rounds[len(rounds) - 1 - n]):
        n += 1
    return rounds[len(rounds) - n:]


CLAIMS: tuple[Claim, ...] = (
    Claim("faster_than_dense", "at 21.1% of the weights, tickets reach early stopping sooner than the dense network",
          "Section 2, Figure 4a", 38.0, "% sooner", "about", "ticket stops sooner (> 0%)",
          holds=lambda v: v.number > 0, measure=_faster_than_dense),
    Claim("faster_than_reinit", "at 21.1%, tickets reach early stopping sooner than when randomly reinitialised",
          "Section 2, Figure 4a", 2.51, "x", "about", "reinit stops later (> 1x)",
          holds=lambda v: v.number > 1, measure=_faster_than_reinit, effect=lambda v: v - 1.0),
    Claim("more_accurate", "at 13.5%, tickets are more accurate than the dense network",
          "Section 2, Figure 4b", 0.3, "points", "more than", "ticket more accurate (> 0)",
          holds=lambda v: v.number > 0, measure=_more_accurate),
    Claim("reinit_loses_from", "the level from which on randomly reinitialised tickets stay below the dense network's "
          "accuracy",
          "Section 2, Figures 3 and 4b", 21.1, "% weights", "level", "reinit falls below dense in the run",
          holds=lambda v: v.bound != "<=", measure=_reinit_loses_from),
    Claim("ticket_holds_until", "the lowest level at which tickets are still at least as accurate as the dense network "
          "(before falling below it for good)",
          "Section 2, Figures 3 and 4b", 3.6, "% weights", "level", "tickets hold below 21.1%",
          holds=lambda v: True if v.number < 21.1 else None if v.bound == "<=" else False, measure=_ticket_holds_until),
)


# -- judging ----------------------------------------------------------------------------------------


def check(summaries: list[dict], claims: tuple[Claim, ...] = CLAIMS) -> list[dict[str, Any]]:
    """Compares a run (one summary per trial) with each claim.

    Returns:
        One dict per claim: key, text, where, paper, unit, kind, expects (the direction, in words), ours (mean
        over trials, or None), low, high (min and max over trials), bound ("", ">=" or "<="), trials
        (measured), direction_trials (trials pointing the paper's way), direction ("yes", "no", "unknown" or
        "n/a"), size ("yes", "no", "unknown" or "n/a"), size_trials (trials whose own size agrees), noise
        ("inside" or "outside": the paper's number against the trials' [min, max]; "one trial"; "n/a" when not
        measured), note. ``ours`` is measured on the mean over trials (the paper averages its trials too).

    Raises:
        ValueError: the run is not LeNet-300-100 on MNIST (the claims are about that experiment).
    """
    if not summaries:
        raise ValueError("no completed trial to check: run `minilottery imp` or `minilottery trials` first")
    config = summaries[0].get("config", {})
    if config.get("model") != "lenet_300_100" or config.get("dataset") != "mnist":
        raise ValueError(f"check-paper compares LeNet-300-100 on MNIST with Section 2 of the paper; this run is "
                         f"{config.get('model')} on {config.get('dataset')}")
    if config.get("reset", "init") != "init" or config.get("one_shot") or config.get("global_pruning"):
        note = "the paper's claims are for iterative per-layer pruning reset to θ0; this run differs"
    else:
        note = ""
    # The paper reads its numbers off curves averaged over trials: ours too ("ours" is measured on the mean
    # over trials, round by round); each trial is also measured alone for the [min, max] and the direction count.
    from minilottery.lab.trials import aggregate

    mean_run = aggregate(summaries) if len(summaries) > 1 else summaries[0]
    rows = []
    for claim in claims:
        ours = claim.measure(mean_run)
        values = [m for m in (claim.measure(s) for s in summaries) if isinstance(m, Value)]
        row: dict[str, Any] = {"key": claim.key, "text": claim.text, "where": claim.where, "paper": claim.paper,
                               "unit": claim.unit, "kind": claim.kind, "expects": claim.direction,
                               "trials": len(values), "note": note}
        if isinstance(ours, str):
            row.update(ours=None, low=None, high=None, bound="", direction_trials=0, direction="n/a", size="n/a",
                       size_trials=0, noise="n/a", note=ours)
            rows.append(row)
            continue
        numbers = [v.number for v in values]
        row.update(ours=ours.number, low=min(numbers), high=max(numbers), bound=ours.bound,
                   direction_trials=sum(claim.holds(v) is True for v in values),
                   direction={True: "yes", False: "no", None: "unknown"}[claim.holds(ours)],
                   size=_size(claim, ours.number, ours.bound),
                   size_trials=sum(_size(claim, v.number, v.bound) == "yes" for v in values),
                   noise=_noise(claim.paper, numbers))
        censored = sum(v.bound == ">=" for v in values)
        if censored and not ours.bound and not row["note"]:
            row["note"] = (f"in {censored} of {len(values)} trials the control was still improving at the last "
                           f"iteration: a lower bound there")
        if ours.bound and not row["note"]:
            row["note"] = ("a control was still improving at the last iteration: its stop is a lower bound"
                           if ours.bound == ">=" else "the run ended before it happened: the level is at most this")
        rows.append(row)
    return rows


def _size(claim: Claim, ours: float, bound: str) -> str:
    """"yes" when ours is within SIZE_FACTOR of the paper's number (see the module docstring), "no" when it is
    not, "unknown" when ours is a bound on the wrong side to decide."""
    paper, mine = claim.effect(claim.paper), claim.effect(ours)
    if claim.kind == "more than":  # the paper gives a threshold: ours must pass it
        low, high = paper, math.inf
    else:
        low, high = paper / SIZE_FACTOR, paper * SIZE_FACTOR
    if low <= mine <= high:
        return "yes"
    if (bound == ">=" and mine < low) or (bound == "<=" and mine > high):
        return "unknown"  # the true value lies beyond the bound, where it may still agree
    return "no"


def _noise(paper: float, numbers: list[float]) -> str:
    """"inside" when ``paper`` lies within [min, max] of the trials' ``numbers``, "outside" when not, "one trial"
    when there is a single number (no spread to compare with)."""
    if len(numbers) < 2:
        return "one trial"
    return "inside" if min(numbers) <= paper <= max(numbers) else "outside"


NOISE_TEXT = {
    "inside": "the paper's {paper} lies inside our trials' [{low}, {high}]: consistent with our noise",
    "outside": "the paper's {paper} lies outside our trials' [{low}, {high}]: a difference beyond our noise",
    "one trial": "one trial, no spread to tell noise from difference (run `minilottery trials` for several)",
}


def format_check(rows: list[dict[str, Any]], trials: int) -> str:
    """The comparison as a text table, one claim per block, then how it is judged."""
    lines = []
    for i, r in enumerate(rows, 1):
        if r["ours"] is None:
            ours = "not measured"
        else:
            spread = f" [{_num(r['low'])}, {_num(r['high'])}]" if trials > 1 else ""
            ours = f"{r['bound']}{_num(r['ours'])}{spread} {r['unit']}".replace("  ", " ")
        paper = f"{'> ' if r['kind'] == 'more than' else ''}{_num(r['paper'])} {r['unit']}"
        direction = (r["direction"] if r["ours"] is None
                     else f"{r['direction']} ({r['direction_trials']}/{r['trials']} trials)")
        lines.append(f"{i}. {r['text']} ({r['where']})")
        size = r["size"] if r["ours"] is None else f"{r['size']} ({r['size_trials']}/{r['trials']} trials)"
        lines.append(f"   paper {paper}; ours {ours}; direction ({r['expects']}): {direction}; size: {size}")
        if r["ours"] is not None:
            noise = NOISE_TEXT[r["noise"]].format(paper=_num(r["paper"]), low=_num(r["low"]), high=_num(r["high"]))
            lines.append(f"   noise: {noise}")
        if r["note"]:
            lines.append(f"   note: {r['note']}")
    agree = sum(r["direction"] == "yes" and r["size"] == "yes" for r in rows)
    lines.append("")
    lines.append(f"{agree} of {len(rows)} claims agree in direction and size"
                 f" ({trials} trial{'s' if trials != 1 else ''}; ours: measured on the mean over trials, [min, max]: "
                 f"on single trials).")
    lines.append(f"size agrees: within a factor of {SIZE_FACTOR:g} of the paper's number (of ratio - 1 for the 'x' "
                 f"claim); for 'more than X': more than X.")
    lines.append("noise: whether the paper's number is one our single trials reach (inside their [min, max]) or not.")
    return "\n".join(lines)


def _num(value: float) -> str:
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"


__all__ = ["CLAIMS", "Claim", "Value", "check", "format_check", "round_near"]
