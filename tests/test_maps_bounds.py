"""Map framing across the antimeridian and the poles, and the map's size, on generated places."""
from __future__ import annotations

import numpy as np
import pytest

from app.maps import Bounds
from geoai.geodesy import haversine_km
from geoai.scoring import MIN_MAP_SIZE_KM, WORLD_SIZE_KM, map_size_km


def _wrap(lon):
    return (np.asarray(lon) + 180.0) % 360.0 - 180.0


@pytest.mark.parametrize("centre_lon", [-180.0, -179.5, 0.0, 45.0, 179.7, 180.0])
@pytest.mark.parametrize("width", [0.0, 0.01, 1.1, 30.0, 170.0])
def test_bounds_hold_every_place_in_the_smallest_interval(centre_lon, width):
    rng = np.random.default_rng(int(width * 100 + centre_lon + 1000))
    lons = _wrap(centre_lon + rng.uniform(-width / 2, width / 2, 30))
    lats = rng.uniform(-18, -16, 30)
    bounds = Bounds.of(lats, lons)
    assert not bounds.world
    assert bounds.lon_span <= width + 1e-9
    assert all(bounds.contains(a, o) for a, o in zip(lats, lons))
    view = bounds.view()
    assert abs(_wrap(view.longitude - centre_lon)) <= width / 2 + 1e-9
    assert view.zoom >= 1.5 or width > 90  # a regional map is never framed as the whole world


def test_places_around_fiji_make_a_small_map():
    rng = np.random.default_rng(0)
    lons = _wrap(rng.uniform(179.45, 180.55, 30))
    bounds = Bounds.of(rng.uniform(-17.3, -16.7, 30), lons)
    assert bounds.wraps and bounds.lon_span < 1.2 and bounds.view().zoom > 6


@pytest.mark.parametrize("seed", range(6))
def test_map_size_is_the_farthest_pair(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    centre_lat, centre_lon, spread = rng.uniform(-90, 90), rng.uniform(-180, 180), rng.choice([0.001, 1, 20, 200])
    lats = np.clip(centre_lat + rng.normal(0, spread, n), -90, 90)
    lons = _wrap(centre_lon + rng.normal(0, spread, n))
    brute = haversine_km(lats[:, None], lons[:, None], lats[None], lons[None]).max()
    expected = min(max(brute, MIN_MAP_SIZE_KM), WORLD_SIZE_KM)
    assert map_size_km(lats, lons) == pytest.approx(expected, rel=1e-6)
