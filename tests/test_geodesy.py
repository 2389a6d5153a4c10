import math

import numpy as np
import pytest
import torch
from geopy.distance import great_circle

from geoai.geodesy import (
    EARTH_RADIUS_KM,
    equirectangular_km,
    haversine_km,
    is_valid_position,
    pairwise_haversine_km,
    spherical_mean,
    validate_coordinates,
)


def random_points(n, seed=0):
    rng = np.random.default_rng(seed)
    # uniform on the sphere, so poles and antipodes are covered too
    lat = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    lon = rng.uniform(-180, 180, n)
    return lat, lon


EDGE_CASES = [
    ((0, 0), (0, 0)),              # zero distance
    ((90, 0), (90, 123)),          # same pole, different longitudes
    ((90, 0), (-90, 0)),           # pole to pole
    ((0, 0), (0, 180)),            # exact antipodes on the equator
    ((10, 20), (-10, -160)),       # exact antipodes elsewhere
    ((0, 179.9), (0, -179.9)),     # across the antimeridian
    ((45, 180), (45, -180)),       # the same meridian written twice
    ((89.9999, 0), (89.9999, 180)),
    ((45.0, 15.0), (45.0, 15.0000001)),  # ~1 cm
]


def test_haversine_matches_geopy_on_random_points():
    lat1, lon1 = random_points(2000, 1)
    lat2, lon2 = random_points(2000, 2)
    ours = haversine_km(lat1, lon1, lat2, lon2)
    ref = np.array([great_circle((a, b), (c, d)).km for a, b, c, d in zip(lat1, lon1, lat2, lon2)])
    np.testing.assert_allclose(ours, ref, rtol=1e-6)


@pytest.mark.parametrize("p,q", EDGE_CASES)
def test_haversine_edge_cases_match_geopy(p, q):
    ref = great_circle(p, q).km
    ours = float(haversine_km(p[0], p[1], q[0], q[1]))
    assert ours == pytest.approx(ref, rel=1e-6, abs=1e-9)


def test_numpy_distance_between_equal_points_is_exactly_zero():
    assert float(haversine_km(45.0, 15.0, 45.0, 15.0)) == 0.0
    assert float(equirectangular_km(45.0, 15.0, 45.0, 15.0)) == 0.0


def test_antipodes_are_half_the_circumference():
    # float64 rounding of the haversine term leaves ~1e-8 relative error at exact antipodes
    assert float(haversine_km(10, 20, -10, -160)) == pytest.approx(math.pi * EARTH_RADIUS_KM, rel=1e-7)


def test_torch_matches_numpy_and_broadcasts():
    lat1, lon1 = random_points(64, 3)
    lat2, lon2 = random_points(64, 4)
    ref = haversine_km(lat1, lon1, lat2, lon2)
    t = haversine_km(*(torch.tensor(v) for v in (lat1, lon1, lat2, lon2)))
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float64
    np.testing.assert_allclose(t.numpy(), ref, rtol=1e-12)
    # a scalar against a batch
    b = haversine_km(torch.tensor(lat1), torch.tensor(lon1), 0.0, 0.0)
    assert b.shape == (64,)


@pytest.mark.parametrize("fn", [haversine_km, equirectangular_km])
@pytest.mark.parametrize("p,q", [((45.0, 15.0), (45.0, 15.0)), ((10, 20), (-10, -160)), ((90, 0), (-90, 0))])
def test_torch_gradients_are_finite_at_zero_and_antipodes(fn, p, q):
    pred = torch.tensor([p], dtype=torch.float64, requires_grad=True)
    d = fn(pred[:, 0], pred[:, 1], torch.tensor([q[0]], dtype=torch.float64), torch.tensor([q[1]], dtype=torch.float64))
    d.sum().backward()
    assert torch.isfinite(pred.grad).all()


def test_haversine_gradient_points_towards_the_target():
    pred = torch.tensor([[40.0, 10.0]], requires_grad=True)
    target = torch.tensor([[50.0, 20.0]])
    d = haversine_km(pred[:, 0], pred[:, 1], target[:, 0], target[:, 1])
    d.sum().backward()
    # gradient descent moves the prediction north-east
    assert pred.grad[0, 0] < 0 and pred.grad[0, 1] < 0


def test_equirectangular_matches_geopy_at_short_range():
    rng = np.random.default_rng(5)
    lat1 = rng.uniform(-80, 80, 500)
    lon1 = rng.uniform(-180, 180, 500)
    lat2 = lat1 + rng.uniform(-0.005, 0.005, 500)   # within ~0.5 km
    lon2 = lon1 + rng.uniform(-0.005, 0.005, 500)
    ours = equirectangular_km(lat1, lon1, lat2, lon2)
    ref = np.array([great_circle((a, b), (c, d)).km for a, b, c, d in zip(lat1, lon1, lat2, lon2)])
    np.testing.assert_allclose(ours, ref, rtol=1e-6)


def test_equirectangular_crosses_the_antimeridian_the_short_way():
    d = float(equirectangular_km(0, 179.9, 0, -179.9))
    assert d == pytest.approx(great_circle((0, 179.9), (0, -179.9)).km, rel=1e-6)


def test_equirectangular_error_grows_with_distance_as_documented():
    # about 0.1% at 100 km in mid-latitudes
    eq = float(equirectangular_km(45, 10, 45.6, 10.9))
    gc = great_circle((45, 10), (45.6, 10.9)).km
    assert 90 < gc < 110
    assert abs(eq - gc) / gc < 2e-3


def test_pairwise_shape_and_values():
    a = np.array([[0.0, 0.0], [45.0, 15.0]])
    b = np.array([[0.0, 0.0], [45.0, 15.0], [-33.9, 151.2]])
    m = pairwise_haversine_km(a, b)
    assert m.shape == (2, 3)
    assert m[0, 0] == pytest.approx(0, abs=1e-9) and m[1, 1] == pytest.approx(0, abs=1e-9)
    assert m[1, 2] == pytest.approx(great_circle((45, 15), (-33.9, 151.2)).km, rel=1e-9)


def test_spherical_mean_across_the_antimeridian():
    lat, lon = spherical_mean([[10.0, 179.0], [10.0, -179.0]])
    assert abs(abs(lon) - 180) < 1e-6 and lat == pytest.approx(10.0, abs=0.01)


@pytest.mark.parametrize("lat,lon", [(91, 0), (0, 180.5), (float("nan"), 0), (0, float("inf"))])
def test_validate_coordinates_rejects_bad_values(lat, lon):
    with pytest.raises(ValueError, match="invalid"):
        validate_coordinates([10, lat], [10, lon])
    assert not is_valid_position(lat, lon)


@pytest.mark.parametrize("lat,lon", [(90, 180), (-90, -180), (0, 0), (45.8, 15.97)])
def test_edge_and_ordinary_positions_are_valid(lat, lon):
    validate_coordinates([lat], [lon])
    assert is_valid_position(lat, lon)
