"""report.md: the report's blocks as GitHub Markdown, figures linked as PNG files beside it."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from tabulate import tabulate

from ra3bench.report.base import Block, Heading, Image, Para, Table


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(blocks: Sequence[Block], out_dir: Path) -> str:
    """Markdown for ``blocks``; image links are relative to ``out_dir`` (where report.md goes)."""
    parts: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append("#" * block.level + " " + block.text)
        elif isinstance(block, Para):
            parts.append(block.text)
        elif isinstance(block, Table):
            rows = [[_cell(c) for c in row] for row in block.rows]
            table = tabulate(rows, headers=[_cell(h) for h in block.headers], tablefmt="github", disable_numparse=True)
            parts.append((f"*{block.caption}*\n\n" if block.caption else "") + table)
        elif isinstance(block, Image):
            link = Path(os.path.relpath(block.path, out_dir)).as_posix()
            parts.append(f"![{block.alt}]({link})")
    return "\n\n".join(parts) + "\n"
