"""benchmarks/RESULTS.md is shared: each benchmark owns one ``## `` section and rewrites only that."""

from __future__ import annotations

from pathlib import Path


def write_section(path: Path, heading: str, body: str) -> None:
    """Replace (or append) the section that starts with ``heading``; every other section stays as it is."""
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    section = f"{heading}\n\n{body}"
    if heading in text:
        head, rest = text.split(heading, 1)
        nxt = rest.find("\n## ")
        tail = rest[nxt + 1 :] if nxt >= 0 else ""
        text = head + section + ("\n" + tail if tail else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def machine() -> str:
    """One line naming the machine a result came from: cores, CPU model, Python."""
    from ra3bench.results import host_info

    host = host_info()
    return f"{host['cores']} cores ({host['cpu']}), Python {host['python']}"
