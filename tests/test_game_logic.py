"""Game logic without Streamlit: scoring, rounds, winners, maps from the test split,
opponent choice and the offline borders (the session and map specs: test_play_session.py)."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from geopy.distance import great_circle

from app.borders import BORDERS_FILE, borders_json, load_borders, topojson_to_geojson
from app.game import Game, GameError, Place, choose_places, distance_km, score_guess
from app.maps import load_map, places_of
from app.players import OpponentError, OpponentInfo, choose_opponents, read_opponent
from db.models import PERSON
from geoai.data import load_image_folder
from geoai.scoring import WORLD_SIZE_KM, geoguessr_points

ZAGREB = (45.815, 15.982)
SPLIT = (43.508, 16.440)
PLACES = [Place(f"p{i}", 45.0 + i * 0.1, 15.0 + i * 0.1, (f"/x/p{i}_0.jpg", f"/x/p{i}_90.jpg")) for i in range(8)]


def make_game(opponents=("beit", "resnet"), rounds=3, size=500.0) -> Game:
    return Game(player_name="Ana", map_name="test-map", map_size_km=size, places=PLACES[:rounds],
                opponents=tuple(opponents))


# -- scoring -------------------------------------------------------------------------------
def test_distance_is_geopy_great_circle():
    assert distance_km(ZAGREB, SPLIT) == pytest.approx(great_circle(ZAGREB, SPLIT).km, rel=1e-12)
    assert 255 < distance_km(ZAGREB, SPLIT) < 265


def test_score_uses_map_size():
    exact = score_guess(PERSON, ZAGREB, ZAGREB, 500.0)
    assert exact.points == 5000 and exact.distance_km == 0
    country = score_guess(PERSON, SPLIT, ZAGREB, 500.0)
    world = score_guess(PERSON, SPLIT, ZAGREB, WORLD_SIZE_KM)
    assert country.points == geoguessr_points(country.distance_km, 500.0)
    # 260 km off is poor on a 500 km map and good on the world map.
    assert country.points < 100 < 4000 < world.points


def test_invalid_guess_is_a_game_error():
    with pytest.raises(GameError, match="not a valid"):
        score_guess(PERSON, (95.0, 0.0), ZAGREB, 500.0)
    with pytest.raises(GameError, match="not a valid"):
        score_guess(PERSON, "north", ZAGREB, 500.0)


# -- a game --------------------------------------------------------------------------------
def test_full_game_rounds_totals_and_winner():
    game = make_game()
    assert (game.round_number, game.rounds_total, game.is_over) == (1, 3, False)
    for place in PLACES[:3]:
        truth = (place.lat, place.lon)
        game.play_round(truth, {"beit": (truth[0] + 0.5, truth[1]), "resnet": (truth[0] + 1.0, truth[1])})
    assert game.is_over and game.round_number == 4
    totals = game.totals()
    assert list(totals) == [PERSON, "beit", "resnet"]
    assert totals[PERSON] == 15000 and totals[PERSON] > totals["beit"] > totals["resnet"]
    assert game.winners() == [PERSON] and game.winner_text() == "Ana"
    with pytest.raises(GameError, match="over"):
        game.play_round(ZAGREB, {"beit": ZAGREB, "resnet": ZAGREB})


def test_tie_and_model_win():
    game = make_game(opponents=("beit",), rounds=1)
    place = PLACES[0]
    game.play_round((place.lat, place.lon), {"beit": (place.lat, place.lon)})
    assert game.winners() == [PERSON, "beit"] and game.winner_text() == "tie: Ana, beit"
    assert game.to_record().person_won is False
    game = make_game(opponents=("beit",), rounds=1)
    game.play_round((place.lat + 2, place.lon), {"beit": (place.lat, place.lon)})
    assert game.winners() == ["beit"]


def test_round_needs_every_model_guess():
    game = make_game()
    with pytest.raises(GameError, match="missing"):
        game.play_round(ZAGREB, {"beit": ZAGREB})
    with pytest.raises(GameError, match="unexpected"):
        game.play_round(ZAGREB, {"beit": ZAGREB, "resnet": ZAGREB, "other": ZAGREB})
    assert game.round_number == 1  # nothing recorded


def test_record_of_finished_game():
    game = make_game(rounds=2)
    with pytest.raises(GameError, match="finished"):
        game.to_record()
    for place in PLACES[:2]:
        game.play_round(ZAGREB, {"beit": SPLIT, "resnet": (place.lat, place.lon)})
    record = game.to_record()
    assert record.player_name == "Ana" and record.map_name == "test-map" and len(record.rounds) == 2
    first = record.rounds[0]
    assert first.image == "p0_0.jpg" and [g.who for g in first.guesses] == [PERSON, "beit", "resnet"]
    assert record.winner == "resnet"


def test_choose_places_distinct_and_bounded():
    chosen = choose_places(PLACES, 5, random.Random(1))
    assert len(chosen) == 5 and len({p.location_id for p in chosen}) == 5
    assert len(choose_places(PLACES[:2], 5)) == 2
    with pytest.raises(GameError, match="1 to"):
        choose_places(PLACES, 0)


# -- maps -------------------------------------------------------------------------------------
def test_map_rounds_come_from_test_split_only(shared_data):
    game_map = load_map(shared_data / "croatia-streetview")
    dataset = load_image_folder(shared_data / "croatia-streetview", check_images="none")
    not_test = set(dataset.frame.loc[dataset.frame["split"] != "test", "path"])
    played = {p for place in game_map.places for p in place.image_paths}
    assert played and not (played & not_test)
    assert game_map.multi_view and all(len(p.image_paths) == 4 for p in game_map.places)
    first = game_map.places[0].image_paths
    assert [Path(p).stem.rsplit("_", 1)[1] for p in first] == ["0", "90", "180", "270"]
    assert 300 < game_map.size_km < 600  # Croatia, whole dataset


def test_group_spanning_several_positions_becomes_several_places(tmp_path):
    from fixtures_data import write_jpeg

    for i in range(3):
        write_jpeg(tmp_path / f"images/{i}.jpg")
    (tmp_path / "metadata.csv").write_text(
        "file_name,lat,lon,location_id\nimages/0.jpg,10,20,author\nimages/1.jpg,10,20,author\n"
        "images/2.jpg,-5,30,author\n")
    dataset = load_image_folder(tmp_path)
    places = places_of(dataset)
    assert sorted(len(p.image_paths) for p in places) == [1, 2]
    assert len({p.location_id for p in places}) == 2


# -- opponents -----------------------------------------------------------------------------
def info(name, family, dataset, mean_km):
    return OpponentInfo(name=name, path=Path(name), backbone=name, family=family, head="linear",
                        fusion="mean", dataset=dataset, metrics={"test": {"mean_km": mean_km}})


def test_choose_one_opponent_per_family_preferring_the_map():
    infos = [info("beit-other", "transformer", "other", 10.0), info("beit-here", "transformer", "here", 90.0),
             info("beit-here-best", "transformer", "here", 50.0), info("resnet-other", "cnn", "other", 70.0)]
    chosen = choose_opponents(infos, "here")
    assert [i.name for i in chosen] == ["beit-here-best", "resnet-other"]
    assert choose_opponents([], "here") == []


def test_unreadable_bundle_is_reported(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(OpponentError, match="not a readable model bundle"):
        read_opponent(tmp_path)


# -- borders and map specs -------------------------------------------------------------------
def test_offline_borders_file_is_small_and_has_countries():
    assert BORDERS_FILE.stat().st_size < 1_000_000
    names = {f["properties"]["name"] for f in load_borders()["features"]}
    assert {"Croatia", "France", "Brazil", "Australia"} <= names
    region = json.loads(borders_json((42.0, 13.0, 47.0, 20.0)))
    region_names = {f["properties"]["name"] for f in region["features"]}
    assert "Croatia" in region_names and "Brazil" not in region_names


def test_topojson_decoding():
    topology = {"type": "Topology", "transform": {"scale": [1, 1], "translate": [10, 20]},
                "arcs": [[[0, 0], [2, 0], [0, 2], [-2, 0], [0, -2]]],
                "objects": {"countries": {"type": "GeometryCollection", "geometries": [
                    {"type": "Polygon", "arcs": [[0]], "properties": {"name": "Square"}}]}}}
    feature = topojson_to_geojson(topology, tolerance_deg=0)["features"][0]
    assert feature["properties"]["name"] == "Square"
    assert feature["geometry"]["coordinates"] == [[[10, 20], [12, 20], [12, 22], [10, 22], [10, 20]]]
