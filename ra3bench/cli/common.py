"""What the subcommands share: common flags, building a suite/sandbox, the result table."""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path

from tabulate import tabulate

from ra3bench.errors import UsageError
from ra3bench.judge import TimePolicy
from ra3bench.pipeline import EvalSettings
from ra3bench.sandbox.base import Limits


def add_suite_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--suite", required=True, help="suite name (see `ra3bench suites`)")
    parser.add_argument("--suite-version", default=None, help="data version (default: the suite's pinned default)")
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="folder with the data files (default: $RA3BENCH_DATA_DIR, cache)"
    )
    group = parser.add_argument_group("selection (livecodebench)")
    group.add_argument(
        "--release", default=None, help="LiveCodeBench version tag: release_v1..release_v6, v1..v6, vI_vJ (e.g. v5_v6)"
    )
    group.add_argument("--start-date", default=None, help="contest date on or after YYYY-MM-DD")
    group.add_argument("--end-date", default=None, help="contest date on or before YYYY-MM-DD (00:00, as lcb_runner)")
    group.add_argument("--platform", default=None, help="comma list of atcoder, codeforces, leetcode")
    group.add_argument("--difficulty", default=None, help="comma list of easy, medium, hard")


SELECTION_FILTERS = ("release", "start_date", "end_date", "platform", "difficulty")


def selection_filters(args: argparse.Namespace) -> dict[str, str]:
    """The suite-specific selection flags that were given (passed to ``Suite.select``)."""
    return {key: value for key in SELECTION_FILTERS if (value := getattr(args, key, None)) is not None}


def selection_record(filters: dict[str, str], problems: list) -> dict:
    """What the manifest keeps of a selection: the filters, how many problems, sha256 of the sorted ids."""
    ids = sorted(p.task_id for p in problems)
    return {
        "filters": filters,
        "n_tasks": len(ids),
        "tasks_sha256": hashlib.sha256("\n".join(ids).encode()).hexdigest(),
    }


def add_execution_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("execution")
    group.add_argument("--out", type=Path, default=None, help="run folder (default: results/<suite>-<model>-<time>)")
    group.add_argument("--limit", type=int, default=None, help="only the first N problems (quick runs)")
    group.add_argument("--tasks", default=None, help="comma-separated task ids to run (e.g. HumanEval/0,HumanEval/3)")
    group.add_argument(
        "--sandbox",
        default="auto",
        help="auto | docker | local | local-unsafe (default: auto = docker if the engine answers, else local "
        "(bubblewrap), else an error); local-unsafe: no bubblewrap, jobs reach the network and host files",
    )
    group.add_argument("--workers", type=int, default=None, help="parallel jobs (default: one per core)")
    group.add_argument("-k", default=None, help="comma-separated k for pass@k (default: every k <= n)")
    group.add_argument("--time-floor", type=float, default=1.0, help="minimum per-test time limit, s (default 1.0)")
    group.add_argument("--time-factor", type=float, default=4.0, help="per-test limit = max(floor, factor x ref time)")
    group.add_argument(
        "--problem-time-factor",
        type=float,
        default=1.0,
        help="suites with limits of their own (LiveCodeBench, Codeforces): per-test limit = factor x the problem's",
    )
    group.add_argument(
        "--include-unverifiable",
        action="store_true",
        help="score problems that accept several answers but have no checker too (left out by default)",
    )
    group.add_argument("--memory-mb", type=int, default=4096, help="address-space limit per program (default 4096)")
    group.add_argument("--no-fail-fast", action="store_true", help="run every test even after an exception")
    group.add_argument(
        "--max-timeouts",
        type=int,
        default=3,
        help="with --no-fail-fast: stop a group after N timeouts (0: never; default 3)",
    )
    group.add_argument(
        "--failed-group-budget",
        type=float,
        default=60.0,
        help="with --no-fail-fast: stop a failed group after this many seconds (0: never; default 60)",
    )
    group.add_argument("--no-cache", action="store_true", help="do not reuse verdicts from the verdict cache")


def settings_from(args: argparse.Namespace) -> EvalSettings:
    if args.time_floor <= 0 or args.time_factor <= 0 or args.problem_time_factor <= 0:
        raise UsageError("--time-floor, --time-factor and --problem-time-factor must be positive")
    if args.memory_mb < 64:
        raise UsageError("--memory-mb must be at least 64")
    if args.max_timeouts < 0 or args.failed_group_budget < 0:
        raise UsageError("--max-timeouts and --failed-group-budget must be 0 (off) or positive")
    return EvalSettings(
        limits=Limits(memory_mb=args.memory_mb),
        time_policy=TimePolicy(
            floor_s=args.time_floor, factor=args.time_factor, problem_factor=args.problem_time_factor
        ),
        fail_fast=not args.no_fail_fast,
        max_timeouts=args.max_timeouts,
        failed_group_budget_s=args.failed_group_budget,
    )


def parse_ks(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        ks = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise UsageError(f"-k takes comma-separated positive integers, got {text!r}") from None
    if not ks or ks[0] < 1:
        raise UsageError(f"-k takes comma-separated positive integers, got {text!r}")
    return ks


def select_problems(problems: list, limit: int | None, tasks: str | None) -> list:
    if not problems:
        raise UsageError("no problems selected")
    if tasks:
        wanted = [t.strip() for t in tasks.split(",") if t.strip()]
        by_id = {p.task_id: p for p in problems}
        unknown = [t for t in wanted if t not in by_id]
        if unknown:
            raise UsageError(f"unknown task id {unknown[0]!r}; ids look like {problems[0].task_id!r}")
        problems = [by_id[t] for t in wanted]
    if limit is not None:
        if limit < 1:
            raise UsageError("--limit must be at least 1")
        problems = problems[:limit]
    return problems


def summary_table(summary: dict, fmt: str = "github") -> str:
    rows = []
    for group, values in summary["pass_at_k"].items():
        for k, value in values.items():
            low, high = summary["pass_at_k_ci95"][group][k]
            rows.append([group, f"pass@{k}", f"{100 * value:.1f}", f"[{100 * low:.1f}, {100 * high:.1f}]"])
    head = ["group", "metric", "%", "95% CI"]
    return tabulate(rows, headers=head, tablefmt=fmt, disable_numparse=True)


def print_summary(summary: dict, folder: Path) -> None:
    print(
        f"{summary['suite']} {summary['suite_version']}: {summary['n_samples']} samples on "
        f"{summary['n_problems']}/{summary['n_suite_problems']} problems"
    )
    print(summary_table(summary))
    counts = ", ".join(f"{k} {v}" for k, v in sorted(summary["status_counts"].items()))
    print(f"status: {counts}")
    execution = summary.get("execution", {})
    if execution:
        print("judged: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sorted(execution.items())))
    unverifiable = summary.get("unverifiable", {})
    if unverifiable.get("excluded_from_scores"):
        n = len(unverifiable["tasks"])
        print(f"left out of the scores: {n} unverifiable problems (several valid answers, no checker): summary.json")
    print(f"run folder: {folder}")
    sys.stdout.flush()


def env_default_data_dir(data_dir: Path | None) -> Path | None:
    return data_dir or (Path(os.environ["RA3BENCH_DATA_DIR"]) if os.environ.get("RA3BENCH_DATA_DIR") else None)
