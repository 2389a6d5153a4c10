"""Shared test fixtures.

The datasets live beside the repository in ../shared/data (CI has them there too);
GEOAI_SHARED_DATA overrides the location. Tests never copy those images into the repo.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("GEOAI_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "README.md").is_file():
        pytest.fail(f"shared datasets not found at {SHARED_DATA}; set GEOAI_SHARED_DATA")
    return SHARED_DATA
