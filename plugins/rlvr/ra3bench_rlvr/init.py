"""``trainer.init``: start RLVR from a checkpoint another trainer wrote (base, NTP, RA3...).

A checkpoint folder (``<run>/checkpoints/step-N/``) holds either a whole model (``config.json``
and ``*.safetensors``) or a LoRA adapter (``adapter_config.json`` and ``adapter_model.safetensors``).

* A whole model can also be given directly as ``model.name=<folder>`` (it is a Hugging Face model
  folder, tokenizer included); ``trainer.init`` loads its weights over ``model.name``'s instead,
  which must be the same architecture.
* A LoRA adapter is merged into ``model.name``'s weights, which must be the base it was trained on
  (the adapter's ``base_model_name_or_path`` is recorded, not trusted: a preset's folder may have
  moved). RL with LoRA on top of a LoRA init is refused: merge the adapter into a full model first.

The manifest records the folder, its kind, a digest of its weight files and, when the folder sits
in a training run, that run's trainer and step, so curves from several inits can be told apart.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ra3bench import UsageError


def load_init(model: Any, folder: str) -> dict[str, Any]:
    """Load the checkpoint at ``folder`` into ``model`` in place; what the manifest records."""
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise UsageError(f"trainer.init {folder}: no such checkpoint folder")
    record: dict[str, Any] = {"path": str(path.resolve())}
    if (path / "adapter_config.json").exists():
        _merge_lora(model, path)
        adapter = json.loads((path / "adapter_config.json").read_text())
        record.update(kind="lora", base_model=adapter.get("base_model_name_or_path"), r=adapter.get("r"))
        files = [path / "adapter_model.safetensors"]
    else:
        files = sorted(path.glob("*.safetensors"))
        if not files:
            raise UsageError(f"trainer.init {folder}: no *.safetensors weights and no LoRA adapter in it")
        _load_full(model, files, folder)
        record["kind"] = "full"
    record["weights_sha256"] = _digest(files)
    run = path.parent.parent
    if path.parent.name == "checkpoints" and (run / "manifest.json").exists():
        manifest = json.loads((run / "manifest.json").read_text())
        record.update(run=str(run.resolve()), trainer=manifest.get("trainer"), checkpoint=path.name)
    return record


def _load_full(model: Any, files: list[Path], folder: str) -> None:
    import torch
    from safetensors.torch import load_file

    target = model.get_base_model() if hasattr(model, "peft_config") else model
    state: dict = {}
    for file in files:
        state.update(load_file(str(file)))
    with torch.no_grad():
        missing, unexpected = target.load_state_dict(state, strict=False)
    missing = [m for m in missing if "lm_head" not in m]  # tied embeddings are saved once
    if missing or unexpected:
        raise UsageError(
            f"trainer.init {folder} does not match model.name's architecture "
            f"(missing {missing[:3]}, extra {unexpected[:3]}); use model.name={folder} instead"
        )


def _merge_lora(model: Any, path: Path) -> None:
    from peft import PeftModel

    if hasattr(model, "peft_config"):
        raise UsageError(
            f"trainer.init {path} is a LoRA adapter and model.lora is set: RL with LoRA over a LoRA init "
            "is not supported; merge the adapter into a full model first, or drop model.lora"
        )
    merged = PeftModel.from_pretrained(model, str(path)).merge_and_unload()
    if merged is not model:  # merge_and_unload gives back the base object; copy if it ever does not
        model.load_state_dict(merged.state_dict())


def _digest(files: list[Path]) -> str:
    h = hashlib.sha256()
    for file in files:
        with file.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()
