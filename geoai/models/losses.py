"""Training losses of the heads, in torch and on whatever device the batch lives on."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from geoai.geodesy import EARTH_RADIUS_KM, equirectangular_km, haversine_km

DISTANCE_LOSSES = ("equirectangular", "haversine")


def distance_km(pred_latlon: torch.Tensor, true_latlon: torch.Tensor, kind: str) -> torch.Tensor:
    """(B,) differentiable distances in km between rows of two (B, 2) [lat, lon] tensors."""
    if kind == "haversine":
        fn = haversine_km
    elif kind == "equirectangular":
        fn = equirectangular_km
    else:
        raise ValueError(f"unknown distance {kind!r}; choose from {DISTANCE_LOSSES}")
    return fn(pred_latlon[:, 0], pred_latlon[:, 1], true_latlon[:, 0], true_latlon[:, 1])


def unit_vectors(latlon: torch.Tensor) -> torch.Tensor:
    """(..., 2) [lat, lon] degrees to (..., 3) points on the unit sphere."""
    lat, lon = torch.deg2rad(latlon[..., 0]), torch.deg2rad(latlon[..., 1])
    return torch.stack([torch.cos(lat) * torch.cos(lon), torch.cos(lat) * torch.sin(lon),
                        torch.sin(lat)], dim=-1)


def latlon_from_vectors(xyz: torch.Tensor) -> torch.Tensor:
    """(..., 3) vectors of any non-zero length to (..., 2) [lat, lon] degrees."""
    x, y, z = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    return torch.stack([torch.rad2deg(torch.atan2(z, torch.hypot(x, y))),
                        torch.rad2deg(torch.atan2(y, x))], dim=-1)


def pairwise_distance_km(points: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """(B, K) great-circle km between (B, 2) points and (K, 2) centroids, via unit vectors.

    The chord form (2R asin(|u - v| / 2)) is exact and cheaper than haversine for B x K pairs.
    """
    chord = torch.cdist(unit_vectors(points), unit_vectors(centroids)).clamp(0.0, 2.0)
    return 2.0 * EARTH_RADIUS_KM * torch.asin(chord / 2.0)


def haversine_soft_targets(latlon: torch.Tensor, centroids: torch.Tensor, tau_km: float) -> torch.Tensor:
    """PIGEON's haversine-smoothed cell targets, (B, K) rows summing to 1.

    Same distribution as `geoai.geocells.haversine_soft_targets`, computed in torch per batch:
    exp(-(d(c_i, x) - d(c_true, x)) / tau) normalised over i equals softmax(-d(c_i, x) / tau),
    because the true cell's term is a per-row constant that cancels in the normalisation.
    """
    with torch.no_grad():  # targets, not predictions: no gradient; float64 for km precision
        distance = pairwise_distance_km(latlon.double(), centroids.double())
        return torch.softmax(-distance / tau_km, dim=1).to(latlon.dtype)


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy against soft targets (equals KL(targets || p) up to a constant)."""
    return -(targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
