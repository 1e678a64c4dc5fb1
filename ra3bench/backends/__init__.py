"""Backends by name. Each entry is a factory ``(spec: BackendSpec) -> Backend`` that imports its
engine only when called, so `ra3bench` starts without torch, vLLM or httpx. Plugins add
factories through the ``ra3bench.backends`` entry-point group."""

from __future__ import annotations

from collections.abc import Callable

from ra3bench.backends.base import Backend, BackendSpec, GenerationParams
from ra3bench.prompts import PromptStyle
from ra3bench.registry import Registry

BackendFactory = Callable[[BackendSpec], Backend]
BACKENDS: Registry[BackendFactory] = Registry("backend", group="ra3bench.backends")


def build_backend(spec: BackendSpec) -> Backend:
    """The backend ``spec`` names (its engine loaded), after its settings are checked."""
    spec.check()
    return BACKENDS.get(spec.backend_name())(spec)


@BACKENDS.register("reference")
def _reference(spec: BackendSpec) -> Backend:
    from ra3bench.backends.reference import ReferenceBackend

    return ReferenceBackend()


@BACKENDS.register("hf")
def _hf(spec: BackendSpec) -> Backend:
    from ra3bench.backends.hf import HFBackend

    return HFBackend(
        spec.model,
        spec.params,
        PromptStyle.parse(spec.prompt_style),
        batch_size=spec.batch_size,
        batching=spec.batching,
        device=spec.device,
        dtype=spec.dtype,
    )


@BACKENDS.register("vllm")
def _vllm(spec: BackendSpec) -> Backend:
    from ra3bench.backends.vllm import VLLMBackend

    return VLLMBackend.from_spec(spec)


@BACKENDS.register("openai")
def _openai(spec: BackendSpec) -> Backend:
    from ra3bench.backends.openai import OpenAIBackend

    return OpenAIBackend.from_spec(spec)


__all__ = ["BACKENDS", "Backend", "BackendSpec", "GenerationParams", "build_backend"]
