"""ra3bench as verl's custom reward function: the sandbox's verdict is the reward.

verl (checked against verl 0.9.1's source; verl is not a dependency of ra3bench and is not installed
in CI: the tests call these functions with verl's argument shapes) loads a reward function from its
config and calls it once per sample::

    reward.custom_reward_function.path=pkg://ra3bench.integrations.verl
    reward.custom_reward_function.name=compute_score
    +reward.custom_reward_function.reward_kwargs.sandbox=docker     # optional: see "Options"
    data.train_files=mbpp+.parquet data.val_files=mbpp+.parquet     # from write_parquet()

Use the ``reward.`` keys: in verl 0.9.1 only ``fully_async_main`` still moves the old top-level
``custom_reward_function.*`` there (``migrate_legacy_reward_impl``); ``main_ppo`` ignores them.
``reward_kwargs`` is not in verl's default config, hence the ``+``. ``pkg://`` imports this module as
a module, so its session cache is shared by every call in a process; a file path also works (verl
executes the file as a fresh module, ``verl/utils/import_utils.py``: ``load_module``).

**How verl calls it** (``verl/trainer/ppo/reward.py``: ``get_custom_reward_fn`` wraps the function
in ``partial(_call_with_kwargs, fn, reward_kwargs)``, where ``reward_kwargs`` is
``custom_reward_function.reward_kwargs`` and wins over call-time keywords):

* :func:`compute_score` ``(data_source, solution_str, ground_truth, extra_info=None, **kwargs)``:
  the per-sample function of the ``naive``, ``dapo``, ``gdpo`` and ``rate_limited`` reward managers
  of verl's reward loop (``verl/experimental/reward_loop/reward_manager/naive.py``), the only loop
  verl 0.9's trainers use. They run it with keywords, in an executor thread
  (``loop.run_in_executor``), for many samples at once, in each of ``reward.num_workers`` Ray
  actors; with a reward model configured they also pass ``reward_router_address`` and
  ``reward_model_tokenizer``, which this function ignores. Calls that arrive while a judge call is
  running are judged together in the next one, so concurrency is not lost to a lock.
* :func:`compute_score_batched` ``(data_sources, solution_strs, ground_truths, extra_infos, **kwargs)``
  returning a list: the ``batch`` reward manager's signature (``verl/workers/reward_manager/batch.py``,
  named as verl's own example ``verl/utils/reward_score/math_batch.py``). In verl 0.9.1 that manager
  is only in the legacy registry, which the trainer no longer reads (``reward_manager.name=batch``
  fails there); it serves older verl and direct calls. It makes one ``Session.judge`` call per suite.

**What they return**: a dict, which verl's managers split into the reward (``"score"``) and
``reward_extra_info`` (every other key, kept per sample, dumped with the rollouts and averaged into
validation metrics ``val-core/<data_source>/acc/mean@N`` and ``val-aux/...``). verl builds one array
per key from the first sample's keys, so every result has the same keys, all scalars:

* ``score``: the reward, ``binary`` 1.0 if every test passed else 0.0, or ``fraction``, the share
  of tests passed (then every test runs: no fail-fast);
* ``acc``: 1.0 if every test passed, else 0.0 (verl's accuracy key, its core validation metric);
* ``sandbox_error``: 1 when the sandbox failed, not the program (see below), else 0;
* ``status``: the verdict, ``pass``, ``fail``, ``error``, ``timeout``, ``memory``, ``syntax`` or
  ``sandbox_error`` (a string: logged in dumps, left out of verl's numeric metrics).

**A sandbox_error** (an infrastructure fault that survived the judge's retries) says nothing about
the program; ra3bench's own trainers drop such samples (``Verdict.reward`` is None). verl cannot:
the score must be a number (``RewardManagerBase.assemble_rm_scores`` builds a tensor from the
scores, and None fails there), and no reward manager masks a sample by its extra info. So by default
(``on_sandbox_error="zero"``) it scores 0.0, which the policy update reads as a failure, and is
flagged ``sandbox_error: 1`` and ``status: sandbox_error`` (and logged as a warning) so that the
rate is visible (``val-aux/<data_source>/sandbox_error/mean@N``, the rollout dumps): any nonzero
rate means some zeros are the sandbox's, not the model's, so fix the sandbox. With
``on_sandbox_error="raise"`` the call raises :class:`SandboxFault` instead and the step fails.

**Conventions**: ``data_source`` is ``ra3bench/<suite>`` (``ra3bench/mbpp+``), or
``ra3bench/<suite>@<version>`` for a suite version other than the pinned default;
``ground_truth`` is the task id (``Mbpp/2``); ``extra_info`` is not used. Anything else is an error
that names what was expected (a mixed data set routes other data sources to its own functions).

**Options**, from ``reward_kwargs`` (first) or environment variables (which must reach verl's Ray
workers, e.g. through ``ray_kwargs.ray_init.runtime_env.env_vars``), else defaults:

* ``mode`` (``RA3BENCH_VERL_MODE``): ``binary`` (default) or ``fraction``;
* ``sandbox`` (``RA3BENCH_VERL_SANDBOX``): ``auto`` (default: docker, else bubblewrap), ``docker``, ...;
* ``workers`` (``RA3BENCH_VERL_WORKERS``): programs run at once per reward worker (0, default: one
  per core). verl starts ``reward.num_workers`` reward workers (8 by default) spread over the nodes,
  each with its own session and sandbox: give each about its node's cores / its workers there;
* ``on_sandbox_error`` (``RA3BENCH_VERL_ON_SANDBOX_ERROR``): ``zero`` (default) or ``raise``;
* ``style`` (``RA3BENCH_VERL_STYLE``): how answers are read, ``chat`` (default) or ``completion``;
* and the judging fields of :class:`~ra3bench.EvalOptions`: ``memory_mb``, ``time_floor``,
  ``time_factor``, ``problem_time_factor``, ``max_timeouts``, ``failed_group_budget``, ``cache``.

An unknown keyword raises (a misspelt ``mode`` must not silently train on the other reward).

**Sessions**: one :class:`~ra3bench.Session` per (suite, version, judging options), opened on first
use and kept for the process's life (closed at exit, or by :func:`close_sessions`). Its first judge
call needs the suite's expected outputs: the reference solutions run in the sandbox (about a minute
for MBPP+ on two cores), once per machine, then read from ``$RA3BENCH_CACHE_DIR`` (default
``~/.cache/ra3bench``); suites whose data give the outputs (LiveCodeBench, Codeforces) skip this.
Warm each node's cache before training, e.g. ``session_for("ra3bench/mbpp+").prepare()``, so that
the reward workers do not all compute them at their first call. :func:`register_session` makes
calls for a data source use a session of your own (a fake sandbox in tests, a subset of tasks).

**Data**: :func:`verl_rows` gives a suite's problems as verl's dataset rows (``data_source``,
``prompt`` as chat messages, ``ability``, ``reward_model``, ``extra_info``); :func:`write_parquet`
writes them for ``data.train_files`` / ``data.val_files``.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from ra3bench import EvalSpec, Ra3benchError, Session, UsageError, Verdict
from ra3bench.prompts import PromptStyle, build_prompt

__all__ = [
    "DATA_SOURCE_PREFIX",
    "SandboxFault",
    "close_sessions",
    "compute_score",
    "compute_score_batched",
    "data_source_for",
    "register_session",
    "session_for",
    "verl_rows",
    "write_parquet",
]

log = logging.getLogger(__name__)

DATA_SOURCE_PREFIX = "ra3bench/"
MODES = ("binary", "fraction")
ON_SANDBOX_ERROR = ("zero", "raise")
STYLES = tuple(style.value for style in PromptStyle)
# Options read from the environment when reward_kwargs do not give them: name -> (variable, default).
ENV_OPTIONS = {
    "mode": ("RA3BENCH_VERL_MODE", "binary"),
    "sandbox": ("RA3BENCH_VERL_SANDBOX", "auto"),
    "workers": ("RA3BENCH_VERL_WORKERS", "0"),
    "on_sandbox_error": ("RA3BENCH_VERL_ON_SANDBOX_ERROR", "zero"),
    "style": ("RA3BENCH_VERL_STYLE", "chat"),
}
# EvalOptions fields that change how programs are judged, accepted as reward_kwargs.
JUDGE_OPTIONS = (
    "memory_mb",
    "time_floor",
    "time_factor",
    "problem_time_factor",
    "max_timeouts",
    "failed_group_budget",
    "cache",
)
# Keywords verl's reward managers add on their own (with a reward model configured): not options.
VERL_KWARGS = ("reward_router_address", "reward_model_tokenizer")


class SandboxFault(Ra3benchError):
    """A sandbox_error verdict under ``on_sandbox_error="raise"``: the sandbox failed, not the program."""


# -- options and sessions ----------------------------------------------------------------------------


def _options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The options of one call: reward_kwargs, else environment variables, else defaults (checked)."""
    unknown = sorted(k for k in kwargs if k not in ENV_OPTIONS and k not in JUDGE_OPTIONS and k not in VERL_KWARGS)
    if unknown:
        known = ", ".join([*ENV_OPTIONS, *JUDGE_OPTIONS])
        raise UsageError(f"unknown ra3bench reward option {unknown[0]!r} (verl reward_kwargs); known: {known}")
    options = {k: kwargs[k] for k in JUDGE_OPTIONS if kwargs.get(k) is not None}
    for name, (variable, default) in ENV_OPTIONS.items():
        value = kwargs.get(name)
        options[name] = value if value is not None else os.environ.get(variable) or default
    options["mode"], options["style"] = str(options["mode"]), str(options["style"])
    options["sandbox"], options["on_sandbox_error"] = str(options["sandbox"]), str(options["on_sandbox_error"])
    if options["mode"] not in MODES:
        raise UsageError(f"ra3bench reward mode must be one of {', '.join(MODES)}, not {options['mode']!r}")
    if options["on_sandbox_error"] not in ON_SANDBOX_ERROR:
        raise UsageError(
            f"on_sandbox_error must be one of {', '.join(ON_SANDBOX_ERROR)}, not {options['on_sandbox_error']!r}"
        )
    if options["style"] not in STYLES:
        raise UsageError(f"style must be one of {', '.join(STYLES)}, not {options['style']!r}")
    try:
        options["workers"] = int(options["workers"])
    except (TypeError, ValueError):
        raise UsageError(f"workers must be an integer, not {options['workers']!r}") from None
    return options


