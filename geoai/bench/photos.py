"""Real street-level photos with coordinates, read from an image folder (metadata.csv)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from geoai import settings
from geoai.data import open_image

DEFAULT_MAP = "streetview-world-tiles"  # photos from all over the world


def default_data() -> Path:
    """The benchmark's photos: the world map under GEOAI_DATA_DIR."""
    return settings.data_dir() / DEFAULT_MAP


class PhotoError(ValueError):
    """The benchmark's photo folder is missing or unusable."""


@dataclass
class Photos:
    paths: list[Path]
    latlon: np.ndarray  # (N, 2) degrees

    def images(self) -> list:
        """The photos as PIL RGB images."""
        return [open_image(p) for p in self.paths]

    def subset(self, count: int) -> "Photos":
        """The first `count` photos."""
        return Photos(self.paths[:count], self.latlon[:count])


def load_photos(folder: Path, count: int, seed: int = 0) -> Photos:
    """`count` photos, one per place where possible (spread over the world), in a fixed order."""
    meta = folder / "metadata.csv"
    if not meta.is_file():
        raise PhotoError(f"{meta} not found: pass --data an image folder with metadata.csv "
                         f"(file_name, lat, lon), e.g. {default_data()}")
    frame = pd.read_csv(meta)
    missing = {"file_name", "lat", "lon"} - set(frame.columns)
    if missing:
        raise PhotoError(f"{meta} lacks the columns {sorted(missing)}")
    if "location_id" in frame.columns:
        frame = pd.concat([frame.drop_duplicates("location_id"),
                           frame[frame.duplicated("location_id")]])
    if len(frame) < count:
        raise PhotoError(f"{folder} has {len(frame)} photos, the benchmark needs {count}")
    rows = frame.head(count) if "location_id" in frame.columns else frame.sample(count, random_state=seed)
    return Photos([folder / f for f in rows["file_name"]], rows[["lat", "lon"]].to_numpy(float))
