"""Agreement of ra3bench's LiveCodeBench verdicts (public tests) with the official lcb_runner gradings.

    python benchmarks/lcb_agreement.py                                  # every file of eval_all/
    python benchmarks/lcb_agreement.py --files O1-Mini-2024-09-12_N1_v5_a0c3146 --results ''

For each graded output file in ``$RA3BENCH_DATA_DIR/livecodebench/eval_all/`` (or those whose name
contains one of ``--files``), runs the real CLI as a subprocess:

    ra3bench evaluate --suite livecodebench --samples FILE --sandbox KIND --no-fail-fast --workers CORES --out DIR

(a fresh run folder each time, verdict cache off unless ``--cache``), then compares per sample with
the official verdict (``graded_list``) and the official metadata of a failure:

* official **passed** -> ra3bench must say ``pass`` on the public tests (the official grader ran them
  all, and they passed);
* official **failed on a public input**: the failing test's ``inputs`` in the metadata equals one of the
  problem's public test inputs, normalised as lcb_runner writes them (``truncatefn(gt_inp)``: the stdin
  text as is; for LeetCode ``str()`` of the list of arguments, each line of the test parsed with
  ``json.loads``) -> ra3bench must not say ``pass``;
* a failing input shortened with "...(truncated) ..." is counted apart (*truncated*), not compared;
* every other official failure is *not checkable* here: the failing input is a private test (so the
  official grader passed every public test before it: lcb_runner runs public tests first and stops at
  the first failure), or there is no failing input at all (the program did not compile, the runner
  crashed). For these the table shows how many ra3bench fails on the public tests anyway.

Samples of problems without tests in this copy (``abc350_c`` and the v6 additions) are skipped by
``evaluate`` and counted as *no tests*.

Prints a table per file (github markdown) and every disagreement, each with a "likely cause" from
the rules of ``likely_cause`` (the causes found by reading every disagreement, explained in
docs/verdict_agreement.md; "?" = none applies, read it); also lists the samples whose official failure
is on a private input but that ra3bench fails on a public test. Writes them with the program, the
official metadata and ra3bench's verdict to ``WORK/disagreements.json``, and unless ``--results ''``
the report as the ``## LiveCodeBench verdict agreement`` section of benchmarks/RESULTS.md (other
sections are kept). ``--report-only`` runs nothing: it compares again from the run folders in ``WORK``
and re-renders.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from results_md import write_section
from tabulate import tabulate

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # ra3bench itself, installed or not
HEADING = "## LiveCodeBench verdict agreement"
TRUNCATED = "...(truncated) ..."  # lcb_runner's truncatefn marker (300 characters kept: 150 + 150)


# ---- data


def eval_all_files(data_dir: Path, spec: str) -> list[Path]:
    files = sorted((data_dir / "livecodebench" / "eval_all").glob("*.json*"))
    wanted = [s.strip() for s in spec.split(",") if s.strip()]
    if not wanted:
        return files
    chosen = [f for f in files if any(w in f.name for w in wanted)]
    if not chosen:
        raise SystemExit(f"no eval_all file matches {spec!r}; known: {', '.join(stem(f) for f in files)}")
    return chosen


def stem(path: Path) -> str:
    return path.name.removesuffix(".gz").removesuffix(".json")


def load_rows(path: Path) -> list[dict]:
    raw = path.read_bytes()
    return json.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)


def public_inputs(problem: Any) -> list[str]:
    """The problem's public test inputs as lcb_runner writes a failing one into its metadata."""
    group = problem.groups.get("public")
    if group is None:
        return []
    if problem.entry_point:  # LeetCode: str() of the argument list, each line json.loads'ed (as the suite does)
        return [str(list(args)) for args in group.inputs]
    return [args[0] for args in group.inputs]


def official_kind(passed: bool, meta: dict, problem: Any) -> str:
    """How an official verdict can be checked on the public tests: see the module docstring."""
    if problem is None or not problem.groups:
        return "no_tests"
    if passed:
        return "passed"
    failing = meta.get("inputs")
    if not isinstance(failing, str):
        return "no_input"
    if TRUNCATED in failing:
        return "truncated"
    return "public" if failing in public_inputs(problem) else "private"


