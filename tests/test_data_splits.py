"""Splits: by group, deterministic, stable when rows are added, roughly the asked fractions."""
from __future__ import annotations

import numpy as np
import pytest

from fixtures_data import make_good_folder, write_jpeg, write_metadata
from geoai.data import assign_splits, load_image_folder


def test_all_rows_of_a_group_share_a_split():
    keys = [f"place-{i // 3}" for i in range(3000)]
    splits = assign_splits(keys)
    by_group: dict[str, set] = {}
    for key, split in zip(keys, splits, strict=True):
        by_group.setdefault(key, set()).add(split)
    assert all(len(s) == 1 for s in by_group.values())


def test_split_depends_only_on_key_and_salt():
    keys = [f"g{i}" for i in range(200)]
    forward = dict(zip(keys, assign_splits(keys), strict=True))
    backward = dict(zip(keys[::-1], assign_splits(keys[::-1]), strict=True))
    grown = dict(zip(keys + ["new1", "new2"], assign_splits(keys + ["new1", "new2"]), strict=True))
    assert forward == backward
    assert all(grown[k] == forward[k] for k in keys)
    other_salt = assign_splits(keys, salt="another-salt")
    assert list(other_salt) != list(forward.values())


@pytest.mark.parametrize("fractions", [(0.6, 0.2, 0.2), (0.8, 0.1, 0.1), (0.5, 0.5, 0.0)])
def test_proportions_are_roughly_the_fractions(fractions):
    splits = assign_splits([f"location-{i}" for i in range(1000)], fractions)
    shares = [np.mean(splits == name) for name in ("train", "val", "test")]
    assert np.allclose(shares, fractions, atol=0.05)


@pytest.mark.parametrize("fractions", [(0.6, 0.2), (0.6, 0.3, 0.3), (1.2, -0.1, -0.1)])
def test_bad_fractions_are_refused(fractions):
    with pytest.raises(ValueError, match="fractions"):
        assign_splits(["a"], fractions)


def test_empty_key_is_refused():
    with pytest.raises(ValueError, match="position 1"):
        assign_splits(["a", ""])


def test_loaded_splits_survive_reload_and_added_rows(tmp_path):
    root = make_good_folder(tmp_path / "ds", places=30, views=3)
    first = load_image_folder(root)
    assert first.frame.groupby("location_id")["split"].nunique().max() == 1
    assert load_image_folder(root).frame["split"].tolist() == first.frame["split"].tolist()

    rows = [list(r) for r in first.frame[["file_name", "lat", "lon", "location_id", "heading",
                                          "country"]].astype(str).itertuples(index=False)]
    for p in range(30, 40):  # new places, appended in front to also change row order
        write_jpeg(root / f"images/new{p}.jpg")
        rows.insert(0, [f"images/new{p}.jpg", "10", "10", f"new-{p}", "", ""])
    write_metadata(root, rows)
    grown = load_image_folder(root).frame.set_index("file_name")["split"]
    assert (grown[first.frame["file_name"]].to_numpy() == first.frame["split"].to_numpy()).all()


def test_split_fractions_and_salt_reach_the_loader(tmp_path):
    root = make_good_folder(tmp_path / "ds", places=40, views=1)
    only_train = load_image_folder(root, split_fractions=(1.0, 0.0, 0.0))
    assert set(only_train.frame["split"]) == {"train"}
    a = load_image_folder(root, split_salt="a").frame["split"].tolist()
    b = load_image_folder(root, split_salt="b").frame["split"].tolist()
    assert a != b
