"""The pickable grid that turns a click on the map into a position.

`st.pydeck_chart(on_select=...)` reports which object was clicked, never the clicked
coordinates, so the whole playable area is tiled with invisible H3 hexagons: a click picks
a cell and the guess is the cell's centre. The resolution is the coarsest whose largest
centre-to-corner distance (the worst error a click can make) is within 1% of the map's
size: ~4 km on a country map, ~76 km on the world map (H3 resolution 3, 41,162 cells).

Around the current guess a finer patch (FINER_STEPS resolutions finer) lets a second
click refine the guess without sending a fine grid for the whole map.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property

import h3
import numpy as np

from geoai.geodesy import haversine_km

ERROR_FRACTION = 0.01  # of the map's size
MIN_RESOLUTION, MAX_RESOLUTION = 2, 9
MAX_CELLS = 60_000  # keeps the grid's JSON under ~1.2 MB
MARGIN_FRACTION = 0.3  # of the bounding box's span, on every side: covers the initial view
MIN_MARGIN_DEG = 1.0
WORLD_LON_SPAN_DEG = 180.0  # wider maps are played on the whole world
FINER_STEPS = 2


class PickError(ValueError):
    """A map selection that is not a cell of the grid (tampered or stale)."""


@dataclass(frozen=True)
class PickGrid:
    resolution: int
    cells: tuple[str, ...]
    world: bool
    max_error_km: float = field(compare=False)

    @cached_property
    def cell_set(self) -> frozenset[str]:
        return frozenset(self.cells)

    @cached_property
    def data_json(self) -> str:
        """The cells as a compact JSON list, built once and injected into every map spec."""
        return json.dumps(list(self.cells), separators=(",", ":"))

    def cell_of(self, lat: float, lon: float) -> str:
        return h3.latlng_to_cell(lat, lon, self.resolution)

    def refine_cells(self, lat: float, lon: float) -> list[str]:
        """Finer cells around (lat, lon): the children of its cell and its six neighbours."""
        res = min(self.resolution + FINER_STEPS, 15)
        disk = h3.grid_disk(self.cell_of(lat, lon), 1)
        return sorted(child for cell in disk for child in h3.cell_to_children(cell, res))

    def position_of(self, cell: object) -> tuple[float, float]:
        """The (lat, lon) centre of a picked cell of this grid or of a refinement patch."""
        if not isinstance(cell, str) or not h3.is_valid_cell(cell):
            raise PickError(f"{cell!r} is not a cell of the map's grid")
        res = h3.get_resolution(cell)
        if res < self.resolution or res > self.resolution + FINER_STEPS:
            raise PickError(f"cell {cell} has resolution {res}; the grid uses {self.resolution}")
        if not self.world and h3.cell_to_parent(cell, self.resolution) not in self.cell_set:
            raise PickError(f"cell {cell} lies outside this map")
        lat, lon = h3.cell_to_latlng(cell)
        return float(lat), float(lon)


def build_pick_grid(south: float, west: float, north: float, east: float,
                    map_size_km: float) -> PickGrid:
    """The grid covering the bounds (plus a margin) with errors <= ERROR_FRACTION * map size."""
    bound_km = ERROR_FRACTION * map_size_km
    world = (east - west) > WORLD_LON_SPAN_DEG
    region = None if world else _with_margin(south, west, north, east)
    for res in range(MIN_RESOLUTION, MAX_RESOLUTION + 1):
        if _typical_radius_km(res) > bound_km and res < MAX_RESOLUTION:
            continue  # too coarse even on average; skip enumerating it
        cells = _world_cells(res) if world else _region_cells(region, res)
        error = max_error_km(cells)
        if error <= bound_km or res == MAX_RESOLUTION:
            break
    if len(cells) > MAX_CELLS:
        raise ValueError(f"a pick grid of {len(cells)} cells is too large for the browser "
                         f"(resolution {res}, map size {map_size_km:.0f} km)")
    return PickGrid(resolution=res, cells=tuple(cells), world=world, max_error_km=error)


def max_error_km(cells) -> float:
    """The largest distance from a cell's centre to one of its corners, over the cells."""
    centres, corners = [], []
    for cell in cells:  # one vectorised distance call: a world grid has 41,162 cells
        boundary = h3.cell_to_boundary(cell)
        centres.extend([h3.cell_to_latlng(cell)] * len(boundary))
        corners.extend(boundary)
    if not corners:
        return 0.0
    a, b = np.asarray(centres), np.asarray(corners)
    return float(haversine_km(a[:, 0], a[:, 1], b[:, 0], b[:, 1]).max())


def _typical_radius_km(res: int) -> float:
    return h3.average_hexagon_edge_length(res, unit="km")


def _with_margin(south, west, north, east) -> tuple[float, float, float, float]:
    dlat = max((north - south) * MARGIN_FRACTION, MIN_MARGIN_DEG)
    dlon = max((east - west) * MARGIN_FRACTION, MIN_MARGIN_DEG)
    return (max(south - dlat, -89.0), max(west - dlon, -180.0),
            min(north + dlat, 89.0), min(east + dlon, 180.0))


def _region_cells(region, res: int) -> list[str]:
    south, west, north, east = region
    # Densify the edges: H3 treats polygon edges as great circles, a box's parallels are not.
    steps = 16
    lats = np.linspace(south, north, steps)
    lons = np.linspace(west, east, steps)
    ring = ([(south, lon) for lon in lons] + [(lat, east) for lat in lats[1:]]
            + [(north, lon) for lon in lons[::-1][1:]] + [(lat, west) for lat in lats[::-1][1:-1]])
    cells = set(h3.h3shape_to_cells_experimental(h3.LatLngPoly(ring), res, contain="overlap"))
    return sorted(cells)


def _world_cells(res: int) -> list[str]:
    return sorted(c for base in h3.get_res0_cells() for c in h3.cell_to_children(base, res))
