"""Training data sources: what ``data.source`` names, read into :class:`TrainingExample` lists.

Sources (``DataConfig.source``):

* ``mbpp-train``: the MBPP training split (task ids 601..974, google-research/mbpp's README:
  1-10 few-shot, 11-510 test, 511-600 validation, 601-974 train), 374 tasks read from the same
  pinned, sha256-verified ``mbpp.jsonl.gz`` as the ``mbpp`` suite (``--data-dir`` /
  ``$RA3BENCH_DATA_DIR`` / the cache). The prompt is the ``mbpp`` suite's completion prompt (a
  docstring holding the task text and its first test), the code its reference solution (line
  endings normalised). ``source_id`` is ``Mbpp/<id>``, the form MBPP+ uses: **MBPP+ v0.2.0 has
  108 tasks inside 601..974**, so an evaluation on MBPP+ after training on this split must leave
  them out (``eval.exclude_training_tasks``, via :func:`training_task_ids`).
* ``jsonl``: expert traces, one JSON object per line with ``prompt`` and ``code`` (strings) and an
  optional ``id`` (the suite task id it solves, e.g. ``HumanEval/3``; default ``<file>:<line>``);
  gzip accepted; read within the caps of :mod:`ra3bench.input_files` (a gzip bomb is refused).
* ``py-folder``: every ``.py`` file under ``path`` (sorted, recursive; ``path: stdlib`` is this
  Python's standard library, without ``test/``, ``tests/`` and ``idlelib/``). Hidden folders,
  ``__pycache__`` and ``site-packages`` are never entered; files over 200 KB or that do not parse
  are skipped. Each top-level function or class (with its decorators) is one example: prompt = the
  module's top-level import lines, code = the definition's source; ``source_id`` is
  ``relative/path.py:Name``.

``max_examples > 0`` takes a deterministic subset: the examples shuffled with ``shuffle_seed``,
then the first N. Otherwise the order is the source's (file order, task id order).
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import random
import sys
import sysconfig
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ra3bench.errors import UsageError
from ra3bench.suites.mbpp import MBPP_TRAIN_IDS  # 601-974: google-research/mbpp README
from ra3bench.training.base import DataConfig, TrainingExample

SOURCES = ("mbpp-train", "jsonl", "py-folder")
MBPP_TRAIN_COUNT = 374
MAX_PY_FILE_BYTES = 200_000
STDLIB = "stdlib"
STDLIB_SKIP_DIRS = frozenset({"test", "tests", "idlelib"})
ALWAYS_SKIP_DIRS = frozenset({"site-packages", "__pycache__"})
IGNORE_INDEX = -100  # the label of a token that carries no loss (torch's CrossEntropyLoss default)


def load_examples(config: DataConfig, data_dir: Path | None = None) -> list[TrainingExample]:
    """The training examples ``config`` names, in a deterministic order (a seeded subset if asked)."""
    if config.source == "mbpp-train":
        examples = _mbpp_train(data_dir)
    elif config.source == "jsonl":
        examples = _jsonl(_required_path(config, "the JSON-lines file of traces"))
    elif config.source == "py-folder":
        examples = _py_folder(_folder(config))
    else:
        raise UsageError(f"unknown data source {config.source!r}; known sources: {', '.join(SOURCES)}")
    if config.max_examples < 0:
        raise UsageError(f"data.max_examples is {config.max_examples}; use 0 (all) or a positive number")
    if config.max_examples > 0:
        examples = list(examples)
        random.Random(config.shuffle_seed).shuffle(examples)
        examples = examples[: config.max_examples]
    return examples


def data_record(config: DataConfig, examples: list[TrainingExample], data_dir: Path | None = None) -> dict[str, Any]:
    """What the run manifest records of the training data: source, file(s) and their sha256, examples' sha256."""
    record: dict[str, Any] = {
        "source": config.source,
        "path": config.path,
        "max_examples": config.max_examples,
        "shuffle_seed": config.shuffle_seed,
        "n": len(examples),
        "examples_sha256": examples_sha256(examples),
    }
    if config.source == "mbpp-train":
        path = _mbpp_path(data_dir)
        record.update(path=str(path), data_file=path.name, source_sha256=_sha256_file(path))
    elif config.source == "jsonl":
        path = _required_path(config, "the JSON-lines file of traces")
        record.update(path=str(path), source_sha256=_sha256_file(path))
    elif config.source == "py-folder":
        root = _folder(config)
        files = list(_py_files(root, stdlib=root == _stdlib_root()))
        record.update(path=str(root), n_files=len(files), source_sha256=_files_sha256(root, files))
        if root == _stdlib_root():
            record["python"] = sys.version.split()[0]
    return record


