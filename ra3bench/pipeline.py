"""generate -> execute -> judge -> score, resumable and cached.

Samples are written to the run folder before they run and verdicts as they arrive, so a
killed run resumes where it stopped: samples already judged in the folder are skipped,
programs judged before under the same conditions come from the verdict cache.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from typing import Any

from ra3bench.expected import Expectations
from ra3bench.judge import (
    MEMORY_HEADROOM_MB,
    TimePolicy,
    checker_job,
    checker_verdicts,
    group_job,
    judge_group,
    merge_rerun,
    rerun_job,
)
from ra3bench.progress import progress_bars
from ra3bench.records import GroupVerdict, Sample, Status, Verdict
from ra3bench.results import SAMPLES, SUMMARY, VERDICTS, RunFolder
from ra3bench.sandbox.base import CallStatus, Job, JobResult, Limits, Sandbox
from ra3bench.sandbox.claims import MALFORMED
from ra3bench.suites.base import Comparison, Problem, Suite
from ra3bench.summary import Summary, summarize
from ra3bench.verdict_cache import VerdictCache, verdict_key


@dataclass
class EvalSettings:
    limits: Limits = field(default_factory=Limits)
    time_policy: TimePolicy = field(default_factory=TimePolicy)
    fail_fast: bool = True
    # no fail-fast only: when a group that already failed stops (Job.max_timeouts, failed_budget_s)
    max_timeouts: int = 3
    failed_group_budget_s: float = 60.0
    timeout_reruns: int = 1  # a timeout is re-run this many times before it is final
    # ... but only where load could explain it: a test whose limit is within this many times the
    # reference's own time (or whose reference time is unknown: outputs given by the data). A
    # 1 s limit on a 20 us reference call is an infinite loop, not a busy machine.
    rerun_margin: float = 50.0
    sandbox_retries: int = 2  # an infrastructure fault is retried this many times

    def describe(self) -> dict:
        return {
            "limits": asdict(self.limits),
            "time_policy": self.time_policy.describe(),
            "fail_fast": self.fail_fast,
            **({} if self.fail_fast else {"max_timeouts": self.max_timeouts}),
            **({} if self.fail_fast else {"failed_group_budget_s": self.failed_group_budget_s}),
            "timeout_reruns": self.timeout_reruns,
            "timeout_rerun_rule": (
                f"only timed-out tests whose limit is within {self.rerun_margin:g}x the reference's time "
                "(or that have no reference time), stopping at the first repeated timeout"
            ),
            "problem_memory_limit": f"RLIMIT_AS = the problem's memory limit + {MEMORY_HEADROOM_MB} MB (interpreter)",
            "sandbox_retries": self.sandbox_retries,
        }


# What of sandbox.describe() goes into the verdict cache key: the backend, how strong its wall is,
# what runs inside (image id, interpreter). Never what varies between runs of the same sandbox
# (workers, per-worker /tmp share, docker session or memory ceiling), or nothing would be reused.
SANDBOX_KEY_FIELDS = ("kind", "isolation", "image_id", "bwrap", "uid", "python")


def sandbox_identity(sandbox: Sandbox) -> dict[str, Any]:
    """The part of the sandbox's description that can change a verdict (for the cache key)."""
    info = sandbox.describe()
    return {name: info[name] for name in SANDBOX_KEY_FIELDS if name in info}


