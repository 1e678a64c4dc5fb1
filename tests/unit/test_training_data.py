"""Training data sources: MBPP's training split, jsonl traces, Python folders; tokenizing with label masks."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import warnings
from pathlib import Path
from typing import Any

import pytest

from ra3bench.errors import UsageError
from ra3bench.suites.data import read_jsonl
from ra3bench.suites.mbpp import MbppPlusSuite, MbppSuite
from ra3bench.training.base import DataConfig, TrainingExample
from ra3bench.training.data import (
    IGNORE_INDEX,
    data_record,
    examples_sha256,
    load_examples,
    tokenize_example,
    training_task_ids,
)

# MBPP+ v0.2.0 task ids inside MBPP's training split (601..974): an eval after mbpp-train must drop them.
MBPP_PLUS_IN_TRAIN_SPLIT = 108


@pytest.fixture(scope="module")
def mbpp_train(offline_data: None) -> list[TrainingExample]:
    return load_examples(DataConfig(source="mbpp-train"))


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from ra3bench.tiny import tiny_tokenizer

    return tiny_tokenizer()


def _write_jsonl(path: Path, lines: list[str]) -> Path:
    text = "\n".join(lines) + "\n"
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


# --- mbpp-train ------------------------------------------------------------------------------


def test_mbpp_train_split(mbpp_train: list[TrainingExample]) -> None:
    assert len(mbpp_train) == 374
    assert [e.source_id for e in mbpp_train] == [f"Mbpp/{i}" for i in range(601, 975)]
    first = mbpp_train[0]
    assert first.prompt == (
        '"""\nWrite a function to find the longest chain which can be formed from the given set of pairs.\n'
        "assert max_chain_length([Pair(5, 24), Pair(15, 25),Pair(27, 40), Pair(50, 60)], 4) == 3\n"
        '"""\n'
    )
    assert first.code.startswith("class Pair(object): \n\tdef __init__(self, a, b): \n")
    for e in mbpp_train:
        assert "\r" not in e.code and e.code.endswith("\n") and not e.code.endswith("\n\n")
        assert e.prompt.startswith('"""\n') and e.prompt.endswith('\n"""\n')
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile(e.code, e.source_id, "exec")


def test_mbpp_train_prompt_is_the_suites_completion_prompt(mbpp_train: list[TrainingExample]) -> None:
    """The same prompt form as the mbpp suite's (checked on a test-split row parsed both ways)."""
    suite = MbppSuite()
    row = next(r for r in read_jsonl(suite.path()) if r["task_id"] == 11)
    expected = suite.problem_map()["Mbpp/11"].prompt
    assert expected == '"""\n' + row["text"] + "\n" + row["test_list"][0] + '\n"""\n'
    row_601 = next(r for r in read_jsonl(suite.path()) if r["task_id"] == 601)
    assert mbpp_train[0].prompt == '"""\n' + row_601["text"] + "\n" + row_601["test_list"][0] + '\n"""\n'
    assert mbpp_train[0].code == row_601["code"].replace("\r\n", "\n").rstrip() + "\n"


def test_mbpp_plus_overlap_with_the_training_split(mbpp_train: list[TrainingExample]) -> None:
    plus_ids = {row["task_id"] for row in read_jsonl(MbppPlusSuite().path())}
    assert len(plus_ids) == 378 and all(re.fullmatch(r"Mbpp/\d+", t) for t in plus_ids)
    overlap = training_task_ids(mbpp_train) & plus_ids
    assert len(overlap) == MBPP_PLUS_IN_TRAIN_SPLIT
    assert all(601 <= int(t.split("/")[1]) <= 974 for t in overlap)
    assert {"Mbpp/602", "Mbpp/603"} <= overlap and "Mbpp/601" not in overlap


def test_mbpp_train_record(mbpp_train: list[TrainingExample]) -> None:
    record = data_record(DataConfig(source="mbpp-train"), mbpp_train)
    assert record["source"] == "mbpp-train" and record["n"] == 374
    assert record["data_file"] == "mbpp.jsonl.gz" and Path(record["path"]).is_file()
    assert record["source_sha256"] == MbppSuite().data_sha256
    assert record["examples_sha256"] == examples_sha256(load_examples(DataConfig(source="mbpp-train")))
    assert re.fullmatch(r"[0-9a-f]{64}", record["examples_sha256"])