def _parse_data_source(data_source: Any) -> tuple[str, str | None]:
    """``ra3bench/<suite>[@<version>]`` -> (suite, version or None)."""
    text = str(data_source)
    if not text.startswith(DATA_SOURCE_PREFIX) or len(text) == len(DATA_SOURCE_PREFIX):
        raise UsageError(
            f"data_source {text!r} is not an ra3bench one: expected {DATA_SOURCE_PREFIX}<suite> such as "
            f"'{DATA_SOURCE_PREFIX}mbpp+' (rows from ra3bench.integrations.verl.verl_rows)"
        )
    suite, _, version = text[len(DATA_SOURCE_PREFIX) :].partition("@")
    return suite, version or None


def data_source_for(suite: Any) -> str:
    """The ``data_source`` of a suite's rows: ``ra3bench/<name>``, with ``@<version>`` unless the default."""
    name = f"{DATA_SOURCE_PREFIX}{suite.name}"
    return name if suite.version == suite.default_version else f"{name}@{suite.version}"


class _Judge:
    """A session shared by the threads verl scores in: one judge call at a time, and the calls that
    arrive meanwhile are judged together in the next one (one ``Session.judge`` call, its concurrency
    and duplicate handling, instead of one call per sample behind a lock)."""

    def __init__(self, session: Session, *, owned: bool) -> None:
        self.session = session
        self.owned = owned
        self._queue: list[tuple[str, str, Future]] = []
        self._queue_lock = threading.Lock()
        self._turn = threading.Lock()

    def verdicts(self, task_ids: Sequence[str], programs: Sequence[str]) -> list[Verdict]:
        futures: list[Future] = [Future() for _ in task_ids]
        with self._queue_lock:
            self._queue.extend(zip(task_ids, programs, futures, strict=True))
        with self._turn:
            with self._queue_lock:
                batch, self._queue = self._queue, []
            if batch:  # ours, and whatever queued while the previous call ran (or nothing: judged already)
                try:
                    verdicts = self.session.judge([b[0] for b in batch], [b[1] for b in batch])
                except BaseException as exc:
                    for *_, future in batch:
                        future.set_exception(exc)
                else:
                    for (*_, future), verdict in zip(batch, verdicts, strict=True):
                        future.set_result(verdict)
        return [future.result() for future in futures]

    def close(self) -> None:
        if self.owned:
            self.session.close()


