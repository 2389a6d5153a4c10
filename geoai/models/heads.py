"""Prediction heads: from a backbone embedding (B, D) to a location [lat, lon].

Every head is an `nn.Module` described completely by a JSON-able `config` (type, sizes,
hyper-parameters, coordinate standardisation, geocells), so `head_from_config(config)`
(geoai.models.registry) rebuilds it and a bundle only needs the config plus the weights. Common interface:

    forward(embeddings)             -> dict of tensors ("latlon" is always there)
    predict(embeddings)             -> (B, 2) tensor of valid [lat, lon] degrees
    loss(outputs, latlon, cell)     -> scalar tensor to minimise
    config                          -> dict

Head types, each declared with `register_head` (geoai.models.registry):
- ``linear-mse``: the study's Linear(D, 2) on standardised lat/lon, MSE loss.
- ``linear-eqrect``: the same Linear, loss = mean equirectangular km (the study's).
- ``linear-haversine``: the same Linear, loss = mean great-circle km (ours).
- ``grid``: the study's hybrid: Linear(D, K) logits over grid cells, [embedding, logits]
  into an MLP 250-150-100-50 to lat/lon; loss = CE + equirectangular km / distance scale.
- ``geocell``: ours, after PIGEON: a cell classifier trained on haversine-smoothed targets
  (tau 75 km); predicts the probability-weighted spherical mean of the top-k centroids,
  optionally plus a regressed in-cell offset.
"""
from __future__ import annotations

import copy
import functools
import math
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from geoai.geocells import Geocells, quadtree_cells
from geoai.geodesy import EARTH_RADIUS_KM, haversine_km, spherical_mean, validate_coordinates
from geoai.models.registry import HeadError, register_head
from geoai.models.refinement import MODES as REFINE_MODES
from geoai.models.refinement import refine_in_cells
from geoai.models.losses import (
    distance_km,
    haversine_soft_targets,
    latlon_from_vectors,
    soft_cross_entropy,
    unit_vectors,
)

GRID_MLP_HIDDEN = (250, 150, 100, 50)  # the study's regressor
KM_PER_DEGREE = math.pi * EARTH_RADIUS_KM / 180.0  # one degree of latitude


# --------------------------------------------------------------------------- helpers


def valid_latlon(latlon: torch.Tensor) -> torch.Tensor:
    """Clamp latitude to [-90, 90] and wrap longitude into [-180, 180)."""
    lat = latlon[..., 0].clamp(-90.0, 90.0)
    lon = torch.remainder(latlon[..., 1] + 180.0, 360.0) - 180.0
    return torch.stack([lat, lon], dim=-1)


