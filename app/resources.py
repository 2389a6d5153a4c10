"""Heavy objects, built once per process and shared by every session (st.cache_resource).

Maps (datasets), borders and names, the database, the model players and the games in
progress are built once; everything here is keyed by plain strings so Streamlit can cache it.
"""
from __future__ import annotations

import logging
from pathlib import Path

import streamlit as st

from app.borders import borders_json
from app.country_labels import labels_json
from app.live_games import LiveGames
from app.maps import METADATA_FILE, GameMap, MapError, discover_maps, load_map
from app.players import ModelPlayers, OpponentInfo, choose_opponents, read_opponents
from app.views import online_basemap_reachable
from db.store import GameStore
from geoai import settings
from geoai.bundle_files import discover_bundles

log = logging.getLogger("geoai.app")


def servable(name: str) -> bool:
    public = settings.public_maps()  # a public deployment serves only redistributable images
    return public is None or name in public


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
    folder = settings.data_dir() / name
    if not servable(name) or not (folder / METADATA_FILE).is_file():
        raise MapError(f"no map called {name!r} in {settings.data_dir()}")
    return load_map(folder)


@st.cache_resource(show_spinner=False)
def live_games() -> LiveGames:
    """Unfinished (and just finished) games by id, for resuming after a reload."""
    return LiveGames()


def _region(name: str) -> tuple[float, float, float, float] | None:
    """(south, west, north, east) around a map's area, generous enough for panning; None
    for world maps and maps across the antimeridian (they get the whole world)."""
    b = game_map(name).bounds
    if b.world or b.wraps:
        return None
    margin = max(b.lat_span, b.lon_span, 2.0)
    return (b.south - margin, b.west - margin, b.north + margin, b.east + margin)


def borders_for(name: str) -> str:
    """Borders JSON for the map's area (the whole world for world maps); cached in app.borders."""
    return borders_json(_region(name))


@st.cache_data(show_spinner=False, max_entries=32)
def labels_for(name: str) -> str:
    """Country names for the map's area (JSON for the map's label layer)."""
    return labels_json(_region(name))


@st.cache_resource(show_spinner=False)
def model_players() -> ModelPlayers:
    return ModelPlayers()


@st.cache_data(show_spinner=False, ttl=60)
def all_opponents() -> tuple[list[OpponentInfo], list[str]]:
    """Every bundle in the models folder (re-read every minute), and problems with any."""
    return read_opponents(discover_bundles(settings.models_dir()))


@st.cache_resource(show_spinner="Loading the models...")
def opponents_for(map_name: str) -> tuple[list[OpponentInfo], list[str]]:
    """The map's opponents that can play, and why others cannot.

    Opponents answered by the map's predictions file load no model (no torch); the others
    load their weights now.
    """
    infos, problems = all_opponents()
    places = game_map(map_name).places
    chosen = choose_opponents(infos, map_name, places)
    failures = model_players().warm_up(chosen, map_name, places)
    return [i for i in chosen if i.name not in failures], list(problems) + list(failures.values())


@st.cache_data(show_spinner=False, ttl=600)
def basemap_available() -> bool:
    setting = settings.basemap()  # "off" never contacts the tile server, "on" skips the check
    if setting != "auto":
        return setting == "on"
    return online_basemap_reachable()
