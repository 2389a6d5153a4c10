"""The game with class challenges and with a failing database (Streamlit AppTest, real pages).

- A teacher creates a challenge on the Challenge page and gets a code and a link; everyone
  who opens ?challenge=CODE plays the same places in the same order; the board ranks each
  name's first game and shows both models, by their readable labels, on the same rounds.
- A finished game the database cannot take is never lost silently: the page says why and
  offers to try again, and the retry saves it once the database is back.
"""
from __future__ import annotations

import random
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app.game import choose_places
from app.maps import load_map
from test_game_support import GAME_MAP, app_environment, game_environment

from table_support import tables
from test_app_play import MAIN, PAGE_SCRIPT


@pytest.fixture
def app_env(shared_data, tmp_path, monkeypatch):
    env = game_environment(shared_data, tmp_path)
    with app_environment(monkeypatch, env):
        yield env


def no_errors(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def page(module: str) -> AppTest:
    return AppTest.from_string(PAGE_SCRIPT.format(module=module), default_timeout=120)


def play_to_the_end(at: AppTest, lat: float = 45.0, lon: float = 16.0) -> list[str]:
    """Guess every round at (lat, lon); the place ids in the order they were played."""
    play = at.session_state["play"]
    played = []
    while True:
        played.append(play.game.current_place.location_id)
        at.session_state["map_guess"] = (lat, lon)  # what the map's Guess button sends
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        if play.game.is_over:
            return played
        at.button(key=f"next-{play.map_key}").click().run()


def create_challenge(rounds: int, seed: str, timer: int = 0) -> tuple[str, str]:
    teacher = page("page_challenge").run()
    no_errors(teacher)
    teacher.selectbox(key="challenge_map").select(GAME_MAP)
    teacher.number_input(key="challenge_rounds").set_value(rounds)
    teacher.number_input(key="challenge_timer").set_value(timer)
    teacher.text_input(key="challenge_seed").input(seed)
    teacher.button[0].click().run()
    no_errors(teacher)
    code = teacher.session_state["challenge_created"]
    link = teacher.code[0].value
    return code, link


def play_challenge(code: str, name: str, lat: float = 45.0) -> tuple[AppTest, list[str]]:
    at = AppTest.from_file(MAIN, default_timeout=300)
    at.query_params["challenge"] = code.lower()  # codes are read aloud and typed: any case works
    at.run()
    no_errors(at)
    assert at.title[0].value == f"Challenge {code}"
    at.text_input(key="player_name").input(name)
    at.button[0].click().run()  # "Start the challenge"
    no_errors(at)
    return at, play_to_the_end(at, lat=lat)


def test_a_class_challenge_end_to_end(app_env):
    code, link = create_challenge(rounds=3, seed="20260101")
    assert len(code) == 6 and link.endswith(f"/?challenge={code}")

    ana, ana_places = play_challenge(code, "Ana", lat=45.0)
    ben, ben_places = play_challenge(code, "Ben", lat=44.0)
    expected = [p.location_id for p in choose_places(load_map(Path(app_env["GEOAI_DATA_DIR"]) / GAME_MAP).places,
                                                     3, random.Random(20260101))]
    assert ana_places == ben_places == expected
    assert any("counts on challenge" in s.value for s in ana.success)
    again, again_places = play_challenge(code, "ANA", lat=43.0)  # the same player, in another case
    assert again_places == expected
    assert any("this game was practice" in i.value for i in again.info)

    board = page("page_challenge")
    board.session_state["board_code"] = code
    board.run()
    no_errors(board)
    table = tables(board)[0]
    people = table[table["rank"] != "model"]
    models = table[table["rank"] == "model"]
    assert set(people["player"]) == {"Ana", "Ben"} and list(people["rank"]) == [1, 2]
    totals = {"Ana": ana.session_state["play"].game.totals(), "Ben": ben.session_state["play"].game.totals()}
    assert dict(zip(people["player"], people["points"])) == {n: t["person"] for n, t in totals.items()}
    # Both models, by the label people read, with the points they scored on these very rounds.
    game = ana.session_state["play"].game
    labels = {o: label for o, label in zip(game.opponents, models["player"])}
    assert len(models) == 2 and all(" · " in label for label in models["player"])
    assert sorted(models["points"]) == sorted(totals["Ana"][o] for o in game.opponents)
    assert not set(labels.values()) & set(game.opponents)  # never the raw bundle names
    assert "1 later games were practice" in board.caption[0].value


def test_an_unknown_challenge_code_says_so_and_offers_a_normal_game(app_env):
    at = AppTest.from_file(MAIN, default_timeout=300)
    at.query_params["challenge"] = "NOPE99"
    at.run()
    assert not at.exception
    assert "no challenge with the code 'NOPE99'" in at.warning[0].value
    assert at.selectbox(key="map_name").value == GAME_MAP  # the normal setup form


@pytest.mark.parametrize("seed, message", [("-1", "whole number"), ("12abc", "whole number"),
                                           ("9" * 30, "whole number")])
def test_a_bad_seed_is_explained(app_env, seed, message):
    teacher = page("page_challenge").run()
    teacher.text_input(key="challenge_seed").input(seed)
    teacher.button[0].click().run()
    assert not teacher.exception
    assert message in teacher.error[0].value and "challenge_created" not in teacher.session_state


def test_a_game_the_database_refuses_is_not_lost_and_can_be_saved_again(app_env, monkeypatch, tmp_path):
    broken = tmp_path / "db-folder"
    broken.mkdir()  # a folder where the database file should be
    monkeypatch.setenv("GEOAI_DATABASE_URL", f"sqlite:///{broken}")
    at = AppTest.from_file(MAIN, default_timeout=300).run()
    at.text_input(key="player_name").input("Ana")
    at.selectbox(key="map_name").select(GAME_MAP)
    at.number_input(key="rounds").set_value(2)
    at.button[0].click().run()
    play_to_the_end(at)
    assert at.header[0].value == "Final score"
    assert any("NOT saved yet" in e.value and "is a folder" in e.value for e in at.error), [e.value for e in at.error]
    retry = at.button(key=f"retry-save-{at.session_state['play'].game_serial}")
    retry.click().run()
    assert any("NOT saved yet" in e.value for e in at.error)  # still broken: still said, still offered

    broken.rmdir()  # the database is back
    at.button(key=f"retry-save-{at.session_state['play'].game_serial}").click().run()
    no_errors(at)
    assert any("Saved to the leaderboard" in c.value for c in at.caption)
    board = page("page_leaderboard").run()
    no_errors(board)
    assert list(tables(board)[0]["player"]) == ["Ana"]


@pytest.mark.parametrize("content", [b"this is not a database" * 100, b"SQLite format 3\x00" + b"\x07" * 5000])
def test_the_leaderboard_explains_a_broken_database(app_env, monkeypatch, tmp_path, content):
    path = tmp_path / "broken.sqlite"
    path.write_bytes(content)
    monkeypatch.setenv("GEOAI_DATABASE_URL", f"sqlite:///{path}")
    board = page("page_leaderboard").run()
    assert not board.exception
    assert "not available" in board.error[0].value and "not a SQLite database" in board.error[0].value


def test_a_timed_challenge_runs_its_clock_and_scores_zero_when_time_is_up(app_env):
    code, _ = create_challenge(rounds=2, seed="7", timer=30)
    at = AppTest.from_file(MAIN, default_timeout=300)
    at.query_params["challenge"] = code
    at.run()
    assert "30 s per round" in at.markdown[0].value
    at.text_input(key="player_name").input("Ana")
    at.button[0].click().run()
    no_errors(at)
    play = at.session_state["play"]
    assert play.timer_s == 30 and 0 < play.remaining_s() <= 30  # the map counts it down
    play.round_started -= 60  # the round's time ran out while the person looked away
    at.run()
    no_errors(at)
    assert play.phase.value == "result" and play.last_result.number == 1
    assert play.last_result.guesses["person"].points == 0  # at 0 the person scores 0
    assert len(play.last_result.guesses) == 3  # the models still played
