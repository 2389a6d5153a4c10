"""`GeoDataset`: the validated, split table of geotagged images every other part reads."""
from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pandas.core.groupby import DataFrameGroupBy

from geoai.data.errors import Problem
from geoai.data.splits import SPLIT_NAMES

CORE_COLUMNS = ("file_name", "path", "lat", "lon", "location_id", "heading", "country", "split")
TOP_COUNTRIES = 10


@dataclass
class GeoDataset:
    """One row per image in `frame`.

    Columns: file_name (as in metadata.csv), path (absolute), lat, lon (float64 degrees),
    location_id (group key, str), heading (str, '' if none), country (ISO alpha-2 or ''),
    split ('train'|'val'|'test'), then every extra CSV column unchanged.
    `problems` lists what was found and, with on_error="skip", dropped.
    """

    root: Path
    frame: pd.DataFrame
    problems: list[Problem] = field(default_factory=list)
    name: str = ""
    # path -> sha1, shared with subsets so each file is hashed at most once.
    _hash_cache: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        if not self.name:
            self.name = self.root.name
        missing = [c for c in CORE_COLUMNS if c not in self.frame.columns]
        if missing:
            raise ValueError(f"GeoDataset frame lacks columns {missing}")

    def __len__(self) -> int:
        return len(self.frame)

    def subset(self, splits: str | Sequence[str]) -> GeoDataset:
        """The rows of the given split(s), e.g. subset("test") or subset(["train", "val"])."""
        wanted = [splits] if isinstance(splits, str) else list(splits)
        unknown = [s for s in wanted if s not in SPLIT_NAMES]
        if unknown:
            raise ValueError(f"unknown split(s) {unknown}; choose from {list(SPLIT_NAMES)}")
        frame = self.frame[self.frame["split"].isin(wanted)].reset_index(drop=True)
        return GeoDataset(root=self.root, frame=frame, problems=list(self.problems),
                          name=self.name, _hash_cache=self._hash_cache)

    @property
    def coords(self) -> np.ndarray:
        """(N, 2) float64 array of [lat, lon] degrees."""
        return self.frame[["lat", "lon"]].to_numpy(dtype=np.float64)

    def file_hashes(self) -> pd.Series:
        """SHA-1 hex digest of each image file's bytes (aligned with frame), cached."""
        digests = []
        for path in self.frame["path"]:
            digest = self._hash_cache.get(path)
            if digest is None:
                digest = _sha1_file(Path(path))
                self._hash_cache[path] = digest
            digests.append(digest)
        return pd.Series(digests, index=self.frame.index, name="sha1", dtype=object)

    def fingerprint(self) -> str:
        """SHA-256 over the sorted (file_name, lat, lon, location_id, file sha1) of every row.

        Identifies the content: it changes iff an image, a coordinate, a group or the set
        of files changes, not with row order or where the folder lives.
        """
        records = sorted(
            f"{fn}\t{lat!r}\t{lon!r}\t{loc}\t{sha}"
            for fn, lat, lon, loc, sha in zip(
                self.frame["file_name"], self.frame["lat"].astype(float),
                self.frame["lon"].astype(float), self.frame["location_id"],
                self.file_hashes(), strict=True)
        )
        return hashlib.sha256("\n".join(records).encode("utf-8")).hexdigest()

    def groups(self) -> DataFrameGroupBy:
        """Rows grouped by location_id (the views of one place), e.g. for multi-view fusion."""
        return self.frame.groupby("location_id", sort=True)

    def place_keys(self) -> pd.Series:
        """A key per row naming its place: the views of one place share it.

        Usually the location_id. Where a location_id spans several positions (im2gps3k
        groups photos by photographer), each position is its own place, keyed
        "<location_id>@<lat>,<lon>", so a place always has a single true answer.
        """
        frame = self.frame
        position = frame["lat"].round(6).map("{:.6f}".format) + "," + frame["lon"].round(6).map("{:.6f}".format)
        spans = position.groupby(frame["location_id"]).transform("nunique") > 1
        keys = frame["location_id"].astype(str)
        return keys.where(~spans, keys + "@" + position)

    def summary(self) -> dict[str, Any]:
        """JSON-ready overview: sizes, places (location_id) and views per place, countries, splits, problems."""
        frame = self.frame
        views = frame["location_id"].value_counts()
        histogram = {int(k): int(v) for k, v in sorted(Counter(views.tolist()).items())}
        known = frame.loc[frame["country"] != "", "country"].value_counts()
        splits = {}
        for split in SPLIT_NAMES:
            rows = frame[frame["split"] == split]
            splits[split] = {"images": int(len(rows)), "places": int(rows["location_id"].nunique())}
        return {
            "name": self.name,
            "root": str(self.root),
            "images": int(len(frame)),
            "places": int(views.size),
            "views_per_place": {
                "min": int(views.min()) if views.size else 0,
                "mean": round(float(views.mean()), 3) if views.size else 0.0,
                "max": int(views.max()) if views.size else 0,
                "histogram": histogram,
            },
            "countries": {
                "count": int(known.size),
                "top": [[str(c), int(n)] for c, n in known.head(TOP_COUNTRIES).items()],
                "unknown_images": int((frame["country"] == "").sum()),
            },
            "splits": splits,
            "problems": dict(Counter(p.kind for p in self.problems)),
        }


def _sha1_file(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha1").hexdigest()
