"""RA3's comment bookkeeping: boundaries only where a comment cannot change the code, insert and
strip byte for byte (even beside the snippet's own comments), comments that stay one line."""

from __future__ import annotations

import ast
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugins" / "ra3"))

from ra3bench_ra3.annotate import (
    Comment,
    boundaries,
    comment_line,
    insert,
    line_spans,
    sanitize,
    split_lines,
    strip,
)

from ra3bench.training.base import DataConfig, TrainingExample
from ra3bench.training.data import IGNORE_INDEX, load_examples

TRICKY = '''\
import os  # the snippet's own comment
# intent: a comment the snippet already had


@decorator(
    "arg",  # inside brackets
)
def f(x, \\
      y):
    """A docstring
    # not a comment: inside a string
    """
    total = [x,
             y]
    s = "a \\
b"
    if x:

        return total
    return os.sep
'''


def test_boundaries_are_the_starts_of_logical_lines_only():
    lines = split_lines(TRICKY)
    starts = [lines[i].strip()[:12] for i in boundaries(TRICKY)]
    expected = ["import os  #", "@decorator(", "def f(x, \\", '"""A docstri', "total = [x,", 's = "a \\', "if x:"]
    assert starts == [*expected, "return total", "return os.se"]


def test_boundaries_of_code_that_does_not_tokenize_are_none():
    assert boundaries("def f(:\n    return (1,\n") == []
    assert boundaries("  x = 1\n y = 2\n") == []  # IndentationError
    assert boundaries("") == []


def comment_everywhere(code: str, text: str = " intent") -> list[Comment]:
    lines = split_lines(code)
    return [Comment(i, comment_line(lines[i], text)) for i in boundaries(code)]


def test_insert_then_strip_is_the_identity_even_beside_the_snippets_own_comments():
    comments = comment_everywhere(TRICKY, " intent: a comment the snippet already had")
    annotated = insert(TRICKY, comments)
    assert annotated.count("# intent: a comment the snippet already had\n") == len(comments) + 1
    assert strip(annotated, comments) == TRICKY
    assert ast.dump(ast.parse(annotated)) == ast.dump(ast.parse(TRICKY))
    assert "    # intent" in annotated.split("def f")[1]  # at the next code line's indentation


@pytest.mark.parametrize(
    "code", ["x = 1", "x = 1\r\ny = 2\r\n", "\tif x:\n\t\tpass\n".replace("\t", "", 1), "\n\nx = 1\n\n", "a\x0cb = 1\n"]
)
def test_strip_is_byte_exact_on_odd_line_endings(code: str):
    comments = comment_everywhere(code)
    assert strip(insert(code, comments), comments) == code


def test_strip_refuses_a_record_that_does_not_match():
    comments = [Comment(1, "# a\n")]
    annotated = insert("x = 1\ny = 2\n", comments)
    with pytest.raises(ValueError):
        strip(annotated, [Comment(1, "# b\n")])
    with pytest.raises(ValueError):
        insert("x = 1\n", [Comment(0, "# a\n"), Comment(0, "# b\n")])


def test_line_spans_name_code_and_comment_lines():
    comments = [Comment(1, "# c\n")]
    starts, owner = line_spans("x = 1\ny = 2\n", comments)
    assert starts == [0, 6, 10] and owner == [0, -2, 1]


@pytest.mark.parametrize(
    ("generated", "content", "ok"),
    [
        (" add one\n    return", " add one", True),
        (" add one\r\nx", " add one", True),
        (" cut at max_latent_tokens", " cut at max_latent_tokens", False),
        ("   \n", "   ", False),
        (" a\x00b\x1b[31m\u2028c\n", " ab[31mc", True),
        (" -*- coding: latin-1 -*-\n", " -*- coding : latin-1 -*-", True),
    ],
)
def test_sanitize_keeps_one_well_formed_comment_line(generated: str, content: str, ok: bool):
    assert sanitize(generated) == (content, ok)
    line = comment_line("    return 1\n", content)
    code = "def f():\n    return 1\n"
    annotated = insert(code, [Comment(1, line)])
    ast.parse(annotated)
    assert len(split_lines(annotated)) == 3


def test_every_mbpp_training_snippet_survives_a_comment_at_every_boundary(offline_data: None):
    examples = load_examples(DataConfig(source="mbpp-train"))
    commented = 0
    for example in examples:
        comments = comment_everywhere(example.code, " step")
        annotated = insert(example.code, comments)
        assert strip(annotated, comments) == example.code
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escapes in a few solutions
            try:
                tree = ast.parse(example.code)
            except SyntaxError:
                continue
            assert ast.dump(ast.parse(annotated)) == ast.dump(tree), example.source_id
        commented += bool(comments)
    assert commented > 350


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from ra3bench.tiny import tiny_tokenizer

    return tiny_tokenizer()


def test_masking_latent_tokens_takes_the_loss_off_exactly_the_comment_lines(tokenizer: Any):
    from ra3bench_ra3.mstep import encode_masked
    from ra3bench_ra3.trainer import AnnotatedExample

    code = "def f(x):\n    y = x + 1\n    return y\n"
    comments = [Comment(1, "    # add one\n"), Comment(2, "    # give it back\n")]
    annotated = insert(code, comments)
    example = AnnotatedExample('"""doc"""\n', annotated, "t", code, comments)
    row = encode_masked(example, tokenizer, 512)
    plain = encode_masked(TrainingExample(example.prompt, annotated), tokenizer, 512)
    assert row["input_ids"] == plain["input_ids"]
    masked = [t for t, a, b in zip(row["input_ids"], row["labels"], plain["labels"], strict=True) if a != b]
    assert {a for a, b in zip(row["labels"], plain["labels"], strict=True) if a != b} == {IGNORE_INDEX}
    text = tokenizer.decode(masked)  # the comment lines (with the line break before each)
    assert text.replace("\n", "").split() == ["#", "add", "one", "#", "give", "it", "back"], repr(text)
    assert len(encode_masked(example, tokenizer, 12)["labels"]) == 12  # a cut sequence still encodes