class Evaluator:
    """Judges one program on one problem: every test group, retries included."""

    def __init__(self, suite: Suite, sandbox: Sandbox, expectations: Expectations, settings: EvalSettings) -> None:
        self.suite = suite
        self.sandbox = sandbox
        self.expectations = expectations
        self.settings = settings

    def cache_key(self, problem: Problem, program: str) -> str:
        """Same program, same conditions, same sandbox wall: a verdict from a weaker sandbox is never reused."""
        return verdict_key(
            suite=self.suite.name,
            version=self.suite.version,
            data=self.suite.data_sha256,
            task=problem.task_id,
            program=program,
            settings=self.settings.describe(),
            expectations=self.expectations.key,
            problem=self.expectations.fingerprints.get(problem.task_id, ""),
            sandbox=sandbox_identity(self.sandbox),
        )

    def expected_cost_s(self, problem: Problem) -> float:
        """A guess at a sample's cost: the reference's time plus a little per test."""
        groups = self.expectations.tasks.get(problem.task_id, {}).values()
        return sum(sum(g.times_s) + 0.001 * len(g.times_s) for g in groups)

    def evaluate(self, problem: Problem, sample: Sample) -> Verdict:
        started = time.perf_counter()
        groups: dict[str, GroupVerdict] = {}
        flaky = False
        output = ""
        for name in problem.groups:
            try:
                verdict, was_flaky, output_text = self._run_group(problem, name, sample.program)
            except Exception as exc:  # one sample never ends a run; said on stderr so a host bug is seen
                verdict, was_flaky, output_text = self._judging_failed(problem, name, exc), False, ""
            groups[name] = verdict
            flaky = flaky or was_flaky
            output = output or output_text
        return Verdict(
            task_id=problem.task_id,
            sample_index=sample.sample_index,
            status=combined_status(groups),
            groups=groups,
            program_sha256=sample.program_sha256,
            wall_s=time.perf_counter() - started,
            output=output,
            flaky=flaky,
        )

    @staticmethod
    def _judging_failed(problem: Problem, name: str, exc: Exception) -> GroupVerdict:
        """The verdict of a group whose judging raised: the sample's ``fail`` (never ``sandbox_error``,
        which a program able to cause it could use to leave RLVR's reward), with the reason."""
        why = f"{type(exc).__name__}: {exc}"[:300]
        print(f"ra3bench: warning: judging {problem.task_id} ({name}) failed: {why}", file=sys.stderr)
        n = len(problem.groups[name].inputs)
        return GroupVerdict(Status.FAIL, n, 0, 0, f"{MALFORMED}: judging failed ({why})")

    def _run_group(self, problem: Problem, name: str, program: str) -> tuple[GroupVerdict, bool, str]:
        expected = self.expectations.get(problem.task_id, name)
        job = group_job(
            problem,
            name,
            program,
            expected,
            self.settings.time_policy,
            self.settings.limits,
            fail_fast=self.settings.fail_fast,
            max_timeouts=self.settings.max_timeouts,
            failed_budget_s=self.settings.failed_group_budget_s,
        )
        verdict, result = self._attempt(problem, name, expected, job)
        flaky = False
        reruns = self.settings.timeout_reruns
        while verdict.status is Status.TIMEOUT and reruns > 0:
            reruns -= 1
            if not self._worth_rerunning(expected, job, result):
                verdict.detail = (verdict.detail + " (not re-run: far beyond the reference's time)")[:2000]
                break
            sub, redo = rerun_job(job, result)
            again, sub_result = self._attempt(problem, name, expected, sub, judge=False)
            if sub_result.sandbox_error:
                break  # keep the timeout we saw rather than a fault
            result = merge_rerun(result, sub_result, redo)
            again = self._judge(problem, name, expected, result)
            if again.status is not Status.TIMEOUT:
                flaky = True
            verdict = again
        return verdict, flaky, result.output

    def _worth_rerunning(self, expected, job: Job, result: JobResult) -> bool:
        """Whether a busy machine could explain the timeout: some timed-out test (or a timeout while
        loading) has a limit within ``rerun_margin`` x its reference time, or no reference time."""
        timed_out = [i for i, call in enumerate(result.calls) if call.status is CallStatus.TIMEOUT]
        if result.load.status is not CallStatus.OK or not timed_out:
            return True  # the load or a test program (REPLAY) timed out: nothing to weigh it against
        margin = self.settings.rerun_margin
        for i in timed_out:
            reference = expected.times_s[i] if i < len(expected.times_s) else 0.0
            limit = job.time_limits_s[i] if i < len(job.time_limits_s) else 0.0
            if reference <= 0.0 or limit <= margin * reference:
                return True
        return False

    def _attempt(self, problem, name, expected, job, judge: bool = True) -> tuple[GroupVerdict | None, JobResult]:
        """Run ``job``, retrying infrastructure faults; judge it unless it is a partial rerun."""
        result = self._run_retrying(job)
        return (self._judge(problem, name, expected, result) if judge else None), result

    def _run_retrying(self, job: Job) -> JobResult:
        """``job``'s result, run again after an infrastructure fault (``sandbox_retries`` times at most)."""
        for _ in range(self.settings.sandbox_retries + 1):
            result = self.sandbox.run(job)
            if not result.sandbox_error:
                break
        return result

    def _judge(self, problem, name, expected, result: JobResult) -> GroupVerdict:
        digest_min_bytes = self.settings.limits.digest_min_bytes
        accepted = self._run_checker(problem, name, expected, result)
        return judge_group(
            problem, name, expected, result, digest_min_bytes, fail_fast=self.settings.fail_fast, accepted=accepted
        )

    def _run_checker(self, problem, name, expected, result: JobResult) -> dict[int, str] | None:
        """The problem's own checker on every answer that is not the expected text: test -> "" if
        accepted, else why not. Data-set code, so it runs in the sandbox like any program."""
        if not problem.checker or problem.groups[name].comparison is not Comparison.STDIN or result.sandbox_error:
            return None
        todo = [
            i
            for i, call in enumerate(result.calls)
            if call.status is CallStatus.OK and isinstance(call.value, str) and call.value != expected.outputs[i]
        ]
        if not todo:
            return {}
        job = checker_job(problem, expected, result, todo, self.settings.limits)
        return checker_verdicts(todo, self._run_retrying(job))


