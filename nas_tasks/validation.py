"""The checks of plain settings: integers and numbers, one message for each kind.

Each raises :class:`~nas_tasks.errors.NasError` (or the error class it is
given) with one line that names the setting, the accepted values and what it
got, e.g. ``num_steps must be an int >= 1, got 0``. Imports nothing heavy (no
torch), so that light tools can use it.
"""
from __future__ import annotations

import math
import os
from typing import Any

from nas_tasks.errors import NasError


def is_int(value: Any) -> bool:
    """An int, and not a bool (``True`` is an int to Python, never a count to a user)."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_int(name: str, value: Any, minimum: int = 1, hint: str = '',
              error: type[NasError] = NasError) -> int:
    """``value`` if it is an int >= ``minimum``; else ``error``:
    ``'<name> must be an int >= <minimum> (<hint>), got <value>'``."""
    if not is_int(value) or value < minimum:
        hint = f' ({hint})' if hint else ''
        raise error(f'{name} must be an int >= {minimum}{hint}, got {value!r}')
    return value


def check_positive(**values: Any) -> None:
    """:func:`check_int` with minimum 1 for every ``name=value``."""
    for name, value in values.items():
        check_int(name, value)


def check_number(name: str, value: Any, minimum: float = 0.0, inclusive: bool = True) -> float:
    """``value`` if it is a finite number >= ``minimum`` (> with ``inclusive=False``); else
    ``'<name> must be a number > <minimum>, got <value>'``."""
    if (not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value)
            or value < minimum or (value == minimum and not inclusive)):
        raise NasError(f"{name} must be a number {'>=' if inclusive else '>'} {minimum:g}, "
                       f'got {value!r}')
    return value


def seconds_from_environment(variable: str, default: float, allow_zero: bool = False) -> float:
    """The number of seconds in the environment variable ``variable`` (``default`` if unset):
    a number > 0 (>= 0 with ``allow_zero``); anything else is one line naming the variable."""
    text = os.environ.get(variable)
    if text is None:
        return float(default)
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (seconds >= 0 if allow_zero else seconds > 0):  # NaN is neither
        raise NasError(f"{variable}={text!r} is not a number of seconds {'>=' if allow_zero else '>'} "
                       f'0; set it to one (default {default:g}) or unset it')
    return seconds


def check_prob(name: str, value: Any) -> float:
    """``value`` if it is a number in [0, 1]."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
        raise NasError(f'{name} must be a number in [0, 1], got {value!r}')
    return value
