"""Refinement of a geocell classification into one of the training locations (after PIGEON).

The classifier says which cells are likely; inside the `top_cells` most probable cells, every
training sample is a candidate, scored in one of two modes:

    "retrieve": log p(its cell) + cosine(query, its embedding) / temperature
    "expected": -E_p[km from it to the cells' centroids] / 1000 + cosine(...) / temperature

and the guess is the location of the best candidate. "expected" picks the training location
with the least expected error under the classifier's belief (a medoid of the belief): when the
classifier is unsure it stays central instead of betting on one cell. A refined guess is therefore always a
place where a training photo was taken: never open sea or an ice sheet unless photos were
taken there, while the cell probabilities still decide the region. The gallery (training
embeddings, locations and cells) lives in the head's weights, so a bundle carries it.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from geoai.metrics import compute_metrics
from geoai.models.registry import HeadError, head_from_config

# Candidate settings tried on the validation split; the best by mean GeoGuessr points is kept
# (1e6 in "expected" mode: similarity ignored, the belief's medoid among training locations).
TEMPERATURES = (0.01, 0.03, 0.1, 0.3, 1.0)
TOP_CELLS = (1, 3, 5, 10)


MODES = ("retrieve", "expected")
EXPECTED_KM_SCALE = 1000.0


def _km_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(A, B) great-circle km between [lat, lon] rows (float64 unit vectors, clamped acos)."""
    def vectors(latlon):
        lat, lon = torch.deg2rad(latlon[:, 0].double()), torch.deg2rad(latlon[:, 1].double())
        return torch.stack([torch.cos(lat) * torch.cos(lon), torch.cos(lat) * torch.sin(lon), torch.sin(lat)], 1)
    return torch.arccos((vectors(a) @ vectors(b).T).clamp(-1.0, 1.0)) * 6371.0088


def refine_in_cells(probs: torch.Tensor, queries: torch.Tensor, gallery: torch.Tensor,
                    gallery_cells: torch.Tensor, gallery_latlon: torch.Tensor, *, top_cells: int,
                    temperature: float, mode: str = "retrieve", centroids: torch.Tensor | None = None
                    ) -> torch.Tensor:
    """(B, 2) [lat, lon]: the best-scoring gallery location inside each query's top cells.

    probs: (B, K) cell probabilities; queries: (B, D) embeddings; gallery: (N, D) unit-norm
    training embeddings; gallery_cells: (N,) their cell indices; gallery_latlon: (N, 2).
    """
    k = min(int(top_cells), probs.shape[1])
    allowed = torch.zeros_like(probs, dtype=torch.bool)
    allowed.scatter_(1, probs.topk(k, dim=1).indices, True)
    cells = gallery_cells.long()
    similarity = F.normalize(queries.float(), dim=1) @ gallery.float().T
    if mode == "expected":
        expected_km = probs.double() @ _km_matrix(centroids, gallery_latlon)  # (B, N)
        score = (-expected_km / EXPECTED_KM_SCALE).float() + similarity / float(temperature)
    else:
        score = torch.log(probs.clamp_min(1e-12))[:, cells] + similarity / float(temperature)
    inside = allowed[:, cells]
    # Every cell holds training samples, so the top cell has candidates; the fallback guards
    # against a gallery that lacks one (then the whole gallery competes).
    masked = torch.where(inside, score, torch.full_like(score, -torch.inf))
    masked = torch.where(inside.any(dim=1, keepdim=True), masked, score)
    return gallery_latlon[masked.argmax(dim=1)].to(probs.dtype)


def with_refinement(head, train_embeddings: Any, train_latlon: Any, *, top_cells: int,
                    temperature: float, mode: str = "retrieve"):
    """A copy of a trained geocell head that refines its guesses inside its top cells."""
    from geoai.models.heads import GeocellHead, check_latlon

    if not isinstance(head, GeocellHead):
        raise HeadError(f"only a geocell head can be refined, not a {getattr(head, 'head_type', type(head).__name__)}")
    latlon = check_latlon(train_latlon, "train_latlon")
    emb = np.asarray(train_embeddings, dtype=np.float32)
    if emb.shape != (len(latlon), head.embed_dim):
        raise HeadError(f"train_embeddings must have shape ({len(latlon)}, {head.embed_dim}), got {emb.shape}")
    config = head.config
    config["refine"] = {"places": len(latlon), "top_cells": int(top_cells), "temperature": float(temperature),
                        "mode": mode}
    refined = head_from_config(config).to(head.device)
    state = {k: v for k, v in head.state_dict().items() if not k.startswith("refine_")}
    refined.load_state_dict(state, strict=False)
    with torch.no_grad():
        refined.refine_embeddings.copy_(F.normalize(torch.as_tensor(emb), dim=1))
        refined.refine_latlon.copy_(torch.tensor(latlon))
        refined.refine_cells.copy_(torch.as_tensor(head.cells.assign(latlon), dtype=torch.float32))
    return refined.eval()


def fit_refinement(head, train_embeddings: Any, train_latlon: Any, val_embeddings: Any, val_latlon: Any,
                   map_size_km: float | None = None) -> tuple[Any, dict[str, Any]]:
    """The refined head whose settings score the most GeoGuessr points on the validation split.

    Returns (refined head, {"top_cells", "temperature", "val_mean_km", "val_median_km",
    "unrefined_val_mean_km", "unrefined_val_median_km"}).
    """
    from geoai.models.heads import predict_latlon

    val_latlon = np.asarray(val_latlon, dtype=np.float64)
    plain = compute_metrics(predict_latlon(head, val_embeddings), val_latlon, map_size_km=map_size_km)
    best, best_key, best_metrics = None, None, None
    tops = sorted({min(t, len(head.cells)) for t in (*TOP_CELLS, len(head.cells))})  # the last: every cell
    settings = [(mode, top, t) for mode in MODES for top in tops for t in (*TEMPERATURES, 1e6)
                if mode == "expected" or t < 1e6]
    for mode, top, temperature in settings:
        refined = with_refinement(head, train_embeddings, train_latlon, top_cells=top, temperature=temperature,
                                  mode=mode)
        metrics = compute_metrics(predict_latlon(refined, val_embeddings), val_latlon, map_size_km=map_size_km)
        key = (metrics["mean_points"], -metrics["median_km"])
        if best_key is None or key > best_key:
            best, best_key, best_metrics = refined, key, metrics
    info = {**{k: best.config["refine"][k] for k in ("mode", "top_cells", "temperature")},
            "val_mean_km": best_metrics["mean_km"], "val_median_km": best_metrics["median_km"],
            "unrefined_val_mean_km": plain["mean_km"], "unrefined_val_median_km": plain["median_km"]}
    return best, info
