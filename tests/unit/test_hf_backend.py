"""The hf backend on a tiny random model built from a config (no download)."""

from __future__ import annotations

from typing import ClassVar

import pytest

from ra3bench.backends.base import GenerationParams
from ra3bench.backends.hf import HFBackend
from ra3bench.errors import UsageError
from ra3bench.prompts import EVALPLUS_RESPONSE_PREFIX, Prompt, PromptStyle, build_prompt
from ra3bench.suites.base import Problem

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tiny():
    from ra3bench.tiny import tiny_model

    return tiny_model(seed=0)


def problem(task_id: str, prompt: str) -> Problem:
    return Problem(
        task_id=task_id, prompt=prompt, instruction=f"Write {task_id}.", entry_point="f", reference="", groups={}
    )


def completion_prompts() -> list[Prompt]:
    texts = ["def f(x):\n", "def add(a, b):\n    return", "import sys\n\n\ndef total(xs):\n    s = 0\n    for"]
    return [Prompt(f"t{i}", PromptStyle.COMPLETION, text=t) for i, t in enumerate(texts)]


def test_a_left_padded_batch_gives_what_each_prompt_gives_alone(tiny):
    params = GenerationParams(max_new_tokens=12)
    batched = HFBackend(tiny, params, batch_size=8).generate(completion_prompts(), 1)
    alone = HFBackend(tiny, params, batch_size=1).generate(completion_prompts(), 1)
    assert [c[0].text for c in batched] == [c[0].text for c in alone]
    assert all(c[0].n_tokens == 12 and c[0].finish_reason == "length" for c in batched)


def test_sampling_is_seeded_and_gives_n_distinct_rows(tiny):
    params = GenerationParams(max_new_tokens=10, temperature=1.0, top_p=0.95, seed=7)
    first = HFBackend(tiny, params).generate(completion_prompts(), 3)
    again = HFBackend(tiny, params).generate(completion_prompts(), 3)
    other_seed = HFBackend(tiny, GenerationParams(max_new_tokens=10, temperature=1.0, seed=8)).generate(
        completion_prompts(), 3
    )
    assert [[c.text for c in row] for row in first] == [[c.text for c in row] for row in again]
    assert [[c.text for c in row] for row in first] != [[c.text for c in row] for row in other_seed]
    assert all(len(row) == 3 and len({c.text for c in row}) > 1 for row in first)


def test_chat_style_renders_the_template_and_the_response_prefix(tiny):
    backend = HFBackend(tiny, GenerationParams(max_new_tokens=4))
    assert backend.prompt_style() is PromptStyle.CHAT  # the tokenizer has a chat template
    prompt = build_prompt(problem("HumanEval/0", "def f():\n"), "humaneval+", PromptStyle.CHAT)
    rendered = backend.render(prompt)
    assert rendered.startswith("<|im_start|>user\nWrite HumanEval/0.<|im_end|>\n<|im_start|>assistant\n")
    assert rendered.endswith(EVALPLUS_RESPONSE_PREFIX)
    assert prompt.stop == ["\n```"]


def test_completion_style_is_chosen_without_a_chat_template_and_chat_is_refused(tiny):
    model, tokenizer = tiny
    import copy

    plain = copy.deepcopy(tokenizer)
    plain.chat_template = None
    backend = HFBackend((model, plain), GenerationParams(max_new_tokens=4))
    assert backend.prompt_style() is PromptStyle.COMPLETION
    forced = HFBackend((model, plain), GenerationParams(max_new_tokens=4), PromptStyle.CHAT)
    with pytest.raises(UsageError, match="chat template"):
        forced.render(build_prompt(problem("t", "def f():\n"), "humaneval+", PromptStyle.CHAT))


def test_a_stop_string_ends_the_row_and_is_reported(tiny):
    backend = HFBackend(tiny, GenerationParams(max_new_tokens=24))
    free = backend.generate(completion_prompts()[:1], 1)[0][0]
    stop = free.text[3:6]  # whatever the model writes early on becomes the stop string
    assert stop
    stopped = backend.generate([Prompt("t0", PromptStyle.COMPLETION, text="def f(x):\n", stop=[stop])], 1)[0][0]
    assert stopped.finish_reason == "stop"
    assert stopped.n_tokens < free.n_tokens
    assert free.text.startswith(stopped.text)  # the same text, ended early


def test_samples_keep_the_raw_completion_and_skip_what_a_resumed_run_has(tiny):
    class Counting(HFBackend):
        calls: ClassVar[list[int]] = []

        def generate(self, prompts, n):
            self.calls.append(len(prompts))
            return super().generate(prompts, n)

    suite = _humaneval()
    problems = suite.problems()[:3]
    backend = Counting(tiny, GenerationParams(max_new_tokens=6))
    samples = list(backend.samples(suite, problems, 2))
    # greedy: one generation per problem, repeated for every sample index
    assert backend.calls == [3]
    assert [(s.task_id, s.sample_index) for s in samples] == [(p.task_id, i) for p in problems for i in range(2)]
    assert samples[0].program == samples[1].program
    assert {"raw_completion", "prompt_style", "finish_reason", "n_tokens", "extraction"} <= samples[0].raw.keys()
    backend.calls.clear()
    skip = frozenset({(problems[0].task_id, 0), (problems[0].task_id, 1), (problems[1].task_id, 0)})
    rest = list(backend.samples(suite, problems, 2, skip=skip))
    assert backend.calls == [2]
    assert [(s.task_id, s.sample_index) for s in rest] == [
        (problems[1].task_id, 1),
        (problems[2].task_id, 0),
        (problems[2].task_id, 1),
    ]


def test_bad_generation_settings_are_one_line():
    with pytest.raises(UsageError, match="temperature"):
        GenerationParams(temperature=-1).check()
    with pytest.raises(UsageError, match="prompt-style"):
        PromptStyle.parse("instruct")


def _humaneval():
    from shared_data import DATA_DIR

    from ra3bench.suites import get_suite

    return get_suite("humaneval+", None, DATA_DIR)
