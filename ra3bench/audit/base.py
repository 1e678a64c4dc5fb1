"""The audit's contract: a judge under audit, the programs it is shown, and what was found.

A *judge* is anything that turns (problem, model output) into a score: a reward function, a
package's evaluator, a scoring service. The audit shows it programs whose right verdict is known
(hostile programs that never compute the answer, the suite's reference solutions, recorded model
outputs judged by ra3bench) and watches, from outside the judge's process, what it scores and what
the programs manage to do to the host. Nothing here trusts the judge: it runs in a child process
with a deadline (``runner.py``), and its scores are read back as data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

ATTACKS, REFERENCES, RECORDED = "attacks", "references", "recorded"
SETS = (ATTACKS, REFERENCES, RECORDED)
FUNCTION, STDIN = "function", "stdin"  # how a problem's tests run the program


@dataclass
class Item:
    """One program shown to the judge: ``program`` as code, ``completion`` as a model would answer it."""

    case: str  # attack name, "reference" or the recorded sample's id
    task_id: str
    suite: str
    form: str  # FUNCTION | STDIN
    program: str
    token: str = ""  # an attack's unique marker: its host file, listener message and processes carry it

    @property
    def completion(self) -> str:
        return f"```python\n{self.program}\n```"


@dataclass
class CallResult:
    """What one judge call gave back: a score per item (None: missing or not a number), or why not."""

    scores: list[float | None]
    outcome: str = "ok"  # ok | killed | hung | error
    detail: str = ""
    wall_s: float = 0.0


class Judge(Protocol):
    """A judge under audit. ``score`` runs it on a batch in a child process that is killed at ``deadline_s``;
    a batch holds one suite's items (the runner sends one per suite)."""

    name: str
    in_process: bool  # runs the programs in its own process (no isolation of its own)
    pass_threshold: float
    isolation: str  # one line: what the judge itself isolates, said before the audit starts

    def score(self, items: list[Item], deadline_s: float) -> CallResult: ...

    def describe(self) -> dict[str, Any]: ...


@dataclass
class Finding:
    """One program's row of the scorecard."""

    set: str  # ATTACKS | REFERENCES | RECORDED
    case: str
    task_id: str
    kind: str  # attack class (verdict, containment), "reference", or the recorded run
    score: float | None
    trusted: str  # ra3bench's verdict status (pass, fail, timeout, ...)
    judge_outcome: str  # ok | killed | hung | error
    side_effects: list[str] = field(default_factory=list)
    detail: str = ""
    threshold: float = 1.0
    suite: str = ""

    @property
    def judge_passed(self) -> bool:
        return self.score is not None and self.score >= self.threshold

    @property
    def false_pass(self) -> bool:
        """The judge passed a program ra3bench fails."""
        return self.judge_passed and self.trusted != "pass"

    @property
    def false_fail(self) -> bool:
        """The judge failed a program ra3bench passes (a reference rejected, a disagreement)."""
        return not self.judge_passed and self.trusted == "pass"

    @property
    def escaped(self) -> bool:
        return bool(self.side_effects)

    @property
    def result(self) -> str:
        bad = [
            label
            for label, hit in (
                ("FALSE PASS", self.false_pass),
                ("ESCAPE", self.escaped),
                ("JUDGE " + self.judge_outcome.upper(), self.judge_outcome in ("killed", "hung")),
                ("FALSE FAIL", self.false_fail),
            )
            if hit
        ]
        return ", ".join(bad) or "OK"

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "false_pass": self.false_pass,
            "false_fail": self.false_fail,
            "escaped": self.escaped,
            "result": self.result,
        }


@dataclass
class Scorecard:
    """The audit of one judge: what it is, how it was run, and every finding."""

    judge: dict[str, Any]
    contained: bool
    containment_note: str
    trusted_sandbox: str
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    date: str = ""
    versions: dict[str, str] = field(default_factory=dict)

    def of(self, which: str) -> list[Finding]:
        return [f for f in self.findings if f.set == which]

    @property
    def false_passes(self) -> list[Finding]:
        return [f for f in self.findings if f.false_pass]

    @property
    def escapes(self) -> list[Finding]:
        return [f for f in self.findings if f.escaped or f.judge_outcome in ("killed", "hung")]

    @property
    def ok(self) -> bool:
        """No false pass and no escape: the exit status of ``ra3bench audit``."""
        return not self.false_passes and not self.escapes

    def to_json(self) -> dict[str, Any]:
        return {
            "judge": self.judge,
            "date": self.date,
            "versions": self.versions,
            "contained": self.contained,
            "containment_note": self.containment_note,
            "trusted_sandbox": self.trusted_sandbox,
            "ok": self.ok,
            "false_passes": len(self.false_passes),
            "escapes": len(self.escapes),
            "notes": self.notes,
            "findings": [f.to_json() for f in self.findings],
        }
