"""A model's answer for one place, in plain Python (no torch), so the game can serve answers
computed ahead of time without loading any model."""
from __future__ import annotations

from dataclasses import dataclass

TOP_CELLS = 20  # cells kept of a classifier's belief: enough for a heatmap, small to store


@dataclass(frozen=True)
class PlacePrediction:
    """A model's guess for one place and, for classifier heads, what it believed."""
    lat: float
    lon: float
    top_cells: tuple[tuple[float, float, float], ...] | None = None  # (lat, lon, probability), most likely first

    @property
    def latlon(self) -> tuple[float, float]:
        return (self.lat, self.lon)
