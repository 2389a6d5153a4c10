"""Heavy objects, built once per process and shared by every session (st.cache_resource).

Maps (datasets), pick grids, borders, the database and the model players are expensive
to build; everything here is keyed by plain strings so Streamlit can cache it.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import streamlit as st

from app.borders import borders_json
from app.maps import METADATA_FILE, GameMap, MapError, data_dir, discover_maps, load_map
from app.pickgrid import PickGrid, build_pick_grid
from app.players import ModelPlayers, OpponentInfo, choose_opponents, read_opponents
from app.views import online_basemap_reachable
from db.store import GameStore
from geoai.bundle_files import default_models_dir, discover_bundles

log = logging.getLogger("geoai.app")
BASEMAP_ENV = "GEOAI_BASEMAP"  # "off" never contacts the tile server, "on" skips the check
# GEOAI_PUBLIC=1: a public deployment serves only maps whose images may be redistributed.
PUBLIC_MAPS_DEFAULT = "osv5m-mapillary commons-cities"


def servable(name: str) -> bool:
    if os.environ.get("GEOAI_PUBLIC", "0") != "1":
        return True
    return name in os.environ.get("GEOAI_PUBLIC_MAPS", PUBLIC_MAPS_DEFAULT).split()


@st.cache_resource(show_spinner=False)
def store() -> GameStore:
    game_store = GameStore()
    game_store.create_tables()
    return game_store


@st.cache_data(show_spinner=False, ttl=60)
def map_names(folder: str | None = None) -> list[str]:
    return [p.name for p in discover_maps(Path(folder) if folder else None) if servable(p.name)]


@st.cache_resource(show_spinner="Loading the map's photos...")
def game_map(name: str) -> GameMap:
    folder = data_dir() / name
    if not servable(name) or not (folder / METADATA_FILE).is_file():
        raise MapError(f"no map called {name!r} in {data_dir()}")
    return load_map(folder)


@st.cache_resource(show_spinner="Preparing the clickable map...")
def pick_grid(name: str) -> PickGrid:
    m = game_map(name)
    b = m.bounds
    return build_pick_grid(b.south, b.west, b.north, b.east, m.size_km)


def borders_for(name: str) -> str:
    """Borders JSON for the map's area (the whole world for world maps); cached in app.borders."""
    grid = pick_grid(name)
    if grid.world:
        return borders_json(None)
    b = game_map(name).bounds
    margin = max(b.north - b.south, b.east - b.west, 2.0)
    return borders_json((b.south - margin, b.west - margin, b.north + margin, b.east + margin))


@st.cache_resource(show_spinner=False)
def model_players() -> ModelPlayers:
    return ModelPlayers()


def models_dir() -> Path:
    return default_models_dir()


@st.cache_data(show_spinner=False, ttl=60)
def all_opponents() -> tuple[list[OpponentInfo], list[str]]:
    """Every bundle in the models folder (re-read every minute), and problems with any."""
    return read_opponents(discover_bundles(models_dir()))


@st.cache_resource(show_spinner="Loading the models...")
def opponents_for(map_name: str) -> tuple[list[OpponentInfo], list[str]]:
    """The map's opponents that can play, and why others cannot.

    Opponents answered by the map's predictions file load no model (no torch); the others
    load their weights now.
    """
    infos, problems = all_opponents()
    chosen = choose_opponents(infos, map_name)
    failures = model_players().warm_up(chosen, map_name, game_map(map_name).places)
    return [i for i in chosen if i.name not in failures], list(problems) + list(failures.values())


@st.cache_data(show_spinner=False, ttl=600)
def basemap_available() -> bool:
    setting = os.environ.get(BASEMAP_ENV, "auto").lower()
    if setting in ("off", "0", "false", "no"):
        return False
    if setting in ("on", "1", "true", "yes"):
        return True
    return online_basemap_reachable()
