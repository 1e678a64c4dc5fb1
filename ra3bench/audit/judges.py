"""Judges under audit, one adapter per SPEC kind, each run in a child process with a deadline.

* ``pkg.module:func``: a reward function, called in ``ra3bench.audit.child`` with TRL's reward
  signature (``completions`` and the dataset's columns in, floats out) or verl's ``compute_score``
  (``data_source, solution_str, ground_truth, extra_info``), told apart by its parameter names.
* ``evalplus``: the installed evalplus package through its own ``evalplus.evaluate`` entry, on a
  samples file and a data file holding only the audited problems (``HUMANEVAL_OVERRIDE_PATH`` or
  ``MBPP_OVERRIDE_PATH``).
* ``ra3bench``: ra3bench's own TRL reward (``integrations.trl.SandboxReward``), the reference row.

Every call is a fresh process in its own session, killed with its whole process group at the
deadline: a judge that hangs or is killed by a program is observed, not inherited. ``contain``
wraps the call in bubblewrap (``contain.py``).
"""

from __future__ import annotations

import contextlib
import gzip
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ra3bench.audit.base import CallResult, Item
from ra3bench.errors import UsageError

Columns = Callable[[Item], dict[str, Any]]
Wrap = Callable[[list[str], list[Path], dict[str, str]], list[str]]


def run_child(argv: list[str], deadline_s: float, env: dict[str, str], cwd: Path) -> tuple[int | None, str, float]:
    """Run ``argv`` in a new session; kill its process group at the deadline. (returncode or None, output tail, s)."""
    start = time.monotonic()
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        out, _ = proc.communicate(timeout=deadline_s)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        code = None
        out = b""
    finally:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever the judge left in its group
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    return code, out.decode(errors="replace")[-2000:], time.monotonic() - start


def _outcome(code: int | None, tail: str) -> tuple[str, str]:
    if code is None:
        return "hung", "no answer before the deadline"
    if code < 0:
        return "killed", f"the judge's process died of signal {-code}"
    if code in (128 + signal.SIGKILL, 128 + signal.SIGTERM):  # through a wrapper (bubblewrap) that reports it so
        return "killed", f"the judge's process died of signal {code - 128} (exit {code})"
    if code != 0:
        last = (tail.strip().splitlines() or [""])[-1][:160]
        return "error", f"exit {code}: {last}"
    return "ok", ""


class _ChildJudge:
    """Shared machinery: write a request, run a child, read back one number per item."""

    name = ""
    in_process = True
    pass_threshold = 1.0
    isolation = ""

    def __init__(self, env: dict[str, str], wrap: Wrap | None) -> None:
        self.env = env
        self.wrap = wrap

    def _run(self, argv: list[str], work: Path, deadline_s: float, binds: tuple[Path, ...] = (), **extra: str) -> tuple:
        env = {**self.env, **extra}
        if self.wrap is not None:
            argv = self.wrap(argv, [work, *binds], env)
        code, tail, wall = run_child(argv, deadline_s, env, work)
        outcome, detail = _outcome(code, tail)
        return outcome, detail, wall, tail


class CallableJudge(_ChildJudge):
    """A reward function ``pkg.module:func`` (TRL or verl signature), imported and called in the child."""

    isolation = "none of its own: the reward function runs the programs however it chooses, in its own process"

    def __init__(self, spec: str, columns: Columns, env: dict[str, str], wrap=None, completion: str = "chat") -> None:
        super().__init__(env, wrap)
        module, _, func = spec.partition(":")
        if not module or not func:
            raise UsageError(f"judge {spec!r}: a callable is given as pkg.module:func")
        if importlib.util.find_spec(module.split(".")[0]) is None:
            raise UsageError(f"judge {spec!r}: cannot import {module!r} (is it installed or on PYTHONPATH?)")
        self.name, self.spec, self.columns, self.completion = spec, spec, columns, completion

    def score(self, items: list[Item], deadline_s: float) -> CallResult:
        with tempfile.TemporaryDirectory(prefix="ra3bench-audit-") as tmp:
            work = Path(tmp)
            request = {
                "spec": self.spec,
                "completion": self.completion,
                "rows": [
                    {"task_id": i.task_id, "suite": i.suite, "completion": i.completion, **self.columns(i)}
                    for i in items
                ],
            }
            (work / "request.json").write_text(json.dumps(request))
            argv = [sys.executable, "-m", "ra3bench.audit.child", str(work / "request.json"), str(work / "scores.json")]
            outcome, detail, wall, _ = self._run(argv, work, deadline_s)
            return _read_scores(work / "scores.json", len(items), outcome, detail, wall)

    def describe(self) -> dict[str, Any]:
        return {"kind": "callable", "spec": self.spec, "completion_format": self.completion}


