"""Continuous batching in the hf backend, on a tiny random model (no download).

Rows that end leave the batch and waiting rows take their place: what each row generates must be
what ``generate`` gives it (greedy), samples must not depend on the batch around them, and no
token of padding is decoded.
"""

from __future__ import annotations

import pytest

from ra3bench.backends.base import GenerationParams
from ra3bench.backends.hf import HFBackend, stop_reached
from ra3bench.backends.hf_batching import ContinuousBatcher, Row, sample_seed
from ra3bench.prompts import Prompt, PromptStyle

pytest.importorskip("transformers")

TEXTS = [
    "def f(x):\n",
    "def add(a, b):\n    return",
    "import sys\n\n\ndef total(xs):\n    s = 0\n    for",
    "class Solution:\n    def solve(self, nums):\n",
    "x",
    '"""Return the maximum of a list."""\nwhile True:\n    break\nif x > y:\n    pass\nelse:\n',
]


@pytest.fixture(scope="module")
def tiny():
    from ra3bench.tiny import tiny_model

    model, tokenizer = tiny_model(seed=0)
    return model.double(), tokenizer  # float64: batch shapes cannot move a sampled token


def prompts(stop: list[str] | None = None) -> list[Prompt]:
    return [Prompt(f"t{i}", PromptStyle.COMPLETION, text=t, stop=list(stop or [])) for i, t in enumerate(TEXTS)]


def texts(out) -> list[list[tuple[str, int, str]]]:
    return [[(c.text, c.n_tokens, c.finish_reason) for c in row] for row in out]


@pytest.mark.parametrize("batch_size", [1, 2, 4, 16])
def test_greedy_rows_are_what_a_static_generate_gives_them(tiny, batch_size):
    params = GenerationParams(max_new_tokens=24)
    static = HFBackend(tiny, params, batch_size=1, batching="static").generate(prompts(), 1)
    continuous = HFBackend(tiny, params, batch_size=batch_size).generate(prompts(), 1)
    assert texts(continuous) == texts(static)


def test_an_end_token_or_a_stop_string_ends_a_row_as_generate_does(tiny):
    _, tokenizer = tiny
    # an end token early: the tiny model's noise often holds one; the texts must agree either way
    eos = GenerationParams(max_new_tokens=40)
    stop = [" ", "\n"]
    static = HFBackend(tiny, eos, batch_size=1, batching="static").generate(prompts(stop), 1)
    continuous = HFBackend(tiny, eos, batch_size=3).generate(prompts(stop), 1)
    assert texts(continuous) == texts(static)
    assert any(c[0].finish_reason == "stop" and c[0].n_tokens < 40 for c in continuous)
    assert tokenizer.eos_token_id is not None


@pytest.mark.parametrize("batch_size", [1, 3, 5, 24])
def test_a_sample_does_not_depend_on_its_batch(tiny, batch_size):
    params = GenerationParams(max_new_tokens=16, temperature=1.0, top_p=0.9, seed=11)
    reference = HFBackend(tiny, params, batch_size=2).generate(prompts(), 4)
    assert texts(HFBackend(tiny, params, batch_size=batch_size).generate(prompts(), 4)) == texts(reference)
    # alone: one prompt, its samples are the same as in the full run
    alone = HFBackend(tiny, params, batch_size=batch_size).generate(prompts()[2:3], 4)
    assert texts(alone) == texts(reference)[2:3]
    assert all(len({c.text for c in row}) > 1 for row in reference)  # n samples, not n copies


def test_the_seed_and_the_sample_index_decide_a_sample(tiny):
    assert sample_seed(0, "t1", 0) != sample_seed(0, "t1", 1) != sample_seed(1, "t1", 0)
    first = HFBackend(tiny, GenerationParams(max_new_tokens=12, temperature=1.0, seed=3)).generate(prompts(), 2)
    other = HFBackend(tiny, GenerationParams(max_new_tokens=12, temperature=1.0, seed=4)).generate(prompts(), 2)
    assert texts(first) != texts(other)


def test_no_padding_is_decoded_and_a_prompt_is_prefilled_once(tiny):
    model, tokenizer = tiny
    ids = [tokenizer(t)["input_ids"] for t in TEXTS]
    rows = [Row(p, ids[p], sample_seed(0, str(p), k)) for p in range(len(ids)) for k in range(3)]
    budgets = {}
    batcher = ContinuousBatcher(
        model, max_rows=4, max_new_tokens=20, end_ids=set(), pad_id=tokenizer.pad_token_id or 0, temperature=1.0
    )
    # rows end at different lengths: a stop after a number of tokens of their own
    for i, row in enumerate(rows):
        budgets[id(row)] = 3 + (7 * i) % 17
    batcher.stop_check = lambda row: len(row.new) >= budgets[id(row)]
    batcher.run(rows)
    assert [len(r.new) for r in rows] == [budgets[id(r)] for r in rows]
    # each decode step decodes exactly the live rows: every token after the prefill's first is a real one
    assert batcher.stats.slots == sum(len(r.new) for r in rows)
    assert batcher.stats.padding_share(sum(len(r.new) for r in rows)) == 0.0
    assert batcher.stats.prefill_tokens <= sum(len(i) for i in ids) * 2  # a prompt's 3 samples share a prefill
    assert batcher.stats.prefill_tokens >= sum(len(i) for i in ids)


def test_the_token_budget_ends_a_row(tiny):
    out = HFBackend(tiny, GenerationParams(max_new_tokens=5), batch_size=2).generate(prompts(), 1)
    assert all(c[0].n_tokens <= 5 for c in out)
    assert any(c[0].finish_reason == "length" for c in out)


def test_a_stop_string_counts_only_where_the_newest_token_completes_it(tiny):
    _, tokenizer = tiny
    ids = tokenizer("abc ```")["input_ids"]
    row = Row(0, ids, None)
    assert not stop_reached(row, ["```"], tokenizer)  # in the prompt only
    row.new = tokenizer("\nx")["input_ids"]
    assert not stop_reached(row, ["```"], tokenizer)
    row.new = tokenizer("\n```")["input_ids"]
    assert stop_reached(row, ["```"], tokenizer)


def test_the_manifest_says_how_samples_are_seeded(tiny):
    continuous = HFBackend(tiny, GenerationParams()).describe()
    static = HFBackend(tiny, GenerationParams(), batching="static").describe()
    assert continuous["batching"] == "continuous" and "sample index" in continuous["sampling_seed"]
    assert static["batching"] == "static" and "composition" in static["sampling_seed"]
