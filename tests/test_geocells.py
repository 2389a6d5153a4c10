"""Tests of geoai.geocells on the study's real grid (seed-europe-locations), worldwide
im2gps3k coordinates and synthetic edge cases (duplicates, antimeridian, poles, tiny data)."""
from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest

from geoai.geocells import (
    GeocellError,
    Geocells,
    InvalidCoordinatesError,
    UnknownCellError,
    grid_cells,
    haversine_soft_targets,
    nearest_cell,
    quadtree_cells,
)
from geoai.geodesy import pairwise_haversine_km, spherical_mean


@pytest.fixture(scope="module")
def europe(shared_data) -> pd.DataFrame:
    return pd.read_csv(shared_data / "seed-europe-locations" / "annotations_glued.csv")


@pytest.fixture(scope="module")
def europe_latlon(europe) -> np.ndarray:
    return europe[["lat", "lon"]].to_numpy()


@pytest.fixture(scope="module")
def europe_grid(europe, europe_latlon) -> Geocells:
    return grid_cells(europe["square_id"], europe_latlon)


@pytest.fixture(scope="module")
def europe_quadtree(europe_latlon) -> Geocells:
    return quadtree_cells(europe_latlon, min_samples=10, max_samples=100)


@pytest.fixture(scope="module")
def im2gps_latlon(shared_data) -> np.ndarray:
    return pd.read_csv(shared_data / "im2gps3k" / "metadata.csv")[["lat", "lon"]].to_numpy()


def random_world_points(n: int, seed: int = 0) -> np.ndarray:
    """Points uniform on the sphere (uniform in sin(lat)), lon in [-180, 180)."""
    rng = np.random.default_rng(seed)
    return np.column_stack([np.degrees(np.arcsin(rng.uniform(-1, 1, n))), rng.uniform(-180, 180, n)])


def box_holding(cells: Geocells, latlon: np.ndarray) -> np.ndarray:
    """Cell of the (half-open) leaf box holding each point, found geometrically; -1 if none.

    Independent of the integer indexing inside `assign`, and checks boxes never overlap."""
    bounds, box_cell = cells.leaf_bounds()
    lat, lon = latlon[:, :1], np.where(latlon[:, 1:] == 180.0, -180.0, latlon[:, 1:])
    inside = ((bounds[:, 0] <= lat) & ((lat < bounds[:, 1]) | ((bounds[:, 1] == 90.0) & (lat == 90.0)))
              & (bounds[:, 2] <= lon) & (lon < bounds[:, 3]))
    assert inside.sum(axis=1).max() <= 1, "quadtree boxes overlap"
    return np.where(inside.any(axis=1), box_cell[inside.argmax(axis=1)], -1)


def boxes_per_cell(cells: Geocells) -> np.ndarray:
    return np.bincount(cells.leaves[:, 3], minlength=len(cells))


def check_quadtree_guarantees(cells: Geocells, latlon: np.ndarray, min_samples: int, max_samples: int) -> None:
    """The documented guarantees of quadtree_cells, for any dataset."""
    assigned = cells.assign(latlon)
    # Every training point is in exactly one box, and assign() sends it to that box's cell.
    np.testing.assert_array_equal(assigned, box_holding(cells, latlon))
    np.testing.assert_array_equal(np.bincount(assigned, minlength=len(cells)), cells.counts)
    if len(latlon) >= min_samples:
        assert cells.counts.min() >= min_samples
    else:
        assert len(cells) == 1 and cells.counts[0] == len(latlon)
    over = np.flatnonzero(cells.counts > max_samples)
    at_max_depth = np.zeros(len(cells), bool)
    at_max_depth[cells.leaves[cells.leaves[:, 0] == cells.max_depth, 3]] = True
    for cell in over:
        assert at_max_depth[cell] or boxes_per_cell(cells)[cell] > 1, f"cell {cell} over max_samples"
    # Centroids are the spherical means of each cell's members.
    for cell in range(len(cells)):
        np.testing.assert_allclose(cells.centroids[cell], spherical_mean(latlon[assigned == cell]), atol=1e-9)


