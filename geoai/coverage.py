"""Which maps a model may play: those whose places lie where it saw training photos.

A bundle records its training places (config.json dataset.coverage). It plays a map when at
least MIN_SHARE of the map's places lie within MARGIN_KM of one of them: a model trained on
one country never plays the world, while a world model, whose training places are spread
over every continent, plays every world map and each country inside its coverage.
Torch-free: the game decides this before loading any model.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from geoai.geodesy import pairwise_haversine_km

MARGIN_KM = 1000.0  # a place this close to a training photo is inside the model's coverage
MIN_SHARE = 0.8  # the share of a map's places that must be inside it
_CHUNK = 2048


def coverage_from_config(config: dict) -> list:
    """A bundle's training places from its config.json: dataset.coverage, or for bundles made
    before it was recorded an estimate from the head (cell centroids, or the mean training
    position of a regression head); [] when neither is there."""
    recorded = (config.get("dataset") or {}).get("coverage")
    if isinstance(recorded, list) and recorded:
        return recorded
    head = config.get("head") or {}
    centroids = (head.get("cells") or {}).get("centroids") if isinstance(head.get("cells"), dict) else None
    if isinstance(centroids, list) and centroids:
        return centroids
    mean = head.get("coord_mean")
    return [mean] if isinstance(mean, list) and len(mean) == 2 else []


@dataclass(frozen=True)
class Verdict:
    """Whether a model plays a map, and the sentence that says why."""

    plays: bool
    why: str
    share: float | None = None  # the map's places inside the coverage (None: not measured)


def as_points(points: Any) -> np.ndarray:
    """(N, 2) float64 [lat, lon] from rows or from objects with .lat and .lon (game places)."""
    rows = [(p.lat, p.lon) if hasattr(p, "lat") else tuple(p) for p in points]
    array = np.asarray(rows, dtype=np.float64).reshape(-1, 2)
    return array[np.isfinite(array).all(axis=1)]


def covered_share(training: np.ndarray, places: np.ndarray, margin_km: float = MARGIN_KM) -> float:
    """Share of `places` within margin_km of a training place (0 when either is empty)."""
    if len(training) == 0 or len(places) == 0:
        return 0.0
    nearest = np.concatenate([pairwise_haversine_km(places[i:i + _CHUNK], training).min(axis=1)
                              for i in range(0, len(places), _CHUNK)])
    return float(np.mean(nearest <= margin_km))


def verdict(coverage: Any, trained_on: Sequence[str], map_name: str, places: Any) -> Verdict:
    """Whether a bundle with these training places (and datasets) plays the map with these places."""
    training = as_points(coverage or [])
    if len(training) == 0:
        if map_name in trained_on:
            return Verdict(True, "trained on this map (it records no training places)")
        return Verdict(False, "records no training places, so it plays only the map it was trained on")
    share = covered_share(training, as_points(places))
    inside = f"{share:.0%} of the map's places lie within {MARGIN_KM:,.0f} km of its training photos"
    if share >= MIN_SHARE:
        return Verdict(True, ("trained on this map; " if map_name in trained_on else "") + inside, share)
    return Verdict(False, f"only {inside} (it needs {MIN_SHARE:.0%})", share)
