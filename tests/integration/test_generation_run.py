"""`ra3bench run` with a real (tiny, random) transformers model: end to end, and resumed after a kill."""

from __future__ import annotations

import json
from typing import ClassVar

import pytest

pytest.importorskip("transformers")

from ra3bench.backends.hf import HFBackend
from ra3bench.cli.execute import execute
from ra3bench.cli.main import build_parser, main

RUN = ["run", "--suite", "humaneval+", "--model", "tiny-random", "--limit", "4", "-n", "2"]
FAST = ["--max-new-tokens", "12", "--temperature", "0.8", "--sandbox", "local", "--workers", "2"]


@pytest.fixture
def offline_data(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("RA3BENCH_OFFLINE", "1")
    monkeypatch.setenv("RA3BENCH_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "generation-cache"))


@pytest.fixture(scope="module")
def tiny():
    from ra3bench.tiny import tiny_model

    return tiny_model(seed=0)


def read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_run_generates_judges_and_records_the_generation(offline_data, tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*RUN, *FAST, "--out", str(out)]) == 0
    samples, verdicts = read(out / "samples.jsonl"), read(out / "verdicts.jsonl")
    assert len(samples) == len(verdicts) == 8
    for sample in samples:
        assert {"raw_completion", "prompt_style", "finish_reason", "n_tokens", "extraction"} <= sample.keys()
        assert sample["prompt_style"] == "chat"
    # random weights write noise: nothing passes, and nothing is a sandbox fault
    assert {v["status"] for v in verdicts} <= {"syntax", "error", "fail", "timeout"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model"]["backend"] == "hf"
    assert manifest["model"]["generation"] == {
        "temperature": 0.8,
        "top_p": 1.0,
        "max_new_tokens": 12,
        "seed": 0,
        "stop": [],
    }
    assert "pass@1" in capsys.readouterr().out


class Dies(Exception):
    pass


class Flaky(HFBackend):
    """Generates one chunk, then dies like a killed process would."""

    calls: ClassVar[list[list[str]]] = []
    die_after: ClassVar[int | None] = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.chunk_size = 2

    def generate(self, prompts, n):
        if self.die_after is not None and len(self.calls) >= self.die_after:
            raise Dies("killed")
        self.calls.append([p.task_id for p in prompts])
        return super().generate(prompts, n)


def test_a_killed_run_resumes_without_generating_again(offline_data, tiny, tmp_path):
    out = tmp_path / "run"
    args = build_parser().parse_args([*RUN, *FAST, "--out", str(out)])
    params = HFBackend(tiny, _params(args)).params

    Flaky.calls, Flaky.die_after = [], 1
    with pytest.raises(Dies):
        execute(args, lambda: Flaky(tiny, params), args.n)
    first = read(out / "samples.jsonl")
    assert [(s["task_id"], s["sample_index"]) for s in first] == [
        (t, i) for t in Flaky.calls[0] for i in range(2)
    ]  # what was generated before the kill is on disk
    assert len(read(out / "verdicts.jsonl")) == 4  # and judged

    Flaky.calls, Flaky.die_after = [], None
    assert execute(args, lambda: Flaky(tiny, params), args.n) == 0
    done_before = {s["task_id"] for s in first}
    assert all(not (set(call) & done_before) for call in Flaky.calls)  # nothing generated twice
    assert sum(len(call) for call in Flaky.calls) == 2
    samples = read(out / "samples.jsonl")
    assert len(samples) == len(read(out / "verdicts.jsonl")) == 8
    assert samples[:4] == first  # kept as they were
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_samples"] == 8 and summary["n_problems"] == 4


def _params(args):
    from ra3bench.cli.common import spec_from_args

    return spec_from_args(args, args.n).generation()
