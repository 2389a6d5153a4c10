"""Training samples of one split under a view mode.

"single": every image is a sample. "mean": every place (location_id group) is a sample,
its views' embeddings averaged (geoai.models.embeddings.fuse_views), predicted once.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from geoai.data import GeoDataset
from geoai.models.embeddings import fuse_views

@dataclass
class Samples:
    """One split's samples.

    rows: per sample, the dataset-frame row indices of its images (one for "single").
    latlon: (N, 2) truth. There is deliberately no country: the metrics reverse-geocode the
    truth with the same geocoder as the predictions (datasets' country columns come from
    another geocoder and disagree on ~10% of border-region places);
    embeddings: (N, D) float32 or None (fine-tuning embeds images on the fly);
    square_ids: (N,) study grid squares or None.
    """

    rows: list[np.ndarray]
    latlon: np.ndarray
    embeddings: np.ndarray | None = None
    square_ids: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.rows)


def has_multiple_views(dataset: GeoDataset) -> bool:
    """True when at least one place has more than one image."""
    return bool((dataset.place_keys().value_counts() > 1).any())


def _square_ids(frame: pd.DataFrame) -> np.ndarray | None:
    if "square_id" not in frame.columns:
        return None
    values = frame["square_id"].astype(str).to_numpy(dtype=object)
    return values if (values != "").all() else None


def build_samples(dataset: GeoDataset, split: str, fusion: str,
                  embeddings: np.ndarray | None) -> Samples:
    """Samples of `split` ("train"/"val"/"test") or "all", fused per place when fusion == "mean".

    embeddings: (len(dataset), D) aligned with dataset.frame, or None.
    """
    frame = dataset.frame
    rows = (np.arange(len(frame)) if split == "all"
            else np.flatnonzero(frame["split"].to_numpy() == split))
    if len(rows) == 0:
        raise ValueError(f"the {split} split of {dataset.name} is empty; the dataset is too small to split")
    part = frame.iloc[rows]
    emb = embeddings[rows] if embeddings is not None else None
    if fusion == "single":
        index = np.arange(len(rows))
        groups = [rows[i:i + 1] for i in index]
    elif fusion == "mean":
        keys = dataset.place_keys().iloc[rows].tolist()
        if emb is not None:
            emb, index = fuse_views(emb, keys)
        else:
            _, index = np.unique(np.asarray(keys, dtype=object), return_index=True)
            index = np.sort(index)
        positions = pd.Series(range(len(keys))).groupby(keys, sort=False).indices
        groups = [rows[np.asarray(positions[keys[i]])] for i in index]
    else:
        raise ValueError(f"unknown fusion mode {fusion!r}")
    first = part.iloc[np.asarray(index)]
    squares = _square_ids(first)
    return Samples(rows=groups, latlon=first[["lat", "lon"]].to_numpy(dtype=np.float64),
                   embeddings=None if emb is None else np.asarray(emb, dtype=np.float32),
                   square_ids=squares)