# --------------------------------------------------------------------------- grid


def test_grid_has_one_cell_per_square_with_centroid_inside_its_members(europe, europe_latlon, europe_grid):
    cells = europe_grid
    assert len(cells) == 88 and cells.kind == "grid"
    assert cells.labels == [str(i) for i in range(88)]  # numeric order, not "0", "1", "10", ...
    assert cells.counts.tolist() == [200] * 88
    for square, members in europe.groupby("square_id"):
        cell = cells.label_of(square)
        lat, lon = members["lat"], members["lon"]
        c_lat, c_lon = cells.centroids[cell]
        assert lat.min() <= c_lat <= lat.max() and lon.min() <= c_lon <= lon.max(), square
    # Training labels come from square ids, whatever their type in the caller's table.
    # Square ids 0..87 in numeric order make cell index == square id.
    np.testing.assert_array_equal(cells.labels_of(europe["square_id"]), europe["square_id"].to_numpy())
    assert cells.label_of(7) == cells.label_of("7") == cells.label_of(7.0) == cells.label_of(np.int64(7)) == 7


def test_grid_assigns_each_centroid_to_its_own_cell_and_rejects_unknown_squares(europe_grid):
    np.testing.assert_array_equal(europe_grid.assign(europe_grid.centroids), np.arange(88))
    with pytest.raises(UnknownCellError, match="unknown cell id 999"):
        europe_grid.label_of(999)
    with pytest.raises(GeocellError, match="not a valid cell id"):
        europe_grid.label_of(float("nan"))


def test_grid_rejects_mismatched_or_missing_square_ids(europe_latlon):
    with pytest.raises(GeocellError, match="must pair up"):
        grid_cells([0, 1], europe_latlon[:3])
    with pytest.raises(GeocellError, match="not a valid cell id"):
        grid_cells([0, None, 1], europe_latlon[:3])


# --------------------------------------------------------------------------- quadtree


def test_quadtree_on_the_study_data_respects_its_guarantees(europe_latlon, europe_quadtree):
    cells = europe_quadtree
    assert cells.kind == "quadtree"
    assert 17_600 / 100 <= len(cells) <= 17_600 / 10
    check_quadtree_guarantees(cells, europe_latlon, 10, 100)
    # On this data no cell needed to exceed max_samples (a plain measurement, printed).
    print(f"\nEurope quadtree: {len(cells)} cells, counts {cells.counts.min()}..{cells.counts.max()}, "
          f"{len(cells.leaves)} boxes, depths {sorted(set(cells.leaves[:, 0].tolist()))}")
    assert cells.counts.max() <= 100
    assert len(set(cells.labels)) == len(cells) and all(label.startswith("q") for label in cells.labels)


def test_dense_areas_get_smaller_cells(europe_latlon):
    # Add a dense city to the study data: its cells must be smaller than the countryside's.
    rng = np.random.default_rng(1)
    city = np.column_stack([48.85 + rng.normal(0, 0.02, 3000), 2.35 + rng.normal(0, 0.03, 3000)])
    cells = quadtree_cells(np.vstack([europe_latlon, city]), min_samples=10, max_samples=100)
    bounds, box_cell = cells.leaf_bounds()
    area = (bounds[:, 1] - bounds[:, 0]) * (bounds[:, 3] - bounds[:, 2])
    city_box = box_cell == cells.assign(np.array([[48.85, 2.35]]))[0]
    assert area[city_box].max() < np.median(area) / 10


def test_quadtree_guarantees_hold_on_random_clustered_data():
    rng = np.random.default_rng(2)
    for trial in range(12):
        centres = random_world_points(rng.integers(1, 8), seed=trial)
        sizes = rng.integers(1, 400, len(centres))
        spread = rng.choice([0.0, 0.01, 1.0, 20.0], len(centres))  # 0.0: all at one spot
        latlon = np.vstack([np.column_stack([np.clip(c[0] + rng.normal(0, s, n), -90, 90),
                                             (c[1] + rng.normal(0, s, n) + 180) % 360 - 180])
                            for c, n, s in zip(centres, sizes, spread)])
        min_samples = int(rng.integers(1, 30))
        max_samples = int(rng.integers(min_samples, 120))
        cells = quadtree_cells(latlon, min_samples=min_samples, max_samples=max_samples,
                               max_depth=int(rng.integers(0, 14)))
        check_quadtree_guarantees(cells, latlon, min_samples, max_samples)


