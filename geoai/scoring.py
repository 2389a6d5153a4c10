"""GeoGuessr-style points.

points = round(5000 * exp(-10 * d / D)), and a full 5000 within 25 m, where D is the map's
size: the largest distance across its area. On the world map D = 14,916.862 km, so a guess
scores 5000 * exp(-d / 1491.7 km).
"""
from __future__ import annotations

import numpy as np

from geoai.geodesy import EARTH_RADIUS_KM, to_unit_vectors, validate_coordinates

WORLD_SIZE_KM = 14916.862
MAX_POINTS = 5000
PERFECT_RADIUS_KM = 0.025
# A map of a single place would have D = 0; keep the formula defined and still forgiving.
MIN_MAP_SIZE_KM = 10.0
PAIR_CHUNK_ELEMENTS = 2**22  # dot products per chunk (32 MiB): memory stays flat for any map


def geoguessr_points(distance_km, map_size_km: float = WORLD_SIZE_KM):
    """Points for guesses `distance_km` away on a map of size `map_size_km` (array or scalar)."""
    if not map_size_km > 0:
        raise ValueError(f"map size must be positive, got {map_size_km!r}")
    d = np.asarray(distance_km, dtype=np.float64)
    if np.any(d < 0) or np.any(~np.isfinite(d)):
        raise ValueError("distances must be finite and non-negative")
    points = np.rint(MAX_POINTS * np.exp(-10.0 * d / map_size_km))
    points = np.where(d <= PERFECT_RADIUS_KM, MAX_POINTS, points).astype(np.int64)
    return int(points) if points.ndim == 0 else points


def map_size_km(lats, lons) -> float:
    """The largest great-circle distance between the given places, in km (the map's D).

    Exact: the farthest pair has the smallest dot product of unit vectors. Only places that
    could beat a pair already found are compared, in chunks of bounded memory, so 100,000
    places in one country take about a second. Capped at the world map's size and floored
    at MIN_MAP_SIZE_KM.
    """
    validate_coordinates(lats, lons)
    latlon = np.unique(np.round(np.column_stack([lats, lons]).astype(np.float64), 6), axis=0)
    smallest_dot = _smallest_dot(to_unit_vectors(latlon))
    largest = EARTH_RADIUS_KM * float(np.arccos(np.clip(smallest_dot, -1.0, 1.0)))
    return float(min(max(largest, MIN_MAP_SIZE_KM), WORLD_SIZE_KM))


def _smallest_dot(xyz: np.ndarray) -> float:
    """min over pairs of xyz[i] . xyz[j] (unit vectors): the farthest pair, exactly.

    Two farthest-point passes give a pair whose chord is a lower bound on the largest one;
    a place whose distance from the centroid plus the largest such distance falls short of
    that chord cannot belong to a farther pair, so only the rest are compared all-to-all.
    """
    a = xyz[0]
    b = xyz[int(np.argmin(xyz @ a))]
    a = xyz[int(np.argmin(xyz @ b))]
    best = float(a @ b)
    chord = float(np.linalg.norm(a - b))  # not from the dot product: exact for close places too
    reach = np.linalg.norm(xyz - xyz.mean(axis=0), axis=1)
    keep = xyz[reach + reach.max() >= chord * (1 - 1e-9) - 1e-12]
    if len(keep) < 2:
        return best
    rows = max(1, PAIR_CHUNK_ELEMENTS // len(keep))
    for start in range(0, len(keep), rows):
        best = min(best, float((keep[start:start + rows] @ keep.T).min()))
    return best
