"""The colocated vLLM engine's parts that need no vLLM: weights as vLLM takes them, the requests, the
protocol's errors and the config checks. The engine itself: tests/integration/test_vllm_colocated.py."""

from __future__ import annotations

import io
import json
from types import SimpleNamespace

import pytest
import torch

from ra3bench.backends.base import GenerationParams
from ra3bench.backends.hf import eos_ids, prompt_token_ids
from ra3bench.backends.vllm_colocated import ColocatedSettings, ColocatedVLLMBackend
from ra3bench.backends.vllm_engine import EngineSample, read_weights, serve
from ra3bench.backends.vllm_weights import hf_weights, split_aliases, write_weights
from ra3bench.prompts import Prompt, PromptStyle
from ra3bench.tiny import tiny_model


def test_plain_weights_name_tied_tensors_twice():
    model, _ = tiny_model()
    weights = hf_weights(model)
    assert set(weights) == set(model.state_dict())
    assert weights["lm_head.weight"].data_ptr() == weights["model.embed_tokens.weight"].data_ptr()


def test_lora_weights_are_merged_beside_the_model_not_into_it():
    import copy

    from peft import LoraConfig, get_peft_model

    base, _ = tiny_model(seed=2)
    original = {k: v.clone() for k, v in base.state_dict().items()}
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    merged = copy.deepcopy(model).merge_and_unload().state_dict()
    weights = hf_weights(model)
    assert set(weights) == set(merged)
    for name, tensor in merged.items():
        torch.testing.assert_close(weights[name], tensor, rtol=0, atol=1e-6)
    changed = [n for n in merged if not torch.equal(merged[n], original[n])]
    assert any("q_proj" in n for n in changed)  # the adapter moved the weights vLLM gets
    for name, tensor in model.state_dict().items():  # ... and left the training model as it was
        assert torch.equal(tensor, before[name]), name


def test_a_weights_file_stores_a_shared_tensor_once_and_gives_it_back_under_every_name(tmp_path):
    model, _ = tiny_model()
    weights = hf_weights(model)
    _, aliases = split_aliases(weights)
    assert aliases == {"lm_head.weight": "model.embed_tokens.weight"}
    path = tmp_path / "w.safetensors"
    write_weights(weights, path)
    back = dict(read_weights(str(path)))
    assert set(back) == set(weights)
    for name, tensor in weights.items():
        assert torch.equal(back[name], tensor), name
    with_both = sum(t.numel() * t.element_size() for t in weights.values())
    assert path.stat().st_size < with_both  # the embedding was written once


class FakeEngine:
    """Answers as vLLM would: ``answers`` per request, in order; records the requests."""

    def __init__(self, answers: list[list[int]], on_cpu: bool = True) -> None:
        self.answers = answers
        self.requests: list = []
        self.info = SimpleNamespace(on_cpu=on_cpu, vllm_version="0", settings={})

    def generate(self, requests):
        self.requests += requests
        return [EngineSample(self.answers[i % len(self.answers)], "stop") for i in range(len(requests))]

    def describe(self):
        return {"engine": "fake"}


def test_requests_carry_the_prompt_tokens_per_sample_seeds_and_the_end_tokens():
    model, tok = tiny_model()
    prompt = Prompt(task_id="t/1", style=PromptStyle.COMPLETION, text="def f():\n", stop=["\ndef"])
    engine = FakeEngine([[5, 6, tok.eos_token_id]])
    backend = ColocatedVLLMBackend(
        engine, tok, GenerationParams(temperature=0.8, max_new_tokens=9, seed=3), end_ids=eos_ids(model, tok)
    )
    rows = backend.sample_rows([prompt], 2)
    assert [r.new for r in rows[0]] == [[5, 6, tok.eos_token_id]] * 2
    first, second = engine.requests
    assert first.prompt_ids == prompt_token_ids(prompt, tok)
    assert first.sampling["seed"] != second.sampling["seed"]  # a seed per sample, from (seed, task, index)
    assert first.sampling["stop_token_ids"] == sorted(eos_ids(model, tok))
    assert first.sampling | {"seed": 0} == {
        "n": 1,
        "temperature": 0.8,
        "top_p": 1.0,
        "max_tokens": 9,
        "seed": 0,
        "stop": ["\ndef"],
        "stop_token_ids": sorted(eos_ids(model, tok)),
    }
    assert "per sample" in backend.describe()["sampling_seed"]


def test_a_stop_string_across_the_prompt_end_ends_the_row_where_hf_ends_it():
    """vLLM looks for stop strings in the generated text only; "```" right after a prefix ending in a
    newline completes "\\n```" across the prompt's end, where the hf engine stops."""
    _, tok = tiny_model()
    prompt = Prompt(task_id="t/1", style=PromptStyle.COMPLETION, text="x = 1\n", stop=["\n```"])
    fence = tok.encode("```", add_special_tokens=False)
    more = tok.encode(" more text", add_special_tokens=False)
    backend = ColocatedVLLMBackend(FakeEngine([fence + more]), tok, GenerationParams(), end_ids=[0])
    row = backend.sample_rows([prompt], 1)[0][0]
    assert row.new == fence and row.stopped
    plain = ColocatedVLLMBackend(FakeEngine([more]), tok, GenerationParams(), end_ids=[0])
    assert plain.sample_rows([prompt], 1)[0][0].new == more


def test_the_engine_process_answers_bad_commands_with_an_error_line():
    commands = io.StringIO('{"op": "generate", "requests": []}\nnot json\n{"op": "close"}\n')
    answers = io.StringIO()
    serve(commands, answers)
    first, second, last = (json.loads(line) for line in answers.getvalue().splitlines())
    assert first["error"] == "RuntimeError: 'generate' before start"
    assert second["error"].startswith("JSONDecodeError")
    assert last == {"ok": True}


def test_settings_checks_are_one_line_each(tmp_path):
    assert ColocatedSettings().errors() == []
    errors = ColocatedSettings(python=str(tmp_path / "nope"), gpu_memory_utilization=0, kv_cache_gib=0).errors()
    assert len(errors) == 3 and "is not an executable" in errors[0]


def test_engine_vllm_without_vllm_here_is_refused_before_a_model_loads(monkeypatch):
    import importlib.util

    from ra3bench.config import ConfigError
    from ra3bench.training.runner import load_train_config

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else real(name, *a))
    with pytest.raises(ConfigError, match=r"generation.engine vllm: vLLM is not installed here"):
        load_train_config("ntp", None, ["generation.engine=vllm"])
    _, config = load_train_config("ntp", None, [])
    assert config.generation.engine == "hf"
