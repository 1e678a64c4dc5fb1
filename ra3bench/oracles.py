"""Value comparison as evalplus defines it, special oracles included, run in trusted code.

Both sides are plain decoded values (``protocol.decode_value``): nothing here can run
code the program wrote.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

DEFAULT_FLOAT_ATOL = 1e-6  # evalplus enforces this when the expected value is float(s)


def _poly(xs: list, x: float) -> float:
    return sum(coeff * math.pow(x, i) for i, coeff in enumerate(xs))


def _surface_area(base_edge: float, height: float) -> int:
    slant_height = math.sqrt((base_edge / 2) ** 2 + height**2)
    return round(base_edge**2 + 4 * (base_edge * slant_height) / 2)


def _digit_distance_nums(num1: int, num2: int) -> int:
    a, b = str(num1), str(num2)
    width = max(len(a), len(b))
    return sum(abs(int(x) - int(y)) for x, y in zip(a.zfill(width), b.zfill(width), strict=False))


def _is_floats(x: Any) -> bool:
    if isinstance(x, float):
        return True
    return isinstance(x, (list, tuple)) and bool(x) and all(isinstance(i, float) for i in x)


# Oracles that replace exact equality. Each gets (out, exp, args, atol) and says pass or not;
# None means "fall through to the default comparison with this exact-match result".
OracleFn = Callable[[Any, Any, list, float], bool | None]


def _set_eq(out: Any, exp: Any, args: list, atol: float) -> bool:
    return set(out) == set(exp)


def _not_none(out: Any, exp: Any, args: list, atol: float) -> bool:
    expected_not_none = exp is not None
    if isinstance(out, bool):
        return out == expected_not_none
    return expected_not_none == (out is not None)


ORACLES: dict[str, OracleFn] = {
    "set_eq": _set_eq,
    "not_none": _not_none,
    # Mbpp/164: the task's reference is wrong on some inputs; evalplus accepts any output.
    "are_equivalent": lambda out, exp, args, atol: True,
    "sum_div": lambda out, exp, args, atol: out == exp or out == 0,
    "surface_area": lambda out, exp, args, atol: out == exp or abs(out - _surface_area(*args)) <= atol,
    "digit_distance_nums": lambda out, exp, args, atol: out == exp or out == _digit_distance_nums(*args),
    "find_zero": lambda out, exp, args, atol: abs(_poly(*args, out)) <= atol,
    # LiveCodeBench's call-based rule: a returned tuple counts as a list, then plain equality
    # with the JSON-decoded expected value (lcb_runner/evaluation/testing_util.py).
    "lcb_call": lambda out, exp, args, atol: (list(out) if isinstance(out, tuple) else out) == exp,
}


def values_match(out: Any, exp: Any, args: list, atol: float, oracle: str | None = None) -> bool:
    """evalplus's rule: exact match, else (for floats or a task atol) np.allclose with same types."""
    try:
        if oracle is not None:
            return bool(ORACLES[oracle](out, exp, args, atol))
        if out == exp:
            return True
        if atol == 0 and _is_floats(exp):
            atol = DEFAULT_FLOAT_ATOL
        if atol == 0 or type(out) is not type(exp):
            return False
        if isinstance(exp, (list, tuple)) and len(out) != len(exp):
            return False
        got, want = np.asarray(out), np.asarray(exp)
        if got.shape != want.shape:  # no broadcasting: [[]] must not match a one-element list
            return False
        return bool(np.allclose(got, want, rtol=1e-07, atol=atol))
    except Exception:
        return False
