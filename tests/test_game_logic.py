"""Game logic without Streamlit: scoring, rounds, winners, the session state machine,
the pickable grid, maps from the test split, opponent choice and the offline borders."""
from __future__ import annotations

import json
import random
from pathlib import Path

import h3
import numpy as np
import pytest
from geopy.distance import great_circle

from app.borders import BORDERS_FILE, borders_json, load_borders, topojson_to_geojson
from app.game import Game, GameError, Place, choose_places, distance_km, score_guess
from app.maps import load_map, places_of
from app.pickgrid import PickError, build_pick_grid
from app.players import OpponentError, OpponentInfo, choose_opponents, read_opponent
from app.session import Phase, PlaySession
from app.views import GRID_LAYER, NO_BASEMAP, Marker, play_deck, result_deck
from db.models import PERSON
from db.names import InvalidPlayerName
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


# -- the session state machine -------------------------------------------------------------
@pytest.fixture(scope="module")
def croatia_grid():
    return build_pick_grid(42.8, 13.75, 46.44, 19.12, 421.0)


def test_session_click_guess_result_finish(croatia_grid):
    play = PlaySession(problem_of=lambda place: None)  # made-up paths: no photo to check
    play.start("  Ana ", "test-map", 421.0, PLACES, croatia_grid, ["beit"], rounds=2, rng=random.Random(0))
    assert play.phase is Phase.GUESSING and play.game.player_name == "Ana"
    with pytest.raises(GameError, match="click the map"):
        play.confirm(lambda place: {"beit": (place.lat, place.lon)})
    cell = h3.latlng_to_cell(45.5, 16.0, croatia_grid.resolution)
    lat, lon = play.pick(cell)
    assert great_circle((lat, lon), (45.5, 16.0)).km <= croatia_grid.max_error_km
    fine = play.refine_cells()[0]
    play.pick(fine, "refine")  # a click on the finer patch moves the guess, keeps the patch
    assert play.guess == croatia_grid.position_of(fine) and play.refine_cells()[0] == fine
    first_key = play.map_key
    result = play.confirm(lambda place: {"beit": (place.lat, place.lon)})
    assert play.phase is Phase.RESULT and result.guesses["beit"].points == 5000
    play.next_round()
    assert play.guess is None and play.map_key != first_key
    play.pick(cell)
    play.confirm(lambda place: {"beit": (place.lat, place.lon)})
    assert play.phase is Phase.FINISHED
    saved = []
    assert play.save(lambda record: saved.append(record) or 7) == 7
    assert play.save(lambda record: saved.append(record) or 8) == 7  # saved once only
    assert len(saved) == 1 and saved[0].winner == "beit"


def test_session_rejects_bad_names(croatia_grid):
    with pytest.raises(InvalidPlayerName):
        PlaySession().start("<script>", "m", 421.0, PLACES, croatia_grid, [])


# -- the pickable grid ---------------------------------------------------------------------
def test_country_grid_error_within_one_percent(croatia_grid):
    assert croatia_grid.max_error_km <= 0.01 * 421.0
    rng = np.random.default_rng(0)
    for lat, lon in zip(rng.uniform(42.8, 46.44, 200), rng.uniform(13.75, 19.12, 200)):
        picked = croatia_grid.position_of(croatia_grid.cell_of(lat, lon))
        assert great_circle(picked, (lat, lon)).km <= croatia_grid.max_error_km + 1e-6
    assert len(croatia_grid.cells) < 20_000


@pytest.fixture(scope="module")
def world_grid():
    return build_pick_grid(-40, -120, 65, 175, WORLD_SIZE_KM)


def test_world_grid_under_150_km(world_grid):
    grid = world_grid
    assert grid.world and grid.max_error_km < 150
    assert len(json.loads(grid.data_json)) == len(grid.cells) == h3.get_num_cells(grid.resolution)
    for lat, lon in [(89.9, 0.0), (-89.9, 179.9), (0.0, -180.0), (45.8, 15.98)]:
        assert great_circle(grid.position_of(grid.cell_of(lat, lon)), (lat, lon)).km < 150


def test_grid_rejects_foreign_cells(croatia_grid):
    with pytest.raises(PickError):
        croatia_grid.position_of("not-a-cell")
    with pytest.raises(PickError, match="outside"):
        croatia_grid.position_of(h3.latlng_to_cell(-33.9, 151.2, croatia_grid.resolution))
    with pytest.raises(PickError, match="resolution"):
        croatia_grid.position_of(h3.latlng_to_cell(45.5, 16.0, 0))


def test_refine_patch_is_finer_and_around_the_guess(croatia_grid):
    cells = croatia_grid.refine_cells(45.5, 16.0)
    assert {h3.get_resolution(c) for c in cells} == {croatia_grid.resolution + 2}
    worst = max(great_circle(h3.cell_to_latlng(c), (45.5, 16.0)).km for c in cells)
    assert worst < 6 * croatia_grid.max_error_km


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


def test_play_deck_has_pickable_grid_and_no_online_basemap(croatia_grid):
    from app.maps import Bounds

    bounds = Bounds(42.8, 13.75, 46.44, 19.12)
    deck = play_deck(bounds, croatia_grid, borders_json((42.0, 13.0, 47.0, 20.0)),
                     guess=Marker("you", 45.5, 16.0, (0, 0, 255, 255)), refine_cells=["8a1e"])
    spec = json.loads(deck.to_json())
    layers = {layer["id"]: layer for layer in spec["layers"]}
    assert layers[GRID_LAYER]["pickable"] and layers[GRID_LAYER]["data"] == list(croatia_grid.cells)
    assert not layers["borders"]["pickable"] and layers["borders"]["data"]["type"] == "FeatureCollection"
    assert spec["mapStyle"] == NO_BASEMAP
    assert 42.8 < spec["initialViewState"]["latitude"] < 46.44
    # Rings crossing the antimeridian (Russia, Fiji) must be cut there, not drawn across the map.
    assert layers["borders"]["wrapLongitude"] is True
    result = json.loads(result_deck(bounds, False, "{}", Marker("truth", 45, 16, (0, 255, 0, 255)),
                                    [Marker("Ana", 44, 15, (0, 0, 255, 255))]).to_json())
    lines = [layer for layer in result["layers"] if layer["id"] == "lines"][0]
    assert lines["data"] == [{"a": [15, 44], "b": [16, 45], "c": [0, 0, 255, 255]}]


def test_world_map_draws_every_cell_exactly(world_grid, croatia_grid):
    """deck.gl's fast path draws all cells with one shape: across the world that leaves gaps
    where a click picks nothing, so world grids need each cell's true outline."""
    from app.maps import Bounds

    def grid_layer(grid, bounds):
        spec = json.loads(play_deck(bounds, grid, "{}").to_json())
        return [layer for layer in spec["layers"] if layer["id"] == GRID_LAYER][0]

    assert grid_layer(world_grid, Bounds(-40, -120, 65, 175))["highPrecision"] is True
    assert grid_layer(croatia_grid, Bounds(42.8, 13.75, 46.44, 19.12))["highPrecision"] is False
