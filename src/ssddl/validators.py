"""One home for the checks of configuration values, with one bounds convention.

Every bound is *inclusive*: ``check_int(v, "rounds", low=1)`` accepts 1 and up,
``check_int(v, "frac_bits", low=0, high=62)`` accepts 0 … 62. A failed check raises
:class:`~ssddl.exceptions.ConfigurationError` whose message names the field and the range, so
callers only pass the name the user knows the value by (a config key or a flag).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable
from enum import Enum
from typing import Any, TypeVar

from ssddl.exceptions import ConfigurationError

__all__ = [
    "check_bool",
    "check_choice",
    "check_enum",
    "check_float",
    "check_int",
    "did_you_mean",
]

E = TypeVar("E", bound=Enum)


def _range(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"in [{low}, {high}]"
    if low is not None:
        return f">= {low}"
    return f"<= {high}"


def check_int(value: Any, field: str, *, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int in ``[low, high]`` (either bound may be omitted); bools refused."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(f"{field} must be an integer, got {type(value).__name__}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ConfigurationError(f"{field}={value} is out of range: it must be {_range(low, high)}")
    return value


def check_float(
    value: Any,
    field: str,
    *,
    low: float | None = None,
    high: float | None = None,
    positive: bool = False,
) -> float:
    """``value`` as a finite float in ``[low, high]``; ``positive`` also refuses 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(f"{field} must be a number, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise ConfigurationError(f"{field}={number} must be a finite number")
    if positive and number <= 0:
        raise ConfigurationError(f"{field}={number} must be a finite number > 0")
    if (low is not None and number < low) or (high is not None and number > high):
        raise ConfigurationError(
            f"{field}={number} is out of range: it must be {_range(low, high)}"
        )
    return number


def did_you_mean(word: object, candidates: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` naming the candidate closest to ``word`` (a typo), or ``""``
    when none is close: the tail of a refusal, so a user sees the fix."""
    if not isinstance(word, str) or not word:
        return ""
    pool = [c for c in candidates if c]
    close = difflib.get_close_matches(word, pool, n=1, cutoff=0.6)
    if not close:  # a different case or separator: --Rounds, max-colluders for max_colluders
        folded = {c.lower().replace("-", "_"): c for c in pool}
        hit = folded.get(word.lower().replace("-", "_"))
        close = [hit] if hit else []
    return f" (did you mean {close[0]!r}?)" if close and close[0] != word else ""


def check_bool(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigurationError(f"{field} must be true or false, got {value!r}")
    return value


def check_enum(cls: type[E], value: Any, field: str) -> E:
    """``value`` as a member of ``cls`` (a member, or its value)."""
    if isinstance(value, cls):
        return value
    try:
        return cls(value)
    except ValueError:
        choices = ", ".join(repr(m.value) for m in cls)
        hint = did_you_mean(value, [str(m.value) for m in cls])
        raise ConfigurationError(f"{field}={value!r} is not one of {choices}{hint}") from None


def check_choice(value: Any, field: str, choices: tuple[str, ...]) -> str:
    """``value`` as one of the string ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ConfigurationError(
            f"{field}={value!r} is not one of {', '.join(repr(c) for c in choices)}"
            f"{did_you_mean(value, choices)}"
        )
    return value