class Ra3benchJudge(CallableJudge):
    """ra3bench's own TRL reward, run like any other reward function (its programs run in ``sandbox``)."""

    in_process = False

    def __init__(self, sandbox: str, columns: Columns, env: dict[str, str]) -> None:
        _ChildJudge.__init__(self, env, None)
        self.name, self.spec, self.columns, self.completion = f"ra3bench ({sandbox})", "ra3bench", columns, "chat"
        self.sandbox = sandbox
        self.env = {**env, "RA3BENCH_AUDIT_SANDBOX": sandbox}
        self.isolation = f"every program in ra3bench's {sandbox} sandbox (docs/sandbox.md)"

    def describe(self) -> dict[str, Any]:
        return {"kind": "ra3bench", "sandbox": self.sandbox}


EVALPLUS_DATASETS = {  # suite -> (evalplus --dataset, the variable that points it at a data file)
    "humaneval+": ("humaneval", "HUMANEVAL_OVERRIDE_PATH"),
    "mbpp+": ("mbpp", "MBPP_OVERRIDE_PATH"),
}


class EvalplusJudge(_ChildJudge):
    """evalplus's ``evaluate`` on HumanEval+ and MBPP+; a program passes when both its base and plus status are
    pass."""

    isolation = (
        "evalplus runs each program in a multiprocessing child of its own process, with resource limits and "
        "os/shutil functions disabled by the program's own module (no namespace, no separate user)"
    )

    def __init__(self, python: str, data_files: dict[str, Path], cache: Path, env: dict[str, str], wrap=None) -> None:
        super().__init__(env, wrap)
        self.python, self.data_files = python, data_files
        self.name = "evalplus"
        probe = subprocess.run(
            [python, "-c", "import evalplus, sys; print(evalplus.__version__)"], capture_output=True, text=True
        )
        if probe.returncode != 0:
            raise UsageError(
                f"judge 'evalplus': {python} cannot import evalplus; install it (pip install evalplus==0.3.1, see "
                "docs/audit.md) or name an interpreter that has it with --python"
            )
        self.version = probe.stdout.strip()
        self.name = f"evalplus {self.version}"
        self.cache = cache  # its ground truth (XDG_CACHE_HOME), computed once per audit

    def score(self, items: list[Item], deadline_s: float) -> CallResult:
        (suite,) = {i.suite for i in items}  # one suite a batch (the Judge contract): one evaluate, one data set
        if suite not in self.data_files:
            raise UsageError(f"judge 'evalplus' is audited on {', '.join(self.data_files)} only, not {suite}")
        dataset, variable = EVALPLUS_DATASETS[suite]
        wanted = {i.task_id for i in items}
        with tempfile.TemporaryDirectory(prefix="ra3bench-audit-") as tmp:
            work = Path(tmp)
            with gzip.open(self.data_files[suite], "rt") as src, open(work / "data.jsonl", "w") as out:
                out.writelines(line for line in src if json.loads(line)["task_id"] in wanted)
            with open(work / "samples.jsonl", "w") as out:
                for item in items:
                    out.write(json.dumps({"task_id": item.task_id, "solution": item.program}) + "\n")
            argv = [self.python, "-m", "evalplus.evaluate", "--dataset", dataset, "--samples"]
            argv += [str(work / "samples.jsonl"), "--parallel", "2", "--i_just_wanna_run"]
            data, cache = str(work / "data.jsonl"), str(self.cache)
            outcome, detail, wall, _ = self._run(
                argv, work, deadline_s, (self.cache,), **{variable: data}, XDG_CACHE_HOME=cache
            )
            results = work / "samples_eval_results.json"
            scores: list[float | None] = [None] * len(items)
            if results.exists():
                status: dict[tuple[str, str], float] = {}
                for task_id, rows in json.loads(results.read_text())["eval"].items():
                    for row in rows:
                        ok = row.get("base_status") == "pass" and row.get("plus_status") == "pass"
                        status[(task_id, row.get("solution", ""))] = 1.0 if ok else 0.0
                scores = [status.get((i.task_id, i.program)) for i in items]
            elif outcome == "ok":
                outcome, detail = "error", "evalplus wrote no results"
            return CallResult(scores, outcome, detail, wall)

    def describe(self) -> dict[str, Any]:
        return {"kind": "evalplus", "version": self.version, "python": self.python}


def _read_scores(path: Path, n: int, outcome: str, detail: str, wall: float) -> CallResult:
    """Parse, don't trust: a list of n numbers, else no scores."""
    scores: list[float | None] = [None] * n
    try:
        data = json.loads(path.read_text())
        if isinstance(data, list) and len(data) == n:
            scores = [float(x) if isinstance(x, int | float) and not isinstance(x, bool) else None for x in data]
        elif outcome == "ok":
            outcome, detail = "error", f"the judge returned {type(data).__name__} of the wrong length"
    except (OSError, ValueError) as exc:
        if outcome == "ok":
            outcome, detail = "error", f"no scores: {type(exc).__name__}"
    return CallResult(scores, outcome, detail, wall)
