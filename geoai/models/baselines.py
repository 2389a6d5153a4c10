"""Baselines any trained head must beat, with the same predict() interface as the heads.

- `MedoidBaseline`: always answers the training location with the smallest total
  great-circle distance to all others (the best single constant guess among them).
- `NearestNeighbourBaseline`: answers the location of the most similar training image
  (cosine similarity of embeddings): retrieval without any training.

Both are `nn.Module`s whose state lives in buffers, so a bundle stores them like a head
(config.json + head.safetensors) and `head_from_config` rebuilds them.
"""
from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import nn

from geoai.geodesy import pairwise_haversine_km
from geoai.models.heads import HeadError, check_latlon

# Exact medoid search is O(N^2) distances; above this many points candidates are a
# deterministic sample (the medoid of 4096 random points is within a few km of the true one
# on country-scale data and costs 4096 x N distances instead of N x N).
MAX_MEDOID_CANDIDATES = 4096
_CHUNK = 1024


def medoid(latlon: np.ndarray, max_candidates: int = MAX_MEDOID_CANDIDATES, seed: int = 0) -> np.ndarray:
    """[lat, lon] of the point minimising the sum of haversine distances to all points."""
    points = check_latlon(latlon, "train_latlon")
    candidates = np.arange(len(points))
    if len(points) > max_candidates:
        candidates = np.sort(np.random.default_rng(seed).choice(len(points), max_candidates, replace=False))
    totals = np.concatenate([pairwise_haversine_km(points[candidates[i:i + _CHUNK]], points).sum(axis=1)
                             for i in range(0, len(candidates), _CHUNK)])
    return points[candidates[int(np.argmin(totals))]].copy()


class _Baseline(nn.Module):
    """Config bookkeeping and input checks shared by the baselines."""

    head_type = ""

    def __init__(self, config: dict) -> None:
        super().__init__()
        self._config = copy.deepcopy(config)
        self.embed_dim = int(config["embed_dim"])

    @property
    def config(self) -> dict:
        return copy.deepcopy(self._config)

    def _as_array(self, embeddings: Any) -> np.ndarray:
        x = embeddings.detach().cpu().numpy() if isinstance(embeddings, torch.Tensor) else np.asarray(embeddings)
        if x.ndim != 2 or x.shape[1] != self.embed_dim:
            raise HeadError(f"expected embeddings of shape (B, {self.embed_dim}), got {x.shape}: this "
                            f"{self.head_type} baseline was built on {self.embed_dim}-dimensional embeddings")
        return x.astype(np.float32, copy=False)

    def forward(self, embeddings: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"latlon": torch.as_tensor(self.predict(embeddings))}

    def loss(self, outputs: dict, latlon: torch.Tensor, cell: torch.Tensor | None = None) -> torch.Tensor:
        raise HeadError(f"the {self.head_type} baseline has nothing to train")


class MedoidBaseline(_Baseline):
    """Predicts the training medoid for every input."""

    head_type = "medoid"

    def __init__(self, config: dict, location: np.ndarray | None = None) -> None:
        super().__init__(config)
        value = torch.zeros(2, dtype=torch.float64) if location is None else torch.as_tensor(location, dtype=torch.float64)
        self.register_buffer("location", value)

    def predict(self, embeddings: Any) -> np.ndarray:
        """(B, 2) [lat, lon]: the medoid, repeated."""
        n = len(self._as_array(embeddings))
        return np.tile(self.location.cpu().numpy(), (n, 1))


class NearestNeighbourBaseline(_Baseline):
    """Predicts the location of the training embedding with the highest cosine similarity."""

    head_type = "nearest-neighbour"

    def __init__(self, config: dict, embeddings: np.ndarray | None = None,
                 latlon: np.ndarray | None = None) -> None:
        super().__init__(config)
        n = int(config["n_train"])
        if embeddings is None:
            embeddings, latlon = np.zeros((n, self.embed_dim), np.float32), np.zeros((n, 2))
        self.register_buffer("train_embeddings", torch.as_tensor(_normalise(embeddings), dtype=torch.float32))
        self.register_buffer("train_latlon", torch.as_tensor(latlon, dtype=torch.float64))

    def predict(self, embeddings: Any) -> np.ndarray:
        """(B, 2) [lat, lon] of each input's nearest training embedding (cosine)."""
        queries = torch.as_tensor(_normalise(self._as_array(embeddings)), device=self.train_embeddings.device)
        nearest = torch.cat([(queries[i:i + _CHUNK] @ self.train_embeddings.T).argmax(dim=1)
                             for i in range(0, len(queries), _CHUNK)]) if len(queries) else \
            torch.zeros(0, dtype=torch.long, device=queries.device)
        return self.train_latlon[nearest].cpu().numpy()


def _normalise(x: np.ndarray) -> np.ndarray:
    """L2-normalised rows (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def build_baseline(head_type: str, embed_dim: int, *, train_latlon: np.ndarray,
                   train_embeddings: np.ndarray | None = None, **hparams: Any) -> nn.Module:
    """A fitted baseline: "medoid" (from train_latlon) or "nearest-neighbour" (also train_embeddings)."""
    if hparams:
        raise HeadError(f"the {head_type} baseline takes no hyper-parameters, got {sorted(hparams)}")
    latlon = check_latlon(train_latlon, "train_latlon")
    if head_type == "medoid":
        return MedoidBaseline({"type": "medoid", "embed_dim": int(embed_dim)}, medoid(latlon))
    if head_type == "nearest-neighbour":
        if train_embeddings is None:
            raise HeadError("the nearest-neighbour baseline needs train_embeddings")
        emb = np.asarray(train_embeddings, dtype=np.float32)
        if emb.shape != (len(latlon), int(embed_dim)):
            raise HeadError(f"train_embeddings must have shape ({len(latlon)}, {embed_dim}) to pair with "
                            f"train_latlon, got {emb.shape}")
        config = {"type": "nearest-neighbour", "embed_dim": int(embed_dim), "n_train": len(latlon)}
        return NearestNeighbourBaseline(config, emb, latlon)
    raise HeadError(f"unknown baseline {head_type!r}; choose from medoid, nearest-neighbour")


def baseline_from_config(config: dict) -> nn.Module:
    """An empty baseline of the config's shape, ready for load_state_dict."""
    try:
        if config["type"] == "medoid":
            return MedoidBaseline(config)
        if config["type"] == "nearest-neighbour":
            return NearestNeighbourBaseline(config)
    except KeyError as exc:
        raise HeadError(f"the {config['type']} baseline config lacks the entry {exc}") from exc
    raise HeadError(f"unknown baseline {config['type']!r}")
