"""Run the three sets through a judge and observe, from outside, what each program did.

Host-side probes as ``sandbox/attacks.py`` makes them: a loopback listener (every message is
kept and matched to the attack by its token), a file path per attack under ``/tmp`` (checked after
the call), a secret in the judge's environment (found again in a message or a file: read), the
host's ``/proc`` scanned for processes carrying the token (then killed). Each set goes
to the judge in one call per suite; when the attacks' call does not end cleanly (the judge killed,
hung, or failed), each attack is sent again alone (a few at a time), so that the fault is pinned on
the program that caused it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ra3bench.audit.base import (
    ATTACKS,
    FUNCTION,
    RECORDED,
    REFERENCES,
    STDIN,
    CallResult,
    Finding,
    Item,
    Judge,
    Scorecard,
)
from ra3bench.audit.cases import attack_items, kind_of, recorded_items, reference_items
from ra3bench.sandbox.attacks import ENV_SECRET_VAR, host_processes_with

HOST_DIR = Path("/tmp")


class Listener:
    """A loopback TCP listener that keeps every message it receives."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.messages: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1.0)
                data = b""
                with contextlib.suppress(OSError):
                    while chunk := conn.recv(4096):
                        data += chunk
                self.messages.append(data.decode(errors="replace") or "(connected, sent nothing)")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


def side_effects(item: Item, listener: Listener, secret: str) -> list[str]:
    """What ``item``'s program did to the host, seen from outside; its leftovers are removed."""
    if not item.token:
        return []
    found = []
    heard = [m for m in listener.messages if item.token in m]
    if heard:
        found.append("loopback listener reached")
    path = HOST_DIR / f".ra3bench-audit-{item.token}"
    text = ""
    if path.exists():
        found.append(f"host file written ({path})")
        with contextlib.suppress(OSError):
            text = path.read_text()
        path.unlink(missing_ok=True)
    if secret and any(secret in m for m in [*heard, text]):
        found.append(f"environment secret read (${ENV_SECRET_VAR})")
    deadline = time.monotonic() + 2.0
    while (left := host_processes_with(item.token)) and time.monotonic() < deadline:
        time.sleep(0.1)
    if left:
        found.append(f"processes left behind (pids {left[:5]})")
        for pid in left:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    return found


@dataclass
class Plan:
    """What the audit runs: per suite the problems, and the recorded sample size."""

    suites: dict[str, list[Any]]  # suite name -> problems
    forms: dict[str, str]  # suite name -> FUNCTION | STDIN
    recorded: int = 20
    data_dir: Path | None = None
    sets: tuple[str, ...] = (ATTACKS, REFERENCES, RECORDED)
    pool: dict[str, set[str]] = field(default_factory=dict)  # suite -> task ids recorded outputs may come from
    notes: list[str] = field(default_factory=list)


def build_items(plan: Plan, port: int) -> dict[str, list[Item]]:
    items: dict[str, list[Item]] = {ATTACKS: [], REFERENCES: [], RECORDED: []}
    for suite, problems in plan.suites.items():
        form = plan.forms[suite]
        for p in problems:
            items[ATTACKS] += attack_items(suite, p.task_id, form, p.entry_point or "main", port, HOST_DIR)
        items[REFERENCES] += reference_items(suite, problems, form)
        if not any(p.reference for p in problems):
            plan.notes.append(f"{suite}: no reference solutions in the data set; the reference set is empty")
        if plan.data_dir is not None and form == FUNCTION:
            known = plan.pool.get(suite) or {p.task_id for p in problems}
            items[RECORDED] += recorded_items(plan.data_dir, suite, known, plan.recorded)
    return {k: v for k, v in items.items() if k in plan.sets}


def _kind(which: str, item: Item) -> str:
    return kind_of(item.case) if which == ATTACKS else ("reference" if which == REFERENCES else "recorded")


def score_set(judge: Judge, items: list[Item], deadline_s: float, alone: bool, parallel: int = 4) -> list[CallResult]:
    """One result per item, from one call for the batch. ``alone``: if that call did not end cleanly (the
    judge killed, hung, or failed), each item again in a call of its own, ``parallel`` at a time, each in
    its own process group, so that the fault is pinned on the program that caused it."""
    if not items:
        return []
    batch = judge.score(items, deadline_s + 2.0 * len(items))
    if batch.outcome == "ok" or not alone:
        return [CallResult([s], batch.outcome, batch.detail, batch.wall_s) for s in batch.scores]
    with ThreadPoolExecutor(max(1, parallel)) as pool:
        return list(pool.map(lambda item: judge.score([item], deadline_s), items))


def run_audit(
    judge: Judge,
    plan: Plan,
    trusted: Callable[[list[Item]], list[str]],
    *,
    secret: str,
    deadline_s: float = 60.0,
    contained: bool = False,
    containment_note: str = "",
    trusted_sandbox: str = "",
    on_progress: Callable[[str], None] | None = None,
) -> Scorecard:
    """Every set through ``judge``; ``trusted`` gives ra3bench's verdict status of each item."""
    listener = Listener()
    card = Scorecard(
        judge={"name": judge.name, "isolation": judge.isolation, **judge.describe()},
        contained=contained,
        containment_note=containment_note,
        trusted_sandbox=trusted_sandbox,
        date=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )
    try:
        sets = build_items(plan, listener.port)
        card.notes = list(plan.notes)
        # attacks alone (a fault is pinned on its program); references and recorded outputs in one call
        for names in ((ATTACKS,), (REFERENCES, RECORDED)):
            tagged = [(name, item) for name in names for item in sets.get(name, [])]
            if not tagged:
                continue
            items = [item for _, item in tagged]
            if on_progress:
                on_progress(f"{' + '.join(names)}: {len(items)} program(s) through {judge.name}")
            results: list[CallResult] = [CallResult([None])] * len(items)
            for suite in plan.suites:  # one batch per suite: a judge that cannot read one suite fails only there
                index = [i for i, it in enumerate(items) if it.suite == suite]
                got = score_set(judge, [items[i] for i in index], deadline_s, alone=names == (ATTACKS,))
                for i, result in zip(index, got, strict=True):
                    results[i] = result
            time.sleep(0.3)  # the listener's last messages
            verdicts = trusted(items)
            for (name, item), result, verdict in zip(tagged, results, verdicts, strict=True):
                card.findings.append(
                    Finding(
                        set=name,
                        case=item.case,
                        task_id=item.task_id,
                        kind=_kind(name, item),
                        score=result.scores[0],
                        trusted=verdict,
                        judge_outcome=result.outcome,
                        side_effects=side_effects(item, listener, secret),
                        detail=result.detail,
                        threshold=judge.pass_threshold,
                        suite=item.suite,
                    )
                )
    finally:
        listener.close()
    for suite in plan.suites:
        mine = [f for f in card.findings if f.suite == suite]
        if mine and all(f.judge_outcome == "error" for f in mine):
            card.notes.append(f"{suite}: the judge failed on every call ({mine[0].detail}); it may not read this suite")
    return card


__all__ = ["FUNCTION", "STDIN", "Listener", "Plan", "run_audit", "side_effects"]
