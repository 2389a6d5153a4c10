"""Streamlit AppTest: a full game through the real pages, then the leaderboard and models pages.

AppTest cannot click deck.gl, so map clicks are fed through st.session_state["map_click"],
the same handler a real click's on_select callback uses.
"""
from __future__ import annotations

from pathlib import Path

import h3
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from test_game_support import GAME_MAP, game_environment

REPO = Path(__file__).resolve().parents[1]
MAIN = str(REPO / "app" / "main.py")
PAGE_SCRIPT = f"""
import sys
sys.path.insert(0, {str(REPO)!r})
from app import {{module}}
{{module}}.render()
"""


@pytest.fixture
def app_env(shared_data, tmp_path, monkeypatch):
    for key, value in game_environment(shared_data, tmp_path).items():
        monkeypatch.setenv(key, value)
    st.cache_resource.clear()  # the store, maps and models are cached per process
    st.cache_data.clear()
    yield tmp_path
    st.cache_resource.clear()
    st.cache_data.clear()


def no_errors(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def start(at: AppTest, name: str, rounds: int) -> None:
    at.text_input(key="player_name").input(name)
    at.selectbox(key="map_name").select(GAME_MAP)
    at.number_input(key="rounds").set_value(rounds)
    at.button[0].click().run()  # the form's "Start game"


def click_map(at: AppTest, lat: float, lon: float) -> None:
    play = at.session_state["play"]
    at.session_state["map_click"] = {"cell": h3.latlng_to_cell(lat, lon, play.grid.resolution), "layer": "grid"}
    at.run()


def test_full_game_then_leaderboard(app_env):
    at = AppTest.from_file(MAIN, default_timeout=300).run()
    no_errors(at)
    start(at, "Ana Marija", rounds=5)
    no_errors(at)
    play = at.session_state["play"]
    assert play.game.rounds_total == 5 and len(play.game.opponents) == 2
    for number in range(1, 6):
        assert at.metric[0].value == f"{number}/5"
        # every view of the place at once, as a strip (croatia-streetview: 4 headings)
        assert [c for i in at.get("image") for c in i.captions] == [f"View {v}" for v in range(1, 5)]
        guess_button = at.button(key=f"guess-{play.map_key}")
        assert guess_button.disabled  # no guess yet
        click_map(at, 45.0, 16.0)
        assert play.guess is not None and abs(play.guess[0] - 45.0) < 0.1
        at.button(key=f"guess-{play.map_key}").click().run()
        no_errors(at)
        table = next(t.value for t in at.table if "distance (km)" in t.value)  # the round's table
        assert list(table["player"]) == ["Ana Marija", "tiny-beit-linear", "tiny-resnet-linear"]
        assert (table["distance (km)"] >= 0).all() and table["points"].between(0, 5000).all()
        if number < 5:
            at.button(key=f"next-{play.map_key}").click().run()
    assert at.header[0].value == "Final score"
    totals = play.game.totals()
    assert any("Saved to the leaderboard" in c.value for c in at.caption)

    board = AppTest.from_string(PAGE_SCRIPT.format(module="page_leaderboard"), default_timeout=120).run()
    no_errors(board)
    best = board.table[0].value
    assert list(best["player"]) == ["Ana Marija"] and list(best["points"]) == [totals["person"]]
    matchups = board.table[1].value
    assert set(matchups["model"]) == {"tiny-beit-linear · transformer", "tiny-resnet-linear · CNN"}  # labels
    assert (matchups["games"] == 1).all()

    models = AppTest.from_string(PAGE_SCRIPT.format(module="page_models"), default_timeout=120).run()
    no_errors(models)
    listing = models.dataframe[0].value
    assert set(listing["model"]) == {"tiny-beit-linear", "tiny-resnet-linear"}
    assert set(listing["family"]) == {"Transformer", "CNN"}
    assert "test" in set(models.dataframe[1].value["split"])


def test_invalid_name_is_explained(app_env):
    at = AppTest.from_file(MAIN, default_timeout=300).run()
    start(at, "<script>", rounds=1)
    assert not at.exception
    assert "letters, digits" in at.error[0].value
    assert at.session_state["play"].game is None


def test_no_maps_says_what_to_do(app_env, monkeypatch):
    monkeypatch.setenv("GEOAI_DATA_DIR", str(app_env / "empty"))
    at = AppTest.from_file(MAIN, default_timeout=120).run()
    assert not at.exception
    assert "No maps found" in at.error[0].value
    assert "GEOAI_DATA_DIR=" in at.code[0].value


def test_no_models_plays_alone_and_says_how_to_train(app_env, monkeypatch):
    monkeypatch.setenv("GEOAI_MODELS_DIR", str(app_env / "no-models"))
    at = AppTest.from_file(MAIN, default_timeout=300).run()
    start(at, "Solo", rounds=1)
    no_errors(at)
    assert "you are playing alone" in at.info[0].value
    assert "python -m train publish" in at.code[0].value
    click_map(at, 45.0, 16.0)
    at.button(key=f"guess-{at.session_state['play'].map_key}").click().run()
    no_errors(at)
    assert list(at.table[0].value["player"]) == ["Solo"]
