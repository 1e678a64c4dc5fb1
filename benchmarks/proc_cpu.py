"""CPU time of process trees, read from /proc: what a sandbox's workers and their jobs spent."""

from __future__ import annotations

import os
from pathlib import Path


def tree_cpu_s(roots: list[int]) -> float:
    """CPU seconds of these processes, their descendants, and the children they reaped (the jobs'
    children: the fork server reaps them). Clock ticks: summed over many jobs, not read per job."""
    table: dict[int, tuple[int, float]] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                fields = Path(f"/proc/{name}/stat").read_bytes().rpartition(b")")[2].split()
            except OSError:
                continue
            table[int(name)] = (int(fields[1]), sum(int(f) for f in fields[11:15]) / tick)
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    total, todo, seen = 0.0, list(roots), set()
    while todo:
        pid = todo.pop()
        if pid in seen or pid not in table:
            continue
        seen.add(pid)
        total += table[pid][1]
        todo.extend(children.get(pid, []))
    return total
