"""The `hf` backend: a transformers model, batched, on CPU or GPU.

``batching="continuous"`` (the default, ``hf_batching.py``): at most ``batch_size`` rows decode at
once, a row that ends (an end token, a stop string, the token budget) leaves at once and a waiting
one takes its place; each sample draws from a generator seeded by (seed, task, sample index), so it
does not depend on the rest of its batch. ``batching="static"``: transformers' ``generate`` on
batches of prompts of similar length, each decoded until its longest row ends, sampling seeded per
batch from ``seed`` and the batch's first task (samples depend on the batch's composition). A model
whose cache the continuous loop cannot handle (sliding windows, recurrent layers) is run static.

Instruct models get their chat template; base models the completion prompt (``prompt_style``
decides, from the tokenizer's chat template unless asked). Stop sequences end a row as soon as they
appear, and the text is cut at them again afterwards. Greedy decoding takes the argmax either way.
"""

from __future__ import annotations

import hashlib
from typing import Any

from ra3bench.backends.base import BATCHING, Completion, GenerationBackend, GenerationParams
from ra3bench.backends.hf_batching import (
    STOP_WINDOW_TOKENS,
    BatchStats,
    ContinuousBatcher,
    Row,
    sample_seed,
    supports,
)
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
        batching: str = "continuous",
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
        if batching not in BATCHING:  # a library caller's value: the CLI and EvalOptions check theirs
            raise UsageError(f"batching must be one of {', '.join(BATCHING)}, not {batching!r}")
        self.batch_size = max(1, batch_size)
        self.device = device
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.batching = batching if batching == "static" or supports(self.model) else "static"
        # Prompts per generate() call: the continuous loop refills from all of them, so it gets more.
        self.chunk_size = max(self.batch_size, 16) * (4 if self.batching == "continuous" else 1)
        self.last_stats: BatchStats | None = None  # what the last generate() made the model compute

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
        info["batching"] = self.batching
        info["sampling_seed"] = (
            "per sample: sha256(seed, task, sample index)"
            if self.batching == "continuous"
            else "per batch: sha256(seed, first task of the batch); samples depend on the batch's composition"
        )
        info["versions"] = {"transformers": transformers.__version__}
        return info

    def render(self, prompt: Prompt) -> str:
        return render_prompt(prompt, self.tokenizer)

    def generate(self, prompts: list[Prompt], n: int) -> list[list[Completion]]:
        ends = eos_ids(self.model, self.tokenizer)
        grouped = self.sample_rows(prompts, n)
        return completions_of(prompts, grouped, ends, self.tokenizer, self.params.max_new_tokens)

    def sample_rows(self, prompts: list[Prompt], n: int) -> list[list[Row]]:
        """``n`` sequences per prompt, with their tokens: ``ids`` (the prompt's) and ``new`` (generated,
        up to and including an end token or the token that completed a stop string; static batching
        may leave padding after it, which ``generated_span`` leaves out)."""
        self.last_stats = BatchStats()
        if self.batching == "continuous":
            rows = self._continuous(prompts, n)
        else:
            rows = []
            texts = [self.render(p) for p in prompts]
            order = sorted(range(len(prompts)), key=lambda i: len(texts[i]))  # similar lengths: less padding
            per_batch = max(1, self.batch_size // n)  # prompts per batch; each gives n rows
            for start in range(0, len(order), per_batch):
                batch = order[start : start + per_batch]
                rows += self._static([prompts[i] for i in batch], [texts[i] for i in batch], batch, n)
        return group_rows(rows, len(prompts))

    def _continuous(self, prompts: list[Prompt], n: int) -> list[Row]:
        tok = self.tokenizer
        rows = seeded_rows(prompts, n, self.params, tok)
        stops = {i: [s for s in p.stop if s] for i, p in enumerate(prompts)}
        batcher = ContinuousBatcher(
            self.model,
            max_rows=self.batch_size,
            max_new_tokens=self.params.max_new_tokens,
            end_ids=eos_ids(self.model, tok),
            pad_id=tok.pad_token_id,
            temperature=0.0 if self.params.greedy else self.params.temperature,
            top_p=self.params.top_p,
            stop_check=lambda row: stop_reached(row, stops[row.prompt], tok),
            device=self.device,
            stats=self.last_stats,
        )
        batcher.run(rows)
        return rows

    def _static(self, prompts: list[Prompt], texts: list[str], indices: list[int], n: int) -> list[Row]:
        """One ``generate`` call on ``prompts`` (rendered as ``texts``, numbered ``indices``), left-padded,
        ``n`` rows each."""
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
        mask = encoded["attention_mask"]
        stats = self.last_stats or BatchStats()
        real = int(mask.sum())
        stats.rows += new_tokens.shape[0]
        stats.steps += new_tokens.shape[1]
        stats.slots += new_tokens.shape[0] * new_tokens.shape[1]
        stats.prefill_tokens += n * real  # generate repeats each prompt n times before the prefill
        stats.prefill_padding += n * (mask.numel() - real)
        rows = []
        for r, tokens in enumerate(new_tokens.tolist()):
            p = r // n
            rows.append(Row(indices[p], encoded["input_ids"][p][mask[p] == 1].tolist(), None, tokens))
        return rows


def seeded_rows(prompts: list[Prompt], n: int, params: GenerationParams, tokenizer: Any) -> list[Row]:
    """``n`` rows per prompt to sample, each with the prompt's token ids and its own seed,
    sha256(seed, task, index) (None when greedy): a sample does not depend on the rest of its batch."""
    rows: list[Row] = []
    for index, prompt in enumerate(prompts):
        ids = prompt_token_ids(prompt, tokenizer)
        for k in range(n):
            rows.append(Row(index, ids, None if params.greedy else sample_seed(params.seed, prompt.task_id, k)))
    return rows


def group_rows(rows: list[Row], prompts: int) -> list[list[Row]]:
    """The rows of each prompt, in prompt order."""
    grouped: list[list[Row]] = [[] for _ in range(prompts)]
    for row in rows:
        grouped[row.prompt].append(row)
    return grouped


def completions_of(
    prompts: list[Prompt], grouped: list[list[Row]], ends: set[int], tokenizer: Any, max_new_tokens: int
) -> list[list[Completion]]:
    """Each prompt's rows as completions (see :func:`completion_of`)."""
    return [
        [completion_of(row.new, ends, tokenizer, prompt.stop, max_new_tokens) for row in rows]
        for prompt, rows in zip(prompts, grouped, strict=True)
    ]


def completion_of(
    tokens: list[int], ends: set[int], tokenizer: Any, stop: list[str], max_new_tokens: int
) -> Completion:
    """A sequence's generated tokens as a :class:`Completion`: its text (up to the end token) and why it ended."""
    n_tokens, how, text = generated_span(tokens, ends, tokenizer, stop)
    reason = "length" if how == "open" and n_tokens >= max_new_tokens else "stop"
    return Completion(text=text, finish_reason=reason, n_tokens=n_tokens)


def prompt_token_ids(prompt: Prompt, tokenizer: Any) -> list[int]:
    """The token ids a prompt's generation continues: a chat template writes its own special tokens; a
    completion prompt gets the model's BOS, as vLLM gives it."""
    add_special = prompt.style is PromptStyle.COMPLETION
    return list(tokenizer(render_prompt(prompt, tokenizer), add_special_tokens=add_special)["input_ids"])


def sample_sequences(
    model: Any,
    tokenizer: Any,
    prompts: list[Prompt],
    n: int,
    params: GenerationParams,
    *,
    batch_size: int = 16,
    batching: str = "continuous",
) -> list[list[Row]]:
    """``n`` sequences per prompt from an in-memory model, with their token ids, through the backend's
    fast path (continuous batching; each sample seeded by ``params.seed``, its task and its index):
    what a trainer's rollouts use, so they are sampled as evaluations sample. The model's mode is left
    as it was; the log-probabilities a loss needs come from the training model, not from here."""
    device = str(next(model.parameters()).device)
    was_training = model.training
    model.eval()
    try:
        backend = HFBackend((model, tokenizer), params, batch_size=batch_size, device=device, batching=batching)
        return backend.sample_rows(prompts, n)
    finally:
        if was_training:
            model.train()


def stop_reached(row: Row, stops: list[str], tokenizer: Any) -> bool:
    """Whether the newest token completed one of ``stops`` (looking back over the prompt's end too,
    as ``generate``'s ``stop_strings`` do): a stop string that ends in the newest token's text."""
    if not stops or not row.new:
        return False
    width = max(len(s) for s in stops) + STOP_WINDOW_TOKENS
    tail = (row.ids[-width:] + row.new)[-width:] if len(row.new) < width else row.new[-width:]
    before = tokenizer.decode(tail[:-1], skip_special_tokens=True)
    text = tokenizer.decode(tail, skip_special_tokens=True)
    return any(text.find(s, max(0, len(before) - len(s) + 1)) >= 0 for s in stops)


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
