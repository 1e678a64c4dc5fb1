"""`ra3bench report` on real run folders, and its HTML opened in headless Chromium.

Evaluation runs are real: the first 20 HumanEval+ problems with a real model's samples, and 8
LiveCodeBench problems (easy to hard, one contest month each) with O1-Mini's official outputs,
both judged in the local sandbox. The two training runs' curve.jsonl are written with
:class:`ra3bench.training.curves.CurveLog` (a training run is minutes of CPU; the report only
reads the curve file), with the HumanEval+ run drawn among them as the base model's level.
"""

from __future__ import annotations

import base64
import gzip
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ra3bench.training.curves import CurveLog, curve_metrics, eval_series, read_curve

DATA = Path(os.environ["RA3BENCH_DATA_DIR"])
SAMPLES = DATA / "samples/evalplus/llama3-exp/70B-instruct-base/samples.jsonl.gz"
LCB_OFFICIAL = DATA / "livecodebench/eval_all/O1-Mini-2024-09-12_N1_v5_a0c3146.json.gz"
LCB_TASKS = ["2777", "2757", "2866", "2920", "2954", "3141", "3184", "3224"]  # leetcode, 2023-05 .. 2023-12


def ra3bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ra3bench.cli.main", *args], capture_output=True, text=True, timeout=600
    )


