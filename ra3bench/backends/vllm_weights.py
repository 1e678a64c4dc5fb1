"""A training model's weights as vLLM takes them: Hugging Face names, a LoRA adapter merged, tied weights named twice.

The colocated engine (``vllm_colocated.py``) starts from a folder written here and is given these
weights before each use: in memory when vLLM runs in the trainer's process, else as a safetensors
file (each shared tensor stored once, its other names in the file's metadata; ``vllm_engine.py``
reads them back under every name).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ra3bench.backends.vllm_engine import ALIASES_KEY


def hf_weights(model: Any) -> dict[str, Any]:
    """Every weight of ``model`` under its Hugging Face checkpoint name, a LoRA adapter merged in.

    The merged weights are computed beside the model (``W + delta``), not by merging into it and
    back out, which would leave rounding in the base weights. Tied weights appear under both names
    (vLLM replaces each parameter it is given; an ``lm_head`` left out keeps its old values)."""
    if not hasattr(model, "peft_config"):
        return dict(model.state_dict())  # detached tensors, tied ones under each name
    from peft.tuners.lora import LoraLayer

    base = model.get_base_model()
    deltas: dict[str, Any] = {}
    for name, module in base.named_modules():
        if isinstance(module, LoraLayer) and not getattr(module, "merged", False):
            active = [a for a in module.active_adapters if a in module.lora_A]
            if active:
                deltas[name + ".weight"] = sum(module.get_delta_weight(a) for a in active)
    weights: dict[str, Any] = {}
    for name, tensor in base.state_dict().items():
        if "lora_" in name or ".original_module." in name:
            continue
        clean = name.replace(".base_layer.", ".").replace(".modules_to_save.default.", ".")
        weights[clean] = tensor.detach() + deltas[clean] if clean in deltas else tensor.detach()
    return weights


def split_aliases(weights: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The weights with each shared tensor once (safetensors refuses shared memory), and the names dropped
    mapped to the name kept."""
    kept: dict[str, Any] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple[int, int, tuple], str] = {}
    for name, tensor in weights.items():
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
        if key in seen:
            aliases[name] = seen[key]
        else:
            seen[key] = name
            kept[name] = tensor.contiguous()
    return kept, aliases


def write_weights(weights: dict[str, Any], path: Path) -> None:
    from safetensors.torch import save_file

    kept, aliases = split_aliases(weights)
    save_file(kept, str(path), metadata={ALIASES_KEY: json.dumps(aliases)})


def write_start_folder(model: Any, tokenizer: Any, folder: Path) -> None:
    """A model folder vLLM can load: the in-memory model's config, tokenizer and (merged) weights."""
    base = model.get_base_model() if hasattr(model, "peft_config") else model
    base.config.save_pretrained(folder)
    generation_config = getattr(base, "generation_config", None)
    if generation_config is not None:
        generation_config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    write_weights(hf_weights(model), folder / "model.safetensors")


def model_dtype(model: Any) -> str:
    return str(next(model.parameters()).dtype).removeprefix("torch.")
