"""Streamlit AppTest: a full game through the real pages, then the leaderboard and models pages.

AppTest cannot run the map's JavaScript, so guesses are fed through
st.session_state["map_guess"], handled exactly like the (lat, lon) the map's Guess button sends.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from table_support import tables
from test_game_support import GAME_MAP, app_environment, game_environment

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
    with app_environment(monkeypatch, game_environment(shared_data, tmp_path)):
        yield tmp_path


def no_errors(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def start(at: AppTest, name: str, rounds: int, timer_s: int = 0) -> None:
    at.text_input(key="player_name").input(name)
    at.selectbox(key="map_name").select(GAME_MAP)
    at.number_input(key="rounds").set_value(rounds)
    at.number_input(key="timer_s").set_value(timer_s)
    at.button[0].click().run()  # the form's "Start game"


def guess(at: AppTest, lat: float, lon: float) -> None:
    at.session_state["map_guess"] = (lat, lon)
    at.run()


def test_full_game_then_leaderboard(app_env):
    at = AppTest.from_file(MAIN, default_timeout=300).run()
    no_errors(at)
    start(at, "Ana Marija", rounds=5)
    no_errors(at)
    play = at.session_state["play"]
    assert play.game.rounds_total == 5 and len(play.game.opponents) == 2
    assert at.query_params["game"] == play.game_id  # a reload finds the game by this id
    labels = ["Ana Marija", "tiny-beit-linear · transformer", "tiny-resnet-linear · CNN"]
    for number in range(1, 6):
        assert at.metric[0].value == f"{number}/5"
        assert [m.label.rsplit("] ", 1)[-1].replace("\\", "") for m in at.metric[1:]] == labels
        # every view of the place at once, as a strip (croatia-streetview: 4 headings)
        assert [c for i in at.get("image") for c in i.captions] == [f"View {v}" for v in range(1, 5)]
        round_key = play.map_key
        guess(at, 45.123456, 16.654321)
        no_errors(at)
        mine = play.last_result.guesses["person"]
        assert (mine.lat, mine.lon) == (45.123456, 16.654321)  # exactly where the map sent it
        table = next(t for t in tables(at) if "distance (km)" in t)  # the round's table
        assert list(table["player"]) == labels
        assert (table["distance (km)"] >= 0).all() and table["points"].between(0, 5000).all()
        if number < 5:
            at.button(key=f"next-{play.map_key}").click().run()
            assert play.map_key != round_key  # a fresh map (no pin) for the next round
    assert at.header[0].value == "Final score"
    totals = play.game.totals()
    assert any("Saved to the leaderboard" in c.value for c in at.caption)

    board = AppTest.from_string(PAGE_SCRIPT.format(module="page_leaderboard"), default_timeout=120).run()
    no_errors(board)
    best = tables(board)[0]
    assert list(best["player"]) == ["Ana Marija"] and list(best["points"]) == [totals["person"]]
    matchups = tables(board)[1]
    assert set(matchups["model"]) == {"tiny-beit-linear · transformer", "tiny-resnet-linear · CNN"}  # labels
    assert (matchups["games"] == 1).all()

    models = AppTest.from_string(PAGE_SCRIPT.format(module="page_models"), default_timeout=120).run()
    no_errors(models)
    listing = models.dataframe[0].value
    assert set(listing["model"]) >= {"tiny-beit-linear", "tiny-resnet-linear"} or \
        set(listing["model"]) >= {"tiny-beit-linear · transformer", "tiny-resnet-linear · CNN"}
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
    guess(at, 45.0, 16.0)
    no_errors(at)
    assert list(next(t for t in tables(at) if "distance (km)" in t)["player"]) == ["Solo"]


@pytest.mark.parametrize("rounds", [0, 999, -3])
def test_rounds_out_of_range_get_a_message(app_env, rounds):
    at = AppTest.from_file(MAIN, default_timeout=300).run()
    start(at, "Ana", rounds=rounds)
    assert not at.exception
    assert "Rounds must be from 1 to 20" in at.error[0].value
    assert at.session_state["play"].game is None and "game" not in at.query_params


@pytest.mark.parametrize("timer_s", [5, 601])
def test_timer_out_of_range_gets_a_message(app_env, timer_s):
    at = AppTest.from_file(MAIN, default_timeout=300).run()
    start(at, "Ana", rounds=1, timer_s=timer_s)
    assert "round timer must be 10 to 600 seconds" in at.error[0].value
    assert at.session_state["play"].game is None


def test_timer_at_zero_scores_zero_and_models_still_play(app_env):
    at = AppTest.from_file(MAIN, default_timeout=300).run()
    start(at, "Ana", rounds=2, timer_s=10)
    no_errors(at)
    play = at.session_state["play"]
    assert play.timer_s == 10 and 9 < play.remaining_s() <= 10
    play.round_started -= 60  # the person looked away for a minute: the timer ran out
    at.run()
    no_errors(at)
    result = play.last_result
    assert result is not None and result.guesses["person"].points == 0 and result.guesses["person"].timed_out
    assert {"tiny-beit-linear", "tiny-resnet-linear"} <= set(result.guesses)  # the models played
    assert any("Time ran out" in w.value for w in at.warning)


def test_reload_resumes_the_game_from_the_url(app_env):
    at = AppTest.from_file(MAIN, default_timeout=300).run()
    start(at, "Ana", rounds=3)
    guess(at, 45.0, 16.0)
    first = at.session_state["play"]
    at.button[0].click().run()  # Next round
    assert first.game.round_number == 2
    game_id = at.query_params["game"]

    reloaded = AppTest.from_file(MAIN, default_timeout=300)  # a new browser session, same URL
    reloaded.query_params["game"] = game_id
    reloaded.run()
    no_errors(reloaded)
    assert reloaded.session_state["play"] is first  # the same game, kept on the server
    assert reloaded.metric[0].value == "2/3"
    assert reloaded.metric[1].value == f"{first.game.totals()['person']:,}"


def test_unknown_game_in_the_url_says_so(app_env):
    at = AppTest.from_file(MAIN, default_timeout=300)
    at.query_params["game"] = "AAAAAAAAAAAAAAAA"
    at.run()
    assert not at.exception
    assert "no longer available" in at.info[0].value
    assert "game" not in at.query_params
