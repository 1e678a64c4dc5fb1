"""`ra3bench compare` on real run folders: the first 20 HumanEval+ problems, a real model's samples, local sandbox.

The degraded candidate is not edited by hand: it is a second evaluation in which the programs of
a known set of problems were deliberately broken (wrong answers, or a crash at import), so its
verdicts come from the sandbox like any other run's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

DATA = Path(os.environ["RA3BENCH_DATA_DIR"])
SAMPLES = DATA / "samples/evalplus/llama3-exp/70B-instruct-base/samples.jsonl.gz"
EVALUATE = ["evaluate", "--suite", "humaneval+", "--suite-version", "v0.1.9", "--sandbox", "local"]
N_BROKEN = 7  # 7 lost, 0 gained: exact McNemar p = 2 / 2^7 = 0.016


def ra3bench(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ra3bench.cli.main", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=600,
    )


def evaluate(out: Path, *args: str) -> Path:
    done = ra3bench(*EVALUATE, *args, "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    return out


def rows_of(folder: Path, name: str) -> list[dict]:
    return [json.loads(line) for line in (folder / name).read_text().splitlines()]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("compare")
    base = evaluate(root / "base", "--samples", str(SAMPLES), "--limit", "20")
    passing = sorted(
        (v["task_id"] for v in rows_of(base, "verdicts.jsonl") if v["status"] == "pass"),
        key=lambda t: int(t.split("/")[1]),
    )
    broken = passing[:N_BROKEN]
    samples = rows_of(base, "samples.jsonl")
    for i, row in enumerate(s for s in samples if s["task_id"] in broken):
        if i % 2:  # a crash when the module loads: status error
            row["program"] += "\n\nraise RuntimeError('deliberately broken')\n"
        else:  # the entry point redefined to a wrong answer: status fail
            entry = row["program"].split("def ", 1)[1].split("(", 1)[0] if "def " in row["program"] else "f"
            row["program"] += f"\n\ndef {entry}(*args, **kwargs):\n    return None\n"
    cand = evaluate(root / "cand", "--samples", str(write_jsonl(root / "broken.jsonl", samples)), "--limit", "20")
    return {"root": root, "base": base, "cand": cand, "broken": broken}


def one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def as_json(*args: str, env: dict | None = None) -> tuple[int, dict]:
    done = ra3bench("compare", *args, "--format", "json", env=env)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


def test_the_broken_programs_really_fail(runs):
    statuses = {v["task_id"]: v["status"] for v in rows_of(runs["cand"], "verdicts.jsonl")}
    assert {statuses[t] for t in runs["broken"]} == {"fail", "error"}
    base = {v["task_id"]: v["status"] for v in rows_of(runs["base"], "verdicts.jsonl")}
    assert {t for t in statuses if statuses[t] != base[t]} == set(runs["broken"])


def test_a_run_against_itself_exits_0_without_flips(runs, tmp_path):
    summary_file = tmp_path / "step_summary.md"
    code, report = as_json(str(runs["base"]), str(runs["base"]), env={"GITHUB_STEP_SUMMARY": str(summary_file)})
    assert code == 0 and not report["failed"]
    assert [(r["group"], r["k"]) for r in report["rows"]] == [("base", 1), ("plus", 1)]
    for row in report["rows"]:
        assert row["delta"] == 0 and row["lost"] == [] and row["gained"] == [] and row["p_value"] == 1.0
        assert row["verdict"] == "no significant change" and row["n_problems"] == 20
    assert "no significant regression" in summary_file.read_text()  # Markdown appended for GitHub Actions

    table = ra3bench("compare", str(runs["base"]), str(runs["base"]))
    assert table.returncode == 0 and "no problem changed" in table.stdout


def test_a_degraded_candidate_is_a_regression_with_exactly_the_broken_problems(runs, tmp_path):
    code, report = as_json(str(runs["base"]), str(runs["cand"]))
    assert code == 1 and report["failed"]
    for row in report["rows"]:
        assert row["lost"] == runs["broken"] and row["gained"] == []
        assert row["verdict"] == "regression" and row["fails"]
        assert row["delta"] == pytest.approx(-N_BROKEN / 20)
        assert row["test"].startswith("McNemar exact (lost 7, gained 0)")
        assert row["p_value"] == pytest.approx(2 / 2**N_BROKEN)
        assert row["ci_low"] <= row["delta"] <= row["ci_high"] < 0

    md = ra3bench(
        "compare", str(runs["base"]), str(runs["cand"]), "--format", "markdown", "--output", str(tmp_path / "c.md")
    )
    assert md.returncode == 1 and md.stdout.startswith("REGRESSION")
    text = (tmp_path / "c.md").read_text()
    assert "| humaneval+ | plus" in text and all(t in text for t in runs["broken"])


def test_the_other_way_round_is_an_improvement_and_max_drop_tolerates_a_drop(runs):
    code, report = as_json(str(runs["cand"]), str(runs["base"]))
    assert code == 0 and {r["verdict"] for r in report["rows"]} == {"improvement"}
    assert all(r["gained"] == runs["broken"] and r["lost"] == [] for r in report["rows"])
    code, report = as_json(str(runs["base"]), str(runs["cand"]), "--max-drop", "40")  # the drop is 35 pp
    assert code == 0 and {r["verdict"] for r in report["rows"]} == {"regression"} and not report["failed"]


def test_junit_xml_has_one_testcase_per_group_and_k_and_a_failure_on_regression(runs, tmp_path):
    out = tmp_path / "compare.xml"
    done = ra3bench("compare", str(runs["base"]), str(runs["cand"]), "--format", "junit", "--output", str(out))
    assert done.returncode == 1
    root = ET.parse(out).getroot()
    cases = root.findall(".//testcase")
    assert [(c.get("classname"), c.get("name")) for c in cases] == [
        ("ra3bench.humaneval+.base", "pass@1"),
        ("ra3bench.humaneval+.plus", "pass@1"),
    ]
    assert all(c.find("failure") is not None for c in cases)
    assert root.get("tests") == "2" and root.get("failures") == "2"
    assert runs["broken"][0] in cases[0].find("failure").text

    same = ET.fromstring(ra3bench("compare", str(runs["base"]), str(runs["base"]), "--format", "junit").stdout)
    assert len(same.findall(".//testcase")) == 2 and same.findall(".//failure") == []


def test_folders_of_run_folders_are_paired_by_suite(runs, tmp_path):
    for side in ("base", "cand"):
        (tmp_path / side).mkdir()
        shutil.copytree(runs[side], tmp_path / side / "humanevalplus")
    code, report = as_json(str(tmp_path / "base"), str(tmp_path / "cand"))
    assert code == 1 and len(report["rows"]) == 2


def test_other_suite_version_is_not_comparable(runs):
    other = evaluate(runs["root"] / "v0.1.10", "--suite-version", "v0.1.10", "--samples", str(SAMPLES), "--limit", "20")
    line = one_line_error(ra3bench("compare", str(runs["base"]), str(other)), "not comparable")
    assert "suite version differs (base v0.1.9, candidate v0.1.10)" in line and "data sha256 differs" in line


def test_other_n_is_not_comparable(runs):
    twice = [dict(row, sample_index=i) for row in rows_of(runs["base"], "samples.jsonl") for i in (0, 1)]
    path = write_jsonl(runs["root"] / "twice.jsonl", twice)
    other = evaluate(runs["root"] / "n2", "--samples", str(path), "--limit", "20")
    one_line_error(
        ra3bench("compare", str(runs["base"]), str(other)), "samples per problem (n) differs (base 1, candidate 2)"
    )


def test_other_tasks_are_not_comparable(runs):
    other = evaluate(runs["root"] / "first15", "--samples", str(SAMPLES), "--limit", "15")
    one_line_error(
        ra3bench("compare", str(runs["base"]), str(other)),
        "task set differs: 5 only in base (HumanEval/15, HumanEval/16",
    )


def test_other_limits_are_not_comparable(runs, tmp_path):
    other = shutil.copytree(runs["base"], tmp_path / "other-limits")
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["settings"]["limits"]["memory_mb"] = 2048
    (other / "manifest.json").write_text(json.dumps(manifest))
    one_line_error(
        ra3bench("compare", str(runs["base"]), str(other)),
        "settings.limits.memory_mb differs (base 4096, candidate 2048)",
    )


def test_usage_errors_are_one_line_and_exit_2(runs, tmp_path):
    one_line_error(ra3bench("compare", str(runs["base"]), str(tmp_path / "nope")), "nope")
    one_line_error(ra3bench("compare", str(runs["base"]), str(runs["base"]), "-k", "5"), "pass@5 needs 5 samples")
    one_line_error(ra3bench("compare", str(runs["base"]), str(runs["base"]), "--alpha", "2"), "--alpha")


def test_help_has_examples():
    text = ra3bench("compare", "--help").stdout
    assert "examples:" in text and "ra3bench compare" in text and "exit status" in text


def test_the_ci_example_workflow_runs_commands_ra3bench_accepts():
    """examples/ci: valid YAML whose ra3bench commands parse (flags that exist, in the right places)."""
    import shlex

    import yaml

    from ra3bench.cli.main import build_parser

    root = Path(__file__).resolve().parents[2]
    workflow = yaml.safe_load((root / "examples/ci/ra3bench-regression.yml").read_text())
    job = workflow["jobs"]["regression"]
    commands = [s["run"].strip() for s in job["steps"] if "run" in s and s["run"].strip().startswith("ra3bench ")]
    assert [c.split()[1] for c in commands] == ["run", "compare", "report"]
    for command in commands:
        for name, value in job["env"].items():
            command = command.replace(f'"${name}"', value)
        args = build_parser().parse_args(shlex.split(command)[1:])
        assert args.handler
    assert (root / job["env"]["BASELINE"] / "manifest.json").is_file()
