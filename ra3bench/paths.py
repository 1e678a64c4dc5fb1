"""Where ra3bench keeps what it can recompute: ``$RA3BENCH_CACHE_DIR`` or ``~/.cache/ra3bench``."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    root = os.environ.get("RA3BENCH_CACHE_DIR")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "ra3bench"
