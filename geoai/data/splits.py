"""Deterministic train/val/test splits by group key.

A group's split is a pure function of (salt, group key): the same wherever the dataset is
read (training, evaluation, the game), independent of row order, and stable when rows or
groups are added, since existing groups never move. Every view of a place shares its
split, so no place leaks from training into the test set (the study split single images
at random, so views of one place ended up on both sides).
"""
from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import numpy as np

SPLIT_NAMES = ("train", "val", "test")
DEFAULT_FRACTIONS = (0.6, 0.2, 0.2)
DEFAULT_SALT = "geoai-split-v1"


def validate_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    """Return fractions as a 3-tuple, or raise ValueError when they are not 3 shares summing to 1."""
    values = tuple(float(f) for f in fractions)
    if len(values) != 3:
        raise ValueError(f"split fractions must be 3 numbers (train, val, test), got {fractions!r}")
    if any(not math.isfinite(f) or f < 0 for f in values):
        raise ValueError(f"split fractions must be finite and non-negative, got {fractions!r}")
    if not math.isclose(sum(values), 1.0, abs_tol=1e-6):
        raise ValueError(f"split fractions must sum to 1, got {fractions!r} (sum {sum(values):g})")
    return values  # type: ignore[return-value]


def group_uniform(key: str, salt: str = DEFAULT_SALT) -> float:
    """A number in [0, 1) drawn uniformly by hashing the salt and the group key."""
    digest = hashlib.sha256(f"{salt}\x00{key}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def assign_splits(group_keys: Sequence[str], fractions: Sequence[float] = DEFAULT_FRACTIONS,
                  salt: str = DEFAULT_SALT) -> np.ndarray:
    """Split name ('train', 'val' or 'test') for each group key, as an object array.

    Rows sharing a key always get the same split. Raises ValueError on bad fractions or
    an empty / non-string key.
    """
    train, val, _ = validate_fractions(fractions)
    bounds = (train, train + val)
    cache: dict[str, str] = {}
    out = np.empty(len(group_keys), dtype=object)
    for i, key in enumerate(group_keys):
        if not isinstance(key, str) or key == "":
            raise ValueError(f"group key at position {i} is {key!r}; keys must be non-empty strings")
        split = cache.get(key)
        if split is None:
            u = group_uniform(key, salt)
            split = "train" if u < bounds[0] else "val" if u < bounds[1] else "test"
            cache[key] = split
        out[i] = split
    return out
