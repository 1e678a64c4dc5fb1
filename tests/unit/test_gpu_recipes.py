"""The GPU recipes (examples/train/gpu/) pass `ra3bench train --check` as their README launches them.

The check asks that vLLM be importable for ``generation.engine: vllm``; vLLM's GPU build cannot be
installed on the CPU machines the tests run on, so the check is given a stand-in ``vllm`` module on
PYTHONPATH. Nothing else is overridden: the model stays the Hub id, which the check accepts unread.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

GPU = Path(__file__).resolve().parents[2] / "examples" / "train" / "gpu"
RECIPES = {
    "ntp": GPU / "ntp_qwen2.5-coder-1.5b.yaml",
    "ra3": GPU / "ra3_qwen2.5-coder-1.5b.yaml",
    "rlvr": GPU / "rlvr_by_init_qwen2.5-coder-1.5b.yaml",
}
MODEL_RELEASE = dt.date(2024, 9, 18)  # Qwen2.5-Coder report, arXiv:2409.12186 v1: the cutoff's bound


def check(*args: str, stand_in: Path | None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if stand_in is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(stand_in), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "ra3bench.cli.main", "train", *args, "--check"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.fixture(scope="module")
def vllm_stand_in(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("stand-in")
    (root / "vllm").mkdir()
    (root / "vllm" / "__init__.py").write_text('"""Stand-in: the check only asks that vllm can be imported."""\n')
    return root


@pytest.mark.parametrize("trainer", sorted(RECIPES))
def test_each_recipe_checks_out_with_three_seeds(trainer, vllm_stand_in):
    result = check("--trainer", trainer, "--config", str(RECIPES[trainer]), "--seeds", "0,1,2", stand_in=vllm_stand_in)
    assert result.returncode == 0, result.stderr
    assert "3 configs check out: seed-0, seed-1, seed-2" in result.stdout


def test_rlvr_by_init_checks_out_as_the_readme_launches_it(vllm_stand_in, tmp_path):
    inits = ",".join(f"{m}:results/gpu/{m}-qwen2.5-coder-1.5b/seed-0/checkpoints/step-000072" for m in ("ntp", "ra3"))
    result = check(
        "--trainer", "rlvr", "--config", str(RECIPES["rlvr"]), f"run.out={tmp_path}/seed-0", "run.seed=0",
        "--each", f"trainer.init=base:,{inits}", stand_in=vllm_stand_in,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "3 configs check out: base, ntp, ra3" in result.stdout


def test_without_vllm_the_check_says_so_in_one_line():
    """The stand-in is what the check needed, nothing more: without it, the one thing it refuses is vLLM."""
    if subprocess.run([sys.executable, "-c", "import vllm"], capture_output=True).returncode == 0:
        pytest.skip("vLLM is installed here")
    result = check("--trainer", "ntp", "--config", str(RECIPES["ntp"]), stand_in=None)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "generation.engine vllm: vLLM is not installed here" in lines[0]


@pytest.mark.parametrize("trainer", sorted(RECIPES))
def test_recipes_are_sized_for_one_gpu_and_evaluate_after_the_cutoff(trainer):
    config = yaml.safe_load(RECIPES[trainer].read_text())
    assert config["model"] == {"name": "Qwen/Qwen2.5-Coder-1.5B", "device": "cuda", "dtype": "bfloat16"}
    assert config["generation"]["engine"] == "vllm" and config["generation"]["vllm"]["python"] == ""
    ev = config["eval"]
    assert ev["suites"] == ["humaneval+", "mbpp+", "livecodebench"] and ev["limit"] == 0
    assert ev["n"] == 10 and ev["k"] == [1, 10]
    start = dt.date.fromisoformat(ev["select"]["livecodebench"]["start_date"])
    assert start > MODEL_RELEASE
    if trainer == "rlvr":
        assert dt.date.fromisoformat(config["trainer"]["lcb_end_date"]) < start
    assert f"--config examples/train/gpu/{RECIPES[trainer].name}" in (GPU / "README.md").read_text()