def test_mbpp_train_missing_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ra3bench.errors import DataNotFoundError

    monkeypatch.setenv("RA3BENCH_OFFLINE", "1")
    monkeypatch.setenv("RA3BENCH_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(DataNotFoundError, match=r"mbpp\.jsonl\.gz"):
        load_examples(DataConfig(source="mbpp-train"), data_dir=tmp_path)


# --- max_examples ----------------------------------------------------------------------------


def test_max_examples_is_a_seeded_subset(mbpp_train: list[TrainingExample]) -> None:
    def subset(seed: int, n: int = 10) -> list[str]:
        return [e.source_id for e in load_examples(DataConfig(max_examples=n, shuffle_seed=seed))]

    a = subset(0)
    assert len(a) == 10 and len(set(a)) == 10
    assert a == subset(0)  # deterministic
    assert a != subset(1)  # the seed matters
    assert a != [e.source_id for e in mbpp_train[:10]]  # shuffled, not the head
    assert set(a) <= {e.source_id for e in mbpp_train}
    assert subset(0, 20)[:10] == a  # a larger subset with the same seed extends the smaller one
    assert len(subset(0, 1000)) == 374
    assert [e.source_id for e in load_examples(DataConfig())] == [e.source_id for e in mbpp_train]
    with pytest.raises(UsageError, match="max_examples"):
        load_examples(DataConfig(max_examples=-1))


# --- jsonl -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["traces.jsonl", "traces.jsonl.gz"])
def test_jsonl_traces(tmp_path: Path, name: str) -> None:
    rows = [
        {"prompt": "def add(a, b):\n", "code": "    return a + b\n", "id": "HumanEval/53"},
        {"prompt": "", "code": "print(1)\n"},
        {"prompt": "# p\n", "code": "x = 1\n", "id": "Mbpp/2", "extra": [1]},
    ]
    path = _write_jsonl(tmp_path / name, [json.dumps(rows[0]), "", json.dumps(rows[1]), json.dumps(rows[2])])
    config = DataConfig(source="jsonl", path=str(path))
    examples = load_examples(config)
    assert examples == [
        TrainingExample("def add(a, b):\n", "    return a + b\n", "HumanEval/53"),
        TrainingExample("", "print(1)\n", f"{name}:3"),  # blank line 2 skipped, line numbers kept
        TrainingExample("# p\n", "x = 1\n", "Mbpp/2"),
    ]
    assert training_task_ids(examples) == {"HumanEval/53", "Mbpp/2"}
    record = data_record(config, examples)
    assert record["n"] == 3 and record["path"] == str(path)
    assert record["source_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"prompt": "x"', r"traces\.jsonl:2: not valid JSON"),
        ('{"prompt": "x"}', r"traces\.jsonl:2: missing 'code'"),
        ('{"id": "a"}', r"traces\.jsonl:2: missing 'prompt' and 'code'"),
        ('["prompt", "code"]', r"traces\.jsonl:2: a JSON list, not an object"),
        ('{"prompt": "x", "code": 3}', r"traces\.jsonl:2: 'code' is a JSON int, not a string"),
        ('{"prompt": "x", "code": "  "}', r"traces\.jsonl:2: 'code' is empty"),
        ('{"prompt": "x", "code": "y", "id": ""}', r"traces\.jsonl:2: 'id' must be a non-empty string"),
    ],
)
def test_jsonl_bad_line(tmp_path: Path, line: str, message: str) -> None:
    path = _write_jsonl(tmp_path / "traces.jsonl", [json.dumps({"prompt": "a", "code": "b"}), line])
    with pytest.raises(UsageError, match=message) as info:
        load_examples(DataConfig(source="jsonl", path=str(path)))
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_jsonl_file_problems(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"needs data\.path"):
        load_examples(DataConfig(source="jsonl"))
    with pytest.raises(UsageError, match=r"missing\.jsonl: no such file"):
        load_examples(DataConfig(source="jsonl", path=str(tmp_path / "missing.jsonl")))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(UsageError, match="no traces"):
        load_examples(DataConfig(source="jsonl", path=str(empty)))
    broken = tmp_path / "broken.jsonl.gz"
    broken.write_bytes(gzip.compress(b'{"prompt": "a", "code": "b"}\n' * 50)[:30])
    with pytest.raises(UsageError, match="cannot be read"):
        load_examples(DataConfig(source="jsonl", path=str(broken)))


