"""The `hf` backend: transformers' ``generate``, batched, on CPU or GPU.

Batches are built from prompts of similar length (sorted), padded on the left with an
attention mask, so every row's new tokens start at the same column. Instruct models get
their chat template; base models the completion prompt (``prompt_style`` decides, from the
tokenizer's chat template unless asked). Stop sequences go to ``generate`` (``stop_strings``)
so finished rows stop early, and the text is cut at them again afterwards.

Sampling is seeded per batch from ``seed`` and the batch's first task, so a run with the
same settings and batch composition gives the same samples; greedy decoding is
deterministic regardless.
"""

from __future__ import annotations

import hashlib
from typing import Any

from ra3bench.backends.base import Completion, GenerationBackend, GenerationParams
from ra3bench.errors import UsageError
from ra3bench.models import ModelSource, resolve_model
from ra3bench.prompts import Prompt, PromptStyle
from ra3bench.tiny import TINY_SPEC, tiny_model


def load_model(source: ModelSource, *, device: str = "cpu", dtype: str = "auto") -> tuple[Any, Any]:
    """Model and tokenizer from a folder, a Hub id or a GGUF file; one clear line on failure."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_dtype = {"auto": torch.float32 if device == "cpu" else torch.bfloat16}.get(dtype) or getattr(torch, dtype)
    extra = {"gguf_file": source.gguf_file} if source.gguf_file else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.path, **extra)
        model = AutoModelForCausalLM.from_pretrained(source.path, dtype=torch_dtype, **extra)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(
            f"cannot load model {source.path!r} ({first}); give a preset (`ra3bench models`), "
            "a local folder, a .gguf file, or a Hub id the machine can reach"
        ) from None
    model.to(device)
    model.eval()
    return model, tokenizer


class HFBackend(GenerationBackend):
    name = "hf"

    def __init__(
        self,
        model: str | tuple[Any, Any],
        params: GenerationParams,
        prompt_style: PromptStyle | None = None,
        *,
        batch_size: int = 16,
        device: str = "cpu",
        dtype: str = "auto",
        model_label: str | None = None,
    ) -> None:
        """``model``: a spec for :func:`resolve_model`, ``tiny-random`` (a random tiny model, no
        download), or an already loaded (model, tokenizer) pair (the training loop evaluates its
        in-memory model this way)."""
        super().__init__(params, prompt_style)
        if model == TINY_SPEC:
            model = tiny_model()
        if isinstance(model, str):
            self.source: ModelSource | None = resolve_model(model)
            self.model, self.tokenizer = load_model(self.source, device=device, dtype=dtype)
            self.label = model_label or model
        else:
            self.source = None
            self.model, self.tokenizer = model
            self.label = model_label or getattr(self.model.config, "_name_or_path", "") or "in-memory model"
        self.batch_size = max(1, batch_size)
        self.chunk_size = max(self.batch_size, 16)
        self.device = device
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    def prompt_style(self) -> PromptStyle:
        return self.requested_style or auto_style(self.tokenizer)

    def model_name(self) -> str:
        return self.label

    def describe(self) -> dict:
        info = super().describe()
        if self.source is not None:
            info.update(self.source.describe())
            info["model"] = self.label
        import transformers

        info["batch_size"] = self.batch_size
        info["versions"] = {"transformers": transformers.__version__}
        return info

    def render(self, prompt: Prompt) -> str:
        return render_prompt(prompt, self.tokenizer)

    def generate(self, prompts: list[Prompt], n: int) -> list[list[Completion]]:
        texts = [self.render(p) for p in prompts]
        rows = [(i, texts[i], prompts[i]) for i in range(len(prompts))]
        rows.sort(key=lambda row: len(row[1]))  # similar lengths share a batch: less padding
        out: list[list[Completion]] = [[] for _ in prompts]
        per_batch = max(1, self.batch_size // n)  # prompts per batch; each gives n rows
        for start in range(0, len(rows), per_batch):
            batch = rows[start : start + per_batch]
            completions = self._generate_batch([t for _, t, _ in batch], [p for _, _, p in batch], n)
            for (index, _, _), result in zip(batch, completions, strict=True):
                out[index] = result
        return out

    def _generate_batch(self, texts: list[str], prompts: list[Prompt], n: int) -> list[list[Completion]]:
        import torch

        tok = self.tokenizer
        tok.padding_side = "left"
        # a chat template writes its own special tokens; a completion prompt gets the model's BOS, as vLLM gives it
        add_special = prompts[0].style is PromptStyle.COMPLETION
        encoded = tok(texts, return_tensors="pt", padding=True, add_special_tokens=add_special).to(self.device)
        stop = sorted({s for p in prompts for s in p.stop if s})
        kwargs: dict[str, Any] = {
            "max_new_tokens": self.params.max_new_tokens,
            "num_return_sequences": n,
            "pad_token_id": tok.pad_token_id,
            "do_sample": not self.params.greedy,
        }
        if self.params.greedy:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        else:
            kwargs.update(temperature=self.params.temperature, top_p=self.params.top_p, top_k=None)
            seed_text = f"{self.params.seed}:{prompts[0].task_id}"
            torch.manual_seed(int(hashlib.sha256(seed_text.encode()).hexdigest()[:8], 16))
        if stop:
            kwargs.update(stop_strings=stop, tokenizer=tok)
        with torch.inference_mode():
            generated = self.model.generate(**encoded, **kwargs)
        new_tokens = generated[:, encoded["input_ids"].shape[1] :]
        ends = eos_ids(self.model, tok)
        results: list[list[Completion]] = []
        for p in range(len(prompts)):
            group = []
            for row in new_tokens[p * n : (p + 1) * n].tolist():
                group.append(self._completion(row, ends, prompts[p].stop))
            results.append(group)
        return results

    def _completion(self, row: list[int], ends: set[int], stop: list[str]) -> Completion:
        n_tokens, how, text = generated_span(row, ends, self.tokenizer, stop)
        reason = "length" if how == "open" and n_tokens >= self.params.max_new_tokens else "stop"
        return Completion(text=text, finish_reason=reason, n_tokens=n_tokens)


def auto_style(tokenizer: Any) -> PromptStyle:
    """An instruct model (its tokenizer has a chat template) gets chat prompts, a base model completion."""
    return PromptStyle.CHAT if getattr(tokenizer, "chat_template", None) else PromptStyle.COMPLETION


def render_prompt(prompt: Prompt, tokenizer: Any) -> str:
    """The exact text the model continues (the chat template's, plus the response prefix)."""
    if prompt.style is PromptStyle.COMPLETION:
        return prompt.text
    if not getattr(tokenizer, "chat_template", None):
        raise UsageError("--prompt-style chat needs a model with a chat template; use --prompt-style completion")
    rendered = tokenizer.apply_chat_template(prompt.messages, add_generation_prompt=True, tokenize=False)
    return rendered + prompt.response_prefix


def generated_span(row: list[int], ends: set[int], tokenizer: Any, stop: list[str]) -> tuple[int, str, str]:
    """How many of ``row``'s new tokens the model generated, how the row ended ("eos", "stop" or
    "open": no end token), and their text. A row that ended at a stop string is padded afterwards,
    and the pad may be the EOS id (SmolLM2): that pad is not a generated token."""
    end = next((i for i, t in enumerate(row) if t in ends), None)
    if end is None:
        end = len(row)
        while end and row[end - 1] == tokenizer.pad_token_id:
            end -= 1
        return end, "open", tokenizer.decode(row[:end], skip_special_tokens=True)
    text = tokenizer.decode(row[:end], skip_special_tokens=True)
    if any(s and s in text for s in stop):
        return end, "stop", text
    return end + 1, "eos", text


def eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids = getattr(model.generation_config, "eos_token_id", None)
    ids = ids if isinstance(ids, list) else [ids]
    return {i for i in [*ids, tokenizer.eos_token_id] if i is not None}
