"""The child process that calls a judge under audit: ``python -m ra3bench.audit.child REQUEST SCORES``.

It imports the reward function, calls it once on every row of the request and writes one number
per row. Whatever the programs do to this process (exit, kill it, hang) is seen by the parent as
this process's fate; nothing here may import the audit's own state.
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
import os
import sys
from typing import Any

VERL_PARAMS = ("data_source", "solution_str", "ground_truth")


def _number(value: Any) -> float | None:
    if isinstance(value, dict):  # verl's dict results carry the reward as "score"
        value = value.get("score")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _ra3bench(rows: list[dict]) -> list[Any]:
    from ra3bench import EvalSpec
    from ra3bench.integrations.trl import SandboxReward

    sandbox = os.environ.get("RA3BENCH_AUDIT_SANDBOX", "auto")
    scores: list[Any] = [None] * len(rows)
    for suite in sorted({r["suite"] for r in rows}):
        index = [i for i, r in enumerate(rows) if r["suite"] == suite]
        tasks = sorted({rows[i]["task_id"] for i in index})
        with SandboxReward(EvalSpec(suite=suite, tasks=tasks, sandbox=sandbox, cache=False)) as reward:
            completions = [[{"role": "assistant", "content": rows[i]["completion"]}] for i in index]
            got = reward(
                prompts=[""] * len(index), completions=completions, task_id=[rows[i]["task_id"] for i in index]
            )
        for i, score in zip(index, got, strict=True):
            scores[i] = score
    return scores


def main(request_path: str, scores_path: str) -> int:
    with open(request_path) as src:
        request = json.load(src)
    rows: list[dict] = request["rows"]
    if request["spec"] == "ra3bench":
        raw = _ra3bench(rows)
    else:
        module, _, name = request["spec"].partition(":")
        sys.path.insert(0, os.getcwd())
        fn = getattr(importlib.import_module(module), name)
        params = inspect.signature(fn).parameters
        if all(p in params for p in VERL_PARAMS):
            raw = [
                fn(
                    data_source=r.get("data_source", r["suite"]),
                    solution_str=r["completion"],
                    ground_truth=r.get("ground_truth", ""),
                    extra_info=r.get("extra_info", {}),
                )
                for r in rows
            ]
        else:
            chat = request.get("completion", "chat") == "chat"
            completions = [
                [{"role": "assistant", "content": r["completion"]}] if chat else r["completion"] for r in rows
            ]
            columns = sorted({k for r in rows for k in r} - {"completion", "suite"})
            kwargs = {c: [r.get(c) for r in rows] for c in columns}
            raw = list(fn(prompts=[r.get("prompt", "") for r in rows], completions=completions, **kwargs))
    with open(scores_path, "w") as out:
        json.dump([_number(v) for v in raw], out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