# --- py-folder -------------------------------------------------------------------------------


def test_py_folder(tmp_path: Path) -> None:
    root = tmp_path / "src"
    (root / "pkg" / "tests").mkdir(parents=True)
    (root / ".venv").mkdir()
    (root / "__pycache__").mkdir()
    (root / "b.py").write_text(
        "import os\r\nfrom typing import (\r\n    Any,\r\n)\r\n\r\nX = 1\r\n\r\n"
        "@decorate\r\n@other(1)\r\ndef f(a: Any) -> int:\r\n    return 1  # done\r\n\r\n\r\n"
        "class C:\r\n    def m(self):\r\n        pass\r\n\r\nasync def g():\r\n    await h()\r\n"
        "if X:\r\n    def hidden():\r\n        pass\r\n"
    )
    (root / "a.py").write_text("def only():\n    '''\x0cform feed'''\n    return 'é'\n")
    (root / "pkg" / "mod.py").write_text("from . import a; import sys\ndef z():\n    pass\n")
    (root / "pkg" / "tests" / "test_x.py").write_text("def test_x():\n    assert 1\n")
    (root / "pkg" / "bad.py").write_text("def broken(:\n    pass\n")
    (root / "pkg" / "big.py").write_text("def big():\n    pass\n" + "#" * 200_001 + "\n")
    (root / ".venv" / "v.py").write_text("def venv():\n    pass\n")
    (root / "__pycache__" / "c.py").write_text("def cached():\n    pass\n")
    (root / "notes.txt").write_text("def txt():\n    pass\n")
    (root / "empty.py").write_text("X = 1\n")

    config = DataConfig(source="py-folder", path=str(root))
    examples = load_examples(config)
    assert [e.source_id for e in examples] == [
        "a.py:only",
        "b.py:f",
        "b.py:C",
        "b.py:g",
        "pkg/mod.py:z",
        "pkg/tests/test_x.py:test_x",  # only the standard library's test folders are skipped
    ]
    only, f, c, g, z, _ = examples
    assert only.prompt == "" and only.code == "def only():\n    '''\x0cform feed'''\n    return 'é'\n"
    imports = "import os\nfrom typing import (\n    Any,\n)\n\n\n"
    assert f.prompt == c.prompt == g.prompt == imports
    assert f.code == "@decorate\n@other(1)\ndef f(a: Any) -> int:\n    return 1  # done\n"
    assert c.code == "class C:\n    def m(self):\n        pass\n"
    assert g.code == "async def g():\n    await h()\n"
    assert z.prompt == "from . import a\nimport sys\n\n\n"
    assert training_task_ids(examples) == set()

    record = data_record(config, examples)
    assert record["n"] == 6 and record["n_files"] == 6  # a, b, empty, mod, bad (unparsable), test_x
    assert "python" not in record
    (root / "a.py").write_text("def only():\n    return 2\n")
    assert data_record(config, load_examples(config))["source_sha256"] != record["source_sha256"]


def test_py_folder_problems(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"needs data\.path"):
        load_examples(DataConfig(source="py-folder"))
    with pytest.raises(UsageError, match="no such folder"):
        load_examples(DataConfig(source="py-folder", path=str(tmp_path / "nope")))
    (tmp_path / "x.py").write_text("X = 1\n")
    with pytest.raises(UsageError, match="no top-level function or class"):
        load_examples(DataConfig(source="py-folder", path=str(tmp_path)))


def test_py_folder_stdlib() -> None:
    config = DataConfig(source="py-folder", path="stdlib")
    examples = load_examples(config)
    ids = {e.source_id for e in examples}
    assert len(ids) > 2000
    assert {"json/__init__.py:dumps", "functools.py:lru_cache", "dataclasses.py:dataclass"} <= ids
    for source_id in ids:
        parts = source_id.split(":")[0].split("/")
        assert not {"test", "tests", "idlelib", "site-packages"} & set(parts[:-1]), source_id
    dumps = next(e for e in examples if e.source_id == "json/__init__.py:dumps")
    assert "from .encoder import JSONEncoder" in dumps.prompt and dumps.code.startswith("def dumps(obj, *,")
    record = data_record(config, examples)
    assert record["n"] == len(examples) and record["python"] and record["n_files"] > 300


