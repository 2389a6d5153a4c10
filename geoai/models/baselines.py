"""Baselines any trained head must beat, with the same predict() interface as the heads.

- `MedoidBaseline`: always answers the training location with the smallest total
  great-circle distance to all others (the best single constant guess among them).
- `NearestNeighbourBaseline`: answers the location of the most similar training image
  (cosine similarity of embeddings): retrieval without any training.

Both are `nn.Module`s whose state lives in buffers, so a bundle stores them like a head
(config.json + head.safetensors), and both are declared in the head registry
(geoai.models.registry), which builds them and rebuilds them from their config.
"""
from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import nn

from geoai.geodesy import pairwise_haversine_km
from geoai.models.heads import check_latlon
from geoai.models.registry import HeadError, register_head

# Exact medoid search is O(N^2) distances; above this many points candidates are a
# deterministic sample (the medoid of 4096 random points is within a few km of the true one
# on country-scale data and costs 4096 x N distances instead of N x N).
MAX_MEDOID_CANDIDATES = 4096
MAX_TRAIN_SAMPLES = 100_000_000  # more training images than any dataset here holds by far
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

    def __init__(self, config: dict) -> None:
        super().__init__()
        self._config = copy.deepcopy(config)
        self.head_type = str(config["type"])
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

    def __init__(self, config: dict, embeddings: np.ndarray | None = None,
                 latlon: np.ndarray | None = None) -> None:
        super().__init__(config)
        n = config["n_train"]
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_TRAIN_SAMPLES:
            raise HeadError(f"n_train must be a whole number from 1 to {MAX_TRAIN_SAMPLES:,}, got {n!r:.40}")
        if embeddings is None:  # empty, for load_state_dict; torch.zeros also builds on the meta device
            self.register_buffer("train_embeddings", torch.zeros(n, self.embed_dim))
            self.register_buffer("train_latlon", torch.zeros(n, 2, dtype=torch.float64))
            return
        self.register_buffer("train_embeddings", torch.as_tensor(_normalise(embeddings), dtype=torch.float32))
        self.register_buffer("train_latlon", torch.tensor(np.asarray(latlon), dtype=torch.float64))  # a copy: the input may be read-only

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


def _no_hparams(head_type: str, hparams: dict[str, Any]) -> None:
    if hparams:
        raise HeadError(f"the {head_type} baseline takes no hyper-parameters, got {sorted(hparams)}")


@register_head("medoid", rebuild=MedoidBaseline, label="Medoid of training places (baseline)", loss_label="-",
               baseline=True, uses_images=False, publishable=False)  # a yardstick, not a player
def medoid_baseline(embed_dim: int, *, train_latlon: Any, train_embeddings: Any = None,
                    **hparams: Any) -> MedoidBaseline:
    """Always the medoid of train_latlon (train_embeddings are not looked at)."""
    _no_hparams("medoid", hparams)
    return MedoidBaseline({"type": "medoid", "embed_dim": int(embed_dim)}, medoid(train_latlon))


@register_head("nearest-neighbour", rebuild=NearestNeighbourBaseline,
               label="Nearest neighbour in embedding space (baseline)", loss_label="-", baseline=True,
               short_label="1-NN")
def nearest_neighbour_baseline(embed_dim: int, *, train_latlon: Any, train_embeddings: Any = None,
                               **hparams: Any) -> NearestNeighbourBaseline:
    """The location of the most similar of train_embeddings, paired with train_latlon."""
    _no_hparams("nearest-neighbour", hparams)
    latlon = check_latlon(train_latlon, "train_latlon")
    if train_embeddings is None:
        raise HeadError("the nearest-neighbour baseline needs train_embeddings")
    emb = np.asarray(train_embeddings, dtype=np.float32)
    if emb.shape != (len(latlon), int(embed_dim)):
        raise HeadError(f"train_embeddings must have shape ({len(latlon)}, {embed_dim}) to pair with "
                        f"train_latlon, got {emb.shape}")
    config = {"type": "nearest-neighbour", "embed_dim": int(embed_dim), "n_train": len(latlon)}
    return NearestNeighbourBaseline(config, emb, latlon)