_LOCK = threading.Lock()
_OPENED: dict[tuple, _Judge] = {}  # (suite, version, judging options) -> a session this module opened
_REGISTERED: dict[tuple[str, str | None], _Judge] = {}  # (suite, version) -> a session of the caller's


def _judge_for(data_source: Any, options: dict[str, Any]) -> _Judge:
    suite, version = _parse_data_source(data_source)
    judging = {k: options[k] for k in ("sandbox", "workers", *JUDGE_OPTIONS) if k in options}
    judging["fail_fast"] = options["mode"] == "binary"  # a pass fraction needs every test run
    key = (suite, version, tuple(sorted(judging.items())))
    with _LOCK:
        if (registered := _REGISTERED.get((suite, version))) is not None:
            judge = registered
        elif (judge := _OPENED.get(key)) is None:
            session = Session(EvalSpec(suite=suite, suite_version=version, **judging))
            judge = _OPENED[key] = _Judge(session.open(), owned=True)
    if options["mode"] == "fraction" and judge.session.settings.fail_fast:
        raise UsageError(
            f"reward mode 'fraction' needs every test to run, but the session registered for {data_source} "
            "judges with fail-fast: build its spec with fail_fast=False"
        )
    return judge


def session_for(data_source: str, **options: Any) -> Session:
    """The session that calls for ``data_source`` with these options (reward_kwargs) use, opened now if it
    is not yet: ``session_for("ra3bench/mbpp+").prepare()`` computes the expected outputs before training."""
    return _judge_for(data_source, _options(options)).session


