"""Benchmark suites: a registry of :class:`~ra3bench.suites.base.Suite` classes and ``get_suite``.

In-tree suites register with ``@SUITES.register(name)``; plugins through the entry-point group
``ra3bench.suites``.
"""

from __future__ import annotations

from pathlib import Path

from ra3bench.registry import Registry
from ra3bench.suites.base import Suite

SUITES = Registry[type[Suite]]("suite", group="ra3bench.suites")

# Imported after SUITES exists: the modules register themselves into it on import.
from ra3bench.suites import codeforces, humaneval, livecodebench, mbpp  # noqa: E402, F401


def get_suite(name: str, version: str | None = None, data_dir: Path | None = None) -> Suite:
    """The suite ``name`` at ``version`` (its default if None); ``name`` may carry the version as
    ``suite@version`` (``livecodebench@v6-public``: where only a name fits, e.g. a training config's
    ``eval.suites``). Unknown names/versions raise UsageError."""
    from ra3bench.errors import UsageError

    if "@" in name:
        name, pinned = name.split("@", 1)
        if version is not None and version != pinned:
            raise UsageError(f"suite {name}@{pinned} and --suite-version {version} disagree; give one")
        version = pinned
    return SUITES.get(name)(version=version, data_dir=data_dir)


__all__ = ["SUITES", "Suite", "get_suite"]
