"""A model plays a map only where it saw training photos: a single-country model never plays a
world map, a model trained on the world datasets plays every world map."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.maps import load_map
from app.players import OpponentInfo, choose_opponents, opponent_verdict, read_opponent
from geoai.data import load_image_folder

CROATIA = "croatia-streetview"
WORLD_MAPS = ("streetview-world-tiles", "im2gps3k", "osv5m-mapillary", "commons-cities")


def training_places(shared_data: Path, names) -> list[list[float]]:
    frames = [load_image_folder(shared_data / n, check_images="none").frame for n in names]
    points = np.concatenate([f.loc[f["split"] == "train", ["lat", "lon"]].to_numpy() for f in frames])
    return np.unique(points.round(3), axis=0).tolist()


def opponent(name, family, dataset, coverage, members=(), test_km=100.0, per_map=None) -> OpponentInfo:
    metrics = {"test": {"mean_km": test_km}, "datasets": per_map or {}}
    return OpponentInfo(name=name, path=Path(name), backbone=name, family=family, head="geocell", fusion="none",
                        dataset=dataset, metrics=metrics, datasets=tuple(members), coverage=tuple(map(tuple, coverage)))


@pytest.fixture(scope="module")
def players(shared_data):
    croatia = training_places(shared_data, [CROATIA])
    world = training_places(shared_data, WORLD_MAPS)
    # The Croatia pair scores better in km than any world model could: coverage, not score, must exclude it.
    return [opponent("croatia-dino", "transformer", CROATIA, croatia, test_km=80.0),
            opponent("croatia-mobile", "cnn", CROATIA, croatia, test_km=80.0),
            opponent("world-dino", "transformer", "world", world, WORLD_MAPS, test_km=3000.0),
            opponent("world-mobile", "cnn", "world", world, WORLD_MAPS, test_km=3000.0)]


@pytest.mark.parametrize("map_name", WORLD_MAPS)
def test_the_world_pair_plays_every_world_map_and_no_croatia_model_does(players, shared_data, map_name):
    places = load_map(shared_data / map_name).places
    chosen = choose_opponents(players, map_name, places)
    assert sorted(i.name for i in chosen) == ["world-dino", "world-mobile"]
    why = opponent_verdict(players[0], map_name, places)
    assert not why.plays and "needs 80%" in why.why


def test_on_croatia_the_croatia_pair_is_preferred_though_the_world_covers_it(players, shared_data):
    places = load_map(shared_data / CROATIA).places
    assert opponent_verdict(players[2], CROATIA, places).plays
    assert sorted(i.name for i in choose_opponents(players, CROATIA, places)) == ["croatia-dino", "croatia-mobile"]


def test_among_covering_models_the_better_one_on_this_map_plays(players, shared_data):
    places = load_map(shared_data / "im2gps3k").places
    world = players[2].coverage
    better = opponent("world-dino-2", "transformer", "world2", world, WORLD_MAPS, test_km=5000.0,
                      per_map={"im2gps3k": {"test": {"mean_km": 10.0}}})
    chosen = choose_opponents([*players, better], "im2gps3k", places)
    assert "world-dino-2" in {i.name for i in chosen}


def test_a_bundle_without_coverage_plays_only_its_own_map(tmp_path, shared_data):
    bundle = tmp_path / "old"
    bundle.mkdir()
    (bundle / "config.json").write_text('{"backbone": {"name": "b"}, "head": {"type": "nearest-neighbour"}, '
                                        '"dataset": {"name": "croatia-streetview"}}')
    info = read_opponent(bundle)
    assert not opponent_verdict(info, "im2gps3k", load_map(shared_data / "im2gps3k").places).plays
    assert opponent_verdict(info, CROATIA, load_map(shared_data / CROATIA).places).plays


def test_an_older_bundle_is_placed_by_its_head(tmp_path, shared_data):
    bundle = tmp_path / "old-linear"
    bundle.mkdir()
    (bundle / "config.json").write_text('{"backbone": {"name": "b"}, "head": {"type": "linear-haversine", '
                                        '"coord_mean": [45.2, 16.1]}, "dataset": {"name": "croatia-streetview"}}')
    info = read_opponent(bundle)
    assert not opponent_verdict(info, "im2gps3k", load_map(shared_data / "im2gps3k").places).plays
    assert opponent_verdict(info, "other-croatian-map", load_map(shared_data / CROATIA).places).plays
