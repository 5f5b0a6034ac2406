"""The checks every option goes through, written once: integers, real numbers, fractions and names.

Each returns the value as a plain Python ``int`` or ``float`` (so float32 arrays stay float32 when it
multiplies them), or raises a one-line ValueError that names the option (as the command line spells it),
says what was expected, and echoes what was given: ``--batch-size must be an integer >= 1, got 0``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from typing import Any


def is_integer(value: Any) -> bool:
    """True for Python and NumPy integers, False for bools (``True`` is not a count)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
    """True for finite Python and NumPy reals (ints included), False for bools, NaN and infinities."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def check_int(option: str, value: Any, *, low: int = 1, high: int | None = None, hint: str = "") -> int:
    """``value`` as a Python int in ``low..high`` (no upper bound when ``high`` is None), or a one-line
    ValueError naming ``option``."""
    if not is_integer(value) or value < low or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f">= {low} and <= {high:,}"
        raise ValueError(f"{option} must be an integer {bounds}, got {value!r}" + (f"; {hint}" if hint else ""))
    return int(value)


def check_real(option: str, value: Any, *, low: float, high: float | None = None, low_open: bool = False,
               high_open: bool = True, hint: str = "") -> float:
    """``value`` as a Python float in the given range, or a one-line ValueError naming ``option`` and the range.

    The range is ``[low, high)`` by default; ``low_open`` excludes ``low``, ``high_open=False`` includes
    ``high``, and ``high=None`` means no upper bound.
    """
    lo = f"({low}" if low_open else f"[{low}"
    hi = "inf)" if high is None else (f"{high})" if high_open else f"{high}]")
    ok = is_real(value)
    if ok:
        value = float(value)
        ok = (value > low if low_open else value >= low) and (
            high is None or (value < high if high_open else value <= high))
    if not ok:
        raise ValueError(f"{option} must be a real number in {lo}, {hi}, got {value!r}" + (f"; {hint}" if hint else ""))
    return value


def check_choices(option: str, values: Sequence[str], choices: Iterable[str]) -> list[str]:
    """``values`` if it names one or more of ``choices`` and nothing else, else a one-line ValueError
    (``--arms lucky: expected some of dense,ticket,reinit``)."""
    choices = tuple(choices)
    unknown = [value for value in values if value not in choices]
    if unknown or not values:
        raise ValueError(f"{option} {','.join(unknown) or '(none)'}: expected some of {','.join(choices)}")
    return list(values)


def check_choice(option: str, value: Any, choices: Iterable[str]) -> str:
    """``value`` if it is one of ``choices``, else a one-line ValueError listing them."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{option} must be one of {', '.join(choices)}, got {value!r}")
    return value