def test_unknown_source() -> None:
    with pytest.raises(UsageError, match=r"unknown data source 'mbpp-tarin'; known sources: mbpp-train, jsonl"):
        load_examples(DataConfig(source="mbpp-tarin"))


# --- tokenizing ------------------------------------------------------------------------------


def test_tokenize_masks_the_prompt(tokenizer: Any) -> None:
    example = TrainingExample(prompt='"""\nAdd two numbers.\n"""\n', code="def add(a, b):\n    return a + b\n")
    prompt_ids = tokenizer.encode(example.prompt, add_special_tokens=False)
    code_ids = tokenizer.encode(example.code, add_special_tokens=False)
    eos = tokenizer.eos_token_id
    out = tokenize_example(example, tokenizer, max_length=512)
    assert out["input_ids"] == [*prompt_ids, *code_ids, eos]
    assert out["labels"] == [IGNORE_INDEX] * len(prompt_ids) + [*code_ids, eos]
    assert tokenizer.decode(out["input_ids"]) == example.prompt + example.code + tokenizer.eos_token
    targets = [t for t in out["labels"] if t != IGNORE_INDEX]
    assert tokenizer.decode(targets[:-1]) == example.code and targets[-1] == eos
    assert out["input_ids"][0] != tokenizer.bos_token_id  # no special tokens, as the backends encode prompts

    empty_prompt = tokenize_example(TrainingExample("", "x = 1\n"), tokenizer, 512)
    assert empty_prompt["labels"] == empty_prompt["input_ids"]


def test_tokenize_truncates(tokenizer: Any) -> None:
    example = TrainingExample(prompt="# context\n", code="def f(x):\n    return x * 2 + 1\n" * 5)
    full = tokenize_example(example, tokenizer, max_length=10_000)
    n_prompt = full["labels"].count(IGNORE_INDEX)
    window = 2 * n_prompt + 7  # the prompt fits in half the window: a plain cut at the right
    assert window < len(full["input_ids"])
    cut = tokenize_example(example, tokenizer, max_length=window)
    assert cut["input_ids"] == full["input_ids"][:window]
    assert cut["labels"] == full["labels"][:window]
    assert tokenizer.eos_token_id not in cut["input_ids"]  # a cut sequence does not end

    exact = tokenize_example(example, tokenizer, max_length=len(full["input_ids"]))
    assert exact == full

    # A prompt that would fill the window loses its first tokens: down to what leaves room for the
    # code, but never below max_length // 2, so targets remain.
    def parts(out: dict[str, list[int]]) -> tuple[list[int], list[int]]:
        n = out["labels"].count(IGNORE_INDEX)
        assert out["labels"][:n] == [IGNORE_INDEX] * n and out["labels"][n:] == out["input_ids"][n:]
        return out["input_ids"][:n], out["input_ids"][n:]

    long_prompt = TrainingExample(prompt="# a comment line\n" * 40, code="return x\n")
    prompt_ids, code_ids = parts(tokenize_example(long_prompt, tokenizer, max_length=10_000))
    assert 2 < len(code_ids) < 8 < 24 < len(prompt_ids)
    short_code = tokenize_example(long_prompt, tokenizer, max_length=32)
    assert parts(short_code) == (prompt_ids[-(32 - len(code_ids)) :], code_ids)  # all the code, EOS included
    long_code = TrainingExample(prompt=long_prompt.prompt, code="return x\n" * 20)
    long_prompt_ids, long_code_ids = parts(tokenize_example(long_code, tokenizer, max_length=10_000))
    assert len(long_code_ids) > 16
    assert parts(tokenize_example(long_code, tokenizer, max_length=16)) == (long_prompt_ids[-8:], long_code_ids[:8])

    with pytest.raises(UsageError, match="max_length"):
        tokenize_example(example, tokenizer, max_length=1)


def test_tokenize_mbpp_train(mbpp_train: list[TrainingExample], tokenizer: Any) -> None:
    for example in mbpp_train[:50]:
        out = tokenize_example(example, tokenizer, max_length=256)
        assert len(out["input_ids"]) == len(out["labels"]) <= 256
        n_prompt = out["labels"].count(IGNORE_INDEX)
        assert 0 < n_prompt < len(out["labels"])
        assert out["labels"][n_prompt:] == out["input_ids"][n_prompt:]