def test_worldwide_im2gps_coordinates(im2gps_latlon):
    cells = quadtree_cells(im2gps_latlon, min_samples=10, max_samples=100)
    check_quadtree_guarantees(cells, im2gps_latlon, 10, 100)
    assert len(cells) >= 1937 // 100
    # Many im2gps photos share one coordinate; a worldwide set spans both hemispheres.
    assert (cells.centroids[:, 1] < -30).any() and (cells.centroids[:, 1] > 60).any()


def test_duplicate_coordinates_stop_at_max_depth():
    rng = np.random.default_rng(3)
    spot = np.tile([[45.0, 7.0]], (500, 1))
    others = np.column_stack([rng.uniform(40, 50, 200), rng.uniform(0, 15, 200)])
    cells = quadtree_cells(np.vstack([spot, others]), min_samples=10, max_samples=100, max_depth=12)
    spot_cell = cells.assign(spot[:1])[0]
    assert cells.counts[spot_cell] >= 500
    assert cells.leaves[cells.leaves[:, 3] == spot_cell, 0].max() == 12
    check_quadtree_guarantees(cells, np.vstack([spot, others]), 10, 100)


def test_tiny_and_empty_datasets():
    three = np.array([[10.0, 20.0], [10.5, 20.5], [11.0, 21.0]])
    cells = quadtree_cells(three, min_samples=10)
    assert len(cells) == 1 and cells.counts.tolist() == [3]
    np.testing.assert_array_equal(cells.assign(random_world_points(50)), np.zeros(50))
    with pytest.raises(GeocellError, match="zero training coordinates"):
        quadtree_cells(np.zeros((0, 2)))
    with pytest.raises(GeocellError, match="zero training coordinates"):
        grid_cells([], np.zeros((0, 2)))


def test_bad_parameters_and_coordinates_are_rejected(europe_quadtree):
    with pytest.raises(GeocellError, match="must not exceed"):
        quadtree_cells(np.zeros((5, 2)), min_samples=20, max_samples=10)
    with pytest.raises(GeocellError, match="max_depth"):
        quadtree_cells(np.zeros((5, 2)), max_depth=40)
    with pytest.raises(InvalidCoordinatesError, match=r"index 1.*95"):
        europe_quadtree.assign(np.array([[45.0, 7.0], [95.0, 7.0]]))
    with pytest.raises(InvalidCoordinatesError, match="index 0"):
        europe_quadtree.assign(np.array([[np.nan, 7.0]]))
    with pytest.raises(InvalidCoordinatesError, match=r"shape \(N, 2\)"):
        europe_quadtree.assign(np.zeros((4, 3)))


# --------------------------------------------------------------------------- lookup anywhere


@pytest.mark.parametrize("kind", ["grid", "quadtree"])
def test_assign_covers_the_whole_world(kind, europe_grid, europe_quadtree):
    cells = europe_grid if kind == "grid" else europe_quadtree
    points = random_world_points(10_000, seed=4)
    assigned = cells.assign(points)
    assert assigned.dtype == np.int64 and assigned.shape == (10_000,)
    assert assigned.min() >= 0 and assigned.max() < len(cells)
    # Where no box holds the point (all grid points; quadtree points far from the data),
    # the cell is the haversine-nearest centroid.
    outside = np.ones(len(points), bool) if kind == "grid" else box_holding(cells, points) < 0
    assert outside.sum() > 5_000
    nearest = pairwise_haversine_km(points[outside], cells.centroids).argmin(axis=1)
    np.testing.assert_array_equal(assigned[outside], nearest)