def register_session(data_source: str, session: Session | None) -> None:
    """Judge every call for ``data_source`` (whatever its options) with ``session``, which stays the caller's
    to close; ``None`` removes the registration. For tests (a fake sandbox) and direct calls (a subset of
    tasks); verl's reward workers are separate processes, where only their own registrations count."""
    suite, version = _parse_data_source(data_source)
    with _LOCK:
        if session is None:
            _REGISTERED.pop((suite, version), None)
            return
        wanted = (suite, version or session.suite.default_version)
        if (session.suite.name, session.suite.version) != wanted:
            raise UsageError(
                f"cannot register a session of {data_source_for(session.suite)} for data_source {data_source!r}"
            )
        _REGISTERED[(suite, version)] = _Judge(session, owned=False)


def close_sessions() -> None:
    """Close the sessions this module opened and forget the registered ones (run at exit)."""
    with _LOCK:
        opened = list(_OPENED.values())
        _OPENED.clear()
        _REGISTERED.clear()
    for judge in opened:
        try:
            judge.close()
        except Exception:  # at exit: close the others regardless
            log.exception("closing an ra3bench session")


atexit.register(close_sessions)


# -- the reward functions ----------------------------------------------------------------------------


def _result(verdict: Verdict, data_source: str, task_id: str, options: dict[str, Any]) -> dict[str, Any]:
    if verdict.sandbox_error:
        detail = next((g.detail for g in verdict.groups.values() if g.detail), "")
        if options["on_sandbox_error"] == "raise":
            raise SandboxFault(
                f"the sandbox failed on a {data_source} {task_id} program (not the program's fault): {detail[:300]}"
            )
        log.warning("sandbox_error on %s %s scored 0.0 (flagged sandbox_error=1): %s", data_source, task_id, detail)
        return {"score": 0.0, "acc": 0.0, "sandbox_error": 1, "status": "sandbox_error"}
    score = verdict.reward(options["mode"])
    assert score is not None
    return {
        "score": float(score),
        "acc": 1.0 if verdict.passed else 0.0,
        "sandbox_error": 0,
        "status": verdict.status.value,
    }


def _program(judge: _Judge, data_source: str, task_id: str, solution_str: Any, style: str) -> str:
    try:
        return judge.session.extract(task_id, "" if solution_str is None else str(solution_str), style)
    except UsageError as exc:
        raise UsageError(f"ground_truth must be a task id of {data_source}: {exc}") from None


