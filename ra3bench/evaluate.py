"""The evaluation API: one spec and one session for the CLI, the trainers and other training stacks.

:class:`EvalSpec` says what to measure and how (suite, selection, samples, generation, time
policy, memory, sandbox, cache); it is the one schema behind `ra3bench run`'s flags and a
training config's ``eval:`` block (:class:`EvalOptions` is the part they share). A
:class:`Session` opens the sandbox, the expected outputs and the verdict cache once, then:

* ``evaluate(model)``: generate (or replay) samples, judge them, write a run folder with its
  manifest, and return the :class:`~ra3bench.summary.Summary` (what `ra3bench run` does);
* ``judge(task_ids, programs)``: verdicts for programs already written (what a reward does),
  concurrently, identical programs once, through the verdict cache.

    from ra3bench import EvalSpec, Session

    with Session(EvalSpec(suite="humaneval+", limit=20)) as session:
        summary = session.evaluate("smollm2-135m")
        verdicts = session.judge(["HumanEval/0"], ["def has_close_elements(n, t): return False"])
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from ra3bench.backends.base import Backend, BackendSpec, GenerationBackend
from ra3bench.errors import UsageError
from ra3bench.expected import Expectations, load_or_compute
from ra3bench.paths import cache_root
from ra3bench.pipeline import Evaluator, run_pipeline
from ra3bench.prompts import PromptStyle
from ra3bench.records import Sample, Verdict
from ra3bench.results import RunFolder, code_version, default_run_dir, host_info, now_iso
from ra3bench.sandbox.base import Sandbox
from ra3bench.spec import EvalOptions, EvalSpec
from ra3bench.suites.base import Problem, Suite
from ra3bench.summary import Summary
from ra3bench.verdict_cache import VerdictCache

__all__ = ["EvalOptions", "EvalSpec", "Session", "open_sandbox", "resumed_then_generated", "selection_record"]


def selection_record(filters: dict[str, Any], problems: list[Problem]) -> dict:
    """What the manifest keeps of a selection: the filters, how many problems, sha256 of the sorted ids."""
    ids = sorted(p.task_id for p in problems)
    return {
        "filters": filters,
        "n_tasks": len(ids),
        "tasks_sha256": hashlib.sha256("\n".join(ids).encode()).hexdigest(),
    }


def open_sandbox(kind: str = "auto", workers: int = 0, ray_address: str = "") -> Sandbox:
    """A started sandbox (``auto``: docker, else bubblewrap, else a one-line error); close() it after."""
    from ra3bench.sandbox import make_sandbox

    sandbox = make_sandbox(kind or "auto", workers or None, ray_address=ray_address)
    sandbox.__enter__()
    return sandbox


class Session:
    """A suite's problems with a sandbox, expected outputs and a verdict cache, opened once.

    ``suite`` and ``problems`` override what the spec would load (a trainer's own problem set);
    ``sandbox`` borrows a started one (a training run shares one between its evaluations and
    its rewards) instead of opening one for the session. Use it as a context manager, or call
    :meth:`close`. The constructor checks the spec and loads the suite, and starts nothing.
    """

    def __init__(
        self,
        spec: EvalSpec,
        *,
        suite: Suite | None = None,
        problems: list[Problem] | None = None,
        sandbox: Sandbox | None = None,
    ) -> None:
        self.spec = spec
        self.suite = suite or spec.load_suite()
        self.problems = list(problems) if problems is not None else spec.problems_of(self.suite)
        self.settings = spec.judge_settings()
        self.counters: Counter[str] = Counter()  # executed / from_verdict_cache / duplicates, over judge() calls
        self._by_id = {p.task_id: p for p in self.problems}
        self._sandbox = sandbox
        self._owns_sandbox = sandbox is None
        self._expectations: Expectations | None = None
        self._cache: VerdictCache | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.RLock()  # judge() may be called from several threads (verl's reward workers)

    # -- life cycle ------------------------------------------------------------------------------

    def open(self) -> Session:
        """Start the sandbox (unless borrowed) and open the verdict cache; idempotent."""
        with self._lock:
            if self._cache is None:
                if self._sandbox is None:
                    self._sandbox = open_sandbox(self.spec.sandbox, self.spec.workers, self.spec.ray_address)
                    self._sandbox.prestart()  # their start overlaps reading the expected outputs
                self._cache = VerdictCache(cache_root() / "verdicts.sqlite" if self.spec.cache else None)
                self._pool = ThreadPoolExecutor(max(1, self._sandbox.workers), thread_name_prefix="ra3bench-judge")
        return self

    def prepare(self) -> Session:
        """:meth:`open`, and the expected outputs of every problem now (not at the first call)."""
        self.open()
        self.expectations()
        return self

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
            if self._cache is not None:
                self._cache.close()
            if self._owns_sandbox and self._sandbox is not None:
                self._sandbox.close()
                self._sandbox = None
            self._pool = self._cache = None

    def __enter__(self) -> Session:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def sandbox(self) -> Sandbox:
        self.open()
        assert self._sandbox is not None
        return self._sandbox

    def expectations(self, problems: list[Problem] | None = None) -> Expectations:
        """Expected outputs (the reference's, or the data set's) of ``problems`` (default: all the session's)."""
        with self._lock:
            if self._expectations is not None:
                return self._expectations
            wanted = problems or self.problems
            computed = load_or_compute(self.suite, self.sandbox, wanted, limits=self.settings.limits)
            if wanted == self.problems:
                self._expectations = computed
            return computed

    def problem_notes(self) -> dict[str, str]:
        """Problems whose reference fails its own tests: task id -> why (no program can be judged right there)."""
        tasks = self.expectations().tasks
        notes = {}
        for problem in self.problems:
            found = [g.problem_note for g in tasks[problem.task_id].values() if g.problem_note]
            if found:
                notes[problem.task_id] = found[0]
        return notes

    # -- judging programs ------------------------------------------------------------------------

    def problem(self, task_id: str) -> Problem:
        try:
            return self._by_id[task_id]
        except KeyError:
            raise UsageError(
                f"unknown task id {task_id!r} for this session's {self.suite.name} problems "
                f"(ids look like {self.problems[0].task_id!r})"
            ) from None

    def extract(self, task_id: str, completion: str, style: str = "chat") -> str:
        """The program in a model's ``completion`` for ``task_id``, found exactly as an evaluation finds it
        (``style``: ``chat`` for an answer with fenced code, ``completion`` for a continuation of the prompt)."""
        from ra3bench.extract import extract_program

        return extract_program(completion, self.problem(task_id), style).program

    def judge(self, task_ids: Sequence[str], programs: Sequence[str]) -> list[Verdict]:
        """The verdict of each program on its task's tests, in order.

        Runs ``sandbox.workers`` programs at a time; a program that appears twice runs once, one
        judged before under the same conditions comes from the verdict cache. ``sample_index``
        of each verdict is its position. A ``sandbox_error`` verdict is an infrastructure fault
        that survived its retries: it says nothing about the program (and is never cached).
        """
        if len(task_ids) != len(programs):
            raise ValueError(f"judge: {len(task_ids)} task ids but {len(programs)} programs")
        for task_id in task_ids:
            self.problem(task_id)
        evaluator = self._evaluator()
        cache, pool = self._cache, self._pool
        assert cache is not None and pool is not None, "the session was closed"
        counts: Counter[str] = Counter()
        verdicts: list[Verdict | None] = [None] * len(programs)
        first_of: dict[str, int] = {}
        copies: list[tuple[int, str]] = []
        futures = {}
        for i, (task_id, program) in enumerate(zip(task_ids, programs, strict=True)):
            problem = self._by_id[task_id]
            key = evaluator.cache_key(problem, program)
            if key in first_of:
                copies.append((i, key))
                counts["duplicates"] += 1
            elif (cached := cache.get(key)) is not None:
                verdicts[i] = replace(Verdict.from_json(cached), task_id=task_id, sample_index=i)
                counts["from_verdict_cache"] += 1
            else:
                first_of[key] = i
                futures[key] = pool.submit(evaluator.evaluate, problem, Sample(task_id, i, program))
        for key, future in futures.items():
            verdict = future.result()
            verdicts[first_of[key]] = verdict
            counts["executed"] += 1
            if not verdict.sandbox_error:
                cache.put(key, verdict.to_json())
        with self._lock:
            self.counters.update(counts)
        for i, key in copies:
            original = verdicts[first_of[key]]
            assert original is not None
            verdicts[i] = replace(original, sample_index=i)
        return [v for v in verdicts if v is not None]

    def _evaluator(self, expectations: Expectations | None = None) -> Evaluator:
        self.open()
        return Evaluator(self.suite, self.sandbox, expectations or self.expectations(), self.settings)

    # -- evaluating a model ----------------------------------------------------------------------

    def evaluate(
        self,
        model: Any,
        out: str | Path | None = None,
        *,
        tokenizer: Any = None,
        label: str | None = None,
        manifest: dict[str, Any] | None = None,
    ) -> Summary:
        """Generate (or replay) samples with ``model``, judge them, and score pass@k.

        ``model``: a :class:`~ra3bench.backends.base.Backend`, a :class:`BackendSpec`, a model name
        (a preset, a folder, a Hub id, ``reference``: the data set's own solutions), or an
        in-memory transformers model with its ``tokenizer`` (``label`` names it in the manifest).
        ``out``: the run folder (default ``results/<suite>-<model>-<time>``); running again with
        the same folder resumes. ``manifest``: extra fields for its manifest.json.
        """
        backend = self.backend_for(model, tokenizer=tokenizer, label=label)
        backend.check(self.suite, self.problems)
        if backend is model or isinstance(model, (str, BackendSpec)):
            return self._evaluate(backend, out, manifest or {})
        with model_as_it_was(model, tokenizer):
            return self._evaluate(backend, out, manifest or {})

    def _evaluate(self, backend: Backend, out: str | Path | None, extra: dict[str, Any]) -> Summary:
        started = time.perf_counter()
        n, problems = self.spec.n, self.problems
        samples: list[Sample] | None = None
        if backend.from_file:  # a samples file: the run covers what the file covers
            samples = list(backend.samples(self.suite, problems, 0))
            covered = {s.task_id for s in samples}
            problems = [p for p in problems if p.task_id in covered]
            n = 0
        self.open()
        expectations = self.expectations(problems)  # the session's (stored) when it covers them
        folder = RunFolder(Path(out) if out else default_run_dir(self.suite.name, backend.run_name()))
        folder.open(self.manifest(backend, n, problems, expectations, extra))
        generated = samples is None
        feed = resumed_then_generated(folder, backend, self.suite, problems, n) if samples is None else samples
        assert self._cache is not None
        summary = run_pipeline(
            suite=self.suite,
            problems=problems,
            samples=feed,
            evaluator=self._evaluator(expectations),
            folder=folder,
            cache=self._cache,
            ks=list(self.spec.k) or None,
            include_unverifiable=self.spec.include_unverifiable,
            expected_samples=len(problems) * n if generated else len(feed),
            generated=generated and isinstance(backend, GenerationBackend),
        )
        summary.run_dir = str(folder.root)
        summary.eval_time_s = time.perf_counter() - started
        return summary

    def backend_for(self, model: Any, *, tokenizer: Any = None, label: str | None = None) -> Backend:
        """The backend that writes programs for ``model`` (see :meth:`evaluate`)."""
        from ra3bench.backends import build_backend

        if isinstance(model, Backend):
            return model
        if isinstance(model, BackendSpec):
            return build_backend(model)
        if isinstance(model, str):
            return build_backend(self.spec.backend_spec(model))
        if tokenizer is None:
            raise UsageError("an in-memory model needs its tokenizer: session.evaluate(model, tokenizer=tokenizer)")
        from ra3bench.backends.hf import HFBackend

        device = str(next(model.parameters()).device)
        return HFBackend(
            (model, tokenizer),
            self.spec.generation(),
            PromptStyle.parse(self.spec.prompt_style),
            batch_size=self.spec.batch_size,
            batching=self.spec.batching,
            device=device,
            model_label=label or type(model).__name__,
        )

    def manifest(
        self, backend: Backend, n: int, problems: list[Problem], expectations: Expectations, extra: dict[str, Any]
    ) -> dict:
        """What a run folder's manifest.json records: everything that produced its numbers."""
        filters: dict[str, Any] = {**self.spec.select, **({"limit": self.spec.limit} if self.spec.limit else {})}
        return {
            "run_id": uuid.uuid4().hex[:12],
            "created": now_iso(),
            "command": " ".join([Path(sys.argv[0]).name or "python", *sys.argv[1:]]),
            "code": code_version(),
            "suite": self.suite.describe(),
            "model": backend.describe(),
            "n": n,
            "tasks": [p.task_id for p in problems],
            "selection": selection_record(filters, problems),
            "settings": self.settings.describe(),
            "scoring": {"include_unverifiable": self.spec.include_unverifiable},
            "sandbox": self.sandbox.describe(),
            "expected_outputs": {"key": expectations.key, "sha256": expectations.sha256},
            "host": host_info(),
            "spec": asdict(self.spec),
            **extra,
        }


@contextlib.contextmanager
def model_as_it_was(model: Any, tokenizer: Any) -> Iterator[None]:
    """Evaluate an in-memory model mid-training without changing the training: eval mode and no
    gradients while generating; after, its train mode, the tokenizer's padding side and pad token,
    and torch's RNG states as they were (sampling seeds them), so losses after an evaluation are
    those of a run that did not evaluate."""
    import torch

    was_training = bool(getattr(model, "training", False))
    padding_side, pad_token = tokenizer.padding_side, tokenizer.pad_token
    rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)
        tokenizer.padding_side = padding_side
        if tokenizer.pad_token != pad_token:
            tokenizer.pad_token = pad_token
        torch.set_rng_state(rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)


def resumed_then_generated(
    folder: RunFolder, backend: Backend, suite: Suite, problems: list[Problem], n: int
) -> Iterator[Sample]:
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
