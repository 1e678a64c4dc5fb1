"""The one progress helper: rich bars with rate and ETA on a terminal, silent elsewhere."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Advance = Callable[..., None]


@contextmanager
def progress_bar(description: str, total: int) -> Iterator[Advance]:
    """Yield ``advance(n=1)``. Draws only when stderr is a terminal (CI logs stay clean)."""
    with progress_bars({description: total}) as advances:
        yield advances[description]


@contextmanager
def progress_bars(totals: dict[str, int]) -> Iterator[dict[str, Advance]]:
    """One bar per entry (e.g. generating and judging, which overlap); ``advance(n=1)`` each."""
    shown = {name: total for name, total in totals.items() if total > 0}
    if not sys.stderr.isatty() or not shown:
        yield {name: (lambda n=1: None) for name in totals}
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("[cyan]{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        ids = {name: progress.add_task(name, total=total, rate="") for name, total in shown.items()}

        def advancer(task_id) -> Advance:
            def advance(n: int = 1) -> None:
                progress.advance(task_id, n)
                task = progress._tasks[task_id]
                # the mean since the start: work arrives in bursts (a batch of samples), which
                # makes rich's short-window speed swing wildly
                elapsed = task.elapsed or 0.0
                progress.update(task_id, rate=f"{task.completed / elapsed:.2f}/s" if elapsed > 0 else "")

            return advance

        yield {name: advancer(ids[name]) if name in ids else (lambda n=1: None) for name in totals}