def compute_score(
    data_source: str, solution_str: str, ground_truth: str, extra_info: dict | None = None, **kwargs: Any
) -> dict[str, Any]:
    """verl's per-sample reward (``naive``/``dapo`` managers): the verdict of the program in ``solution_str``
    on task ``ground_truth`` of suite ``data_source`` (``ra3bench/<suite>``), as a dict with ``score``,
    ``acc``, ``sandbox_error`` and ``status``. ``kwargs``: verl's ``reward_kwargs`` (see the module doc)."""
    return compute_score_batched([data_source], [solution_str], [ground_truth], [extra_info], **kwargs)[0]


def compute_score_batched(
    data_sources: Iterable[str],
    solution_strs: Iterable[str],
    ground_truths: Iterable[str],
    extra_infos: Iterable[dict | None] | None = None,
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """verl's batched reward (the ``batch`` manager's signature): one result per sample, in order, with one
    ``Session.judge`` call per suite."""
    data_sources = [str(d) for d in data_sources]
    solutions, task_ids = list(solution_strs), [str(g) for g in ground_truths]
    if not len(data_sources) == len(solutions) == len(task_ids):
        raise ValueError(
            f"{len(data_sources)} data sources, {len(solutions)} solutions and {len(task_ids)} ground truths"
        )
    options = _options(kwargs)
    by_source: dict[str, list[int]] = {}
    for i, data_source in enumerate(data_sources):
        by_source.setdefault(data_source, []).append(i)
    results: list[dict[str, Any]] = [{}] * len(task_ids)
    for data_source, positions in by_source.items():
        judge = _judge_for(data_source, options)
        ids = [task_ids[i] for i in positions]
        programs = [_program(judge, data_source, task_ids[i], solutions[i], options["style"]) for i in positions]
        for i, verdict in zip(positions, judge.verdicts(ids, programs), strict=True):
            results[i] = _result(verdict, data_source, task_ids[i], options)
    return results


# -- data -----------------------------------------------------------------------------------------


def verl_rows(source: str | EvalSpec | Session, split: str = "test") -> list[dict[str, Any]]:
    """A suite's problems as verl's dataset rows, one per problem, in order::

        {"data_source": "ra3bench/mbpp+", "prompt": [{"role": "user", "content": <instruction>}],
         "ability": "code", "reward_model": {"style": "rule", "ground_truth": "Mbpp/2"},
         "extra_info": {"split": split, "index": i, "task_id": "Mbpp/2"}}

    ``source``: a suite name (all its problems), an :class:`~ra3bench.EvalSpec` (its selection, ``tasks``
    and ``limit``) or a :class:`~ra3bench.Session` (its problems). The prompt is the evaluation's chat
    prompt without its response prefix (verl applies the chat template and the model writes the whole
    answer), which :func:`compute_score` reads as a chat answer. Problems that cannot be judged (several
    valid answers and no checker) are left out unless the spec's ``include_unverifiable`` is set."""
    if isinstance(source, Session):
        suite, problems, include = source.suite, source.problems, source.spec.include_unverifiable
    else:
        spec = EvalSpec(suite=source) if isinstance(source, str) else source
        suite = spec.load_suite()
        problems, include = spec.problems_of(suite), spec.include_unverifiable
    data_source = data_source_for(suite)
    rows = []
    for problem in problems:
        if problem.unverifiable and not include:
            continue
        prompt = build_prompt(problem, suite.name, PromptStyle.CHAT)
        rows.append(
            {
                "data_source": data_source,
                "prompt": prompt.messages,
                "ability": "code",
                "reward_model": {"style": "rule", "ground_truth": problem.task_id},
                "extra_info": {"split": split, "index": len(rows), "task_id": problem.task_id},
            }
        )
    return rows


def write_parquet(source: str | EvalSpec | Session, path: str | Path, split: str = "test") -> Path:
    """Write :func:`verl_rows` as a parquet file for verl's ``data.train_files`` / ``data.val_files``
    (needs pandas and pyarrow)."""
    try:
        import pandas as pd
        import pyarrow  # noqa: F401 - pandas' parquet engine
    except ImportError as exc:
        raise UsageError(
            f"writing parquet needs pandas and pyarrow ({exc.name} is missing): pip install pyarrow"
        ) from None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(verl_rows(source, split)).to_parquet(path, index=False)
    return path
