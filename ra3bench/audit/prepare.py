"""The library entry: build the judge from its SPEC, choose the problems, judge them with ra3bench too.

``audit_judge`` is what ``ra3bench audit`` calls; a notebook or a CI job calls it the same way.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ra3bench.audit.base import ATTACKS, FUNCTION, RECORDED, REFERENCES, SETS, STDIN, Item, Judge, Scorecard
from ra3bench.audit.runner import Plan, run_audit
from ra3bench.errors import UsageError
from ra3bench.sandbox.attacks import plant_env_secret

IN_PROCESS_WARNING = (
    "{name} runs the programs it judges in its own process ({isolation}); the audit sends it hostile programs "
    "that try to reach this machine (network, files, environment, processes)"
)
TESTS_PER_COLUMN = 3  # tests handed to a reward function per problem: enough to tell a wrong program, cheap to hang on


@dataclass
class AuditOptions:
    judge: str
    suites: tuple[str, ...] = ("humaneval+", "codeforces")
    problems: int = 1  # attacked problems per suite
    recorded: int = 20
    sets: tuple[str, ...] = SETS
    sandbox: str = "auto"  # ra3bench's, for the trusted verdicts and the ra3bench judge
    contain: bool = False
    understood: bool = False  # --i-understand-this-runs-attacks
    deadline_s: float = 60.0
    python: str = ""  # evalplus: the interpreter that has it
    completion: str = "chat"  # how a callable judge gets completions: chat messages or text


def _form(problem: Any) -> str:
    return STDIN if not problem.entry_point else FUNCTION


def _choose(session: Any, n: int) -> list[Any]:
    ok = [p for p in session.problems if not p.unverifiable and "." not in p.entry_point]
    return ok[:n]


class Trusted:
    """ra3bench's sessions per suite: the trusted verdicts, and the columns a reward function reads."""

    def __init__(self, stack: ExitStack, suites: tuple[str, ...], pool: int, sandbox: str) -> None:
        from ra3bench import EvalSpec, Session, get_suite

        self.sessions: dict[str, Any] = {}
        for name in suites:
            suite = get_suite(name)
            candidates = [p for p in suite.selected() if not p.unverifiable and "." not in p.entry_point][:pool]
            if not candidates:
                raise UsageError(f"suite {name}: no problem the audit can use")
            spec = EvalSpec(suite=name, tasks=[p.task_id for p in candidates], sandbox=sandbox)
            self.sessions[name] = stack.enter_context(Session(spec, suite=suite))

    def verdicts(self, items: list[Item]) -> list[str]:
        """ra3bench's verdict on each item's completion, read as ``ra3bench run`` reads a chat answer (its
        extraction adds a missing ``from typing import List``: a recorded output ra3bench passes for that
        and a judge fails shows up as a disagreement, with the reason in the judge's own terms)."""
        out = [""] * len(items)
        for name, session in self.sessions.items():
            index = [i for i, it in enumerate(items) if it.suite == name]
            if index:
                programs = [session.extract(items[i].task_id, items[i].completion) for i in index]
                got = session.judge([items[i].task_id for i in index], programs)
                for i, verdict in zip(index, got, strict=True):
                    out[i] = "sandbox_error" if verdict.sandbox_error else verdict.status.value
        return out

    def columns(self, item: Item) -> dict[str, Any]:
        """The dataset columns a reward function gets: open-r1's ``verification_info``, a ``test`` program,
        verl's ``ground_truth`` (inputs and outputs as JSON), ``entry_point``."""
        session = self.sessions[item.suite]
        problem = session.problem(item.task_id)
        group = next(iter(problem.groups.values()))
        inputs = list(group.inputs[:TESTS_PER_COLUMN])
        if group.outputs is not None:
            outputs = list(group.outputs[:TESTS_PER_COLUMN])
        else:
            outputs = list(session.expectations().get(problem.task_id, group.name).outputs[: len(inputs)])
        if not problem.entry_point:
            cases = [{"input": i[0], "output": o, "type": "stdin_stdout"} for i, o in zip(inputs, outputs, strict=True)]
            return {
                "verification_info": {"language": "python", "test_cases": cases},
                "ground_truth": json.dumps({"inputs": [i[0] for i in inputs], "outputs": outputs}),
                "entry_point": "",
            }
        asserts = "".join(f"    assert candidate(*{a!r}) == {o!r}\n" for a, o in zip(inputs, outputs, strict=True))
        test = f"def check(candidate):\n{asserts}\ncheck({problem.entry_point})\n"
        truth = {"fn_name": problem.entry_point, "inputs": inputs, "outputs": outputs}
        return {"test": test, "entry_point": problem.entry_point, "ground_truth": json.dumps(truth, default=repr)}


