"""Comparing what a stdin program printed with the expected output (trusted side).

Two rules, named so that a problem (or a suite) can pick one and the manifest can say which:

* ``lcb``: LiveCodeBench's ``grade_stdio``: both texts stripped and split into lines, each
  line stripped; the line counts must agree; a line matches if equal as text, or else if
  both lines parse as whitespace-separated ``Decimal`` numbers and the lists are equal
  (so ``1.50`` equals ``1.5``, but ``0.3333333`` does not equal ``0.33333333``).
* ``tokens``: the usual Codeforces checker when a problem has none of its own: whitespace
  is insignificant (tokens compared in order); a token matches if equal as text, or if
  both are numbers within ``1e-6`` absolute or relative (testlib's ``doubleCompare``).
* ``tokens_any_case``: ``tokens``, letters compared without case, for problems whose
  statement says answers may be printed in any case ("YES", "yes", "Yes").
"""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal, InvalidOperation

FLOAT_TOLERANCE = 1e-6


def _stripped_lines(text: str) -> list[str]:
    return [line.strip() for line in text.strip().split("\n")]


def _decimals(line: str) -> list[Decimal] | None:
    """The line's numbers, or None. NaN, sNaN and infinities are not numbers here: comparing an
    ``sNaN`` raises ``InvalidOperation``, which one program's output must never turn into a crash."""
    try:
        numbers = [Decimal(token) for token in line.split()]
    except (InvalidOperation, ValueError):
        return None
    return numbers if all(n.is_finite() for n in numbers) else None


def lcb_match(out: str, expected: str) -> bool:
    """LiveCodeBench's rule (lcb_runner/evaluation/testing_util.py, ``grade_stdio``)."""
    got, want = _stripped_lines(out), _stripped_lines(expected)
    if len(got) != len(want):
        return False
    for line, wanted in zip(got, want, strict=True):
        if line == wanted:
            continue
        a, b = _decimals(line), _decimals(wanted)
        if a is None or b is None or a != b:
            return False
    return True


def _close(a: str, b: str, tolerance: float) -> bool:
    try:
        x, y = float(a), float(b)
    except ValueError:
        return False
    if math.isnan(x) or math.isnan(y):
        return False
    if math.isinf(x) or math.isinf(y):
        return x == y
    return abs(x - y) <= tolerance or abs(x - y) <= tolerance * max(abs(x), abs(y))


def tokens_match(out: str, expected: str, tolerance: float = FLOAT_TOLERANCE, *, any_case: bool = False) -> bool:
    """Token by token, numbers within ``tolerance`` (absolute or relative)."""
    if any_case:
        out, expected = out.casefold(), expected.casefold()
    got, want = out.split(), expected.split()
    if len(got) != len(want):
        return False
    return all(a == b or _close(a, b, tolerance) for a, b in zip(got, want, strict=True))


CHECKERS: dict[str, Callable[[str, str], bool]] = {
    "lcb": lcb_match,
    "tokens": tokens_match,
    "tokens_any_case": lambda out, expected: tokens_match(out, expected, any_case=True),
}


def output_matches(out: str, expected: str, rule: str) -> bool:
    """Whether ``out`` is an accepted answer under ``rule`` (a key of ``CHECKERS``).

    Total over ``out``: an answer that makes the rule raise is not accepted."""
    check = CHECKERS[rule]  # an unknown rule is the suite's bug: it raises
    try:
        return check(out, expected)
    except Exception:
        return False
