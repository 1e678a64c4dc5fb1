"""Shared pytest configuration: custom markers (pyproject lists the project-wide ones)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # Registered here so that `-m "not network"` works and pytest does not warn about an unknown mark.
    config.addinivalue_line("markers", "network: needs the internet (PyPI via pip); skips when it is unreachable")


def pytest_sessionstart(session: pytest.Session) -> None:
    """Point the data layer at the workspace copy of the data sets unless told otherwise, and give the
    session its own cache, so no test reads expected outputs or verdicts an earlier run left behind."""
    import os
    import tempfile
    from pathlib import Path

    shared = Path(__file__).resolve().parents[2] / "shared" / "datasets"
    if not os.environ.get("RA3BENCH_DATA_DIR") and shared.is_dir():
        os.environ["RA3BENCH_DATA_DIR"] = str(shared)
    # No test reaches the real Hugging Face Hub (a suite whose default data lives there fails at once with
    # its one line instead of waiting on the network); the Hub tests serve a fake one on 127.0.0.1.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not os.environ.get("RA3BENCH_CACHE_DIR"):
        os.environ["RA3BENCH_CACHE_DIR"] = _SESSION_CACHE[0] = tempfile.mkdtemp(prefix="ra3bench-test-cache-")


_SESSION_CACHE = [""]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    import shutil

    if _SESSION_CACHE[0]:
        shutil.rmtree(_SESSION_CACHE[0], ignore_errors=True)
