"""Fixtures for the `make dev` tests: a headless Chromium and a place for its screenshots."""

from pathlib import Path

import pytest
from support.browser import chromium_driver

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """test-artifacts/ (gitignored): screenshots kept after the run for a human to look at."""
    path = ROOT / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture
def browser():
    with chromium_driver(width=2200, height=2600) as driver:
        yield driver
