"""Where ra3bench keeps what it can recompute: ``$RA3BENCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/ra3bench``,
else ``~/.cache/ra3bench`` (the XDG default): a tool or benchmark that isolates itself with
``XDG_CACHE_HOME`` isolates ra3bench's verdict and expected-output caches too."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    root = os.environ.get("RA3BENCH_CACHE_DIR")
    if root:
        return Path(root).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and Path(xdg).is_absolute():  # the XDG spec: a relative value is ignored
        return Path(xdg) / "ra3bench"
    return Path.home() / ".cache" / "ra3bench"
