"""Shared test fixtures: where the datasets are, and skipping cleanly when they are not there."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def data_root() -> Path:
    return Path(os.environ.get("FIPVITON_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    root = data_root()
    if not root.is_dir():
        pytest.skip(f"datasets not found at {root} (set FIPVITON_DATA)")
    return root


def require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not found (set FIPVITON_DATA)")
    return path
