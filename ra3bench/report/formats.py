"""A comparison rendered for a terminal, a pull request (Markdown), a script (JSON) or a CI system (JUnit XML)."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET

from tabulate import tabulate

from ra3bench.report.base import Comparison, Row

FORMATS = ("table", "markdown", "json", "junit")
FLIPS_SHOWN = 20


def _pct(value: float) -> str:
    return f"{100 * value:.1f}" if math.isfinite(value) else "n/a"


def _pp(value: float) -> str:
    return f"{100 * value:+.1f}" if math.isfinite(value) else "n/a"


def _p(value: float) -> str:
    return f"{value:.3g}" if value >= 1e-4 else f"{value:.1e}"


def _verdict(row: Row, max_drop_pct: float) -> str:
    if row.verdict == "regression" and not row.fails:
        return f"regression (within --max-drop {max_drop_pct:g})"
    return row.verdict.upper() if row.fails else row.verdict


def _rows(comparison: Comparison) -> list[list[str]]:
    return [
        [
            row.suite,
            row.group,
            f"pass@{row.k}",
            str(row.n_problems),
            _pct(row.base),
            _pct(row.candidate),
            _pp(row.delta),
            f"[{_pp(row.ci_low)}, {_pp(row.ci_high)}]",
            _p(row.p_value),
            _verdict(row, comparison.max_drop_pct),
        ]
        for row in comparison.rows
    ]


HEADERS = ["suite", "group", "metric", "problems", "base %", "cand. %", "Δ pp", "95% CI of Δ", "p", "verdict"]


def _flip_lines(comparison: Comparison, bullet: str = "") -> list[str]:
    lines = []
    for row in comparison.rows:
        if row.lost or row.gained:
            lines.append(
                f"{bullet}{row.name}: worse on {len(row.lost)} ({_list(row.lost)}), "
                f"better on {len(row.gained)} ({_list(row.gained)})"
            )
    return lines


def _list(ids: list[str]) -> str:
    if not ids:
        return "none"
    more = f", ... {len(ids) - FLIPS_SHOWN} more" if len(ids) > FLIPS_SHOWN else ""
    return ", ".join(ids[:FLIPS_SHOWN]) + more


def outcome(comparison: Comparison) -> str:
    if comparison.failed:
        failing = ", ".join(row.name for row in comparison.rows if row.fails)
        return (
            f"REGRESSION: {failing} (significant at alpha {comparison.alpha:g}, drop > {comparison.max_drop_pct:g} pp)"
        )
    return f"no significant regression (alpha {comparison.alpha:g}, --max-drop {comparison.max_drop_pct:g} pp)"


def _method(comparison: Comparison) -> str:
    tests = sorted({row.test.split(" (")[0] for row in comparison.rows})
    return (
        f"Δ: candidate - base, percentage points; 95% CI: paired bootstrap over problems "
        f"({comparison.n_boot} resamples, seed fixed); p: {', '.join(tests)} (two-sided)."
    )


def render_table(comparison: Comparison) -> str:
    lines = [f"base:      {comparison.base}", f"candidate: {comparison.candidate}", ""]
    lines.append(tabulate(_rows(comparison), headers=HEADERS, tablefmt="simple", disable_numparse=True))
    lines += ["", _method(comparison)]
    flips = _flip_lines(comparison, "  ")
    lines += ["", "problems that changed:", *flips] if flips else ["", "no problem changed"]
    lines += [f"note: {note}" for note in comparison.notes]
    lines += ["", outcome(comparison)]
    return "\n".join(lines) + "\n"


def render_markdown(comparison: Comparison) -> str:
    icon = "❌" if comparison.failed else "✅"
    lines = [
        f"### {icon} ra3bench compare: {outcome(comparison)}",
        "",
        f"base `{comparison.base}` · candidate `{comparison.candidate}`",
        "",
        tabulate(_rows(comparison), headers=HEADERS, tablefmt="github", disable_numparse=True),
        "",
        _method(comparison),
        "",
    ]
    flips = _flip_lines(comparison, "- ")
    lines += ["**Problems that changed**", "", *flips, ""] if flips else ["No problem changed.", ""]
    lines += [f"> note: {note}" for note in comparison.notes]
    return "\n".join(lines).rstrip() + "\n"


def render_json(comparison: Comparison) -> str:
    return json.dumps(comparison.to_json(), indent=2) + "\n"


def render_junit(comparison: Comparison) -> str:
    """One <testcase> per suite / group / k; a <failure> where the candidate regressed beyond --max-drop."""
    failures = sum(row.fails for row in comparison.rows)
    root = ET.Element("testsuites", name="ra3bench compare", tests=str(len(comparison.rows)), failures=str(failures))
    suite_el = ET.SubElement(
        root, "testsuite", name="ra3bench compare", tests=str(len(comparison.rows)), failures=str(failures), errors="0"
    )
    props = ET.SubElement(suite_el, "properties")
    for name, value in (("base", comparison.base), ("candidate", comparison.candidate), ("alpha", comparison.alpha)):
        ET.SubElement(props, "property", name=name, value=str(value))
    for row in comparison.rows:
        case = ET.SubElement(
            suite_el, "testcase", classname=f"ra3bench.{row.suite}.{row.group}", name=f"pass@{row.k}", time="0"
        )
        text = (
            f"base {_pct(row.base)}%, candidate {_pct(row.candidate)}%, delta {_pp(row.delta)} pp "
            f"(95% CI [{_pp(row.ci_low)}, {_pp(row.ci_high)}]), p = {_p(row.p_value)} ({row.test}); "
            f"{row.verdict}; worse on: {_list(row.lost)}; better on: {_list(row.gained)}"
        )
        if row.fails:
            failure = ET.SubElement(case, "failure", type="regression", message=f"{row.name}: {_pp(row.delta)} pp")
            failure.text = text
        ET.SubElement(case, "system-out").text = text
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


RENDERERS = {"table": render_table, "markdown": render_markdown, "json": render_json, "junit": render_junit}


def render(comparison: Comparison, fmt: str) -> str:
    return RENDERERS[fmt](comparison)
