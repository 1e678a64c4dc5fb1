"""The backend contract: something that turns problems into samples.

Generation backends (hf, vllm, openai) and file-based ones (reference, replay) look the
same to the pipeline: an iterator of :class:`ra3bench.records.Sample`.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

from ra3bench.errors import UsageError
from ra3bench.prompts import Prompt, PromptStyle, build_prompt, cut_at_stop
from ra3bench.records import Sample
from ra3bench.suites.base import Problem, Suite


class Backend(abc.ABC):
    name: str = "?"
    #: the samples come from a file (replay): a run covers the tasks the file covers, with as
    #: many samples as it holds, instead of ``n`` per selected problem
    from_file: bool = False

    @abc.abstractmethod
    def samples(
        self, suite: Suite, problems: list[Problem], n: int, skip: frozenset[tuple[str, int]] = frozenset()
    ) -> Iterator[Sample]:
        """Yield up to ``n`` samples per problem (a file may hold fewer or more). ``skip``: the
        (task_id, sample_index) pairs a resumed run already has; a generator need not make them."""

    def check(self, suite: Suite, problems: list[Problem]) -> None:
        """Refuse (UsageError) what cannot run, before the run folder is made; default: nothing."""
        return None

    def describe(self) -> dict:
        """What the manifest records: model, generation parameters, file hashes."""
        return {"backend": self.name}

    def run_name(self) -> str:
        """A short name for the default run folder."""
        return str(self.describe().get("model", self.name))


BATCHING = ("continuous", "static")  # the hf backend's ways to batch (hf.py, hf_batching.py)


@dataclass
class GenerationParams:
    """Sampling settings, recorded in the manifest. ``temperature == 0`` is greedy decoding."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 512
    seed: int = 0
    stop: list[str] = field(default_factory=list)  # extra stop sequences, on top of the prompt's own

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0

    def check(self) -> None:
        if self.temperature < 0 or not 0 < self.top_p <= 1 or self.max_new_tokens < 1:
            raise UsageError("need --temperature >= 0, 0 < --top-p <= 1 and --max-new-tokens >= 1")

    def describe(self) -> dict:
        return asdict(self)


@dataclass(kw_only=True)
class BackendSpec:
    """Which model and engine write the programs: what ``BACKENDS`` factories are built from.

    ``ra3bench run``'s generation flags fill one; a library user writes one, or passes a model
    name (or a Backend, or an in-memory model) to :meth:`ra3bench.Session.evaluate`.
    """

    model: str
    backend: str = "auto"  # auto | hf | vllm | openai | reference | a plugin's
    params: GenerationParams = field(default_factory=GenerationParams)
    prompt_style: str = "auto"  # auto | chat | completion
    batch_size: int = 16  # hf: sequences decoded at once
    batching: str = "continuous"  # hf: continuous | static (hf_batching.py)
    device: str = "cpu"  # hf
    dtype: str = "auto"  # hf, vllm
    base_url: str | None = None  # openai
    api_key: str | None = None  # openai (default: $OPENAI_API_KEY)
    concurrency: int = 8  # openai: requests in flight
    max_retries: int = 5  # openai
    request_timeout: float = 600.0  # openai, s
    tensor_parallel_size: int = 1  # vllm
    data_parallel_size: int = 1  # vllm
    max_model_len: int | None = None  # vllm
    gpu_memory_utilization: float | None = None  # vllm
    enforce_eager: bool = False  # vllm

    def backend_name(self) -> str:
        """``auto``: reference for the model ``reference``, openai when a server URL is given, else hf."""
        if self.backend != "auto":
            return self.backend
        if self.model == "reference":
            return "reference"
        return "openai" if self.base_url else "hf"

    def check(self) -> None:
        if self.batch_size < 1 or self.concurrency < 1:
            raise UsageError("--batch-size and --concurrency must be at least 1")
        if self.backend_name() == "reference" and self.model != "reference":
            raise UsageError("--backend reference takes --model reference")
        self.params.check()


@dataclass
class Completion:
    """One generated continuation, before code extraction."""

    text: str  # the model's text (the prompt and the response prefix not included)
    finish_reason: str = ""  # "stop" (EOS or a stop sequence) | "length" (max_new_tokens) | ""
    n_tokens: int = 0  # generated tokens, when the backend knows


class GenerationBackend(Backend):
    """A model that writes programs. Subclasses implement :meth:`generate`; this class builds
    the prompts, extracts the code, keeps the raw text next to the program, and skips the
    samples a resumed run already has.

    Greedy decoding with ``n > 1`` generates once per problem and repeats the sample: the
    outputs would be identical, so the compute would be wasted.
    """

    #: how many prompts go to :meth:`generate` at once (samples stream out between chunks)
    chunk_size: int = 16

    def __init__(self, params: GenerationParams, prompt_style: PromptStyle | None = None) -> None:
        params.check()
        self.params = params
        self.requested_style = prompt_style

    @abc.abstractmethod
    def generate(self, prompts: list[Prompt], n: int) -> list[list[Completion]]:
        """``n`` completions for each prompt (same order). Stop sequences may be applied by the
        engine or not: the caller cuts at them again."""

    def prompt_style(self) -> PromptStyle:
        """The style to use: the one asked for, else the model's (chat if it has a chat template)."""
        return self.requested_style or PromptStyle.COMPLETION

    def model_name(self) -> str:
        return self.name

    def describe(self) -> dict:
        return {
            "backend": self.name,
            "model": self.model_name(),
            "prompt_style": self.prompt_style().value,
            "generation": self.params.describe(),
        }

    def samples(
        self, suite: Suite, problems: list[Problem], n: int, skip: frozenset[tuple[str, int]] = frozenset()
    ) -> Iterator[Sample]:
        from ra3bench.extract import extract_program

        style = self.prompt_style()
        per_prompt = 1 if self.params.greedy else n
        todo = [p for p in problems if any((p.task_id, i) not in skip for i in range(n))]
        for start in range(0, len(todo), self.chunk_size):
            chunk = todo[start : start + self.chunk_size]
            prompts = [build_prompt(p, suite.name, style) for p in chunk]
            for prompt in prompts:
                prompt.stop = [*prompt.stop, *self.params.stop]
            outputs = self.generate(prompts, per_prompt)
            for problem, prompt, completions in zip(chunk, prompts, outputs, strict=True):
                for index in range(n):
                    if (problem.task_id, index) in skip:
                        continue
                    completion = completions[index % len(completions)]
                    text, stopped = cut_at_stop(completion.text, prompt.stop)
                    extraction = extract_program(prompt.response_prefix + text, problem, style.value)
                    raw = {
                        "raw_completion": completion.text,
                        "response_prefix": prompt.response_prefix,
                        "prompt_style": style.value,
                        "finish_reason": "stop" if stopped else completion.finish_reason,
                        "n_tokens": completion.n_tokens,
                        "extraction": extraction.method,
                    }
                    yield Sample(problem.task_id, index, extraction.program, raw)
