"""A verl ``compute_score`` written like verl's sandbox-fusion assert mode: the tests are asserts, pass = clean exit.

Fixture for tests/integration/test_audit.py. The program and assert statements built from
``ground_truth`` (``fn_name``, ``inputs``, ``outputs``) run as one script; as in verl's assert
mode the expected stdout is empty, so a run that exits 0 passes, and a program that exits 0
before the asserts are reached passes too.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs) -> dict:
    found = re.findall(r"```python\n(.*?)```", solution_str, re.DOTALL)
    code = found[-1] if found else solution_str
    truth = json.loads(ground_truth)
    asserts = "".join(
        f"assert {truth['fn_name']}(*{args!r}) == {out!r}\n"
        for args, out in zip(truth["inputs"], truth["outputs"], strict=True)
    )
    try:
        run = subprocess.run([sys.executable, "-c", code + "\n" + asserts], capture_output=True, text=True, timeout=5)
    except subprocess.TimeoutExpired:
        return {"score": 0.0}
    return {"score": 1.0 if run.returncode == 0 and run.stdout.strip() == "" else 0.0}