def truncated_matches_public(failing: str, problem: Any) -> bool:
    """Whether a shortened failing input keeps the head and tail of one of the public inputs (information
    only: such inputs are still counted as truncated, not compared)."""
    head, tail = failing.split(TRUNCATED, 1)
    kept = len(head) + len(tail)
    return any(len(x) > kept and x.startswith(head) and x.endswith(tail) for x in public_inputs(problem))


def official_error(meta: dict) -> str:
    text = str(meta.get("error_message", ""))
    if meta.get("error") and meta["error"] not in text:
        text += f" ({meta['error']})"
    return text


# Causes found by reading every disagreement (docs/verdict_agreement.md, LiveCodeBench). Each rule is a cheap
# test on the program and the two verdicts, shown as "likely cause" so that a new run can be triaged; a
# disagreement no rule covers is shown as "?" and needs reading.
THREAD_START = re.compile(r"Thread\(")
THREAD_JOIN = re.compile(r"\.join\(\s*\)")  # str.join always takes an argument
OPEN_FD0 = re.compile(r"(?<![\w.])open\(\s*0\s*[,)]")
BARE_EXIT = re.compile(r"(?<![\w.])(?:exit|quit)\(")


def likely_cause(entry: dict, problem: Any, verdict: dict) -> str:
    code, meta, kind = entry["code"], entry["official_metadata"], entry["official_kind"]
    ours, detail = verdict["status"], entry["ra3bench_detail"]
    unjoined_thread = bool(THREAD_START.search(code)) and not THREAD_JOIN.search(code)
    if kind == "passed" and ours == "timeout":
        return "time limit: a slow program, this machine slower or loaded"
    if kind in ("passed", "private") and unjoined_thread and detail.endswith("got ''"):
        return "ra3bench bug: output of a thread still running when the main code ends is lost"
    if kind == "private" and problem.entry_point:
        failed_at = verdict["details"].get("public", {}).get("first_failure")
        outputs = problem.groups["public"].outputs
        if isinstance(failed_at, int) and str(meta.get("expected")) == str(outputs[failed_at]):
            return "lcb: the program changed its arguments; the input was recorded after the call"
    if kind == "public" and ours == "pass":
        error = official_error(meta)
        if "Time Limit" in error and OPEN_FD0.search(code):
            return "lcb: open(0) reads the grader's own stdin, not the test input (blocks)"
        if "'NoneType' object is not callable" in error and BARE_EXIT.search(code):
            return "lcb: exit() / quit() set to None (reliability_guard)"
        if unjoined_thread and meta.get("output") == "":
            return "lcb: output a thread prints after the program's function returned is not captured"
        if "invalid literal for int()" in error and "readlines" in code:
            return "lcb: mocked sys.stdin.readlines() ends with '' (int('') fails)"
    return "?"


# ---- running


def evaluate_command(samples: Path, out: Path, sandbox: str, workers: int, cache: bool) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "ra3bench",
        "evaluate",
        "--suite",
        "livecodebench",
        "--suite-version",
        "v6-public",
        "--samples",
        str(samples),
    ]
    cmd += ["--sandbox", sandbox, "--no-fail-fast", "--workers", str(workers), "--out", str(out)]
    return cmd + ([] if cache else ["--no-cache"])


