"""One bad photo or one failing model never blocks a game: the round is replaced (or the
game is shorter), the model leaves, each with a logged reason and a short note without
server paths, and the game always finishes and is saved."""
from __future__ import annotations

import logging
import random
from pathlib import Path

import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from app.game import GameError, Place, place_problem
from app.players import OpponentError
from app.session import Phase, PlaySession
from fixtures_data import jpeg_bytes, write_bomb_png, write_jpeg, write_truncated_jpeg
from test_game_support import game_environment

REPO = Path(__file__).resolve().parents[1]
MODELS = ("beit", "resnet")


def _bad_photo(kind: str, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "truncated":
        return write_truncated_jpeg(path)
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "not-an-image":
        path.write_bytes(b"<html>not a photo</html>")
    elif kind == "bomb":
        return write_bomb_png(path.with_suffix(".png"))
    elif kind == "cut-header":
        path.write_bytes(jpeg_bytes((64, 48), seed=3)[:40])
    elif kind == "missing":
        pass
    return path


BAD_KINDS = ["truncated", "empty", "not-an-image", "bomb", "cut-header", "missing"]


def make_places(root: Path, count: int, bad: dict[int, str], views: int = 2) -> list[Place]:
    """`count` places with generated views; place i has one bad view of kind bad[i]."""
    places = []
    for i in range(count):
        paths = [str(write_jpeg(root / f"p{i}" / f"{v}.jpg", seed=i * 10 + v)) for v in range(views)]
        if i in bad:
            paths[-1] = str(_bad_photo(bad[i], root / f"p{i}" / "bad.jpg"))
        places.append(Place(f"p{i}", 45.0 + i * 0.01, 15.0 + i * 0.01, tuple(paths)))
    return places


def play_through(play: PlaySession, predict, max_rounds: int = 30) -> int:
    """Guess every round to the end; the number of rounds played."""
    played = 0
    while play.phase is not Phase.FINISHED:
        assert played < max_rounds
        if play.phase is Phase.RESULT:
            play.next_round()
            continue
        place = play.game.current_place
        assert place_problem(place) is None  # never asked to guess on a photo that fails
        play.confirm((place.lat, place.lon), predict)
        played += 1
    return played


def truthful(place: Place) -> dict:
    return {m: (place.lat, place.lon) for m in MODELS}


@pytest.mark.parametrize("kind", BAD_KINDS)
@pytest.mark.parametrize("bad_rounds", [(2,), (2, 3), (3, 5), (2, 3, 4, 5)])
def test_bad_photos_are_replaced_from_the_map(tmp_path, caplog, kind, bad_rounds):
    places = make_places(tmp_path, 15, {})
    caplog.set_level(logging.WARNING, logger="geoai.app")
    play = PlaySession()
    play.start("Ana", "map", 421.0, places, MODELS, rounds=5, rng=random.Random(7))
    bad_ids = set()
    for number in bad_rounds:  # those rounds' photos get damaged on disk while the game runs
        place = play.game.places[number - 1]
        bad_ids.add(place.location_id)
        target = Path(place.image_paths[-1])
        target.unlink()
        _bad_photo(kind, target) if kind != "bomb" else write_bomb_png(target)
    rounds = play_through(play, truthful)
    game = play.game
    assert rounds == game.rounds_total == 5  # a replacement for every damaged place
    assert {p.location_id for p in game.skipped} == bad_ids
    assert not bad_ids & {r.place.location_id for r in game.results}
    notes = [(n.round_number, n.text) for n in game.notes]
    assert [n for n, _ in notes] == list(bad_rounds)
    assert all("could not be read" in text for _, text in notes)
    assert not any(str(tmp_path) in text or "/" in text for _, text in notes)  # no server path
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert all(f"skipping place {i}" in logged for i in bad_ids)
    saved = []
    assert play.save(lambda record: saved.append(record) or 1) == 1
    assert len(saved[0].rounds) == 5


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_a_game_starts_on_the_one_readable_place(tmp_path, kind):
    places = make_places(tmp_path, 15, {i: kind for i in range(15) if i != 11})
    play = PlaySession()
    play.start("Ana", "map", 421.0, places, MODELS, rounds=1, rng=random.Random(3))
    assert play.game.current_place.location_id == "p11"
    assert play_through(play, truthful) == 1 and play.game.to_record().rounds[0].location_id == "p11"


@pytest.mark.parametrize("kind", BAD_KINDS)
@pytest.mark.parametrize("bad_round", [0, 2, 4])
def test_without_replacement_the_game_is_shorter(tmp_path, kind, bad_round):
    places = make_places(tmp_path, 5, {bad_round: kind})
    play = PlaySession()
    play.start("Ana", "map", 421.0, places, MODELS, rounds=5, rng=random.Random(0))
    play.game.pool = ()  # the map holds nothing else
    play.game.places[:] = places
    play.game.skip_unplayable()
    assert play_through(play, truthful) == 4
    assert play.game.rounds_total == 4 and play.phase is Phase.FINISHED
    assert "this game has 4 rounds" in play.game.notes[0].text
    record = play.game.to_record()
    assert [r.number for r in record.rounds] == [1, 2, 3, 4]
    assert f"p{bad_round}" not in {r.location_id for r in record.rounds}


@pytest.mark.parametrize("kind", ["truncated", "missing"])
def test_a_map_with_no_readable_photo_is_one_clear_error(tmp_path, kind):
    places = make_places(tmp_path, 6, {i: kind for i in range(6)})
    with pytest.raises(GameError, match="none of the photos") as info:
        PlaySession().start("Ana", "map", 421.0, places, MODELS, rounds=3)
    assert str(tmp_path) not in str(info.value)


@pytest.mark.parametrize("failing", [("beit",), ("resnet",), ("beit", "resnet")])
@pytest.mark.parametrize("from_round", [1, 3, 5])
def test_a_failing_model_leaves_and_the_game_goes_on(tmp_path, failing, from_round):
    places = make_places(tmp_path, 8, {})
    asked: list[tuple[int, str]] = []
    play = PlaySession()
    play.start("Ana", "map", 421.0, places, MODELS, rounds=5, rng=random.Random(2))

    def predict(place):
        number = play.game.round_number
        answers = {}
        for model in play.game.opponents:
            asked.append((number, model))
            if model in failing and number >= from_round:
                answers[model] = OpponentError(f"model {model} cannot guess this place: CUDA error at /srv/x")
            else:
                answers[model] = (place.lat + 1.0, place.lon)  # 111 km off
        return answers

    assert play_through(play, predict) == 5
    game = play.game
    assert set(game.dropped) == set(failing) and set(game.opponents) == set(MODELS) - set(failing)
    assert not [a for a in asked if a[1] in failing and a[0] > from_round]  # never asked again
    assert set(game.totals()) == {"person", *game.opponents}
    assert game.winners() == ["person"]  # the person guessed the truth
    notes = [n for n in game.notes if n.kind == "model"]
    assert [n.round_number for n in notes] == [from_round] * len(failing)
    assert all("/" not in n.text and "out of this game" in n.text for n in notes)
    record = game.to_record()
    for r in record.rounds:
        who = {g.who for g in r.guesses}
        assert who == {"person", *MODELS} if r.number < from_round else who == {"person", *game.opponents}
    assert record.person_won


def test_place_problem_names_the_file_for_the_log(tmp_path):
    [place] = make_places(tmp_path, 1, {0: "truncated"})
    reason = place_problem(place)
    assert reason and "bad.jpg" in reason
    assert place_problem(make_places(tmp_path / "ok", 1, {})[0]) is None


# ---------------------------------------------------------------- the real pages

def write_broken_map(root: Path, places: int = 40) -> Path:
    """A generated map whose places alternate good and truncated photos."""
    rows = []
    for i in range(places):
        name = f"images/{i:03d}.jpg"
        if i % 2:
            write_truncated_jpeg(root / name)
        else:
            write_jpeg(root / name, (96, 64), seed=i)
        rows.append({"file_name": name, "lat": 43.0 + (i % 8) * 0.45, "lon": 14.0 + (i % 6) * 0.9,
                     "location_id": f"place-{i:03d}"})
    pd.DataFrame(rows).to_csv(root / "metadata.csv", index=False)
    return root


@pytest.fixture
def broken_map_env(shared_data, tmp_path, monkeypatch):
    env = game_environment(shared_data, tmp_path)
    write_broken_map(Path(env["GEOAI_DATA_DIR"]) / "broken-photos")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    st.cache_resource.clear()
    st.cache_data.clear()
    yield tmp_path
    st.cache_resource.clear()
    st.cache_data.clear()


def test_a_game_on_a_map_with_broken_photos_and_a_failing_model_finishes(broken_map_env, monkeypatch, caplog):
    from geoai.models import Bundle

    caplog.set_level(logging.WARNING, logger="geoai.app")
    original = Bundle.predict_place_embeddings
    broken = {"now": False}

    def predict_place_embeddings(self, embeddings, *args, **kwargs):  # the CNN breaks after round 1
        if "resnet" in self.name and broken["now"]:
            raise RuntimeError("out of memory in a convolution")
        return original(self, embeddings, *args, **kwargs)

    monkeypatch.setattr(Bundle, "predict_place_embeddings", predict_place_embeddings)
    at = AppTest.from_file(str(REPO / "app" / "main.py"), default_timeout=300).run()
    at.text_input(key="player_name").input("Ana")
    at.selectbox(key="map_name").select("broken-photos")
    at.number_input(key="rounds").set_value(4)
    at.button[0].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    play = at.session_state["play"]
    seen_notes = []
    for number in range(1, 5):
        place = play.game.current_place
        assert place_problem(place) is None
        seen_notes += [i.value for i in at.info]
        at.session_state["map_guess"] = (45.2, 15.4)  # what the map's Guess button sends
        at.run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        seen_notes += [i.value for i in at.info]
        if number < 4:
            broken["now"] = True
            at.button(key=f"next-{play.map_key}").click().run()
    assert at.header[0].value == "Final score"
    assert any("Saved to the leaderboard" in c.value for c in at.caption)
    assert "tiny-resnet-linear" in play.game.dropped and play.game.opponents == ("tiny-beit-linear",)
    assert [len(r.guesses) for r in play.game.results] == [3, 2, 2, 2]
    assert any("tiny-resnet-linear could not guess" in n for n in seen_notes)
    page_text = " ".join(str(e.value) for kind in ("info", "caption", "warning", "markdown") for e in getattr(at, kind))
    assert str(broken_map_env) not in page_text  # no server path on the page
    logged = " ".join(r.getMessage() for r in caplog.records)
    skipped = [p.location_id for p in play.game.skipped]
    assert all(f"skipping place {s}" in logged for s in skipped)
    assert all(int(s.split("-")[1]) % 2 for s in skipped)  # only the broken ones were skipped
