"""Which geocells the grid and geocell heads classify, and the training label of each sample."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geoai.geocells import Geocells, grid_cells, quadtree_cells

# The quadtree's defaults (10..100 samples per cell) suit the study's ~10k training places;
# a small dataset would get a single cell, so the bounds shrink to aim for >= TARGET_CELLS.
DEFAULT_MIN_SAMPLES = 10
DEFAULT_MAX_SAMPLES = 100
TARGET_CELLS = 8


@dataclass
class CellChoice:
    """Cells plus the training label (cell index) of each training sample, and how they were made."""

    cells: Geocells
    train_cells: np.ndarray
    source: str  # a sentence for results.md, e.g. "study grid from square_id (88 squares)"


def quadtree_bounds(n_train: int, min_samples: int | None = None,
                     max_samples: int | None = None) -> tuple[int, int]:
    """(min_samples, max_samples) for a quadtree over n_train points."""
    if max_samples is None:
        max_samples = int(min(DEFAULT_MAX_SAMPLES, max(2, n_train // TARGET_CELLS)))
    if min_samples is None:
        min_samples = int(min(DEFAULT_MIN_SAMPLES, max(1, max_samples // 2)))
    return int(min_samples), int(max(max_samples, min_samples))


def quadtree_choice(train_latlon: np.ndarray, *, min_samples: int | None = None,
                    max_samples: int | None = None) -> CellChoice:
    """Adaptive quadtree cells on the training coordinates."""
    lo, hi = quadtree_bounds(len(train_latlon), min_samples, max_samples)
    cells = quadtree_cells(train_latlon, min_samples=lo, max_samples=hi)
    return CellChoice(cells, cells.assign(train_latlon),
                      f"quadtree on training coordinates ({len(cells)} cells, {lo}-{hi} samples each)")


def grid_choice(train_latlon: np.ndarray, train_square_ids: np.ndarray | None, **quadtree_kw) -> CellChoice:
    """The study's grid from `square_id` when the dataset has it, else quadtree cells."""
    if train_square_ids is None:
        choice = quadtree_choice(train_latlon, **quadtree_kw)
        choice.source = "no square_id column, so " + choice.source
        return choice
    cells = grid_cells(list(train_square_ids), train_latlon)
    return CellChoice(cells, cells.labels_of(list(train_square_ids)),
                      f"study grid from square_id ({len(cells)} squares)")