def examples_sha256(examples: Iterable[TrainingExample]) -> str:
    """One digest of the examples' prompts and code, in order (unambiguous: each pair is a JSON line)."""
    h = hashlib.sha256()
    for example in examples:
        h.update(json.dumps([example.prompt, example.code], ensure_ascii=False).encode("utf-8") + b"\n")
    return h.hexdigest()


def tokenize_example(example: TrainingExample, tokenizer: Any, max_length: int) -> dict[str, list[int]]:
    """``input_ids`` (prompt, code, EOS) and ``labels`` (-100 over the prompt, the ids over code and EOS).

    Text is encoded without special tokens, as the generation backends encode prompts, and the
    prompt and the code separately, so that the boundary between them is exact. A sequence longer
    than ``max_length`` is cut at the right (a cut sequence loses its EOS: the code did not end
    there). In such a sequence a prompt longer than half of ``max_length`` first loses its first
    tokens (keeping the context nearest the code), down to what leaves room for all the code but to
    no fewer than ``max_length // 2``, so that every example keeps targets.
    """
    if max_length < 2:
        raise UsageError(f"data.max_length is {max_length}; it must be at least 2 tokens")
    eos = tokenizer.eos_token_id
    if eos is None:
        raise UsageError("the tokenizer has no EOS token; training needs one to mark where the code ends")
    prompt_ids = list(tokenizer.encode(example.prompt, add_special_tokens=False)) if example.prompt else []
    code_ids = [*tokenizer.encode(example.code, add_special_tokens=False), eos]
    if len(prompt_ids) + len(code_ids) > max_length and len(prompt_ids) > max_length // 2:
        keep = max(max_length // 2, max_length - len(code_ids))
        prompt_ids = prompt_ids[len(prompt_ids) - keep :]
    input_ids = (prompt_ids + code_ids)[:max_length]
    labels = ([IGNORE_INDEX] * len(prompt_ids) + code_ids)[:max_length]
    return {"input_ids": input_ids, "labels": labels}


def training_task_ids(examples: Iterable[TrainingExample]) -> set[str]:
    """The suite task ids (``Mbpp/601``, a jsonl trace's ``id``) the examples come from.

    Location ids (``file.jsonl:12``, ``path.py:Name``, which hold a colon) name no task and are left out.
    """
    return {e.source_id for e in examples if e.source_id and ":" not in e.source_id}


# --- sources ---------------------------------------------------------------------------------


def _mbpp_path(data_dir: Path | None) -> Path:
    """The verified ``mbpp.jsonl.gz``, located exactly as the ``mbpp`` suite locates it."""
    from ra3bench.suites.mbpp import MbppSuite

    return MbppSuite(data_dir=data_dir).path()


def _mbpp_train(data_dir: Path | None) -> list[TrainingExample]:
    from ra3bench.suites.data import read_jsonl

    path = _mbpp_path(data_dir)
    rows = sorted((row for row in read_jsonl(path) if row["task_id"] in MBPP_TRAIN_IDS), key=lambda r: r["task_id"])
    if len(rows) != MBPP_TRAIN_COUNT:
        raise UsageError(f"{path}: {len(rows)} tasks with ids 601..974, not MBPP's {MBPP_TRAIN_COUNT} training tasks")
    examples = []
    for row in rows:
        tests: list[str] = row["test_list"]
        code = _normalise_newlines(row["code"]).rstrip() + "\n"
        examples.append(
            TrainingExample(
                prompt='"""\n' + row["text"] + "\n" + tests[0] + '\n"""\n',  # = MbppSuite's completion prompt
                code=code,
                source_id=f"Mbpp/{row['task_id']}",
            )
        )
    return examples


def _jsonl(path: Path) -> list[TrainingExample]:
    """The traces of a JSON-lines file, read within the caps of :mod:`ra3bench.input_files` (a gzip
    bomb or an endless line is refused with one line, not read into memory)."""
    from ra3bench.input_files import read_lines

    if not path.is_file():
        raise UsageError(f"data.path {path}: no such file (the jsonl source needs a JSON-lines file of traces)")
    lines = read_lines(path, "data.path")
    examples = [_trace(json_line=line, path=path, lineno=lineno) for lineno, line in lines if line.strip()]
    if not examples:
        raise UsageError(f"{path}: no traces in it (one JSON object per line with 'prompt' and 'code')")
    return examples


def _trace(json_line: str, path: Path, lineno: int) -> TrainingExample:
    where = f"{path}:{lineno}"
    try:
        row = json.loads(json_line)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from exc
    if not isinstance(row, dict):
        raise UsageError(f"{where}: a JSON {type(row).__name__}, not an object with 'prompt' and 'code'")
    missing = [key for key in ("prompt", "code") if key not in row]
    if missing:
        raise UsageError(
            f"{where}: missing {' and '.join(repr(k) for k in missing)} (each line needs 'prompt' and 'code')"
        )
    for key in ("prompt", "code"):
        if not isinstance(row[key], str):
            raise UsageError(f"{where}: {key!r} is a JSON {type(row[key]).__name__}, not a string")
    if not row["code"].strip():
        raise UsageError(f"{where}: 'code' is empty")
    task_id = row.get("id")
    if task_id is not None and (not isinstance(task_id, str | int) or isinstance(task_id, bool) or task_id == ""):
        raise UsageError(f"{where}: 'id' must be a non-empty string (a task id such as 'Mbpp/2')")
    return TrainingExample(
        prompt=row["prompt"],
        code=row["code"],
        source_id=str(task_id) if task_id is not None else f"{path.name}:{lineno}",
    )


def _py_folder(root: Path) -> list[TrainingExample]:
    examples: list[TrainingExample] = []
    for path in _py_files(root, stdlib=root == _stdlib_root()):
        rel = path.relative_to(root).as_posix()
        examples.extend(_definitions(path, rel))
    if not examples:
        raise UsageError(f"data.path {root}: no top-level function or class in any parsable .py file under it")
    return examples


def _py_files(root: Path, stdlib: bool) -> Iterator[Path]:
    """The candidate .py files under ``root``: sorted, recursive, pruned folders, at most 200 KB each."""
    skip = ALWAYS_SKIP_DIRS | (STDLIB_SKIP_DIRS if stdlib else frozenset())
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in skip and not d.startswith(".")]
        for name in files:
            if name.endswith(".py"):
                path = Path(folder) / name
                try:
                    if path.is_file() and path.stat().st_size <= MAX_PY_FILE_BYTES:
                        found.append(path)
                except OSError:
                    continue
    yield from sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _definitions(path: Path, rel: str) -> list[TrainingExample]:
    """One example per top-level def/class of a module; none if the file does not read or parse."""
    try:
        source = _normalise_newlines(path.read_text(encoding="utf-8"))
        with warnings.catch_warnings():  # invalid escapes and the like: legal, but they warn
            warnings.simplefilter("ignore")
            tree = ast.parse(source, filename=str(path))
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
        return []
    lines = source.split("\n")  # ast counts lines at "\n" only (after normalising), unlike str.splitlines
    imports = [
        segment
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom) and (segment := _segment(lines, node))
    ]
    prompt = "\n".join(imports) + "\n\n\n" if imports else ""
    examples = []
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) or node.end_lineno is None:
            continue
        start = min([node.lineno] + [d.lineno for d in node.decorator_list])
        code = "\n".join(lines[start - 1 : node.end_lineno]).rstrip() + "\n"
        examples.append(TrainingExample(prompt=prompt, code=code, source_id=f"{rel}:{node.name}"))
    return examples


