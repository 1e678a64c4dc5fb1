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


def _seeded(comparison: Comparison) -> bool:
    return any(row.seeded for row in comparison.rows)


def _rows(comparison: Comparison) -> list[list[str]]:
    seeds = _seeded(comparison)
    return [
        [
            row.suite,
            row.group,
            f"pass@{row.k}",
            str(row.n_problems),
            *([f"{row.n_seeds_base} vs {row.n_seeds_candidate}"] if seeds else []),
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


def _headers(comparison: Comparison) -> list[str]:
    return [*HEADERS[:4], "seeds", *HEADERS[4:]] if _seeded(comparison) else HEADERS


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
    if _seeded(comparison):
        return (
            f"Δ: candidate - base, percentage points, of the means over seeds; 95% CI: hierarchical bootstrap "
            f"over seeds (resampled within each side) and problems (shared by both), {comparison.n_boot} "
            f"resamples, seed fixed; p: from the same bootstrap (two-sided). {coverage(comparison)}"
        )
    return (
        f"Δ: candidate - base, percentage points; 95% CI: paired bootstrap over problems "
        f"({comparison.n_boot} resamples, seed fixed); p: {', '.join(tests)} (two-sided). {coverage(comparison)}"
    )


def coverage(comparison: Comparison) -> str:
    """What the interval rests on and what variance it covers, said once per suite."""
    parts = []
    for suite, n_base, n_cand, problems in dict.fromkeys(
        (row.suite, row.n_seeds_base, row.n_seeds_candidate, row.n_problems) for row in comparison.rows
    ):
        part = f"{suite}: {_seeds(n_base)} vs {_seeds(n_cand)}, {problems} problems"
        if n_base == 1 and n_cand == 1:
            part += ": the interval covers problem variance only (conditional on the seed of each run)"
        elif n_base == 1 or n_cand == 1:
            part += f": the {'base' if n_base == 1 else 'candidate'}'s seed variance is not covered (one run)"
        parts.append(part)
    return "Rests on " + "; ".join(parts) + "." if parts else ""


def _seeds(n: int) -> str:
    return f"{n} seed{'s' if n != 1 else ''}"


def render_table(comparison: Comparison) -> str:
    lines = [f"base:      {comparison.base}", f"candidate: {comparison.candidate}", ""]
    lines.append(tabulate(_rows(comparison), headers=_headers(comparison), tablefmt="simple", disable_numparse=True))
    lines += ["", _method(comparison)]
    flips = _flip_lines(comparison, "  ")
    if not _seeded(comparison):  # across seeds a problem's change mixes seeds: not listed
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
        tabulate(_rows(comparison), headers=_headers(comparison), tablefmt="github", disable_numparse=True),
        "",
        _method(comparison),
        "",
    ]
    flips = _flip_lines(comparison, "- ")
    if not _seeded(comparison):
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
            f"{row.n_seeds_base} vs {row.n_seeds_candidate} seeds, {row.n_problems} problems; "
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
