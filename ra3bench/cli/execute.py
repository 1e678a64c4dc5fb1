"""The part of `run` and `evaluate` after the samples' source is known."""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator

from ra3bench.backends.base import Backend, GenerationBackend
from ra3bench.cli.common import (
    parse_ks,
    print_summary,
    select_problems,
    selection_filters,
    selection_record,
    settings_from,
)
from ra3bench.expected import load_or_compute
from ra3bench.paths import cache_root
from ra3bench.pipeline import Evaluator, Sample, run_pipeline
from ra3bench.results import RunFolder, code_version, default_run_dir, host_info, now_iso
from ra3bench.sandbox import make_sandbox
from ra3bench.suites import get_suite
from ra3bench.verdict_cache import VerdictCache


def execute(
    args: argparse.Namespace, backend: Backend | Callable[[], Backend], n: int, *, only_covered: bool = False
) -> int:
    """Judge ``backend``'s samples. A factory is called only once every flag has been checked,
    so a bad flag costs no model load."""
    suite = get_suite(args.suite, args.suite_version, args.data_dir)
    ks = parse_ks(args.k)
    settings = settings_from(args)
    filters = selection_filters(args)
    problems = select_problems(suite.select(suite.problems(), **filters), args.limit, args.tasks)
    if not isinstance(backend, Backend):
        backend = backend()
    backend.check(suite, problems)
    samples: Iterable[Sample] | None = None
    if only_covered:
        samples = list(backend.samples(suite, problems, n))
        covered = {s.task_id for s in samples}
        problems = [p for p in problems if p.task_id in covered]
    folder = RunFolder(args.out or default_run_dir(suite.name, backend.run_name()))
    with make_sandbox(args.sandbox, args.workers) as sandbox:
        expectations = load_or_compute(suite, sandbox, problems, limits=settings.limits)
        manifest = run_manifest(
            suite=suite,
            backend=backend,
            n=n,
            problems=problems,
            selection=selection_record(filters, problems),
            settings=settings,
            include_unverifiable=args.include_unverifiable,
            sandbox=sandbox,
            expectations=expectations,
        )
        folder.open(manifest)
        evaluator = Evaluator(suite, sandbox, expectations, settings)
        generated = samples is None
        if samples is None:  # a generator: reuse what the folder has, generate only the rest
            samples = resumed_then_generated(folder, backend, suite, problems, n)
        cache = VerdictCache(None if args.no_cache else cache_root() / "verdicts.sqlite")
        try:
            summary = run_pipeline(
                suite=suite,
                problems=problems,
                samples=samples,
                evaluator=evaluator,
                folder=folder,
                cache=cache,
                ks=ks,
                include_unverifiable=args.include_unverifiable,
                expected_samples=len(problems) * n if generated else len(samples),
                generated=generated and isinstance(backend, GenerationBackend),
            )
        finally:
            cache.close()
    print_summary(summary, folder.root)
    return 0


def run_manifest(
    *,
    suite,
    backend: Backend,
    n: int,
    problems: list,
    selection: dict,
    settings,
    include_unverifiable: bool,
    sandbox,
    expectations,
    **extra,
) -> dict:
    """What a run folder's manifest.json records: everything that produced its numbers."""
    return {
        "run_id": uuid.uuid4().hex[:12],
        "created": now_iso(),
        "command": " ".join(["ra3bench", *sys.argv[1:]]),
        "code": code_version(),
        "suite": suite.describe(),
        "model": backend.describe(),
        "n": n,
        "tasks": [p.task_id for p in problems],
        "selection": selection,
        "settings": settings.describe(),
        "scoring": {"include_unverifiable": include_unverifiable},
        "sandbox": sandbox.describe(),
        "expected_outputs": {"key": expectations.key, "sha256": expectations.sha256},
        "host": host_info(),
        **extra,
    }


def resumed_then_generated(folder: RunFolder, backend: Backend, suite, problems: list, n: int) -> Iterator[Sample]:
    """The samples a killed run already wrote (as they were), then the backend's for the rest."""
    wanted = {(p.task_id, i) for p in problems for i in range(n)}
    have: dict[tuple[str, int], Sample] = {}
    for record in folder.samples():
        key = (record["task_id"], record["sample_index"])
        if key in wanted:
            raw = {k: v for k, v in record.items() if k not in ("program_sha256",)}
            have[key] = Sample(key[0], key[1], record["program"], raw)
    yield from have.values()
    yield from backend.samples(suite, problems, n, skip=frozenset(have))
