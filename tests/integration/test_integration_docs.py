"""Every snippet of docs/integrations.md runs as written (with the tiny model standing in for yours)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "integrations.md"
SNIPPET = re.compile(r"<!-- snippet: (?P<name>[\w-]+) -->\n```python\n(?P<code>.*?)\n```\n", re.S)
EXPECTED = {"notebook", "trl", "hf", "verl"}


def snippets() -> dict[str, str]:
    return {m["name"]: m["code"] for m in SNIPPET.finditer(DOC.read_text())}


def test_the_page_has_every_snippet_and_each_is_short():
    found = snippets()
    assert set(found) == EXPECTED
    for name, code in found.items():
        assert len(code.splitlines()) <= 15, f"{name}: {len(code.splitlines())} lines"


@pytest.fixture
def namespace(tmp_path, monkeypatch):
    """What a snippet may assume: ``model``, ``tokenizer`` (yours; here the tiny random model) and a
    ``train_dataset`` of tokenized code; the working directory is a fresh folder."""
    from ra3bench.tiny import tiny_model

    monkeypatch.chdir(tmp_path)
    model, tokenizer = tiny_model(seed=0)
    texts = ["def add(a, b):\n    return a + b\n", "def neg(x):\n    return -x\n"] * 4
    rows = [tokenizer(text, padding="max_length", max_length=24, truncation=True) for text in texts]
    train_dataset = [dict(row) | {"labels": list(row["input_ids"])} for row in rows]  # one length: any batch size
    return {"model": model, "tokenizer": tokenizer, "train_dataset": train_dataset}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_snippet_runs(name, namespace, capsys, tmp_path):
    code = snippets()[name]
    exec(compile(code, f"docs/integrations.md:{name}", "exec"), namespace)
    out = capsys.readouterr().out
    if name == "notebook":
        assert "[('fail', 0.0), ('error', 0.0)]" in out and "| plus" in out
        assert (tmp_path / "results" / "notebook" / "summary.json").is_file()
    if name == "trl":
        assert sum(namespace["reward"].counts.values()) > 0
    if name == "verl":
        assert "'score': 1.0" in out and (tmp_path / "data" / "livecodebench.parquet").is_file()
