"""Offline reverse geocoding: the country of a coordinate, with no network.

Uses the `reverse_geocode` package (GeoNames places with population > 1000, shipped
inside the package): the country of the nearest populated place, the same convention as
the `country` column of the shared datasets.
"""
from __future__ import annotations

import numpy as np


def country_codes(latlon) -> np.ndarray:
    """ISO 3166-1 alpha-2 codes (object array) for (N, 2) [lat, lon] degrees; '' if unknown."""
    latlon = np.atleast_2d(np.asarray(latlon, dtype=np.float64))
    if len(latlon) == 0:
        return np.array([], dtype=object)
    # Imported here: it builds its KD-tree (about a second) on first use, once per process.
    import reverse_geocode

    places = reverse_geocode.search([tuple(p) for p in latlon])
    return np.array([p.get("country_code") or "" for p in places], dtype=object)
