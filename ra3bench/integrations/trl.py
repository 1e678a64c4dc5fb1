"""ra3bench as a reward function for TRL's ``GRPOTrainer``: the sandbox's verdict is the reward.

An RL reward for code is only as good as its judge: a policy under optimisation finds every way
to pass a weak one (exit early with status 0, print fake results, return objects whose ``__eq__``
is always true). :class:`SandboxReward` judges each completion exactly as ``ra3bench run`` does
(the same extraction, tests, expected outputs, time policy and sandbox, through
:meth:`ra3bench.Session.judge`: concurrent, cached, identical programs run once), so a reward of
1 means what a pass in an evaluation means, and the training and evaluation numbers agree.

    from trl import GRPOConfig, GRPOTrainer
    from ra3bench import EvalSpec
    from ra3bench.integrations.trl import SandboxReward, grpo_dataset

    reward = SandboxReward(EvalSpec(suite="mbpp+", limit=64))
    trainer = GRPOTrainer(model, reward_funcs=reward, train_dataset=grpo_dataset(reward.session),
                          args=GRPOConfig(output_dir="out"))
    trainer.train()
    reward.close()

* ``mode="binary"``: 1.0 when every test passes, else 0.0; ``"fraction"``: the share of tests
  passed, which needs every test to run (``EvalSpec(fail_fast=False)``).
* A ``sandbox_error`` verdict (an infrastructure fault, not the program's) gets ``None``: TRL turns
  it into NaN and leaves the sample out of the reward statistics, rather than scoring it 0.
* Each call logs the share of each verdict status (``ra3bench/pass``, ``ra3bench/fail``, ...,
  ``ra3bench/sandbox_error``) through TRL's ``log_metric`` and a ``ra3bench_status`` column
  through ``log_extra``; :attr:`SandboxReward.counts` keeps the totals.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ra3bench import EvalSpec, Session, Status, UsageError, Verdict
from ra3bench.prompts import PromptStyle, build_prompt

__all__ = ["CATEGORIES", "SandboxReward", "completion_text", "grpo_dataset"]

MODES = ("binary", "fraction")
STYLES = tuple(style.value for style in PromptStyle)
# What each call logs and counts: the status of a verdict, or sandbox_error if any group met an infra fault.
CATEGORIES = tuple(status.value for status in Status)
TRL_KWARGS = ("trainer_state", "log_extra", "log_metric", "completion_ids", "environments")  # not dataset columns


def completion_text(completion: Any) -> str:
    """The text of one TRL completion: a string as is; a conversational one (a list of messages) the content
    of its last assistant message (text parts joined when the content is a list of blocks), "" if it has none."""
    if isinstance(completion, str):
        return completion
    assistant = [m for m in completion if isinstance(m, dict) and m.get("role") == "assistant"]
    if not assistant:
        return ""
    content = assistant[-1].get("content") or ""
    if isinstance(content, list):  # content blocks: [{"type": "text", "text": ...}, ...]
        return "".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type", "text") == "text")
    return str(content)


class SandboxReward:
    """A TRL reward function: ``reward(prompts=..., completions=..., task_id=[...], **kwargs) -> list[float | None]``.

    ``source``: an :class:`~ra3bench.EvalSpec` (the reward builds its :class:`~ra3bench.Session`, opens it on
    the first call and closes it in :meth:`close`) or a ``Session`` (borrowed: its owner closes it).
    ``style``: how completions are read, ``chat`` (an answer with the code in it, default) or ``completion``
    (a continuation of ``problem.prompt``, for base models on :func:`grpo_dataset`'s completion prompts).
    ``task_column``: the dataset column with each row's task id. ``name``: the reward's name in TRL's logs.
    """

    def __init__(
        self,
        source: EvalSpec | Session,
        *,
        mode: str = "binary",
        style: str = "chat",
        task_column: str = "task_id",
        name: str = "ra3bench",
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"reward mode must be one of {', '.join(MODES)}, not {mode!r}")
        if style not in STYLES:
            raise ValueError(f"style must be one of {', '.join(STYLES)}, not {style!r}")
        self._owns_session = isinstance(source, EvalSpec)
        self.session = Session(source) if isinstance(source, EvalSpec) else source
        if mode == "fraction" and self.session.settings.fail_fast:
            raise ValueError(
                "reward mode 'fraction' needs every test to run: build the spec with fail_fast=False "
                "(EvalSpec(..., fail_fast=False)); with fail-fast judging a failed group stops at its first failure"
            )
        self.mode, self.style, self.task_column = mode, style, task_column
        self._known = {p.task_id for p in self.session.problems}
        self.__name__ = name  # what TRL names the reward in its logs (rewards/<name>/mean)
        self.counts: Counter[str] = Counter({category: 0 for category in CATEGORIES})  # over all calls
        self.calls = 0
        self.last_verdicts: list[Verdict] = []

    def __call__(
        self, prompts: list[Any] | None = None, completions: list[Any] | None = None, **kwargs: Any
    ) -> list[float | None]:
        completions = list(completions or [])
        task_ids = self._task_ids(kwargs, len(completions))
        texts = [completion_text(c) for c in completions]
        programs = [self.session.extract(t, text, self.style) for t, text in zip(task_ids, texts, strict=True)]
        verdicts = self.session.judge(task_ids, programs)
        self.last_verdicts = verdicts
        self.calls += 1
        categories = [Status.SANDBOX_ERROR.value if v.sandbox_error else v.status.value for v in verdicts]
        batch = Counter(categories)
        self.counts.update(batch)
        log_metric, log_extra = kwargs.get("log_metric"), kwargs.get("log_extra")
        if callable(log_metric) and verdicts:
            for category in CATEGORIES:  # every category every call, so that averages over steps stay shares
                log_metric(f"{self.__name__}/{category}", batch[category] / len(verdicts))
        if callable(log_extra):
            log_extra(f"{self.__name__}_status", categories)
        return [v.reward(self.mode) for v in verdicts]

    def _task_ids(self, kwargs: dict[str, Any], n: int) -> list[str]:
        if self.task_column not in kwargs:
            columns = sorted(k for k in kwargs if k not in TRL_KWARGS)
            raise UsageError(
                f"the ra3bench reward needs the dataset column {self.task_column!r} with each row's task id, "
                f"got columns {columns} (build the dataset with grpo_dataset(), keep remove_unused_columns=False)"
            )
        task_ids = [str(t) for t in kwargs[self.task_column]]
        if len(task_ids) != n:
            raise ValueError(f"{len(task_ids)} values in column {self.task_column!r} for {n} completions")
        for task_id in task_ids:
            if task_id not in self._known:
                raise UsageError(
                    f"task id {task_id!r} (column {self.task_column!r}) is not one of the session's {len(self._known)} "
                    f"{self.session.suite.name} problems (ids look like {self.session.problems[0].task_id!r}); "
                    "build the dataset from the same session: grpo_dataset(reward.session)"
                )
        return task_ids

    def close(self) -> None:
        """Close the session if this reward built it (a borrowed session is its owner's to close)."""
        if self._owns_session:
            self.session.close()

    def __enter__(self) -> SandboxReward:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def grpo_dataset(session: Session | SandboxReward, style: str = "chat") -> Any:
    """A ``datasets.Dataset`` of the session's problems for ``GRPOTrainer``: columns ``prompt`` and ``task_id``.

    ``chat``: ``prompt`` is one user turn with the problem's instruction (the evaluation's chat prompt, without
    its response prefix: the model writes the whole answer). ``completion``: ``prompt`` is ``problem.prompt``
    as text, to be continued by a base model; read it with ``SandboxReward(..., style="completion")``.
    """
    from datasets import Dataset

    if isinstance(session, SandboxReward):
        session = session.session
    if style not in STYLES:
        raise ValueError(f"style must be one of {', '.join(STYLES)}, not {style!r}")
    prompts = [build_prompt(p, session.suite.name, PromptStyle(style)) for p in session.problems]
    column = [p.messages for p in prompts] if style == "chat" else [p.text for p in prompts]
    return Dataset.from_dict({"prompt": column, "task_id": [p.task_id for p in prompts]})
