"""A reward function written like open-r1's ``code_reward``: run the program, compare lines with ``zip()``.

Fixture for tests/integration/test_audit.py: a TRL reward (completions + the dataset's
``verification_info`` column in, floats out) with open-r1's known flaw: ``zip()`` stops at the
shorter of the two outputs, so a truncated (or empty) answer matches every line it has.
"""

from __future__ import annotations

import re
import subprocess
import sys


def _code(completion) -> str:
    text = completion[-1]["content"] if isinstance(completion, list) else completion
    found = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    return found[-1] if found else ""


def code_reward(completions, verification_info, **kwargs) -> list[float]:
    rewards = []
    for completion, info in zip(completions, verification_info, strict=True):
        code, passed = _code(completion), 0
        for case in info["test_cases"]:
            try:
                run = subprocess.run(
                    [sys.executable, "-c", code], input=case["input"], capture_output=True, text=True, timeout=5
                )
            except subprocess.TimeoutExpired:
                continue
            got = run.stdout.strip().splitlines()
            want = case["output"].strip().splitlines()
            if all(a.strip() == b.strip() for a, b in zip(got, want)):  # noqa: B905 - the flaw under test
                passed += 1
        rewards.append(passed / len(info["test_cases"]) if info["test_cases"] else 0.0)
    return rewards
