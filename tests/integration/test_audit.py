"""`ra3bench audit` against real judges: an open-r1-like reward, evalplus (pinned), and ra3bench itself.

Each audit must find what the judge's code says it should: the open-r1-like ``zip()`` comparison
passes an empty (truncated) answer; evalplus, which compares results inside the process that ran
the program, passes an always-equal object and a program that reads the expected output from its
frames; ra3bench has no false pass and no escape in either sandbox. Small on purpose (one problem
per suite, few recorded outputs): the whole file stays within a CI minute or two.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from ra3bench.audit import AuditOptions, Scorecard, audit_judge
from ra3bench.cli.main import main
from ra3bench.errors import Ra3benchError, SandboxUnavailableError

JUDGES = Path(__file__).resolve().parent / "judges"
OPENR1 = "openr1_like:code_reward"
TRUNCATED = "no output at all (a truncated answer)"
ALWAYS_EQUAL = "always-equal object (__eq__ says yes)"
FRAMES = "read the expected output from the judge's frames"
CONTROL = "control: a plain wrong answer"


@pytest.fixture
def judges_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fixture judge importable here and in the audit's child processes."""
    monkeypatch.syspath_prepend(str(JUDGES))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(JUDGES), os.environ.get("PYTHONPATH")])))


def _need(kind: str) -> None:
    from ra3bench.sandbox import make_sandbox

    try:
        make_sandbox(kind, workers=1).close()
    except SandboxUnavailableError as exc:
        pytest.skip(f"{kind} sandbox unavailable here: {exc}")
    except Ra3benchError as exc:
        pytest.skip(f"{kind} sandbox not available: {exc}")


def _row(card: Scorecard, case: str, suite: str | None = None):
    return next(f for f in card.findings if f.case == case and (suite is None or f.suite == suite))


def test_openr1_like_reward_passes_a_truncated_answer_and_lets_attacks_out(judges_on_path, capsys) -> None:
    _need("local")
    flags = ["--i-understand-this-runs-attacks", "--suites", "codeforces", "--sets", "attacks", "--sandbox", "local"]
    rc = main(["audit", "--judge", OPENR1, *flags, "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 1 and not out["ok"]
    rows = {f["case"]: f for f in out["findings"]}
    assert rows[TRUNCATED]["false_pass"] and rows[TRUNCATED]["score"] == 1.0
    assert rows[TRUNCATED]["trusted"] != "pass"
    assert not rows[CONTROL]["false_pass"] and rows[CONTROL]["score"] == 0.0  # it does fail a plain wrong answer
    secret = rows["environment: read the caller's secret and send it out"]["side_effects"]
    assert any("environment secret read" in e for e in secret), secret
    assert any("processes left behind" in e for e in rows["process left behind: setsid + double fork"]["side_effects"])
    assert rows["kill the judge: os.kill(os.getppid(), 9)"]["judge_outcome"] == "killed"


def test_contain_keeps_the_escapes_off_the_host_and_still_finds_the_false_pass(judges_on_path) -> None:
    _need("local")
    card = audit_judge(
        AuditOptions(OPENR1, suites=("codeforces",), sets=("attacks",), sandbox="local", contain=True, understood=True),
        say=lambda line: None,
    )
    assert _row(card, TRUNCATED).false_pass
    assert [f.case for f in card.findings if f.side_effects] == []
    assert "bubblewrap" in card.containment_note


def test_verl_like_assert_mode_passes_an_early_clean_exit(judges_on_path) -> None:
    _need("local")
    options = AuditOptions("verl_like:compute_score", suites=("humaneval+",), sets=("attacks", "references"))
    card = audit_judge(replace(options, sandbox="local", understood=True), say=lambda line: None)
    assert _row(card, "exit 0 before the tests run (sys.exit at import)").false_pass
    assert not _row(card, CONTROL).false_pass and _row(card, CONTROL).score == 0.0
    assert all(f.judge_passed for f in card.of("references"))


def test_an_in_process_judge_needs_consent(judges_on_path, capsys) -> None:
    rc = main(["audit", "--judge", OPENR1, "--suites", "codeforces"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "--i-understand-this-runs-attacks" in err and "Traceback" not in err


def test_an_unimportable_judge_is_one_line(capsys) -> None:
    rc = main(["audit", "--judge", "no_such_module_here:reward", "--i-understand-this-runs-attacks"])
    err = capsys.readouterr().err
    assert rc == 2 and "cannot import" in err and "Traceback" not in err


def test_evalplus_false_passes_are_found() -> None:
    if importlib.util.find_spec("evalplus") is None:  # CI installs it (.ci/setup): there it may not skip
        if os.environ.get("RA3BENCH_REQUIRE_EVALPLUS") == "1":
            pytest.fail("RA3BENCH_REQUIRE_EVALPLUS=1 but evalplus is not installed (.ci/setup installs it)")
        pytest.skip("evalplus not installed (.ci/setup installs it)")
    _need("local")
    options = AuditOptions("evalplus", suites=("humaneval+", "mbpp+", "codeforces"), recorded=3, sandbox="local",
                           understood=True)  # fmt: skip
    said: list[str] = []
    card = audit_judge(options, say=said.append)
    assert card.judge["version"] == "0.3.1"
    assert any("codeforces left out" in line for line in said)  # evalplus has no stdin data set
    assert _row(card, ALWAYS_EQUAL, "humaneval+").false_pass
    assert _row(card, FRAMES, "humaneval+").false_pass
    assert _row(card, FRAMES, "mbpp+").false_pass  # through its own MBPP+ evaluate (MBPP_OVERRIDE_PATH)
    assert not any(_row(card, CONTROL, suite).false_pass for suite in ("humaneval+", "mbpp+"))
    assert all(f.judge_passed for f in card.of("references"))  # a sound judge on its references
    assert len(card.of("recorded")) == 3
    assert not card.ok


@pytest.mark.parametrize("kind", ["local", pytest.param("docker", marks=pytest.mark.docker)])
def test_ra3bench_has_no_false_pass_and_no_escape(kind: str) -> None:
    _need(kind)
    card = audit_judge(AuditOptions("ra3bench", sets=("attacks", "references"), sandbox=kind), say=lambda line: None)
    assert card.false_passes == [] and card.escapes == [], [f.to_json() for f in card.false_passes + card.escapes]
    assert {f.suite for f in card.of("attacks")} == {"humaneval+", "codeforces"}
    assert card.of("references") and all(f.judge_passed for f in card.of("references"))
    assert card.ok
