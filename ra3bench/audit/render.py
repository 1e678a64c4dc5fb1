"""The scorecard as a terminal table, Markdown or JSON (tabulate for the tables)."""

from __future__ import annotations

import json

from tabulate import tabulate

from ra3bench.audit.base import ATTACKS, RECORDED, REFERENCES, Finding, Scorecard


def _score(f: Finding) -> str:
    return "-" if f.score is None else f"{f.score:g}"


def _rows(findings: list[Finding], with_kind: bool = True) -> list[list[str]]:
    rows = []
    for f in findings:
        effects = "; ".join(f.side_effects) or "-"
        outcome = f.judge_outcome + (f" ({f.detail[:60]})" if f.detail and f.judge_outcome != "ok" else "")
        row = [f.case, f.task_id, _score(f), f.trusted, outcome, effects, f.result]
        rows.append([f.kind, *row] if with_kind else row)
    return rows


def render(card: Scorecard, fmt: str = "table") -> str:
    if fmt == "json":
        return json.dumps(card.to_json(), indent=2)
    style = "github" if fmt == "markdown" else "simple"
    out = []
    head = "### " if fmt == "markdown" else ""
    out.append(f"{head}audit of {card.judge['name']} ({card.date})")
    out.append(f"isolation of the judge: {card.judge.get('isolation', '')}")
    out.append(f"containment: {card.containment_note}")
    out.append(
        f"trusted verdicts: ra3bench, {card.trusted_sandbox} sandbox; versions: "
        + ", ".join(f"{k} {v}" for k, v in card.versions.items())
    )
    out.append("")
    headers = ["set", "program", "task", "score", "ra3bench", "judge process", "side effects", "result"]
    attacks = card.of(ATTACKS)
    if attacks:
        out.append(f"{head}hostile programs (every one is wrong)")
        out.append(tabulate(_rows(attacks), headers=["kind", *headers[1:]], tablefmt=style))
        out.append("")
    refs = card.of(REFERENCES)
    if refs:
        bad = [f for f in refs if not f.judge_passed]
        out.append(f"{head}reference solutions: {len(refs) - len(bad)} of {len(refs)} passed")
        if bad:
            out.append(tabulate(_rows(bad, False), headers=headers[1:], tablefmt=style))
        out.append("")
    recorded = card.of(RECORDED)
    if recorded:
        differ = [f for f in recorded if f.judge_passed != (f.trusted == "pass")]
        share = 1 - len(differ) / len(recorded)
        out.append(f"{head}recorded model outputs: {len(recorded)}, agreement with ra3bench {share:.0%}")
        if differ:
            out.append(tabulate(_rows(differ, False), headers=headers[1:], tablefmt=style))
        out.append("")
    for note in card.notes:
        out.append(f"note: {note}")
    verdict = (
        "OK: no false pass, no escape"
        if card.ok
        else (f"FAIL: {len(card.false_passes)} false pass(es), {len(card.escapes)} escape(s) or judge kill/hang")
    )
    out.append(verdict)
    return "\n".join(out)
