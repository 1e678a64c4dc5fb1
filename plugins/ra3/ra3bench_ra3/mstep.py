"""The M-step's one addition to NTP: optionally no loss on the inserted comment lines.

``mask_latent_tokens`` needs ``ra3bench_ntp.ntp_steps`` to take the per-example encoder as a
parameter (``encode=``, default ``tokenize_example``); :func:`encode_masked` is that encoder.
"""

from __future__ import annotations

import bisect
import inspect
from typing import Any

from ra3bench.training import TrainingExample, tokenize_example
from ra3bench_ra3.annotate import line_spans

IGNORE_INDEX = -100


def ntp_takes_encode() -> bool:
    from ra3bench_ntp import ntp_steps

    return "encode" in inspect.signature(ntp_steps).parameters


def encode_masked(example: TrainingExample, tokenizer: Any, max_length: int) -> dict[str, list[int]]:
    """``tokenize_example``, then label -100 on every token of an inserted comment line.

    A token belongs to the line holding its last character (as in the E-step's scoring), so the
    ``\\n   `` that ends a comment and indents the next code line keeps its loss.
    """
    row = tokenize_example(example, tokenizer, max_length)
    comments = getattr(example, "comments", None)
    if not comments:
        return row
    starts, owner = line_spans(example.original, comments)  # type: ignore[attr-defined]
    enc = tokenizer(example.code, add_special_tokens=False, return_offsets_mapping=True)
    n_prompt = next((i for i, label in enumerate(row["labels"]) if label != IGNORE_INDEX), len(row["labels"]))
    labels = list(row["labels"])
    for k, (token, (_, end)) in enumerate(zip(enc["input_ids"], enc["offset_mapping"], strict=True)):
        at = n_prompt + k
        if at >= len(labels):
            break
        if row["input_ids"][at] != token:
            raise ValueError("the code's tokens differ from tokenize_example's")
        if owner[bisect.bisect_right(starts, end - 1) - 1] < 0:
            labels[at] = IGNORE_INDEX
    return {"input_ids": row["input_ids"], "labels": labels}
