import numpy as np
import pandas as pd
import pytest

from geoai.geodesy import haversine_km
from geoai.scoring import MIN_MAP_SIZE_KM, WORLD_SIZE_KM, geoguessr_points, map_size_km


def test_world_points_follow_the_geoguessr_formula():
    assert geoguessr_points(0) == 5000
    assert geoguessr_points(0.025) == 5000          # within 25 m is perfect
    assert geoguessr_points(0.03) == 5000          # rounds to 5000 anyway
    assert geoguessr_points(1491.6862) == round(5000 * np.exp(-1))
    assert geoguessr_points(20000) == 0
    np.testing.assert_array_equal(geoguessr_points([0, 100, 1000]), [5000, round(5000 * np.exp(-100 / 1491.6862)),
                                                                     round(5000 * np.exp(-1000 / 1491.6862))])


def test_points_scale_with_the_map_size():
    # the same 50 km error is worth far less on a country map than on the world map
    assert geoguessr_points(50, map_size_km=500) == round(5000 * np.exp(-1))
    assert geoguessr_points(50, map_size_km=500) < geoguessr_points(50)


def test_points_reject_nonsense():
    with pytest.raises(ValueError):
        geoguessr_points(-1)
    with pytest.raises(ValueError):
        geoguessr_points(10, map_size_km=0)


def test_map_size_is_the_largest_distance_between_places(shared_data):
    df = pd.read_csv(shared_data / "croatia-streetview" / "metadata.csv")
    coords = df[["lat", "lon"]].drop_duplicates().to_numpy()
    brute = max(haversine_km(a[0], a[1], coords[:, 0], coords[:, 1]).max() for a in coords)
    assert map_size_km(df.lat, df.lon) == pytest.approx(brute, rel=1e-6)
    assert 200 < brute < 800  # Croatia-sized


def test_map_size_of_the_study_area_and_the_world(shared_data):
    df = pd.read_csv(shared_data / "seed-europe-locations" / "annotations_glued.csv")
    d = map_size_km(df.lat, df.lon)
    assert 2500 < d < 4500  # 15 European countries
    world = pd.read_csv(shared_data / "im2gps3k" / "metadata.csv")
    assert map_size_km(world.lat, world.lon) == WORLD_SIZE_KM  # capped at the world map's size


def test_map_size_of_a_single_place_is_floored():
    assert map_size_km([45.0, 45.0], [15.0, 15.0]) == MIN_MAP_SIZE_KM
