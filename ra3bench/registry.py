"""One small registry per extension kind (suite, backend, sandbox, trainer).

In-tree items register with a decorator; plugins arrive through the entry-point group each
registry names (``ra3bench.suites``, ``ra3bench.backends``, ``ra3bench.sandboxes``,
``ra3bench.trainers``). An unknown name gets a "did you mean" and the list of known names.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from ra3bench.errors import UsageError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, *, group: str) -> None:
        self.kind = kind
        self.group = group  # the entry-point group plugins register under, spelled out
        self._items: dict[str, T] = {}
        self._origins: dict[str, str] = {}
        self._broken: dict[str, str] = {}
        self._entry_points_loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(item: T) -> T:
            self._items[name] = item
            self._origins[name] = getattr(item, "__module__", "?")
            return item

        return decorator

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for ep in entry_points(group=self.group):
            if ep.name in self._items:
                continue
            try:
                self._items[ep.name] = ep.load()
                self._origins[ep.name] = f"{ep.value} ({ep.dist.name if ep.dist else '?'})"
            except Exception as exc:
                self._broken[ep.name] = f"{type(exc).__name__}: {exc}"

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._items)

    def origins(self) -> dict[str, str]:
        self._load_entry_points()
        return dict(self._origins)

    def broken(self) -> dict[str, str]:
        self._load_entry_points()
        return dict(self._broken)

    def get(self, name: str) -> T:
        self._load_entry_points()
        if name in self._items:
            return self._items[name]
        if name in self._broken:
            raise UsageError(f"{self.kind} {name!r} failed to load: {self._broken[name]}")
        hint = difflib.get_close_matches(name, self._items, n=1)
        did_you_mean = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise UsageError(f"unknown {self.kind} {name!r}{did_you_mean}; known: {', '.join(self.names())}")