def combined_status(groups: dict[str, GroupVerdict]) -> Status:
    """The first group that did not pass decides (base before plus)."""
    for verdict in groups.values():
        if verdict.status is not Status.PASS:
            return verdict.status
    return Status.PASS


def run_pipeline(
    *,
    suite: Suite,
    problems: list[Problem],
    samples: Iterable[Sample],
    evaluator: Evaluator,
    folder: RunFolder,
    cache: VerdictCache,
    ks: list[int] | None = None,
    include_unverifiable: bool = False,
    expected_samples: int = 0,
    generated: bool = False,
) -> Summary:
    """Judge every sample not judged yet in ``folder``; write verdicts and the summary.

    ``samples`` may be a generator that is slow to yield (a model): it is drained in a thread
    of its own, so programs are judged while the model writes the next ones. Each sample is
    written to the folder before it runs. ``expected_samples`` sizes the progress bars;
    ``generated`` adds a bar for the generation itself.
    """
    by_id = {p.task_id: p for p in problems}
    # sandbox_error is an infrastructure fault: such samples run again when the run resumes
    done = {(v["task_id"], v["sample_index"]) for v in folder.verdicts() if v["status"] != Status.SANDBOX_ERROR.value}
    written = {(s["task_id"], s["sample_index"]) for s in folder.samples()}
    cost = {task_id: evaluator.expected_cost_s(problem) for task_id, problem in by_id.items()}
    sample_writer = folder.writer(SAMPLES)
    verdict_writer = folder.writer(VERDICTS)
    counters: Counter = Counter()
    feed = SampleFeed(samples)
    workers = max(1, evaluator.sandbox.workers)
    to_judge = max(0, expected_samples - len(done)) if expected_samples else 0
    bars = {f"generating ({suite.name})": to_judge if generated else 0, f"judging {suite.name}": to_judge}
    try:
        with progress_bars(bars) as advances, ThreadPoolExecutor(workers) as pool:
            advance_generated, advance = advances.values()
            pending: list[Sample] = []
            in_flight: dict[Future, tuple[Sample, str]] = {}
            waiting: dict[str, list[Sample]] = {}  # duplicates of a program that is running now
            seen_keys: dict[str, dict] = {}

            def record(sample: Sample, verdict_json: dict) -> None:
                verdict_writer.write({**verdict_json, "task_id": sample.task_id, "sample_index": sample.sample_index})
                advance()

            def take_new_samples() -> None:
                for sample in feed.drain():
                    key = (sample.task_id, sample.sample_index)
                    if key not in written:
                        sample_writer.write(sample.to_json())
                        written.add(key)
                        advance_generated()
                    if key in done:
                        counters["from_run_folder"] += 1
                        continue
                    pending.append(sample)
                # Longest first: a heavy task left for the end would run alone while the others idle.
                pending.sort(key=lambda s: cost[s.task_id])

            def submit_more() -> None:
                while len(in_flight) < workers * 2 and pending:
                    sample = pending.pop()
                    problem = by_id[sample.task_id]
                    key = evaluator.cache_key(problem, sample.program)
                    if key in waiting:
                        waiting[key].append(sample)
                        continue
                    cached = seen_keys.get(key) or cache.get(key)
                    if cached is not None:
                        record(sample, cached)
                        counters["from_verdict_cache"] += 1
                        continue
                    waiting[key] = []
                    in_flight[pool.submit(evaluator.evaluate, problem, sample)] = (sample, key)

            while True:
                take_new_samples()
                submit_more()
                if not in_flight and not pending:
                    if feed.finished:
                        break
                    feed.wait(0.5)
                    continue
                finished, _ = wait(in_flight, timeout=0.2, return_when=FIRST_COMPLETED)
                for future in finished:
                    sample, key = in_flight.pop(future)
                    verdict_json = future.result().to_json()
                    record(sample, verdict_json)
                    counters["executed"] += 1
                    if verdict_json["status"] != Status.SANDBOX_ERROR.value:
                        cache.put(key, verdict_json)
                        seen_keys[key] = verdict_json
                    for duplicate in waiting.pop(key):
                        record(duplicate, verdict_json)
                        counters["from_verdict_cache"] += 1
    finally:
        feed.stop()
        sample_writer.close()
        verdict_writer.close()
    feed.raise_error()  # a generator that failed: what was judged is written; the run resumes from it
    summary = summarize(suite, problems, folder.verdicts(), ks, include_unverifiable=include_unverifiable)
    summary.execution = dict(counters)
    folder.write_json(SUMMARY, summary.to_json())
    return summary


