"""The one metrics function used by training, evaluation and the game."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from geoai.countries import country_codes
from geoai.geodesy import haversine_km, validate_coordinates
from geoai.scoring import WORLD_SIZE_KM, geoguessr_points

THRESHOLDS_KM = (1, 25, 200, 750, 2500)  # street, city, region, country, continent


def compute_metrics(pred_latlon, true_latlon, true_country: Sequence[str] | None = None,
                    map_size_km: float | None = None) -> dict[str, float]:
    """Distance metrics of predictions against the truth, both (N, 2) [lat, lon] degrees.

    Returns n, mean_km, median_km, within_{1,25,200,750,2500}km (shares in [0, 1]),
    mean_points (GeoGuessr points on a map of size `map_size_km`, the world by default)
    and country_accuracy. Countries of predictions and truth both come from the same
    offline geocoder, so a perfect guess always counts; pass `true_country` only for
    labels that are authoritative (a dataset's `country` column made with another
    geocoder disagrees with ours on ~10% of border-region places).
    """
    pred = np.atleast_2d(np.asarray(pred_latlon, dtype=np.float64))
    true = np.atleast_2d(np.asarray(true_latlon, dtype=np.float64))
    if pred.shape != true.shape or pred.shape[-1] != 2:
        raise ValueError(f"predictions {pred.shape} and truth {true.shape} must both be (N, 2)")
    if len(true) == 0:
        raise ValueError("no samples to evaluate")
    validate_coordinates(pred[:, 0], pred[:, 1])
    validate_coordinates(true[:, 0], true[:, 1])
    km = haversine_km(pred[:, 0], pred[:, 1], true[:, 0], true[:, 1])
    metrics: dict[str, float] = {
        "n": int(len(km)),
        "mean_km": float(km.mean()),
        "median_km": float(np.median(km)),
    }
    for t in THRESHOLDS_KM:
        metrics[f"within_{t}km"] = float((km <= t).mean())
    size = WORLD_SIZE_KM if map_size_km is None else map_size_km  # 0 is an error, not "world"
    metrics["mean_points"] = float(geoguessr_points(km, size).mean())
    truth = (np.asarray(true_country, dtype=object) if true_country is not None
             else country_codes(true))
    if len(truth) != len(km):
        raise ValueError(f"{len(truth)} country codes for {len(km)} samples")
    metrics["country_accuracy"] = float((country_codes(pred) == truth).mean())
    return metrics
