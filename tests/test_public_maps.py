"""GEOAI_PUBLIC=1: a public deployment offers only maps whose images may be redistributed."""
from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from test_game_support import data_dir_with

REPO = Path(__file__).resolve().parents[1]
MAIN = str(REPO / "app" / "main.py")
STREET_VIEW, MAPILLARY = "croatia-streetview", "osv5m-mapillary"


@pytest.fixture
def maps_env(shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("GEOAI_DATA_DIR", str(data_dir_with(shared_data, tmp_path, maps=(STREET_VIEW, MAPILLARY))))
    monkeypatch.setenv("GEOAI_MODELS_DIR", str(tmp_path / "no-models"))
    monkeypatch.setenv("GEOAI_DATABASE_URL", f"sqlite:///{tmp_path / 'game.sqlite'}")
    monkeypatch.setenv("GEOAI_BASEMAP", "off")
    st.cache_resource.clear()
    st.cache_data.clear()
    yield monkeypatch
    st.cache_resource.clear()
    st.cache_data.clear()


def map_options(setting: str | None, monkeypatch) -> list[str]:
    if setting is None:
        monkeypatch.delenv("GEOAI_PUBLIC", raising=False)
    else:
        monkeypatch.setenv("GEOAI_PUBLIC", setting)
    st.cache_data.clear()
    at = AppTest.from_file(MAIN, default_timeout=120).run()
    assert not at.exception, [e.value for e in at.exception]
    return list(at.selectbox(key="map_name").options)


def test_public_deployment_hides_street_view_maps(maps_env):
    assert map_options(None, maps_env) == [STREET_VIEW, MAPILLARY]
    assert map_options("1", maps_env) == [MAPILLARY]
    maps_env.setenv("GEOAI_PUBLIC_MAPS", STREET_VIEW)  # the operator's own list wins
    assert map_options("1", maps_env) == [STREET_VIEW]
