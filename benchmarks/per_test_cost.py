"""Per-test cost of judging a value-returning task: the program's calls against the harness's work.

    python benchmarks/per_test_cost.py                                # this tree only
    python benchmarks/per_test_cost.py --base /tmp/per-test-base      # previous code side by side
    python benchmarks/per_test_cost.py --base /tmp/per-test-base --results benchmarks/RESULTS.md

For HumanEval+ tasks with many tests (default: HumanEval/94, /8 and /88, 1,000 plus inputs
each) it times, per test, on the reference solution:

* **plain**: the reference's calls alone, in a plain Python loop in this process;
* **job**: the same calls as a ra3bench job through the local sandbox (``make_sandbox("local")``,
  one worker, the job built by ``judge.group_job`` as the evaluator builds it), host round trip
  included; with two parts the job itself reports: **call+enc**, the sum of the calls' ``time_s``
  (the call and the encoding of its value, on the harness's clock) and **server**, the server's
  ``wall_s`` (fork, frames, checks, answer);
* **parse** and **judge**: the host side alone on the recorded answer: ``claims.parse_frame`` +
  ``claims.parse_result`` (what ``pool.py`` does with the bytes), then ``judge.judge_group``.

``--base DIR`` runs the same measurements on another checkout (a ``git worktree`` of the previous
commit, say): each tree gets a process of its own (``sys.path`` at that tree, its own sandbox and
its own reference run for the expected outputs), and the two take turns, repeat after repeat, so
that load from other users hits both alike. Numbers are medians over ``--repeats``. With
``--results`` the table goes into that file as the ``## Per-test cost`` section (command, machine,
date); other sections stay as they are.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from proc_cpu import tree_cpu_s
from results_md import machine, write_section

REPO = Path(__file__).resolve().parents[1]
HEADING = "## Per-test cost"
DEFAULT_TASKS = "HumanEval/94,HumanEval/8,HumanEval/88"
# (key, label, how): "median" of the per-job values, or "total" over all jobs (the workers' CPU comes in
# clock ticks, too coarse for one job; the host thread's CPU clock is fine enough for a median).
ROWS = (
    ("plain", "reference calls alone (plain loop)", "median"),
    ("job", "job through the local sandbox (wall)", "median"),
    ("call_enc", "  of which call + encoding (`time_s`)", "median"),
    ("server", "  of which in the server (`wall_s`)", "median"),
    ("workers_cpu", "CPU: server + fork server + job's child", "total"),
    ("host_cpu", "CPU: host thread in `sandbox.run`", "median"),
    ("parse", "host: parse_frame + parse_result", "median"),
    ("judge", "host: judge_group", "median"),
    ("overhead", "**harness: job - plain + parse + judge**", "median"),
)


# --------------------------------------------------------------------------- one tree, in its own process


class Measurer:
    """Measurements with the ra3bench of one tree (imported from ``root``)."""

    def __init__(self, root: str, suite_version: str) -> None:
        sys.path.insert(0, root)
        import ra3bench

        where = Path(ra3bench.__file__).resolve()
        if not str(where).startswith(str(Path(root).resolve())):
            raise SystemExit(f"ra3bench came from {where}, not from {root}")
        from ra3bench import judge
        from ra3bench.expected import compute
        from ra3bench.sandbox import claims, make_sandbox, pool
        from ra3bench.sandbox.base import Limits
        from ra3bench.sandbox.harness.protocol import decode_value
        from ra3bench.suites import get_suite

        self.judge, self.claims, self.decode_value, self.compute = judge, claims, decode_value, compute
        self.limits = Limits()
        self.problems = get_suite("humaneval+", suite_version).problem_map()
        self.sandbox = make_sandbox("local", 1)
        self.expected: dict[str, Any] = {}
        self.captured: dict[str, Any] = {}
        parse_frame = pool.parse_frame

        def capture(body: bytes) -> Any:  # the answer's bytes, as the host read them
            self.captured["body"] = body
            return parse_frame(body)

        pool.parse_frame = capture

    def measure(self, task_id: str, group: str, parse_repeats: int) -> dict:
        problem = self.problems[task_id]
        if task_id not in self.expected:
            self.expected[task_id] = self.compute([problem], self.sandbox, limits=self.limits)[task_id]
        expected = self.expected[task_id][group]
        n = len(expected.args)

        namespace: dict[str, Any] = {"__name__": "__main__"}
        exec(compile(problem.reference, "<reference>", "exec", dont_inherit=True), namespace)
        fn = namespace[problem.entry_point]
        args = copy.deepcopy([self.decode_value(a) for a in expected.args])
        t0 = time.perf_counter()
        for a in args:
            fn(*a)
        plain = time.perf_counter() - t0

        job = self.judge.group_job(
            problem, group, problem.reference, expected, self.judge.TimePolicy(), self.limits, fail_fast=True
        )
        self.captured.clear()
        workers_before = tree_cpu_s(self.sandbox.worker_pids())
        host_before = time.thread_time()
        t0 = time.perf_counter()
        result = self.sandbox.run(job)
        job_s = time.perf_counter() - t0
        host_cpu = time.thread_time() - host_before
        workers_cpu = tree_cpu_s(self.sandbox.worker_pids()) - workers_before
        body = self.captured["body"]

        parse, judging = [], []
        for _ in range(parse_repeats):
            t0 = time.perf_counter()
            again = self.claims.parse_result(self.claims.parse_frame(body), n)
            t1 = time.perf_counter()
            verdict = self.judge.judge_group(
                problem, group, expected, again, self.limits.digest_min_bytes, fail_fast=True
            )
            t2 = time.perf_counter()
            parse.append(t1 - t0)
            judging.append(t2 - t1)
        return {
            "n": n,
            "status": verdict.status.value,
            "n_passed": verdict.n_passed,
            "plain": plain,
            "job": job_s,
            "workers_cpu": workers_cpu,
            "host_cpu": host_cpu,
            "call_enc": sum(c.time_s for c in result.calls),
            "server": result.wall_s,
            "parse": statistics.median(parse),
            "judge": statistics.median(judging),
            "answer_bytes": len(body),
        }

    def close(self) -> None:
        self.sandbox.close()


def serve(root: str, suite_version: str) -> None:
    """One JSON request per line on stdin, one JSON answer per line on stdout."""
    out = sys.stdout
    sys.stdout = sys.stderr  # nothing else may write to the answer stream
    measurer = Measurer(root, suite_version)
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    try:
        for line in sys.stdin:
            req = json.loads(line)
            out.write(json.dumps(measurer.measure(req["task"], req["group"], req["parse_repeats"])) + "\n")
            out.flush()
    finally:
        measurer.close()


# --------------------------------------------------------------------------- driver


class Tree:
    def __init__(self, name: str, root: Path, suite_version: str) -> None:
        self.name = name
        self.root = root
        cmd = [sys.executable, __file__, "--serve", str(root), "--suite-version", suite_version]
        env = dict(os.environ, PYTHONPATH=str(root))
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self._answer()

    def _answer(self) -> dict:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"the {self.name} measurer died (exit code {self.proc.wait()})")
        return json.loads(line)

    def measure(self, task: str, group: str, parse_repeats: int) -> dict:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"task": task, "group": group, "parse_repeats": parse_repeats}) + "\n")
        self.proc.stdin.flush()
        return self._answer()

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def git_rev(root: Path) -> str:
    try:
        rev = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "ra3bench"], capture_output=True)
        return rev.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")
    except OSError:
        return "?"


def us(seconds: float, n: int) -> str:
    return f"{seconds * 1e6 / n:.1f}"


def part(r: dict, key: str) -> float:
    return r["job"] - r["plain"] + r["parse"] + r["judge"] if key == "overhead" else r[key]


def table(trees: list[Tree], tasks: list[str], runs: dict[tuple[str, str], list[dict]]) -> str:
    names = [t.name for t in trees]
    head = ["task (tests)", "us per test", *names]
    if len(trees) == 2:
        head.append("after / before")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for task in tasks:
        n = runs[(names[0], task)][0]["n"]
        for key, label, how in ROWS:
            cells = []
            for name in names:
                values = [part(r, key) for r in runs[(name, task)]]
                cells.append(statistics.median(values) if how == "median" else sum(values) / len(values))
            row = [f"{task} ({n})", label, *(us(c, n) for c in cells)]
            if len(trees) == 2:
                row.append(f"{cells[1] / cells[0]:.2f}" if cells[0] > 0 else "-")
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default=DEFAULT_TASKS, help=f"comma-separated (default: {DEFAULT_TASKS})")
    parser.add_argument("--group", default="plus")
    parser.add_argument("--suite-version", default="v0.1.9")
    parser.add_argument("--repeats", type=int, default=7, help="jobs per task and tree (medians are reported)")
    parser.add_argument("--parse-repeats", type=int, default=5, help="host parse + judge runs per job")
    parser.add_argument("--base", default="", help="a checkout of the previous code, measured side by side")
    parser.add_argument("--results", default="", help="write the table into this RESULTS.md section")
    parser.add_argument("--serve", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.suite_version)
        return

    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    trees: list[Tree] = []
    started = dt.datetime.now(dt.timezone.utc)
    load_before = os.getloadavg()[0]
    try:
        if args.base:
            trees.append(Tree(f"before ({git_rev(Path(args.base))})", Path(args.base).resolve(), args.suite_version))
        trees.append(Tree(f"after ({git_rev(REPO)})" if args.base else "this tree", REPO, args.suite_version))
        runs: dict[tuple[str, str], list[dict]] = {}
        for task in tasks:  # a first job per tree: expected outputs, warm worker (not counted)
            for tree in trees:
                tree.measure(task, args.group, 1)
        for rep in range(args.repeats):
            order = trees if rep % 2 == 0 else trees[::-1]  # take turns: neither always goes first
            for task in tasks:
                for tree in order:
                    r = tree.measure(task, args.group, args.parse_repeats)
                    runs.setdefault((tree.name, task), []).append(r)
                    print(
                        f"{tree.name:>24} {task:<14} {r['status']:<5} plain {us(r['plain'], r['n']):>7} "
                        f"job {us(r['job'], r['n']):>7} call+enc {us(r['call_enc'], r['n']):>7} "
                        f"parse {us(r['parse'], r['n']):>5} judge {us(r['judge'], r['n']):>5} us/test",
                        file=sys.stderr,
                    )
    finally:
        for tree in trees:
            tree.close()
    statuses = {(name, task): {r["status"] for r in rs} for (name, task), rs in runs.items()}
    load_after = os.getloadavg()[0]
    command = "python benchmarks/per_test_cost.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    body = "\n".join(
        [
            f"Command: `{command.strip()}`  ",
            f"Machine: {machine()}, local sandbox (bubblewrap), 1 worker; "
            f"load average {load_before:.1f} before, {load_after:.1f} after  ",
            f"Date: {started.strftime('%Y-%m-%d %H:%M UTC')}; medians of {args.repeats} jobs per task and tree, "
            f"the trees taking turns; HumanEval+ {args.suite_version}, group `{args.group}`, the reference solution "
            f"as the program (verdicts: {', '.join(sorted({s for v in statuses.values() for s in v}))})",
            "",
            "Per test, so a job's fixed cost (fork, setup, answer: a few ms) is spread over its 1,000 tests. "
            "Rows are medians over the jobs, but the workers' CPU, a total over all jobs (clock ticks, "
            "too coarse for one): the job's child and the server run on different cores, so CPU is what "
            "bounds throughput when "
            "every core is busy, and wall is what one job waits. The last row is the harness's share of a "
            "test: the job's wall time beyond the program's own calls, plus the host's parse and judge.",
            "",
            table(trees, tasks, runs),
            "",
        ]
    )
    print(body)
    if args.results:
        write_section(Path(args.results), HEADING, body)


if __name__ == "__main__":
    main()
