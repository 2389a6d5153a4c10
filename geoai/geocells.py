"""Geocells: the classes a geolocation classifier predicts.

A `Geocells` object partitions the training coordinates into K cells, each represented by
its centroid (the spherical mean of the training points in it), and maps any coordinate on
Earth to one cell (`assign`). Two kinds are built here:

- ``grid``: the study's grid, one cell per distinct ``square_id``. Training labels come
  from the square ids (`Geocells.label_of`); other coordinates go to the nearest centroid.
- ``quadtree``: a data-driven adaptive quadtree over latitude/longitude boxes of the whole
  world, so dense regions get small cells and sparse ones large cells.

`haversine_soft_targets` turns a true cell into PIGEON's haversine-smoothed label
distribution. Everything is JSON-serialisable (`to_dict` / `from_dict`) so a model bundle
can carry its cells in ``config.json``.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from geoai.geodesy import (
    from_unit_vectors,
    pairwise_haversine_km,
    to_unit_vectors,
    validate_coordinates,
)

KINDS = ("grid", "quadtree")
FORMAT_NAME = "geoai.geocells"
FORMAT_VERSION = 1
# Quadtree box codes (lat_index << depth | lon_index) must fit in an int64; depth 26 already
# means boxes of ~0.3 m in latitude, far below GPS precision.
MAX_QUADTREE_DEPTH = 26


class GeocellError(ValueError):
    """Geocells cannot be built, read or used with the given input."""


class InvalidCoordinatesError(GeocellError):
    """Coordinates are not an (N, 2) array of finite [lat, lon] degrees in range."""


class UnknownCellError(GeocellError):
    """A cell label (e.g. a square_id) that the geocells do not contain."""


# --------------------------------------------------------------------------- helpers


def _as_latlon(latlon: Any, what: str) -> np.ndarray:
    """Validate and return an (N, 2) float64 [lat, lon] array; raise InvalidCoordinatesError."""
    try:
        arr = np.asarray(latlon, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidCoordinatesError(
            f"{what} must be numbers, an (N, 2) array of [lat, lon] degrees: {exc}"
        ) from exc
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise InvalidCoordinatesError(
            f"{what} must have shape (N, 2) with columns [lat, lon] in degrees, got shape {arr.shape}"
        )
    try:
        validate_coordinates(arr[:, 0], arr[:, 1])
    except ValueError as exc:
        raise InvalidCoordinatesError(f"{what}: {exc} (columns are [lat, lon], in that order)") from exc
    return arr


def _cell_label(value: Any) -> str:
    """Canonical text label of a cell id: 7, 7.0, np.int64(7) and "7" all become "7"."""
    if isinstance(value, (bool, np.bool_)) or value is None:
        raise GeocellError(f"{value!r} is not a valid cell id (use an integer or a string)")
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        if not math.isfinite(value) or value != int(value):
            raise GeocellError(f"{value!r} is not a valid cell id (use an integer or a string)")
        return str(int(value))  # pandas turns integer ids into floats when a column has gaps
    text = str(value).strip()
    if not text:
        raise GeocellError("an empty string is not a valid cell id")
    return text


def _label_sort_key(label: str) -> tuple:
    """Numeric labels sort as numbers ("2" before "10"), and before any text labels."""
    try:
        return (0, int(label), "")
    except ValueError:
        return (1, 0, label)


def _group_centroids(unit: np.ndarray, group: np.ndarray, k: int) -> np.ndarray:
    """(k, 2) spherical means of the unit vectors in each group (group ids 0..k-1)."""
    sums = np.stack([np.bincount(group, weights=unit[:, c], minlength=k) for c in range(3)], axis=1)
    return from_unit_vectors(sums)


def _grid_indices(latlon: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer box indices of each point at the finest quadtree depth.

    The world box is [-90, 90] x [-180, 180) split into 2**depth rows and columns.
    Latitude 90 falls in the top row; longitude 180 is the same meridian as -180.
    """
    n = 1 << depth
    ilat = np.floor((latlon[:, 0] + 90.0) / 180.0 * n).astype(np.int64)
    ilon = np.floor((latlon[:, 1] + 180.0) / 360.0 * n).astype(np.int64)
    return np.clip(ilat, 0, n - 1), np.mod(ilon, n)