def test_antimeridian_and_poles():
    # A cluster straddling the antimeridian (Fiji) must average to ~180, not to 0.
    fiji = np.array([[-17.0, 179.9], [-17.1, -179.9], [-16.9, 179.95], [-17.05, -179.95]])
    grid = grid_cells(["fiji"] * 4 + ["quito"], np.vstack([fiji, [[-0.2, -78.5]]]))
    assert abs(grid.centroids[grid.label_of("fiji"), 1]) > 179.8
    assert grid.assign(np.array([[-17.0, 180.0], [-17.0, -180.0], [-17.0, 179.99]])).tolist() == [0, 0, 0]

    rng = np.random.default_rng(5)
    east = np.column_stack([rng.uniform(-18, -16, 60), rng.uniform(179.0, 180.0, 60)])
    west = np.column_stack([rng.uniform(-18, -16, 60), rng.uniform(-180.0, -179.0, 60)])
    poles = np.array([[90.0, 0.0]] * 12 + [[-90.0, 45.0]] * 12 + [[89.99, -180.0]] * 3)
    latlon = np.vstack([east, west, poles, [[-17.0, 180.0]]])
    cells = quadtree_cells(latlon, min_samples=10, max_samples=50)
    check_quadtree_guarantees(cells, latlon, 10, 50)
    lon_180, lon_minus_180 = cells.assign(np.array([[-17.0, 180.0], [-17.0, -180.0]]))
    assert lon_180 == lon_minus_180  # one meridian, one cell
    north, south = cells.assign(np.array([[90.0, 123.0], [-90.0, -77.0]]))
    assert cells.centroids[north, 0] > 89 and cells.centroids[south, 0] < -89
    # A point just across the antimeridian from a cell goes to that cell, not across the map.
    near = cells.assign(np.array([[-17.0, -179.999]]))[0]
    assert abs(cells.centroids[near, 1]) > 179


def test_nearest_cell_matches_brute_force_haversine(europe_grid):
    rng = np.random.default_rng(6)
    worldwide = np.vstack([random_world_points(200, seed=9),
                           [[90.0, 0.0], [-90.0, 10.0], [0.0, 180.0], [1.0, -179.99], [89.9, 170.0]]])
    points = np.vstack([random_world_points(5000, seed=6),
                        np.column_stack([rng.uniform(85, 90, 500), rng.uniform(-180, 180, 500)]),
                        np.column_stack([rng.uniform(-5, 5, 500), rng.choice([-180.0, 180.0], 500)])])
    for centroids in (europe_grid.centroids, worldwide):
        np.testing.assert_array_equal(nearest_cell(points, centroids),
                                      pairwise_haversine_km(points, centroids).argmin(axis=1))


def test_assign_a_million_points_correctly(europe_grid, europe_quadtree):
    points = random_world_points(1_000_000, seed=7)
    for cells in (europe_grid, europe_quadtree):
        start = time.perf_counter()
        assigned = cells.assign(points)
        seconds = time.perf_counter() - start
        # Timing is printed, never asserted (about 0.5 s here); correctness is asserted.
        print(f"\n{cells.kind} ({len(cells)} cells): assign(1e6 points) took {seconds:.2f} s")
        # The results are the right ones: checked on a sample against the obvious way.
        sample = points[:2000]
        expected = pairwise_haversine_km(sample, cells.centroids).argmin(axis=1)
        if cells.kind == "quadtree":
            boxed = box_holding(cells, sample)
            expected = np.where(boxed >= 0, boxed, expected)
        np.testing.assert_array_equal(assigned[:2000], expected)


# --------------------------------------------------------------------------- serialisation


@pytest.mark.parametrize("kind", ["grid", "quadtree"])
def test_round_trip_through_json_gives_the_same_cells(kind, europe_grid, europe_quadtree):
    cells = europe_grid if kind == "grid" else europe_quadtree
    restored = Geocells.from_dict(json.loads(json.dumps(cells.to_dict())))
    assert restored == cells
    np.testing.assert_array_equal(restored.centroids, cells.centroids)  # bit-exact floats
    points = random_world_points(5000, seed=8)
    np.testing.assert_array_equal(restored.assign(points), cells.assign(points))