def run_evaluate(cmd: list[str], out: Path, log: Path) -> tuple[float, list[float]]:
    """Wall seconds of the command, and the host's 1-minute load average sampled every 5 s meanwhile
    (other users' work on the machine shows up there, and can turn slow programs into timeouts)."""
    if out.exists():
        shutil.rmtree(out)  # a fresh run: an old folder would only be continued, and the wall time mean nothing
    env = {**os.environ}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    load: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(5.0):
            load.append(os.getloadavg()[0])

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    try:
        with log.open("w") as handle:
            done = subprocess.run(
                cmd, env=env, cwd=REPO, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
    finally:
        stop.set()
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {shlex.join(cmd)}\n{log.read_text()[-3000:]}")
    return wall, load


def read_verdicts(out: Path) -> dict[tuple[str, int], dict]:
    verdicts = {}
    for line in (out / "verdicts.jsonl").read_text().splitlines():
        v = json.loads(line)
        verdicts[(v["task_id"], v["sample_index"])] = v
    return verdicts


# ---- comparing


def compare(name: str, rows: list[dict], verdicts: dict, problems: dict) -> dict[str, Any]:
    """Counts for one file's table row, and its disagreements (and notable not-checkable cases)."""
    counts = {
        k: 0
        for k in (
            "samples",
            "no_tests",
            "passed",
            "passed_ours_pass",
            "public",
            "public_ours_fail",
            "truncated",
            "truncated_ours_fail",
            "truncated_public",
            "truncated_public_ours_fail",
            "private",
            "private_ours_fail",
            "no_input",
            "no_input_ours_fail",
        )
    }
    disagreements, private_fails = [], []
    for row in rows:
        task_id = str(row["question_id"])
        problem = problems.get(task_id)
        for index, (code, passed) in enumerate(zip(row["code_list"], row["graded_list"], strict=True)):
            meta = json.loads(row["metadata"][index]) if index < len(row.get("metadata") or []) else {}
            kind = official_kind(bool(passed), meta, problem)
            if kind == "no_tests":
                counts["no_tests"] += 1
                continue
            verdict = verdicts.get((task_id, index))
            if verdict is None:
                raise SystemExit(f"{name}: no ra3bench verdict for {task_id} #{index}")
            counts["samples"] += 1
            counts[kind] += 1
            ours_pass = verdict["status"] == "pass"
            if kind == "passed":
                counts["passed_ours_pass"] += ours_pass
            else:
                counts[f"{kind}_ours_fail"] += not ours_pass
            if kind == "truncated" and truncated_matches_public(meta["inputs"], problem):
                counts["truncated_public"] += 1
                counts["truncated_public_ours_fail"] += not ours_pass
            wrong = (kind == "passed" and not ours_pass) or (kind == "public" and ours_pass)
            if wrong or (kind == "private" and not ours_pass):
                detail = verdict["details"].get("public", {})
                entry = {
                    "file": name,
                    "task_id": task_id,
                    "sample_index": index,
                    "platform": problem.metadata["platform"],
                    "official": "pass" if passed else "fail",
                    "official_kind": kind,
                    "official_error": official_error(meta),
                    "official_metadata": meta,
                    "ra3bench_status": verdict["status"],
                    "ra3bench_detail": detail.get("detail", ""),
                    "ra3bench_n_passed": f"{detail.get('n_passed')}/{detail.get('n_tests')}",
                    "ra3bench_time_s": detail.get("time_s"),
                    "code": code,
                }
                entry["likely_cause"] = likely_cause(entry, problem, verdict)
                (disagreements if wrong else private_fails).append(entry)
    return {"counts": counts, "disagreements": disagreements, "private_fails": private_fails}


# ---- report


def machine(sandbox: str) -> str:
    from ra3bench.results import host_info

    host = host_info()
    return f"{host['cores']} cores ({host['cpu']}), Python {host['python']}, sandbox {sandbox}"


def render(res: dict[str, Any]) -> str:
    rows = []
    total: dict[str, int] = {}
    for name, entry in res["files"].items():
        c = entry["counts"]
        for k, v in c.items():
            total[k] = total.get(k, 0) + v
        rows.append(table_row(name, c, entry["wall_s"]))
    total_wall = sum(e["wall_s"] for e in res["files"].values())
    if len(rows) > 1:
        rows.append(table_row("**all**", total, total_wall))
    head = [
        "file",
        "samples",
        "official pass",
        "ours pass (agree)",
        "disagree",
        "official fail, public input",
        "ours non-pass (agree)",
        "disagree",
        "truncated input (ours non-pass)",
        "not checkable (ours non-pass)",
        "no tests (skipped)",
        "wall s",
        "samples/s",
    ]
    dis = [d for e in res["files"].values() for d in e["disagreements"]]
    priv = [d for e in res["files"].values() for d in e["private_fails"]]
    loads = [e["load"] for e in res["files"].values() if e.get("load")]
    checked = total.get("passed", 0) + total.get("public", 0)
    agreed = total.get("passed_ours_pass", 0) + total.get("public_ours_fail", 0)
    shas = sorted({str(e.get("code", {}).get("git_sha", "?"))[:7] for e in res["files"].values()})
    lines = [
        f"Command: `{res['command']}`  ",
        f"Machine: {res['machine']}  ",
        f"Date: {res['date']}; ra3bench at git {', '.join(shas)} (from the run manifests)",
        "",
        tabulate(rows, headers=head, tablefmt="github"),
        "",
        "*official pass*: lcb_runner passed every (public and private) test, so ra3bench must pass the public "
        "tests. *official fail, public input*: the first failing test recorded in the official metadata is a "
        "public test, so ra3bench must not pass. *truncated*: the recorded failing input was shortened, not "
        f"compared ({total.get('truncated_public', 0)} of them keep the head and tail of a public input; ra3bench "
        f"fails {total.get('truncated_public_ours_fail', 0)} of those). *not checkable*: the recorded failing test "
        f"is private ({total.get('private', 0)}, of which ra3bench fails {total.get('private_ours_fail', 0)} on the "
        f"public tests; listed below) or there is none: compile error, crashed runner ({total.get('no_input', 0)}, "
        f"ra3bench fails {total.get('no_input_ours_fail', 0)}). *no tests*: problems without tests in this copy, "
        "skipped by `evaluate`.",
        "",
        f"Total: {agreed} / {checked} checkable verdicts agree ({100 * agreed / max(1, checked):.2f} %); "
        f"{len(dis)} disagreements; ra3bench wall time {total_wall:.0f} s for {total.get('samples', 0)} samples.",
    ]
    if loads:
        lines[-1] += (
            f" 1-minute load average during the runs: mean {sum(x[1] for x in loads) / len(loads):.1f}, "
            f"max {max(x[2] for x in loads)} ({os.cpu_count()} cores)."
        )
    lines += ["", f"### Disagreements ({len(dis)})", ""]
    if dis:
        lines += [cause_table(dis), "", disagreement_table(dis)]
    else:
        lines.append("None.")
    if priv:
        lines += [
            "",
            f"### Official failure on a private input, ra3bench fails a public test ({len(priv)})",
            "",
            "Not disagreements (both fail), but lcb_runner runs the public tests first and stops at the first "
            "failure, so a failure recorded on a private input means the public tests passed there:",
            "",
            cause_table(priv),
            "",
            disagreement_table(priv),
        ]
    return "\n".join(lines) + "\n"


def cause_table(entries: list[dict]) -> str:
    counts: dict[tuple[str, str], int] = {}
    for d in entries:
        key = (f"{d['official']} ({d['official_kind']})", d.get("likely_cause", "?"))
        counts[key] = counts.get(key, 0) + 1
    rows = [[official, cause, n] for (official, cause), n in sorted(counts.items(), key=lambda x: -x[1])]
    return tabulate(rows, headers=["official", "likely cause", "samples"], tablefmt="github")


def table_row(name: str, c: dict, wall: float) -> list:
    return [
        name,
        c["samples"],
        c["passed"],
        c["passed_ours_pass"],
        c["passed"] - c["passed_ours_pass"],
        c["public"],
        c["public_ours_fail"],
        c["public"] - c["public_ours_fail"],
        f"{c['truncated']} ({c['truncated_ours_fail']})",
        f"{c['private'] + c['no_input']} ({c['private_ours_fail'] + c['no_input_ours_fail']})",
        c["no_tests"],
        f"{wall:.0f}",
        f"{c['samples'] / wall:.2f}" if wall else "-",
    ]


def disagreement_table(entries: list[dict]) -> str:
    def cell(text: str, limit: int = 150) -> str:
        text = " ".join(str(text).split())
        text = text if len(text) <= limit else text[: limit - 3] + "..."
        return text.replace("|", "\\|")

    rows = [
        [
            d["file"],
            f"{d['task_id']} ({d['platform']})",
            f"{d['official']} ({d['official_kind']})",
            cell(d["official_error"], 80),
            f"{d['ra3bench_status']} {d['ra3bench_n_passed']}",
            cell(d["ra3bench_detail"], 100),
            cell(d.get("likely_cause", "?"), 100),
        ]
        for d in entries
    ]
    head = ["file", "task", "official", "official error", "ra3bench", "ra3bench detail", "likely cause"]
    return tabulate(rows, headers=head, tablefmt="github")


def finish(res: dict[str, Any], work: Path, results: str) -> None:
    report = render(res)
    print(report)
    dis = [d for e in res["files"].values() for d in e["disagreements"]]
    priv = [d for e in res["files"].values() for d in e["private_fails"]]
    (work / "disagreements.json").write_text(
        json.dumps({"disagreements": dis, "private_input_fails": priv}, indent=1) + "\n"
    )
    print(f"per-sample disagreements: {work / 'disagreements.json'}", file=sys.stderr)
    if results:
        write_section(Path(results), HEADING, report)
        print(f"written to {results}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", default="", help="comma-separated substrings of eval_all file names (default: all)")
    parser.add_argument("--sandbox", default="auto", choices=("auto", "docker", "local"))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="parallel jobs (default: cores)")
    parser.add_argument("--cache", action="store_true", help="let evaluate reuse the verdict cache (default: off)")
    parser.add_argument("--work", type=Path, default=None, help="run folders and result.json (default: a temp dir)")
    parser.add_argument("--results", default=str(REPO / "benchmarks" / "RESULTS.md"), help="'' to only print")
    parser.add_argument(
        "--report-only", action="store_true", help="no runs: compare again from --work's run folders and re-render"
    )
    args = parser.parse_args()
    data_dir = Path(os.environ.get("RA3BENCH_DATA_DIR") or REPO.parent / "shared" / "datasets")
    os.environ["RA3BENCH_DATA_DIR"] = str(data_dir)
    from ra3bench.suites import get_suite

    problems = {p.task_id: p for p in get_suite("livecodebench", "v6-public").all_problems()}
    if args.report_only:
        if args.work is None:
            raise SystemExit("--report-only needs --work")
        res = json.loads((args.work / "result.json").read_text())
        for path in eval_all_files(data_dir, ""):
            if stem(path) in res["files"]:
                again = compare(stem(path), load_rows(path), read_verdicts(args.work / stem(path)), problems)
                manifest = json.loads((args.work / stem(path) / "manifest.json").read_text())
                res["files"][stem(path)].update(again, code=manifest.get("code", {}))
        finish(res, args.work, args.results)
        return
    work = args.work or Path(tempfile.mkdtemp(prefix="ra3bench-lcb-agreement-"))
    work.mkdir(parents=True, exist_ok=True)
    files = eval_all_files(data_dir, args.files)
    shown = [a for a in sys.argv[1:] if a != "--work" and not a.startswith((str(work), "--work="))]
    shown_args = " ".join(shlex.quote(a) for a in shown)
    res: dict[str, Any] = {
        "command": f"RA3BENCH_DATA_DIR={os.path.relpath(data_dir, REPO)} python benchmarks/{Path(__file__).name} "
        f"{shown_args}".rstrip(),
        "machine": machine(args.sandbox),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "files": {},
    }
    print(f"work dir {work}; {len(files)} file(s)", file=sys.stderr)
    for path in files:
        name = stem(path)
        out = work / name
        cmd = evaluate_command(path, out, args.sandbox, args.workers, args.cache)
        print(f"{name}: {shlex.join(cmd)}", file=sys.stderr)
        wall, load = run_evaluate(cmd, out, work / f"{name}.log")
        manifest = json.loads((out / "manifest.json").read_text())
        res["machine"] = machine(manifest.get("sandbox", {}).get("kind", args.sandbox))
        res["files"][name] = {
            "wall_s": wall,
            "code": manifest.get("code", {}),
            "load": [round(min(load), 2), round(sum(load) / len(load), 2), round(max(load), 2)] if load else [],
            **compare(name, load_rows(path), read_verdicts(out), problems),
        }
        (work / "result.json").write_text(json.dumps(res, indent=1))  # partial results survive a crash
        c = res["files"][name]["counts"]
        print(
            f"  {wall:.0f} s, {c['samples']} samples; disagreements: {len(res['files'][name]['disagreements'])}",
            file=sys.stderr,
        )
    finish(res, work, args.results)


if __name__ == "__main__":
    main()