class SampleFeed:
    """Drains a sample iterator in a background thread (generation overlaps judging)."""

    def __init__(self, samples: Iterable[Sample]) -> None:
        self._queue: queue.Queue = queue.Queue()
        self._stopping = threading.Event()
        self.finished = False
        self.error: BaseException | None = None
        self._held: list[Sample] = []  # taken off the queue by wait(), handed out by the next drain()
        self._thread = threading.Thread(target=self._run, args=(iter(samples),), daemon=True, name="sample-feed")
        self._thread.start()

    def _run(self, samples) -> None:
        try:
            for sample in samples:
                self._queue.put(sample)
                if self._stopping.is_set():
                    break
        except BaseException as exc:  # reported in the main thread by raise_error()
            self.error = exc
        finally:
            self._queue.put(_END)

    def drain(self) -> list[Sample]:
        items, self._held = self._held, []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return items
            if item is _END:
                self.finished = True
            else:
                items.append(item)

    def wait(self, timeout: float) -> None:
        """Block until something arrives (or ``timeout``), keeping it for the next drain()."""
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return
        if item is _END:
            self.finished = True
        else:
            self._held.append(item)

    def stop(self) -> None:
        self._stopping.set()

    def raise_error(self) -> None:
        if self.error is not None:
            raise self.error


_END = object()
