"""What the subcommands share: common flags, building a suite/sandbox, the result table."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ra3bench.errors import UsageError
from ra3bench.spec import SELECTION_FILTERS, EvalSpec
from ra3bench.summary import Summary


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


def selection_filters(args: argparse.Namespace) -> dict[str, str]:
    """The suite-specific selection flags that were given (passed to ``Suite.select``)."""
    return {key: value for key in SELECTION_FILTERS if (value := getattr(args, key, None)) is not None}


def add_execution_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("execution")
    group.add_argument("--out", type=Path, default=None, help="run folder (default: results/<suite>-<model>-<time>)")
    group.add_argument("--limit", type=int, default=None, help="only the first N problems (quick runs)")
    group.add_argument("--tasks", default=None, help="comma-separated task ids to run (e.g. HumanEval/0,HumanEval/3)")
    group.add_argument(
        "--sandbox",
        default="auto",
        help="auto | docker | local | local-unsafe | ray (default: auto = docker if the engine answers, else local "
        "(bubblewrap), else an error); local-unsafe: no bubblewrap, jobs reach the network and host files; "
        "ray, ray:docker, ray:local: each node of a Ray cluster runs jobs in its own sandbox (docs/cluster.md)",
    )
    group.add_argument("--workers", type=int, default=None, help="parallel jobs (default: one per core; ray: per node)")
    group.add_argument(
        "--ray-address",
        default="",
        help="--sandbox ray: the cluster, host:port or ray://host:port (default: $RAY_ADDRESS, else a local one)",
    )
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


def spec_from_args(args: argparse.Namespace, n: int = 1) -> EvalSpec:
    """The :class:`EvalSpec` of `run` / `evaluate`'s flags (generation flags: `run` only)."""
    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit must be at least 1")
    generation = {name: value for name in GENERATION_FLAGS if (value := getattr(args, name, None)) is not None}
    return EvalSpec(
        suite=args.suite,
        suite_version=args.suite_version,
        data_dir=str(args.data_dir) if args.data_dir else None,
        select=selection_filters(args),
        tasks=[t.strip() for t in (args.tasks or "").split(",") if t.strip()],
        limit=args.limit or 0,
        n=n,
        k=parse_ks(args.k) or [],
        time_floor=args.time_floor,
        time_factor=args.time_factor,
        problem_time_factor=args.problem_time_factor,
        memory_mb=args.memory_mb,
        fail_fast=not args.no_fail_fast,
        max_timeouts=args.max_timeouts,
        failed_group_budget=args.failed_group_budget,
        include_unverifiable=args.include_unverifiable,
        sandbox=args.sandbox,
        workers=args.workers or 0,
        ray_address=args.ray_address,
        cache=not args.no_cache,
        **generation,
    )


# `run`'s generation flags that are EvalSpec fields (the engine flags go to BackendSpec)
GENERATION_FLAGS = (
    "temperature",
    "top_p",
    "max_new_tokens",
    "seed",
    "stop",
    "prompt_style",
    "batch_size",
    "batching",
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


def print_summary(summary: Summary) -> None:
    print(
        f"{summary.suite} {summary.suite_version}: {summary.n_samples} samples on "
        f"{summary.n_problems}/{summary.n_suite_problems} problems"
    )
    print(summary.table())
    counts = ", ".join(f"{k} {v}" for k, v in sorted(summary.status_counts.items()))
    print(f"status: {counts}")
    if summary.execution:
        print("judged: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sorted(summary.execution.items())))
    if summary.unverifiable.get("excluded_from_scores"):
        n = len(summary.unverifiable["tasks"])
        print(f"left out of the scores: {n} unverifiable problems (several valid answers, no checker): summary.json")
    print(f"run folder: {summary.run_dir}")
    sys.stdout.flush()


def env_default_data_dir(data_dir: Path | None) -> Path | None:
    return data_dir or (Path(os.environ["RA3BENCH_DATA_DIR"]) if os.environ.get("RA3BENCH_DATA_DIR") else None)
