"""Backends by name. Each entry is a factory ``(args: argparse.Namespace) -> Backend`` that
imports its engine only when called, so `ra3bench` starts without torch, vLLM or httpx.
Plugins add factories through the ``ra3bench.backends`` entry-point group."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from ra3bench.backends.base import Backend, GenerationParams
from ra3bench.prompts import PromptStyle
from ra3bench.registry import Registry

BackendFactory = Callable[[argparse.Namespace], Backend]
BACKENDS: Registry[BackendFactory] = Registry("backend")


def generation_params(args: argparse.Namespace) -> GenerationParams:
    return GenerationParams(
        temperature=args.temperature,
        top_p=args.top_p,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
        stop=list(args.stop or []),
    )


@BACKENDS.register("reference")
def _reference(args: argparse.Namespace) -> Backend:
    from ra3bench.backends.reference import ReferenceBackend

    return ReferenceBackend()


@BACKENDS.register("hf")
def _hf(args: argparse.Namespace) -> Backend:
    from ra3bench.backends.hf import HFBackend

    return HFBackend(
        args.model,
        generation_params(args),
        PromptStyle.parse(args.prompt_style),
        batch_size=args.batch_size,
        device=args.device,
        dtype=args.dtype,
    )


@BACKENDS.register("vllm")
def _vllm(args: argparse.Namespace) -> Backend:
    from ra3bench.backends.vllm import VLLMBackend

    return VLLMBackend.from_args(args)


@BACKENDS.register("openai")
def _openai(args: argparse.Namespace) -> Backend:
    from ra3bench.backends.openai import OpenAIBackend

    return OpenAIBackend.from_args(args)


def pick_backend(args: argparse.Namespace) -> str:
    """``--backend auto``: reference for `--model reference`, openai when a server URL is given, else hf."""
    if args.backend != "auto":
        return args.backend
    if args.model == "reference":
        return "reference"
    return "openai" if args.base_url else "hf"


__all__ = ["BACKENDS", "Backend", "GenerationParams", "generation_params", "pick_backend"]