def check_latlon(latlon: Any, what: str = "latlon") -> np.ndarray:
    """Validate an (N, 2) array of [lat, lon] degrees and return it as float64."""
    arr = np.asarray(latlon, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2 or len(arr) == 0:
        raise HeadError(f"{what} must be a non-empty (N, 2) array of [lat, lon] degrees, got shape {arr.shape}")
    try:
        validate_coordinates(arr[:, 0], arr[:, 1])
    except ValueError as exc:
        raise HeadError(f"{what}: {exc}") from exc
    return arr


def mean_distance_to_centre_km(latlon: np.ndarray) -> float:
    """Mean great-circle km from the points to their spherical mean (at least 1 km)."""
    centre = spherical_mean(latlon)
    km = haversine_km(latlon[:, 0], latlon[:, 1], centre[0], centre[1])
    return max(float(np.mean(km)), 1.0)


def _mlp(sizes: Sequence[int], dropout: float = 0.0) -> nn.Sequential:
    """Linear layers with ReLU (and dropout) between them, none after the last."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class GeoHead(nn.Module):
    """Base class: config bookkeeping, input checks and the predict() contract."""

    def __init__(self, config: dict) -> None:
        super().__init__()
        self._config = copy.deepcopy(config)
        self.head_type = str(config["type"])
        self.embed_dim = int(config["embed_dim"])
        if self.embed_dim < 1:
            raise HeadError(f"embed_dim must be positive, got {self.embed_dim}")

    @property
    def config(self) -> dict:
        """JSON-able description from which `head_from_config` rebuilds this head."""
        return copy.deepcopy(self._config)

    @property
    def device(self) -> torch.device:
        tensor = next(iter(self.parameters()), None)
        if tensor is None:
            tensor = next(iter(self.buffers()), None)
        return tensor.device if tensor is not None else torch.device("cpu")

    def as_embeddings(self, embeddings: Any) -> torch.Tensor:
        """Embeddings as a float tensor on this head's device, checked to be (B, embed_dim)."""
        x = embeddings if isinstance(embeddings, torch.Tensor) else torch.as_tensor(np.asarray(embeddings))
        if x.ndim != 2 or x.shape[1] != self.embed_dim:
            raise HeadError(
                f"expected embeddings of shape (B, {self.embed_dim}), got {tuple(x.shape)}: this "
                f"{self.head_type} head was trained on a backbone with {self.embed_dim}-dimensional embeddings")
        if not x.is_floating_point():
            x = x.float()
        return x.to(device=self.device, dtype=torch.float32)

    def predict(self, embeddings: Any) -> torch.Tensor:
        """(B, 2) valid [lat, lon] degrees for (B, D) embeddings (tensor or array)."""
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                return valid_latlon(self(self.as_embeddings(embeddings))["latlon"])
        finally:
            self.train(was_training)


# --------------------------------------------------------------------------- regression heads


class _Standardised(GeoHead):
    """A head whose regressor outputs standardised (z-scored) [lat, lon]."""

    def __init__(self, config: dict) -> None:
        super().__init__(config)
        # Checked in NumPy, so a head can also be built on the meta device (no allocation).
        mean_values = np.asarray(config["coord_mean"], dtype=np.float64)
        std_values = np.asarray(config["coord_std"], dtype=np.float64)
        if (mean_values.shape != (2,) or std_values.shape != (2,) or not np.isfinite(mean_values).all()
                or not np.isfinite(std_values).all() or not (std_values > 0).all()):
            raise HeadError(f"coord_mean and coord_std must be two finite numbers each, std > 0; got "
                            f"{config['coord_mean']!r:.80}, {config['coord_std']!r:.80}")
        mean = torch.tensor(mean_values, dtype=torch.float32)
        std = torch.tensor(std_values, dtype=torch.float32)
        # Non-persistent: they come from the config, not from the weights file.
        self.register_buffer("coord_mean", mean, persistent=False)
        self.register_buffer("coord_std", std, persistent=False)

    def destandardise(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.coord_std + self.coord_mean

    def standardise(self, latlon: torch.Tensor) -> torch.Tensor:
        return (latlon - self.coord_mean) / self.coord_std


class LinearHead(_Standardised):
    """Linear(D, 2) to standardised lat/lon; MSE, equirectangular or haversine loss."""

    def __init__(self, config: dict, loss: str) -> None:
        super().__init__(config)
        self.loss_kind = loss
        self.linear = nn.Linear(self.embed_dim, 2)

    def forward(self, embeddings: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.linear(embeddings)
        return {"z": z, "latlon": self.destandardise(z)}

    def loss(self, outputs: dict[str, torch.Tensor], latlon: torch.Tensor,
             cell: torch.Tensor | None = None) -> torch.Tensor:
        latlon = latlon.to(outputs["z"])
        if self.loss_kind == "mse":
            return F.mse_loss(outputs["z"], self.standardise(latlon))
        return distance_km(outputs["latlon"], latlon, self.loss_kind).mean()


class GridHead(_Standardised):
    """The study's hybrid head: grid-square logits, fed with the embedding to an MLP regressor.

    Loss = cross_entropy(logits, cell) + equirectangular_km / distance_scale_km. The scale
    defaults to the mean distance of the training points to their centre, the error of
    always guessing the middle of the map: the distance term then starts near 1 and falls
    towards 0 as the regressor learns, on the same footing as the cross-entropy (log K at
    the start), so neither term drowns the other whatever the map size.
    """

    def __init__(self, config: dict) -> None:
        super().__init__(config)
        self.cells = Geocells.from_dict(config["cells"])
        self.distance_scale_km = float(config["distance_scale_km"])
        k = len(self.cells)
        self.classifier = nn.Linear(self.embed_dim, k)
        self.regressor = _mlp([self.embed_dim + k, *config["hidden"], 2], config.get("dropout", 0.0))

    def forward(self, embeddings: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.classifier(embeddings)
        z = self.regressor(torch.cat([embeddings, logits], dim=1))
        return {"logits": logits, "z": z, "latlon": self.destandardise(z)}

    def loss(self, outputs: dict[str, torch.Tensor], latlon: torch.Tensor,
             cell: torch.Tensor | None = None) -> torch.Tensor:
        if cell is None:
            raise HeadError("the grid head needs the grid cell of every training sample (cell=...)")
        latlon = latlon.to(outputs["z"])
        ce = F.cross_entropy(outputs["logits"], cell.to(outputs["logits"].device).long())
        km = distance_km(outputs["latlon"], latlon, "equirectangular").mean()
        return ce + km / self.distance_scale_km


# --------------------------------------------------------------------------- geocell classifier


class GeocellHead(GeoHead):
    """Geocell classifier with haversine label smoothing (PIGEON), top-k centroid prediction.

    predict = spherical mean of the top_k most probable centroids weighted by their
    (renormalised) probabilities: between cells it hedges towards the likelier region
    instead of snapping to one centroid. With offset=True a Linear(D, 2) also regresses a
    north/east offset in km added to that point, trained with the haversine distance.
    """

    def __init__(self, config: dict) -> None:
        super().__init__(config)
        self.cells = Geocells.from_dict(config["cells"])
        self.tau_km = float(config["tau_km"])
        self.top_k = int(config["top_k"])
        self.distance_scale_km = float(config["distance_scale_km"])
        if self.tau_km <= 0 or self.top_k < 1:
            raise HeadError(f"tau_km must be > 0 and top_k >= 1, got {self.tau_km}, {self.top_k}")
        centroids = torch.tensor(self.cells.centroids, dtype=torch.float32)
        self.register_buffer("centroids", centroids, persistent=False)
        self.register_buffer("centroid_vectors", unit_vectors(centroids.double()).float(), persistent=False)
        hidden = config.get("hidden")
        sizes = [self.embed_dim, *([hidden] if hidden else []), len(self.cells)]
        self.classifier = _mlp(sizes, config.get("dropout", 0.0))
        self.offset = nn.Linear(self.embed_dim, 2) if config.get("offset") else None
        if self.offset is not None:  # start at "no offset"
            nn.init.zeros_(self.offset.weight)
            nn.init.zeros_(self.offset.bias)
        self.refine = _refine_settings(config.get("refine"))
        if self.refine is not None:
            # The gallery of training samples (geoai.models.refinement): saved with the weights.
            # Cells are stored as floats because a bundle's weights must be floating point.
            n = self.refine["places"]
            self.register_buffer("refine_embeddings", torch.zeros(n, self.embed_dim))
            self.register_buffer("refine_latlon", torch.zeros(n, 2, dtype=torch.float64))
            self.register_buffer("refine_cells", torch.zeros(n))

    def forward(self, embeddings: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.classifier(embeddings)
        probs = torch.softmax(logits, dim=1)
        k = min(self.top_k, probs.shape[1])
        top_p, top_i = probs.topk(k, dim=1)
        weights = top_p / top_p.sum(dim=1, keepdim=True)
        centre = latlon_from_vectors((weights.unsqueeze(-1) * self.centroid_vectors[top_i]).sum(dim=1))
        out = {"logits": logits, "probs": probs, "cell_latlon": centre, "latlon": centre}
        if self.offset is not None:
            # The offset refines a fixed point: gradients go to the offset, not the classifier.
            north_east = self.offset(embeddings) * self.distance_scale_km
            out["offset_km"] = north_east
            out["latlon"] = _move_km(centre.detach(), north_east)
        if self.refine is not None:
            out["latlon"] = refine_in_cells(probs.detach(), embeddings, self.refine_embeddings, self.refine_cells,
                                            self.refine_latlon, top_cells=self.refine["top_cells"],
                                            temperature=self.refine["temperature"], mode=self.refine["mode"],
                                            centroids=self.centroids).to(centre.dtype)
        return out

    def loss(self, outputs: dict[str, torch.Tensor], latlon: torch.Tensor,
             cell: torch.Tensor | None = None) -> torch.Tensor:
        # The true cell is not needed: its term cancels in the target normalisation.
        logits = outputs["logits"]
        latlon = latlon.to(logits.device)
        targets = haversine_soft_targets(latlon, self.centroids, self.tau_km)
        loss = soft_cross_entropy(logits, targets)
        if self.offset is not None:
            km = distance_km(outputs["latlon"], latlon.to(outputs["latlon"]), "haversine").mean()
            loss = loss + km / self.distance_scale_km
        return loss


def _refine_settings(value: Any) -> dict[str, Any] | None:
    """The "refine" entry of a geocell config, checked: {"places", "top_cells", "temperature"}."""
    if value is None:
        return None
    if not isinstance(value, dict) or not {"places", "top_cells", "temperature"} <= set(value) <= {
            "places", "top_cells", "temperature", "mode"} or value.get("mode", "retrieve") not in REFINE_MODES:
        raise HeadError(f"refine must be an object with places, top_cells, temperature and a mode "
                        f"({', '.join(REFINE_MODES)}), got {value!r:.120}")
    places, top, temperature = value["places"], value["top_cells"], value["temperature"]
    if any(isinstance(v, bool) or not isinstance(v, int) for v in (places, top)) or places < 1 or top < 1:
        raise HeadError(f"refine.places and refine.top_cells must be whole numbers >= 1, got {places!r:.40}, {top!r:.40}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
            or not math.isfinite(temperature) or temperature <= 0:
        raise HeadError(f"refine.temperature must be a positive number, got {temperature!r:.40}")
    return {"places": places, "top_cells": top, "temperature": float(temperature),
            "mode": value.get("mode", "retrieve")}


def _move_km(latlon: torch.Tensor, north_east_km: torch.Tensor) -> torch.Tensor:
    """Shift points by (north, east) km (flat-Earth approximation, fine within a cell)."""
    lat = latlon[:, 0] + north_east_km[:, 0] / KM_PER_DEGREE
    cos_lat = torch.cos(torch.deg2rad(latlon[:, 0])).clamp_min(1e-3)
    lon = latlon[:, 1] + north_east_km[:, 1] / (KM_PER_DEGREE * cos_lat)
    return torch.stack([lat, lon], dim=1)


# --------------------------------------------------------------------------- construction


def _new_config(head_type: str, embed_dim: int, train_latlon: Any, *,
                standardised: bool = True) -> tuple[dict[str, Any], np.ndarray]:
    """The config every head starts from, and the checked training coordinates."""
    latlon = check_latlon(train_latlon, "train_latlon")
    config: dict[str, Any] = {"type": head_type, "embed_dim": int(embed_dim)}
    if standardised:
        std = latlon.std(axis=0)
        config["coord_mean"] = latlon.mean(axis=0).tolist()
        config["coord_std"] = np.where(std > 1e-6, std, 1.0).tolist()  # one location: avoid /0
    return config, latlon


def _settings(head_type: str, defaults: dict[str, Any], hparams: dict[str, Any]) -> dict[str, Any]:
    """The defaults overridden by hparams; HeadError for a hyper-parameter the head does not take."""
    unknown = sorted(set(hparams) - set(defaults))
    if unknown:
        raise HeadError(f"unknown hyper-parameter(s) {unknown} for a {head_type} head; "
                        f"it takes {sorted(defaults) or 'none'}")
    return {**defaults, **hparams}


def _register_linear(head_type: str, loss: str, loss_label: str) -> None:
    """Declare a LinearHead type trained with `loss` (see LinearHead.loss)."""
    @register_head(head_type, rebuild=functools.partial(LinearHead, loss=loss), label="Linear", loss_label=loss_label)
    def build(embed_dim: int, *, train_latlon: Any, **hparams: Any) -> LinearHead:
        config, _ = _new_config(head_type, embed_dim, train_latlon)
        _settings(head_type, {}, hparams)
        return LinearHead(config, loss)


# Declaration order is the default run order: the study's heads, then ours.
_register_linear("linear-mse", "mse", "MSE (standardised lat/lon)")
_register_linear("linear-eqrect", "equirectangular", "Equirectangular distance")


@register_head("grid", rebuild=GridHead, label="Grid classifier + MLP", loss_label="Cross-entropy + equirectangular",
               cells="grid")
def grid_head(embed_dim: int, *, train_latlon: Any, cells: Geocells | None = None, **hparams: Any) -> GridHead:
    """hparams: hidden (default 250,150,100,50), dropout, distance_scale_km."""
    config, latlon = _new_config("grid", embed_dim, train_latlon)
    if cells is None:
        raise HeadError("the grid head needs the grid cells (cells=grid_cells(square_ids, latlon))")
    settings = _settings("grid", {"hidden": list(GRID_MLP_HIDDEN), "dropout": 0.0,
                                  "distance_scale_km": mean_distance_to_centre_km(latlon)}, hparams)
    try:
        settings["hidden"] = [int(h) for h in settings["hidden"]]
    except (TypeError, ValueError) as exc:  # e.g. "hidden": "wide" from a JSON config
        raise HeadError(f"invalid hyper-parameter for a grid head: {exc}") from exc
    return GridHead({**config, **settings, "cells": cells.to_dict()})


_register_linear("linear-haversine", "haversine", "Haversine distance")


@register_head("geocell", rebuild=GeocellHead, label="Geocell classifier (top-5 mean)",
               loss_label="KL to Haversine-smoothed cells", cells="quadtree", refinable=True)
def geocell_head(embed_dim: int, *, train_latlon: Any, cells: Geocells | None = None,
                 **hparams: Any) -> GeocellHead:
    """hparams: tau_km (75), top_k (5), hidden (None = linear), dropout, offset (False),
    distance_scale_km, cell_min_samples / cell_max_samples of the default quadtree cells."""
    config, latlon = _new_config("geocell", embed_dim, train_latlon, standardised=False)
    settings = _settings("geocell", {"tau_km": 75.0, "top_k": 5, "hidden": None, "dropout": 0.0, "offset": False,
                                     "distance_scale_km": mean_distance_to_centre_km(latlon),
                                     "cell_min_samples": 10, "cell_max_samples": 100}, hparams)
    try:
        min_samples = int(settings.pop("cell_min_samples"))
        max_samples = int(settings.pop("cell_max_samples"))
    except (TypeError, ValueError) as exc:
        raise HeadError(f"invalid hyper-parameter for a geocell head: {exc}") from exc
    if cells is None:
        cells = quadtree_cells(latlon, min_samples=min_samples, max_samples=max_samples)
    return GeocellHead({**config, **settings, "cells": cells.to_dict()})


def predict_latlon(head: nn.Module, embeddings: Any, batch_size: int = 4096) -> np.ndarray:
    """(B, 2) float64 NumPy [lat, lon] of any head or baseline, in batches."""
    embeddings = np.asarray(embeddings, dtype=np.float32) if not isinstance(embeddings, torch.Tensor) else embeddings
    if len(embeddings) == 0:
        return np.zeros((0, 2), dtype=np.float64)
    parts = []
    for start in range(0, len(embeddings), batch_size):
        pred = head.predict(embeddings[start:start + batch_size])
        parts.append(pred.detach().cpu().numpy() if isinstance(pred, torch.Tensor) else np.asarray(pred))
    return np.concatenate(parts).astype(np.float64)


def cell_probabilities(head: nn.Module, embeddings: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """What a classifier head believes: (K, 2) cell centroids and (B, K) probabilities.

    Grid and geocell heads classify into cells, so their softmax is a belief over the map;
    regression heads and baselines give a single point and return None.
    """
    cells = getattr(head, "cells", None)
    if cells is None or not isinstance(head, (GridHead, GeocellHead)):
        return None
    x = head.as_embeddings(embeddings)
    with torch.inference_mode():
        probs = torch.softmax(head(x)["logits"].float(), dim=1)
    return np.asarray(cells.centroids, dtype=np.float64), probs.cpu().numpy().astype(np.float64)


def top_cells(head: nn.Module, embeddings: Any, k: int = 20) -> list[list[tuple[float, float, float]]] | None:
    """Per embedding, the k most probable cells as (lat, lon, probability), most probable first."""
    belief = cell_probabilities(head, embeddings)
    if belief is None:
        return None
    centroids, probs = belief
    order = np.argsort(-probs, axis=1)[:, :k]
    return [[(float(centroids[i, 0]), float(centroids[i, 1]), float(row[i])) for i in idx]
            for row, idx in zip(probs, order)]
