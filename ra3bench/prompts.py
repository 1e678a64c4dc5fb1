"""Prompt building per suite and model kind: completion prompts for base models, chat for instruct.

Each suite's problems carry both texts (``Problem.prompt`` and ``Problem.instruction``, built as
evalplus and lcb_runner build them). This module turns one of them into what a backend sends:

* ``completion``: the prompt text as is; the model continues it. Stop sequences end the
  continuation where the next top-level statement would start (evalplus's list for its base
  models; ``###`` for LiveCodeBench's base prompt, as lcb_runner).
* ``chat``: one user turn with the instruction. For evalplus suites the assistant turn is
  started with evalplus's response prefix, which opens a ```` ```python ```` block; generation
  stops when the block closes, so a small model does not ramble past its code.

The style is chosen from the tokenizer (a chat template means an instruct model) unless
``--prompt-style`` says otherwise.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from ra3bench.errors import UsageError
from ra3bench.suites.base import Problem


class PromptStyle(str, enum.Enum):
    CHAT = "chat"
    COMPLETION = "completion"

    @classmethod
    def parse(cls, text: str | None) -> PromptStyle | None:
        """``None`` or "auto" means: let the backend decide from the model."""
        if text in (None, "", "auto"):
            return None
        try:
            return cls(text)
        except ValueError:
            raise UsageError(f"--prompt-style must be auto, chat or completion, not {text!r}") from None


# evalplus (codegen.py / provider utils): the assistant turn starts with this, so the model writes code.
EVALPLUS_RESPONSE_PREFIX = (
    "Below is a Python script with a self-contained function that solves the problem and passes "
    "corresponding tests:\n```python\n"
)
# evalplus's extra EOS strings for base models (evalplus/provider/utility.py).
EVALPLUS_COMPLETION_STOP = ["<|endoftext|>", "<|endofmask|>", "</s>", "\nif __name__", "\ndef main(", "\nprint("]
LCB_COMPLETION_STOP = ["###"]
CLOSE_FENCE_STOP = ["\n```"]

EVALPLUS_FAMILIES = ("humaneval", "mbpp")


@dataclass
class Prompt:
    """What a backend sends for one problem. ``text`` is the full text to continue in both styles:
    for chat it is filled in by the backend from ``messages`` (its chat template) when it has one."""

    task_id: str
    style: PromptStyle
    messages: list[dict[str, str]] = field(default_factory=list)  # chat: the turns; last may be a prefix
    text: str = ""  # completion: the prompt; chat: the rendered template, once a backend renders it
    response_prefix: str = ""  # chat: the start of the assistant turn (part of the program's text)
    stop: list[str] = field(default_factory=list)


def suite_family(suite_name: str) -> str:
    return suite_name.rstrip("+").split("-")[0]


def build_prompt(problem: Problem, suite_name: str, style: PromptStyle) -> Prompt:
    family = suite_family(suite_name)
    if style is PromptStyle.COMPLETION:
        stop = EVALPLUS_COMPLETION_STOP if family in EVALPLUS_FAMILIES else LCB_COMPLETION_STOP
        return Prompt(problem.task_id, style, text=problem.prompt, stop=list(stop))
    prefix = EVALPLUS_RESPONSE_PREFIX if family in EVALPLUS_FAMILIES else ""
    return Prompt(
        problem.task_id,
        style,
        messages=[{"role": "user", "content": problem.instruction}],
        response_prefix=prefix,
        stop=list(CLOSE_FENCE_STOP) if prefix else [],
    )


def cut_at_stop(text: str, stop: list[str]) -> tuple[str, bool]:
    """``text`` up to the first stop sequence, and whether one was found."""
    cut = min((i for s in stop if s and (i := text.find(s)) >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)