def test_corrupt_configs_are_rejected_with_a_reason(europe_quadtree):
    good = europe_quadtree.to_dict()
    with pytest.raises(GeocellError, match="missing leaves"):
        Geocells.from_dict({k: v for k, v in good.items() if k != "leaves"})
    with pytest.raises(GeocellError, match="not a geocells config"):
        Geocells.from_dict({"kind": "grid"})
    with pytest.raises(GeocellError, match="version"):
        Geocells.from_dict({**good, "version": 99})
    with pytest.raises(GeocellError, match="inconsistent"):
        Geocells.from_dict({**good, "counts": good["counts"][:-1]})
    with pytest.raises(GeocellError, match="out of range"):
        Geocells.from_dict({**good, "leaves": [[1, 5, 0, 0]] + good["leaves"][1:]})
    with pytest.raises(GeocellError, match="unknown geocell kind"):
        Geocells.from_dict({**good, "kind": "hexagons"})


# --------------------------------------------------------------------------- soft targets


def test_soft_targets_peak_on_the_true_cell_and_sum_to_one(europe, europe_latlon, europe_grid):
    cells = europe_grid
    true_cell = cells.labels_of(europe["square_id"])
    nearest_is_true = cells.assign(europe_latlon) == true_cell
    assert nearest_is_true.mean() > 0.8  # most places are nearest their own square's centroid
    latlon, truth = europe_latlon[nearest_is_true][:2000], true_cell[nearest_is_true][:2000]

    targets = haversine_soft_targets(latlon, cells.centroids, truth, tau_km=75.0)
    assert targets.shape == (len(latlon), 88)
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(targets.argmax(axis=1), truth)
    assert (targets.max(axis=1) < 1).all()  # neighbours share some mass at tau=75 km

    # Matches the formula written out directly.
    d = pairwise_haversine_km(latlon[:1], cells.centroids)[0]
    expected = np.exp(-(d - d[truth[0]]) / 75.0)
    np.testing.assert_allclose(targets[0], expected / expected.sum(), rtol=1e-9)

    # Small tau: one-hot on the true cell, with no overflow or NaN. Large tau: nearly uniform.
    sharp = haversine_soft_targets(latlon, cells.centroids, truth, tau_km=1e-3)
    assert np.isfinite(sharp).all()
    np.testing.assert_allclose(sharp, np.eye(88)[truth], rtol=0, atol=1e-20)
    flat = haversine_soft_targets(latlon, cells.centroids, truth, tau_km=1e7)
    np.testing.assert_allclose(flat, 1 / 88, rtol=1e-3)


def test_soft_targets_follow_distance_when_the_true_cell_is_not_nearest(europe_grid):
    # A Lisbon photo labelled with a far square: mass goes to the cells near the photo,
    # and a sharp tau (exponents of +1e6 before stabilisation) must not overflow to NaN.
    lisbon = np.array([[38.72, -9.14]])
    near = europe_grid.assign(lisbon)
    far = np.array([int(pairwise_haversine_km(lisbon, europe_grid.centroids).argmax())])
    for tau in (75.0, 1e-3):
        targets = haversine_soft_targets(lisbon, europe_grid.centroids, far, tau_km=tau)
        assert np.isfinite(targets).all()
        assert targets.argmax() == near[0] and targets[0, far[0]] < 1e-6
        np.testing.assert_allclose(targets.sum(), 1.0)


def test_soft_targets_reject_bad_input(europe_grid):
    one = np.array([[45.0, 7.0]])
    with pytest.raises(GeocellError, match="tau_km"):
        haversine_soft_targets(one, europe_grid.centroids, np.array([0]), tau_km=0.0)
    with pytest.raises(GeocellError, match=r"\[0, 88\)"):
        haversine_soft_targets(one, europe_grid.centroids, np.array([88]))
    with pytest.raises(GeocellError, match="integer cell indices"):
        haversine_soft_targets(one, europe_grid.centroids, np.array([0.5]))