# --- helpers ---------------------------------------------------------------------------------


def _segment(lines: list[str], node: ast.stmt) -> str:
    """``ast.get_source_segment`` on pre-split lines (that one splits the whole source on every call)."""
    if node.end_lineno is None or node.end_col_offset is None:
        return ""
    first, last = node.lineno - 1, node.end_lineno - 1  # offsets are in UTF-8 bytes
    if first == last:
        return lines[first].encode()[node.col_offset : node.end_col_offset].decode()
    head = lines[first].encode()[node.col_offset :].decode()
    tail = lines[last].encode()[: node.end_col_offset].decode()
    return "\n".join([head, *lines[first + 1 : last], tail])


def _stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"]).resolve()


def _folder(config: DataConfig) -> Path:
    if config.path.strip() == STDLIB:
        return _stdlib_root()
    root = _required_path(config, "a folder of .py files, or 'stdlib'")
    if not root.is_dir():
        raise UsageError(f"data.path {root}: no such folder (the py-folder source needs a folder of .py files)")
    return root.resolve()


def _required_path(config: DataConfig, what: str) -> Path:
    if not config.path.strip():
        raise UsageError(f"data source {config.source} needs data.path: {what}")
    return Path(config.path).expanduser()


def _normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _sha256_file(path: Path) -> str:
    from ra3bench.suites.data import sha256_file

    return sha256_file(path)


def _files_sha256(root: Path, files: Iterable[Path]) -> str:
    """One digest of a folder's files: each one's relative path and sha256, in order."""
    h = hashlib.sha256()
    for path in files:
        h.update(f"{_sha256_file(path)}  {path.relative_to(root).as_posix()}\n".encode())
    return h.hexdigest()
