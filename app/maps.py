"""The maps a person can play: dataset folders under GEOAI_DATA_DIR, played on their test split.

A map's rounds come only from the dataset's held-out 'test' split (geoai.data's split by
location_id, the same one training uses), so the models never saw a round's images. Its
size (the D of the scoring formula) and its area are those of the whole dataset, so the
scoring does not depend on which places happen to be in the test split.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.game import Place
from geoai.data import DatasetError, GeoDataset, load_image_folder
from geoai.scoring import map_size_km

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR_ENV = "GEOAI_DATA_DIR"
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data"
METADATA_FILE = "metadata.csv"
MAX_VIEWS_PER_PLACE = 8  # im2gps-style folders can pile dozens of photos on one spot


class MapError(RuntimeError):
    """No playable map, or a map that cannot be loaded; the message says what to do."""


@dataclass(frozen=True)
class Bounds:
    south: float
    west: float
    north: float
    east: float

    @property
    def centre(self) -> tuple[float, float]:
        return (self.south + self.north) / 2, (self.west + self.east) / 2


@dataclass(frozen=True)
class GameMap:
    name: str
    places: tuple[Place, ...]  # the test split, one per place
    size_km: float  # D of the scoring formula, over the whole dataset
    bounds: Bounds  # the whole dataset's coordinates

    @property
    def multi_view(self) -> bool:
        return any(len(p.image_paths) > 1 for p in self.places)


def data_dir() -> Path:
    """Where maps are looked for: GEOAI_DATA_DIR, default <repo>/../shared/data."""
    return Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR).expanduser()


def discover_maps(root: Path | None = None) -> list[Path]:
    """Dataset folders (holding metadata.csv) directly under `root`, sorted by name."""
    root = data_dir() if root is None else Path(root)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and (p / METADATA_FILE).is_file())


def load_map(folder: Path) -> GameMap:
    """Load a dataset folder as a map; MapError when it is unusable or has no test places."""
    folder = Path(folder)
    try:
        dataset = load_image_folder(folder, on_error="skip", check_images="header")
    except (DatasetError, ValueError, OSError) as exc:
        raise MapError(f"the map {folder.name!r} cannot be loaded: {exc}") from exc
    if len(dataset) == 0:
        raise MapError(f"the map {folder.name!r} has no usable images ({len(dataset.problems)} problems)")
    places = places_of(dataset.subset("test"))
    if not places:
        raise MapError(f"the map {folder.name!r} has no places in its test split; it needs more places")
    coords = dataset.coords
    return GameMap(name=dataset.name, places=tuple(places),
                   size_km=map_size_km(coords[:, 0], coords[:, 1]),
                   bounds=Bounds(float(coords[:, 0].min()), float(coords[:, 1].min()),
                                 float(coords[:, 0].max()), float(coords[:, 1].max())))


def places_of(dataset: GeoDataset) -> list[Place]:
    """One Place per place key (GeoDataset.place_keys), its views ordered by heading."""
    frame = dataset.frame.assign(_place=dataset.place_keys())
    places = []
    for place_id, rows in frame.groupby("_place", sort=True):
        rows = rows.sort_values("heading", key=_heading_order)
        paths = tuple(str(p) for p in rows["path"].head(MAX_VIEWS_PER_PLACE))
        places.append(Place(location_id=str(place_id), lat=float(rows["lat"].iloc[0]),
                            lon=float(rows["lon"].iloc[0]), image_paths=paths))
    return places


def _heading_order(headings):
    """Sort numeric headings numerically (0, 90, 180), others as text after them."""
    numeric = np.array([_as_float(h) for h in headings])
    return np.where(np.isnan(numeric), np.inf, numeric)


def _as_float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")
