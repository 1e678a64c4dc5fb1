"""Verdicts before and after a change: every real run of ``$RA3BENCH_DATA_DIR/samples`` judged by two
code trees, the same settings, each with caches of its own; statuses compared sample by sample.

    git worktree add /tmp/ra3bench-before <commit>          # the code before the change
    python benchmarks/verdict_identity.py --before /tmp/ra3bench-before [--runs SUBSTRING] [--results FILE]
        [--work DIR]

Both trees judge with ``ra3bench evaluate --no-cache --sandbox local`` (default settings: fail-fast)
and its timing; a sample whose status or any group's status differs is listed. Timeouts depend on
load, so a difference on a sample that timed out in either tree is shown apart from the others.
No verdict is reused (``--no-cache``); each tree keeps its own expected outputs across runs (under
``--work``, default a temporary dir), computed by that tree once per suite version. With ``--work``
the verdicts of a tree without uncommitted changes are kept there per commit (``trees/``): running
again goes on where it stopped, and a later change compared with the same ``--before`` judges only
its own tree.
Unless ``--results ''``, the table goes into the ``## Verdicts before and after`` section of
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results_md import write_section
from tabulate import tabulate
from verdict_agreement import runs

REPO = Path(__file__).resolve().parents[1]
HEADING = "## Verdicts before and after"


def judge(tree: Path, run: dict, work: Path, caches: Path, extra: list[str]) -> tuple[dict, float]:
    """(task_id, sample_index) -> (status, groups) from ``tree``'s ra3bench, and the wall time."""
    out = work / "out"
    env = {**os.environ, "PYTHONPATH": str(tree), "XDG_CACHE_HOME": str(caches)}
    env["RA3BENCH_CACHE_DIR"] = str(caches / "ra3bench")
    command = [sys.executable, "-m", "ra3bench", "evaluate", "--suite", run["suite"], "--samples", str(run["samples"])]
    command += ["--no-cache", "--sandbox", "local", "--out", str(out), *extra]
    if run["version"]:
        command += ["--suite-version", run["version"]]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{tree}: ra3bench evaluate failed for {run['name']}: {done.stderr.strip()[-500:]}")
    verdicts = {}
    for line in (out / "verdicts.jsonl").read_text().splitlines():
        v = json.loads(line)
        verdicts[(v["task_id"], v["sample_index"])] = (v["status"], v["groups"])
    return verdicts, took


def judged(tree: Path, run: dict, work: Path, extra: list[str]) -> tuple[dict, float]:
    """``judge``, kept per commit under ``work/trees``: a tree without uncommitted changes judges a
    run once, so comparing a new change against the same ``--before`` judges only the new tree."""
    name = _describe(tree)
    clean = "uncommitted" not in name
    caches = work / "caches" / (name if clean else f"{name.split()[0]}-dirty")
    kept = work / "trees" / f"{name.split()[0]}{'-no-fail-fast' if extra else ''}.jsonl"
    if clean and kept.exists():
        for line in kept.read_text().splitlines():
            row = json.loads(line)
            if row["name"] == run["name"]:
                return {tuple(k): tuple(v) for k, v in row["verdicts"]}, row["seconds"]
    with tempfile.TemporaryDirectory() as scratch:
        verdicts, seconds = judge(tree, run, Path(scratch), caches, extra)
    if clean:
        kept.parent.mkdir(parents=True, exist_ok=True)
        row = {"name": run["name"], "seconds": seconds, "verdicts": [[list(k), list(v)] for k, v in verdicts.items()]}
        with kept.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
    return verdicts, seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, required=True, help="a checkout of the code before the change")
    parser.add_argument("--after", type=Path, default=REPO, help="the code after (default: this tree)")
    parser.add_argument("--runs", default="", help="only runs whose name contains this")
    parser.add_argument("--no-fail-fast", action="store_true", help="judge every test (default: fail-fast)")
    parser.add_argument("--results", default=str(REPO / "benchmarks" / "RESULTS.md"))
    parser.add_argument("--work", type=Path, default=None, help="caches and each commit's verdicts (resumable)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        return compare(args, args.work or Path(scratch))


def compare(args: argparse.Namespace, work: Path) -> int:
    data_dir = Path(os.environ.get("RA3BENCH_DATA_DIR", REPO.parent / "shared" / "datasets"))
    extra = ["--no-fail-fast"] if args.no_fail_fast else []
    rows, differences = [], []
    totals = {"samples": 0, "same": 0, "timeouts_differ": 0, "differ": 0, "before_s": 0.0, "after_s": 0.0}
    work.mkdir(parents=True, exist_ok=True)
    for run in runs(data_dir):
        if args.runs not in run["name"]:
            continue
        before, before_s = judged(args.before, run, work, extra)
        after, after_s = judged(args.after, run, work, extra)
        same = sum(1 for key in before if _same(after.get(key), before[key]))
        differ = [key for key in before if not _same(after.get(key), before[key])]
        timing = [k for k in differ if "timeout" in (before[k][0], after.get(k, ("",))[0])]
        rows.append(
            [
                run["name"],
                len(before),
                same,
                len(timing),
                len(differ) - len(timing),
                f"{before_s:.0f}",
                f"{after_s:.0f}",
            ]
        )
        differences += [(run["name"], k, before[k], after.get(k)) for k in differ]
        totals["samples"] += len(before)
        totals["same"] += same
        totals["timeouts_differ"] += len(timing)
        totals["differ"] += len(differ) - len(timing)
        totals["before_s"] += before_s
        totals["after_s"] += after_s
        print(rows[-1], flush=True)
    rows.append(["total", totals["samples"], totals["same"], totals["timeouts_differ"], totals["differ"],
                 f"{totals['before_s']:.0f}", f"{totals['after_s']:.0f}"])  # fmt: skip
    head = ["run", "samples", "identical", "differ (a timeout)", "differ (other)", "before s", "after s"]
    table = tabulate(rows, headers=head, tablefmt="github")
    mode = "no-fail-fast" if args.no_fail_fast else "default (fail-fast)"
    lines = [
        f"Command: `python benchmarks/verdict_identity.py --before {args.before}`"
        + (" --no-fail-fast" if args.no_fail_fast else "")
        + f" (mode: {mode}; local sandbox; `--no-cache`; each tree with caches of its own)",
        f"Before: {_describe(args.before)}; after: {_describe(args.after)}. Date: {dt.date.today()}. "
        f"Machine: {os.cpu_count()} cores.",
        "",
        table,
        "",
    ]
    if differences:
        lines += ["Differences (run, task, sample: before -> after):", ""]
        lines += [f"- {name} {key[0]} #{key[1]}: {b} -> {a}" for name, key, b, a in differences[:50]]
        lines.append("")
    report = "\n".join(lines)
    print(f"{HEADING}\n\n{report}")
    if args.results:
        write_section(Path(args.results), HEADING, report)
    return 0 if totals["differ"] == 0 else 1


def _same(after: tuple | None, before: tuple) -> bool:
    return after is not None and (after[0], after[1]) == (before[0], before[1])


def _describe(tree: Path) -> str:
    done = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "-C", str(tree), "status", "--porcelain", "ra3bench"], capture_output=True, text=True
    )
    return done.stdout.strip() + (" + uncommitted changes" if dirty.stdout.strip() else "")


if __name__ == "__main__":
    raise SystemExit(main())
