"""Fence finding, the regex it replaced against the linear scan, on real answers and adversarial ones.

    RA3BENCH_DATA_DIR=/work/shared/datasets python benchmarks/extract_speed.py
    python benchmarks/extract_speed.py --sizes 2000,8000 --no-extract

The baseline is ``fences.fenced_blocks`` with the old ``opening_fence`` (copied below) put back: that
regex was the only part of fence finding that changed. Each real answer is also checked to give the
same blocks both ways. The last column is the whole ``extract_program`` (new code, chat style, a
function problem) for scale: on answers of many lines, salvage rather than fence finding costs most.
Prints a markdown table; each time is the fastest of a few runs (one run for the slow baseline ones).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from unittest import mock

from ra3bench.extract import extract_program, fences
from ra3bench.extract.fences import fenced_blocks, strip_reasoning
from ra3bench.suites.base import Problem

# --- the baseline: opening_fence as it was, a backtracking regex per line ----------------------------

OLD_FENCE_OPEN = re.compile(r"^(?P<pre>.*?)(?P<fence>`{3,}|~{3,})[ \t]*(?P<lang>[\w+#.-]*)[ \t]*$")


def old_opening_fence(line: str) -> tuple[str, str] | None:
    m = OLD_FENCE_OPEN.match(line)
    if m is None or "`" in m["pre"] or (m["pre"] and m["pre"][-1] not in " \t:"):
        return None
    return m["fence"], m["lang"]


def old_fenced_blocks(text: str) -> tuple[list[fences.Block], bool]:
    with mock.patch.object(fences, "opening_fence", old_opening_fence):
        return fenced_blocks(text)


# --- inputs ----------------------------------------------------------------------------------------

ADVERSARIAL: dict[str, Callable[[int], str]] = {
    "backticks": lambda n: "`" * n,
    "backticks then text": lambda n: "`" * n + "x y",
    "tildes then text": lambda n: "~" * n + " a b",
    "a fence, blanks, then text": lambda n: "```" + " \t" * (n // 2) + "x y",
    "```x repeated on one line": lambda n: "```x" * (n // 4),
    "a ``` repeated on one line": lambda n: "a ```" * (n // 5),
    "fence lines and text alternating": lambda n: "```\nx\n" * (n // 6),
    "unclosed fence": lambda n: "```python\n" + "x = 1\n" * (n // 6),
    "nested fences": lambda n: "````\n```python\n" * (n // 16),
}
ADD = Problem(
    task_id="t/0",
    prompt='def add(a: int, b: int) -> int:\n    """Return a + b."""\n',
    instruction="",
    entry_point="add",
    reference="",
    groups={},
)


def real_answers(data_dir: Path) -> dict[str, list[str]]:
    """Real model text: evalplus / human-eval samples (solution or completion) and LiveCodeBench
    chat outputs (with their reasoning), as extraction sees them (line breaks normalised)."""
    corpora: dict[str, list[str]] = {"evalplus / human-eval samples": [], "LiveCodeBench chat outputs": []}
    for path in sorted((data_dir / "samples").rglob("*.jsonl.gz")):
        for row in _jsonl(path):
            text = row.get("solution") or row.get("completion")
            if isinstance(text, str):
                corpora["evalplus / human-eval samples"].append(_normalised(text))
    for path in sorted((data_dir / "livecodebench" / "eval_all").glob("*.json.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for row in json.load(f):
                texts = row.get("output_list") or []
                corpora["LiveCodeBench chat outputs"] += [strip_reasoning(_normalised(t)) for t in texts]
    return {name: texts for name, texts in corpora.items() if texts}


def _jsonl(path: Path) -> Iterator[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def _normalised(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


# --- timing ----------------------------------------------------------------------------------------


def seconds(work: Callable[[], object], budget_s: float = 0.5, most: int = 5) -> float:
    """The fastest of up to ``most`` runs, stopping once ``budget_s`` is spent (a slow one runs once)."""
    best, spent = float("inf"), 0.0
    for _ in range(most):
        start = time.perf_counter()
        work()
        took = time.perf_counter() - start
        best, spent = min(best, took), spent + took
        if spent >= budget_s:
            break
    return best


def on_all(fn: Callable[[str], object], texts: list[str]) -> Callable[[], None]:
    def run() -> None:
        for text in texts:
            fn(text)

    return run


def row(name: str, texts: list[str], with_extract: bool) -> list[str]:
    chars = sum(map(len, texts))
    old = seconds(on_all(old_fenced_blocks, texts))
    new = seconds(on_all(fenced_blocks, texts))
    cells = [name, str(len(texts)), f"{chars:,}", _ms(old), _ms(new), _speedup(old, new)]
    if with_extract:
        cells.append(_ms(seconds(on_all(lambda t: extract_program(t, ADD, "chat"), texts), most=1)))
    return cells


def _speedup(old: float, new: float) -> str:
    return f"{old / new:,.0f}x" if old >= 100 * new else f"{old / new:.1f}x"


def _ms(s: float) -> str:
    ms = s * 1000
    return f"{ms:,.0f}" if ms >= 100 else f"{ms:.1f}" if ms >= 1 else f"{ms:.3f}"


def check_same_blocks(corpora: dict[str, list[str]]) -> int:
    """How many real answers give different blocks old and new (must be 0)."""
    return sum(old_fenced_blocks(t) != fenced_blocks(t) for texts in corpora.values() for t in texts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("RA3BENCH_DATA_DIR", "shared/datasets")))
    parser.add_argument("--sizes", default="8000,32000", help="adversarial input sizes in characters")
    parser.add_argument("--no-extract", action="store_true", help="leave out the extract_program column")
    args = parser.parse_args()
    with_extract = not args.no_extract

    headers = ["input", "texts", "chars", "old regex (ms)", "new scan (ms)", "speedup"]
    headers += ["extract_program, new (ms)"] if with_extract else []
    rows = []
    corpora = real_answers(args.data_dir)
    for name, texts in corpora.items():
        mean = statistics.mean(map(len, texts))
        rows.append(row(f"real: {name} (mean {mean:,.0f} chars)", texts, with_extract))
    for size in (int(s) for s in args.sizes.split(",")):
        for name, make in ADVERSARIAL.items():
            rows.append(row(f"adversarial: {name}", [make(size)], with_extract))

    print("| " + " | ".join(headers) + " |")
    print("|" + " --- |" * len(headers))
    for cells in rows:
        print("| " + " | ".join(cells) + " |")
    if corpora:
        print(
            f"\nReal answers with different blocks old vs new: {check_same_blocks(corpora)} of "
            f"{sum(map(len, corpora.values())):,}."
        )
    else:
        print(f"\n(no real answers: {args.data_dir}/samples and livecodebench/eval_all not found)")


if __name__ == "__main__":
    main()