def nearest_cell(latlon: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """(N,) index of the great-circle-nearest centroid for each [lat, lon] row.

    Exact (up to floating-point ties), correct across the antimeridian and at the poles.
    Build a `NearestCentroidIndex` once instead when querying the same centroids repeatedly.
    """
    points = _as_latlon(latlon, "latlon")
    return NearestCentroidIndex(_as_latlon(centroids, "centroids")).query(points)


class NearestCentroidIndex:
    """Exact nearest-centroid search on the sphere, bucketed by coarse lat/lon boxes.

    The nearest centroid maximises the dot product of unit vectors. Rather than scoring every
    centroid for every point, each coarse box keeps only the centroids that can be nearest
    to some point inside it: with m the box centre and rho a bound on the angle from m to any
    point of the box, a point's nearest centroid lies within min_c angle(m, c) + 2 rho of m.
    """

    DEPTH = 6  # 64 x 64 boxes of 2.8 x 5.6 degrees: few candidates, little per-box overhead
    _SLACK_RAD = 1e-6  # covers rounding in the angles (1e-6 rad is about 6 m)

    def __init__(self, centroids: np.ndarray) -> None:
        if len(centroids) == 0:
            raise GeocellError("a nearest-centroid search needs at least one centroid")
        self.unit = to_unit_vectors(centroids)
        n = 1 << self.DEPTH
        lat_edges = np.radians(np.linspace(-90.0, 90.0, n + 1))
        self._row_centre = (lat_edges[:-1] + lat_edges[1:]) / 2
        # From the centre, go along the meridian to the point's latitude (<= half the box
        # height), then along the parallel (<= half the width times cos(latitude)).
        nearest_to_equator = np.where(lat_edges[:-1] * lat_edges[1:] < 0, 0.0,
                                      np.minimum(abs(lat_edges[:-1]), abs(lat_edges[1:])))
        self._row_radius = np.pi / n / 2 + np.pi / n * np.cos(nearest_to_equator)
        self._candidates: dict[int, np.ndarray] = {}

    def _candidates_of(self, box: int) -> np.ndarray:
        found = self._candidates.get(box)
        if found is None:
            n = 1 << self.DEPTH
            row, col = divmod(box, n)
            lon_centre = -np.pi + (col + 0.5) * 2 * np.pi / n
            lat_centre = self._row_centre[row]
            centre = np.array([np.cos(lat_centre) * np.cos(lon_centre),
                               np.cos(lat_centre) * np.sin(lon_centre), np.sin(lat_centre)])
            angle = np.arccos(np.clip(self.unit @ centre, -1.0, 1.0))
            limit = angle.min() + 2 * self._row_radius[row] + self._SLACK_RAD
            found = self._candidates[box] = np.flatnonzero(angle <= limit)
        return found

    def query(self, points: np.ndarray) -> np.ndarray:
        """(N,) int64 nearest-centroid index of validated (N, 2) [lat, lon] points."""
        result = np.zeros(len(points), dtype=np.int64)
        if len(self.unit) == 1 or len(points) == 0:
            return result
        unit = to_unit_vectors(points)
        ilat, ilon = _grid_indices(points, self.DEPTH)
        box = (ilat << self.DEPTH) | ilon
        order = np.argsort(box, kind="stable")
        boxes, starts = np.unique(box[order], return_index=True)
        for b, lo, hi in zip(boxes.tolist(), starts.tolist(), [*starts[1:].tolist(), len(order)]):
            members = order[lo:hi]
            candidates = self._candidates_of(b)
            if len(candidates) == 1:
                result[members] = candidates[0]
            else:
                result[members] = candidates[np.argmax(unit[members] @ self.unit[candidates].T, axis=1)]
        return result


# --------------------------------------------------------------------------- Geocells


@dataclass(eq=False)
class Geocells:
    """K geographic cells: the label space of a geolocation classifier.

    centroids: (K, 2) float64 [lat, lon] degrees, spherical mean of each cell's training points.
    counts: (K,) int64 number of training points per cell.
    kind: "grid" or "quadtree".
    labels: K unique text ids: square ids for the grid; for the quadtree "q" followed by the
        quadrant path of the cell's largest box (digit = 2 * north + east, so 0 = south-west,
        3 = north-east), plus "+n" when n more boxes were merged into the cell.
    leaves: quadtree only, (L, 4) int64 rows [depth, lat_index, lon_index, cell]: the boxes
        (at ``depth``, the world split into 2**depth rows and columns) that make up each cell.
    max_depth: quadtree only, the depth at which point indices are computed.
    """

    centroids: np.ndarray
    counts: np.ndarray
    kind: str
    labels: list[str]
    leaves: np.ndarray | None = None
    max_depth: int | None = None
    _nearest: NearestCentroidIndex | None = field(default=None, init=False, repr=False)
    _boxes: list[tuple[int, np.ndarray, np.ndarray]] | None = field(default=None, init=False, repr=False)
    _label_index: dict[str, int] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise GeocellError(f"unknown geocell kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        self.centroids = _as_latlon(self.centroids, "centroids").copy()
        self.counts = np.asarray(self.counts, dtype=np.int64).copy()
        self.labels = [str(label) for label in self.labels]
        k = len(self.centroids)
        if k == 0:
            raise GeocellError("geocells need at least one cell")
        if self.counts.shape != (k,) or len(self.labels) != k:
            raise GeocellError(
                f"inconsistent geocells: {k} centroids, {self.counts.size} counts, {len(self.labels)} labels"
            )
        self._label_index = {label: i for i, label in enumerate(self.labels)}
        if len(self._label_index) != k:
            raise GeocellError("geocell labels must be unique")
        if self.kind == "quadtree":
            self._check_leaves(k)
        elif self.leaves is not None or self.max_depth is not None:
            raise GeocellError(f"{self.kind} geocells take no quadtree leaves or max_depth")

    def _check_leaves(self, k: int) -> None:
        if self.leaves is None or self.max_depth is None:
            raise GeocellError("quadtree geocells need leaves and max_depth")
        if not isinstance(self.max_depth, numbers.Integral) or not 0 <= self.max_depth <= MAX_QUADTREE_DEPTH:
            raise GeocellError(
                f"quadtree max_depth must be an integer in [0, {MAX_QUADTREE_DEPTH}], got {self.max_depth!r}"
            )
        self.max_depth = int(self.max_depth)
        leaves = np.asarray(self.leaves, dtype=np.int64).reshape(-1, 4).copy()
        depth, ilat, ilon, cell = leaves.T
        size = np.left_shift(1, np.clip(depth, 0, MAX_QUADTREE_DEPTH))
        if ((depth < 0) | (depth > self.max_depth) | (ilat < 0) | (ilat >= size) | (ilon < 0) | (ilon >= size)
                | (cell < 0) | (cell >= k)).any():
            raise GeocellError("quadtree leaves hold a box or cell index out of range")
        if not np.array_equal(np.unique(cell), np.arange(k)):
            raise GeocellError("every quadtree cell needs at least one leaf box")
        self.leaves = leaves

    def __len__(self) -> int:
        return len(self.centroids)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Geocells):
            return NotImplemented
        same_leaves = (self.leaves is None and other.leaves is None) or (
            self.leaves is not None and other.leaves is not None and np.array_equal(self.leaves, other.leaves)
        )
        return (self.kind == other.kind and self.labels == other.labels
                and self.max_depth == other.max_depth and same_leaves
                and np.array_equal(self.centroids, other.centroids)
                and np.array_equal(self.counts, other.counts))

    # ------------------------------------------------------------------ lookup

    def assign(self, latlon: np.ndarray) -> np.ndarray:
        """(N,) int64 cell index of each [lat, lon] row, for any valid coordinate on Earth.

        Grid: the nearest centroid. Quadtree: the cell whose box contains the point, or the
        nearest centroid (haversine) when the point lies where there was no training data.
        """
        points = _as_latlon(latlon, "latlon")
        if self.kind == "grid":
            return self._nearest_index().query(points)
        cells = self._box_lookup(points)
        outside = cells < 0
        if outside.any():
            cells[outside] = self._nearest_index().query(points[outside])
        return cells

    def _nearest_index(self) -> NearestCentroidIndex:
        if self._nearest is None:
            self._nearest = NearestCentroidIndex(self.centroids)
        return self._nearest

    def _box_lookup(self, points: np.ndarray) -> np.ndarray:
        """Cell of the leaf box holding each point, -1 where no leaf does (vectorised descent)."""
        if self._boxes is None:
            self._boxes = []
            for depth in np.unique(self.leaves[:, 0]):
                rows = self.leaves[self.leaves[:, 0] == depth]
                codes = np.left_shift(rows[:, 1], depth) | rows[:, 2]
                order = np.argsort(codes)
                self._boxes.append((int(depth), codes[order], rows[order, 3]))
        ilat, ilon = _grid_indices(points, self.max_depth)
        cells = np.full(len(points), -1, dtype=np.int64)
        for depth, codes, box_cells in self._boxes:
            todo = np.flatnonzero(cells < 0)
            if todo.size == 0:
                break
            shift = self.max_depth - depth
            query = np.left_shift(ilat[todo] >> shift, depth) | (ilon[todo] >> shift)
            pos = np.minimum(np.searchsorted(codes, query), len(codes) - 1)
            hit = codes[pos] == query
            cells[todo[hit]] = box_cells[pos[hit]]
        return cells

    def label_of(self, cell_id: Any) -> int:
        """Cell index of a label, e.g. a square_id (7, "7" and 7.0 are the same id)."""
        label = _cell_label(cell_id)
        try:
            return self._label_index[label]
        except KeyError:
            examples = ", ".join(self.labels[:5])
            raise UnknownCellError(
                f"unknown cell id {cell_id!r}: these {self.kind} geocells have {len(self)} cells "
                f"(labels such as {examples}); were they built from the same annotations?"
            ) from None

    def labels_of(self, cell_ids: Sequence[Any]) -> np.ndarray:
        """(N,) int64 cell indices of many labels; raises UnknownCellError on the first unknown one."""
        return np.fromiter((self.label_of(c) for c in cell_ids), dtype=np.int64, count=len(cell_ids))

    def leaf_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Quadtree boxes as ((L, 4) [lat_min, lat_max, lon_min, lon_max] degrees, (L,) cell index).

        Boxes are half-open: lat_min <= lat < lat_max (the top row also holds lat 90) and
        lon_min <= lon < lon_max (lon 180 counts as -180).
        """
        if self.kind != "quadtree":
            raise GeocellError(f"{self.kind} geocells have no boxes")
        depth, ilat, ilon, cell = self.leaves.T
        lat_step = 180.0 / np.left_shift(1, depth)
        lon_step = 360.0 / np.left_shift(1, depth)
        bounds = np.stack([-90.0 + ilat * lat_step, -90.0 + (ilat + 1) * lat_step,
                           -180.0 + ilon * lon_step, -180.0 + (ilon + 1) * lon_step], axis=1)
        return bounds, cell.copy()

    # ------------------------------------------------------------------ serialisation

    def to_dict(self) -> dict:
        """JSON-serialisable description; `from_dict` restores an equal object."""
        out: dict[str, Any] = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "kind": self.kind,
            "labels": list(self.labels),
            "centroids": self.centroids.tolist(),  # Python floats: json writes them exactly
            "counts": self.counts.tolist(),
        }
        if self.kind == "quadtree":
            out["max_depth"] = self.max_depth
            out["leaves"] = self.leaves.tolist()
        return out

    @classmethod
    def from_dict(cls, d: dict) -> Geocells:
        """Rebuild geocells from `to_dict` output (e.g. read back from a model's config.json)."""
        if not isinstance(d, dict):
            raise GeocellError(f"geocells config must be a dict, got {type(d).__name__}")
        if d.get("format") != FORMAT_NAME:
            raise GeocellError(f"not a geocells config: format is {d.get('format')!r}, "
                               f"expected {FORMAT_NAME!r}")
        if d.get("version") != FORMAT_VERSION:
            raise GeocellError(f"geocells config version {d.get('version')!r} is not supported "
                               f"(this code reads version {FORMAT_VERSION})")
        missing = [key for key in ("kind", "labels", "centroids", "counts") if key not in d]
        if d.get("kind") == "quadtree":
            missing += [key for key in ("max_depth", "leaves") if key not in d]
        if missing:
            raise GeocellError(f"geocells config is missing {', '.join(missing)}")
        return cls(
            centroids=np.asarray(d["centroids"], dtype=np.float64).reshape(-1, 2),
            counts=d["counts"],
            kind=d["kind"],
            labels=d["labels"],
            leaves=d.get("leaves"),
            max_depth=d.get("max_depth"),
        )


# --------------------------------------------------------------------------- grid


def grid_cells(square_ids: Sequence[Any], latlon: np.ndarray) -> Geocells:
    """The study's grid: one cell per distinct square_id, centroid = spherical mean of its members.

    Cells are ordered by square id (numerically when the ids are integers). Use
    ``cells.label_of(square_id)`` for training labels; ``assign`` maps other coordinates
    to the nearest centroid.
    """
    points = _as_latlon(latlon, "latlon")
    ids = list(square_ids)
    if len(ids) != len(points):
        raise GeocellError(f"got {len(ids)} square ids for {len(points)} coordinates; they must pair up")
    if not ids:
        raise GeocellError("cannot build geocells from zero training coordinates")
    labels = [_cell_label(s) for s in ids]
    ordered = sorted(set(labels), key=_label_sort_key)
    index = {label: i for i, label in enumerate(ordered)}
    group = np.fromiter((index[label] for label in labels), dtype=np.int64, count=len(labels))
    k = len(ordered)
    return Geocells(
        centroids=_group_centroids(to_unit_vectors(points), group, k),
        counts=np.bincount(group, minlength=k),
        kind="grid",
        labels=ordered,
    )


# --------------------------------------------------------------------------- quadtree


@dataclass
class _Group:
    """A cell under construction: its boxes, member point indices and unit-vector sum."""

    boxes: list[tuple[int, int, int, int]]  # (depth, lat_index, lon_index, points in box)
    members: list[np.ndarray]
    count: int
    vector_sum: np.ndarray

    def absorb(self, other: _Group) -> None:
        self.boxes += other.boxes
        self.members += other.members
        self.count += other.count
        self.vector_sum = self.vector_sum + other.vector_sum

    def direction(self) -> np.ndarray:
        norm = np.linalg.norm(self.vector_sum)
        return self.vector_sum / norm if norm > 0 else self.vector_sum


def _path_label(depth: int, ilat: int, ilon: int) -> str:
    digits = [str(2 * ((ilat >> s) & 1) + ((ilon >> s) & 1)) for s in range(depth - 1, -1, -1)]
    return "q" + "".join(digits)


def quadtree_cells(
    latlon: np.ndarray, *, min_samples: int = 10, max_samples: int = 100, max_depth: int = 12
) -> Geocells:
    """Adaptive quadtree geocells over the training coordinates.

    Starting from the world box [-90, 90] x [-180, 180), a box is split into four while it
    holds more than ``max_samples`` points and its depth is below ``max_depth``. Empty boxes
    make no cell. Boxes with fewer than ``min_samples`` points (remnants) are settled bottom-up
    at their parent: sibling remnants are pooled; a pool that reaches ``min_samples`` becomes
    a cell, otherwise it joins the nearest cell of the parent's subtree that stays within
    ``max_samples`` (or the nearest one if none has room), or moves up a level if the subtree
    has no other cell.

    Guarantees:
    - every training point belongs to exactly one cell, and ``assign`` maps it there;
    - every cell holds at least ``min_samples`` points, unless the whole dataset has fewer
      (then it is a single cell);
    - a cell holds more than ``max_samples`` points only if it contains a box at
      ``max_depth`` (e.g. many photos at one spot, which no split can separate) or it is
      made of several boxes: remnants (each < ``min_samples`` points) pooled together, or
      absorbed when no nearby cell had room.
    """
    points = _as_latlon(latlon, "latlon")
    if len(points) == 0:
        raise GeocellError("cannot build geocells from zero training coordinates")
    for name, value in (("min_samples", min_samples), ("max_samples", max_samples)):
        if not isinstance(value, numbers.Integral) or value < 1:
            raise GeocellError(f"{name} must be a positive integer, got {value!r}")
    if min_samples > max_samples:
        raise GeocellError(f"min_samples ({min_samples}) must not exceed max_samples ({max_samples})")
    if not isinstance(max_depth, numbers.Integral) or not 0 <= max_depth <= MAX_QUADTREE_DEPTH:
        raise GeocellError(f"max_depth must be an integer in [0, {MAX_QUADTREE_DEPTH}], "
                           f"got {max_depth!r}")

    unit = to_unit_vectors(points)
    ilat, ilon = _grid_indices(points, max_depth)

    def settle(groups: list[_Group]) -> list[_Group]:
        small = [g for g in groups if g.count < min_samples]
        if not small:
            return groups
        big = [g for g in groups if g.count >= min_samples]
        pool = small[0]
        for g in small[1:]:
            pool.absorb(g)
        if pool.count >= min_samples or not big:
            return big + [pool]  # a cell of its own, or a remnant the parent settles
        dirs = np.stack([g.direction() for g in big])
        closeness = dirs @ pool.direction()  # larger dot product = nearer on the sphere
        room = np.array([g.count + pool.count <= max_samples for g in big])
        if room.any():
            closeness = np.where(room, closeness, -np.inf)
        big[int(np.argmax(closeness))].absorb(pool)
        return big

    def build(idx: np.ndarray, depth: int, i: int, j: int) -> list[_Group]:
        if idx.size == 0:
            return []
        if idx.size <= max_samples or depth == max_depth:
            return [_Group([(depth, i, j, int(idx.size))], [idx], int(idx.size), unit[idx].sum(axis=0))]
        shift = max_depth - depth - 1
        quadrant = 2 * ((ilat[idx] >> shift) & 1) + ((ilon[idx] >> shift) & 1)
        groups: list[_Group] = []
        for q in range(4):  # 0 = south-west, 1 = south-east, 2 = north-west, 3 = north-east
            groups += build(idx[quadrant == q], depth + 1, 2 * i + q // 2, 2 * j + q % 2)
        return settle(groups)

    groups = build(np.arange(len(points)), 0, 0, 0)

    leaves, labels, counts = [], [], []
    group_of = np.empty(len(points), dtype=np.int64)
    for cell, g in enumerate(groups):
        leaves += [(d, bi, bj, cell) for d, bi, bj, _ in g.boxes]
        d, bi, bj, _ = max(g.boxes, key=lambda box: box[3])
        extra = len(g.boxes) - 1
        labels.append(_path_label(d, bi, bj) + (f"+{extra}" if extra else ""))
        counts.append(g.count)
        group_of[np.concatenate(g.members)] = cell
    return Geocells(
        centroids=_group_centroids(unit, group_of, len(groups)),
        counts=np.asarray(counts, dtype=np.int64),
        kind="quadtree",
        labels=labels,
        leaves=np.asarray(leaves, dtype=np.int64),
        max_depth=int(max_depth),
    )


# --------------------------------------------------------------------------- soft targets


def haversine_soft_targets(
    latlon_true: np.ndarray, centroids: np.ndarray, true_cell: np.ndarray, tau_km: float = 75.0
) -> np.ndarray:
    """PIGEON's haversine label smoothing: (N, K) target distributions, rows summing to 1.

    target[n, i] is proportional to exp(-(d(c_i, x_n) - d(c_true, x_n)) / tau_km), with d the
    haversine distance in km from the true location x_n to centroid c_i. Cells near the true
    location share the probability mass, so near misses cost less than far ones; as
    tau_km -> 0 the row becomes one-hot on the centroid nearest to x_n.
    """
    points = _as_latlon(latlon_true, "latlon_true")
    cents = _as_latlon(centroids, "centroids")
    cells = np.asarray(true_cell)
    if not np.issubdtype(cells.dtype, np.integer) or cells.shape != (len(points),):
        raise GeocellError(f"true_cell must be {len(points)} integer cell indices, got shape {cells.shape} "
                           f"and dtype {cells.dtype}")
    if cells.size and (cells.min() < 0 or cells.max() >= len(cents)):
        raise GeocellError(f"true_cell indices must lie in [0, {len(cents)}), "
                           f"got {cells.min()}..{cells.max()}")
    if not (isinstance(tau_km, numbers.Real) and math.isfinite(tau_km) and tau_km > 0):
        raise GeocellError(f"tau_km must be a positive number of kilometres, got {tau_km!r}")
    distance = pairwise_haversine_km(points, cents)
    logits = -(distance - distance[np.arange(len(points)), cells][:, None]) / tau_km
    logits -= logits.max(axis=1, keepdims=True)  # exp never overflows; the largest term is 1
    weights = np.exp(logits)
    return weights / weights.sum(axis=1, keepdims=True)