def check(done: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def training_run(folder: Path, rate: float, top: float) -> Path:
    with CurveLog(folder) as log:
        for step in range(0, 401, 10):
            loss = 2.2 * math.exp(-step * rate) + 0.6
            log.log_train(step, step * 4096, step * 1.5, loss=loss, lr=1e-4)
            if step % 100 == 0:
                for group, offset in (("base", 0.0), ("plus", -0.05)):
                    v = 0.8 + (top - 0.8) * (1 - math.exp(-step * rate)) + offset
                    log.log_eval(step, step * 4096, step * 1.5, 30.0, "humaneval+", group, 1, v, v - 0.1,
                                 min(1.0, v + 0.08), f"evals/step-{step:06d}", 20, 20)  # fmt: skip
    return folder


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("report")
    he = root / "humanevalplus"
    check(ra3bench("evaluate", "--suite", "humaneval+", "--suite-version", "v0.1.9", "--samples", str(SAMPLES),
                   "--limit", "20", "--sandbox", "local", "--out", str(he)))  # fmt: skip
    rows = [r for r in json.loads(gzip.decompress(LCB_OFFICIAL.read_bytes())) if r["question_id"] in LCB_TASKS]
    (root / "lcb.json").write_text(json.dumps(rows))
    lcb = root / "lcb"
    check(ra3bench("evaluate", "--suite", "livecodebench@v6-public", "--samples", str(root / "lcb.json"), "--tasks",
                   ",".join(LCB_TASKS), "--sandbox", "local", "--out", str(lcb)))  # fmt: skip
    ntp = training_run(root / "train-ntp", 0.004, 0.9)
    ra3 = training_run(root / "train-ra3", 0.01, 0.95)
    out = root / "out"
    done = check(ra3bench("report", f"NTP={ntp}", f"RA3={ra3}", f"base={he}", f"lcb={lcb}", "--out", str(out)))
    assert "report of 4 runs" in done.stdout
    return {"root": root, "out": out, "he": he, "lcb": lcb, "ntp": ntp, "ra3": ra3}


def test_markdown_has_every_section_and_its_figures(report):
    md = (report["out"] / "report.md").read_text()
    headings = ["## Training curves", "## Runs", "## pass@k", "## Outcomes", "## By difficulty and date"]
    headings += ["### livecodebench: pass@1 by difficulty", "### livecodebench: pass@1 by contest month"]
    for heading in headings:
        assert heading in md, heading
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert images == ["plots/curves.png", "plots/status.png", "plots/livecodebench-difficulty.png",
                      "plots/livecodebench-contest-month.png"]  # fmt: skip
    from PIL import Image

    for image in images:
        with Image.open(report["out"] / image) as png:
            assert png.format == "PNG" and png.width > 400
    assert "| easy " in md and "| 2023-05 " in md and "| 2023-12 " in md


def cells(md: str) -> list[list[str]]:
    """Every row of every Markdown table, as stripped cells."""
    rows = [line.strip("|").split("|") for line in md.splitlines() if line.startswith("|")]
    return [[c.strip() for c in row] for row in rows if not set("".join(row)) <= set("-: ")]


def test_tables_hold_the_runs_numbers(report):
    rows = cells((report["out"] / "report.md").read_text())
    summary = json.loads((report["he"] / "summary.json").read_text())
    plus = 100 * summary["pass_at_k"]["plus"]["1"]
    low, high = (100 * x for x in summary["pass_at_k_ci95"]["plus"]["1"])
    assert ["base", "humaneval+", "plus", "pass@1", f"{plus:.1f}", f"[{low:.1f}, {high:.1f}]"] in rows
    verdicts = [json.loads(line) for line in (report["he"] / "verdicts.jsonl").read_text().splitlines()]
    n_pass = sum(v["status"] == "pass" for v in verdicts)
    status_row = next(row for row in rows if row[:2] == ["base", "20"])
    assert status_row[2] == f"{n_pass} ({100 * n_pass / 20:.0f}%)"
    assert sum(int(c.split()[0]) for c in status_row[2:]) == 20
    for label in ("NTP", "RA3"):  # curve metrics as ra3bench.training.curves computes them
        m = curve_metrics(eval_series(read_curve(report[label.lower()]))[("humaneval+", "plus", 1)])
        row = next(row for row in rows if row[:2] == ["humaneval+ plus pass@1", label])
        assert row[2:7] == ["5", f"{100 * m['first']:.1f}", f"{100 * m['final']:.1f}",
                            f"{100 * m['best']:.1f} @ {m['best_step']}", f"{100 * m['auc']:.1f}"]  # fmt: skip
    lcb = {row[0]: row[1] for row in rows if row and row[0] in ("easy", "medium", "hard")}
    assert set(lcb) == {"easy", "medium", "hard"} and lcb["easy"].endswith("(2)")


def test_html_is_self_contained(report):
    html = (report["out"] / "report.html").read_text()
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", html)
    sources = re.findall(r'<img alt="[^"]*" src="([^"]+)"', html)
    assert len(sources) == 4 and all(s.startswith("data:image/png;base64,") for s in sources)
    for source in sources:
        assert base64.b64decode(source.split(",", 1)[1]).startswith(b"\x89PNG")


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        if os.environ.get("RA3BENCH_REQUIRE_CHROMIUM") == "1":
            pytest.fail("RA3BENCH_REQUIRE_CHROMIUM=1 but no chromium (apt-get install -y chromium)")
        pytest.skip("no chromium here (apt-get install -y chromium)")
    return path


def headless(html: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    command = [chromium(), "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars"]
    command += [f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args, html.resolve().as_uri()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def console_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def test_html_opens_in_headless_chromium_without_console_errors_and_shows_the_plots(report, tmp_path):
    html = report["out"] / "report.html"
    dom = headless(html, tmp_path / "profile", "--dump-dom")
    assert console_lines(dom.stderr) == []
    assert 'data-figures="ok 4"' in dom.stdout  # every figure decoded (the page's own check)

    shot = report["root"] / "report-screenshot.png"
    done = headless(html, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,4200")
    assert console_lines(done.stderr) == []
    from PIL import Image, ImageStat

    with Image.open(shot) as image:
        rgb = image.convert("RGB")
        assert rgb.size == (1280, 4200)
        assert max(ImageStat.Stat(rgb).stddev) > 20  # not a blank page
        hsv = np.asarray(rgb.convert("HSV"))
        saturated = int(np.sum((hsv[..., 1] > 120) & (hsv[..., 2] > 80)))
        # tables and text are grey; the colored pixels are the figures' lines, bands and bars
        assert saturated > 0.02 * rgb.width * rgb.height, saturated


def test_a_broken_figure_is_a_console_error(report, tmp_path):
    """The check above can fail: the same page with one figure's data cut short."""
    html = (report["out"] / "report.html").read_text()
    broken = tmp_path / "broken.html"
    broken.write_text(
        re.sub(r'src="data:image/png;base64,[A-Za-z0-9+/]{40}', 'src="data:image/png;base64,AAAA', html, count=1)
    )
    done = headless(broken, tmp_path / "profile", "--dump-dom")
    assert any("figure did not load" in line for line in console_lines(done.stderr)), done.stderr[-2000:]
    assert 'data-figures="broken"' in done.stdout


def test_a_missing_run_is_one_line_and_exit_2(tmp_path):
    done = ra3bench("report", str(tmp_path / "nope"), "--out", str(tmp_path / "out"))
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1 and "nope" in done.stderr
    assert "examples:" in ra3bench("report", "--help").stdout