def data_dir() -> Path | None:
    value = os.environ.get("RA3BENCH_DATA_DIR", "").strip()
    return Path(value) if value else None


def make_judge(options: AuditOptions, trusted: Trusted, env: dict[str, str], stack: ExitStack) -> Judge:
    from ra3bench.audit.judges import CallableJudge, EvalplusJudge, Ra3benchJudge

    wrap = None
    if options.contain:
        from ra3bench.audit.contain import bwrap_wrapper

        wrap = bwrap_wrapper()
    if options.judge == "ra3bench":
        if options.contain:
            raise UsageError("--contain is for judges that run programs in-process; ra3bench has its own --sandbox")
        return Ra3benchJudge(options.sandbox, trusted.columns, env)
    if options.judge == "evalplus":
        root = data_dir() or Path("-")
        files = {"humaneval+": root / "humanevalplus" / "HumanEvalPlus.jsonl.gz",
                 "mbpp+": root / "mbppplus" / "MbppPlus.jsonl.gz"}  # fmt: skip
        for suite, data in files.items():
            if suite in options.suites and not data.exists():
                raise UsageError(f"judge 'evalplus' needs {suite}'s data file at {data} (set RA3BENCH_DATA_DIR)")
        cache = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ra3bench-audit-evalplus-")))
        return EvalplusJudge(options.python or sys.executable, files, cache, env, wrap)
    return CallableJudge(options.judge, trusted.columns, env, wrap, options.completion)


def audit_judge(options: AuditOptions, say: Callable[[str], None] = print) -> Scorecard:
    """Audit one judge: the warning and the consent check first, then every set; a :class:`Scorecard`."""
    unknown = sorted(set(options.sets) - set(SETS))
    if unknown:
        raise UsageError(f"unknown set {unknown[0]!r}; sets are {', '.join(SETS)}")
    if options.judge == "evalplus":  # evalplus has data sets for these two only
        from ra3bench.audit.judges import EVALPLUS_DATASETS

        kept = tuple(s for s in options.suites if s in EVALPLUS_DATASETS) or ("humaneval+",)
        dropped = [s for s in options.suites if s not in kept]
        if dropped:
            say(f"evalplus judges {', '.join(EVALPLUS_DATASETS)} only: {', '.join(dropped)} left out")
        options.suites = kept
    if options.judge != "ra3bench" and not options.understood:  # before anything starts
        raise UsageError(
            f"judge {options.judge!r} runs the programs it judges in its own process and the audit sends it "
            "hostile programs: rerun with --i-understand-this-runs-attacks (add --contain to run it inside "
            "bubblewrap, so that its failures cannot reach this machine)"
        )
    secret = plant_env_secret()
    env = dict(os.environ)
    with ExitStack() as stack:
        pool = max(options.problems, 20 if RECORDED in options.sets else 0)
        trusted = Trusted(stack, options.suites, pool, options.sandbox)
        judge = make_judge(options, trusted, env, stack)
        say(f"judge: {judge.name}; its isolation: {judge.isolation}")
        if judge.in_process:
            say("warning: " + IN_PROCESS_WARNING.format(name=judge.name, isolation=judge.isolation))
        from ra3bench.audit.contain import NOTE

        note = NOTE if options.contain else "not contained: side effects are what the judge lets through"
        say(f"containment: {note}")
        plan = Plan(
            suites={name: _choose(s, options.problems) for name, s in trusted.sessions.items()},
            forms={name: _form(s.problems[0]) for name, s in trusted.sessions.items()},
            recorded=options.recorded,
            data_dir=data_dir(),
            sets=tuple(s for s in SETS if s in options.sets),
            pool={name: {p.task_id for p in s.problems} for name, s in trusted.sessions.items()},
        )
        card = run_audit(
            judge,
            plan,
            trusted.verdicts,
            secret=secret,
            deadline_s=options.deadline_s,
            contained=options.contain,
            containment_note=note,
            trusted_sandbox=options.sandbox,
            on_progress=say,
        )
        card.versions = versions(judge)
    return card


def versions(judge: Judge) -> dict[str, str]:
    import platform

    from ra3bench import __version__
    from ra3bench.results import code_version

    code = code_version()
    sha = code.get("git_sha", "")[:12] + ("+dirty" if code.get("git_dirty") else "")
    found = {"ra3bench": f"{__version__} {sha}".strip(), "python": platform.python_version()}
    if "version" in judge.describe():
        found[judge.name.split()[0]] = str(judge.describe()["version"])
    return found


__all__ = ["ATTACKS", "REFERENCES", "AuditOptions", "audit_judge"]
