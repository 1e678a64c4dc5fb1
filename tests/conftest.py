"""Shared pytest configuration: custom markers (pyproject lists the project-wide ones)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # Registered here so that `-m "not network"` works and pytest does not warn about an unknown mark.
    config.addinivalue_line("markers", "network: needs the internet (PyPI via pip); skips when it is unreachable")
