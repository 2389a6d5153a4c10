"""Shared test fixtures.

The datasets live beside the repository in ../shared/data (CI has them there too);
GEOAI_DATA_DIR overrides the location (read once, when the tests are collected). Tests never
copy those images into the repo.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from geoai import settings

SHARED_DATA = settings.data_dir()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "README.md").is_file():
        pytest.fail(f"shared datasets not found at {SHARED_DATA}; set GEOAI_DATA_DIR")
    return SHARED_DATA
