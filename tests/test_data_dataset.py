"""GeoDataset: columns and types, subsets, coordinates, hashes, fingerprint, groups, summary."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fixtures_data import make_good_folder, write_jpeg, write_metadata
from geoai.data import GeoDataset, load_image_folder


@pytest.fixture
def dataset(tmp_path) -> GeoDataset:
    return load_image_folder(make_good_folder(tmp_path / "mini", places=12, views=3))


def test_columns_types_and_string_ids(tmp_path):
    root = tmp_path / "ds"
    write_jpeg(root / "images/a.jpg")
    write_jpeg(root / "images/b.jpg", seed=1)
    write_metadata(root, [["images/a.jpg", "45.5", "15.25", "0012", "", "", "kept", "NA"],
                          ["images/b.jpg", "-1e-3", "-179.5", "0012", "90", "HR", "", ""]],
                   header=["file_name", "lat", "lon", "location_id", "heading", "country",
                           "square_id", "note"])
    frame = load_image_folder(root).frame
    assert list(frame.columns[:8]) == ["file_name", "path", "lat", "lon", "location_id",
                                      "heading", "country", "split"]
    assert frame["lat"].dtype == np.float64 and frame["lat"].tolist() == [45.5, -0.001]
    assert frame["location_id"].tolist() == ["0012", "0012"]  # leading zeros kept
    assert frame["heading"].tolist() == ["", "90"] and frame["country"].tolist() == ["", "HR"]
    assert frame["note"].tolist() == ["NA", ""]  # "NA" is text, not a missing value
    assert frame["square_id"].tolist() == ["kept", ""]
    assert frame["path"][0] == str((root / "images/a.jpg").resolve())


def test_optional_columns_default(tmp_path):
    root = tmp_path / "ds"
    write_jpeg(root / "x.jpg")
    write_metadata(root, [["x.jpg", "1", "2"]], header=["file_name", "lat", "lon"])
    frame = load_image_folder(root).frame
    assert frame.loc[0, "location_id"] == "x.jpg"  # each image its own group
    assert frame.loc[0, "heading"] == "" and frame.loc[0, "country"] == ""


def test_subset_and_coords(dataset):
    test = dataset.subset("test")
    train_val = dataset.subset(["train", "val"])
    assert len(test) + len(train_val) == len(dataset)
    assert set(test.frame["split"]) <= {"test"}
    assert test.root == dataset.root and test.name == "mini"
    assert train_val.coords.shape == (len(train_val), 2) and train_val.coords.dtype == np.float64
    assert np.array_equal(dataset.coords[:, 0], dataset.frame["lat"].to_numpy())
    with pytest.raises(ValueError, match="unknown split"):
        dataset.subset("holdout")


def test_file_hashes_and_fingerprint_track_content(tmp_path):
    root = make_good_folder(tmp_path / "ds", places=3, views=2)
    first = load_image_folder(root)
    hashes = first.file_hashes()
    assert hashes.str.fullmatch(r"[0-9a-f]{40}").all() and hashes.nunique() == len(first)
    fingerprint = first.fingerprint()
    assert load_image_folder(root).fingerprint() == fingerprint

    # Moving the folder or reordering rows is not a content change.
    moved = root.rename(tmp_path / "elsewhere")
    meta = pd.read_csv(moved / "metadata.csv", dtype=str, keep_default_na=False)
    meta.iloc[::-1].to_csv(moved / "metadata.csv", index=False)
    assert load_image_folder(moved).fingerprint() == fingerprint

    write_jpeg(moved / "images/p0_0.jpg", seed=99)  # one image's pixels change
    assert load_image_folder(moved).fingerprint() != fingerprint


def test_fingerprint_changes_with_a_coordinate(tmp_path):
    root = make_good_folder(tmp_path / "ds", places=2, views=1)
    before = load_image_folder(root).fingerprint()
    meta = pd.read_csv(root / "metadata.csv", dtype=str, keep_default_na=False)
    meta.loc[0, "lat"] = "45.0000001"
    meta.to_csv(root / "metadata.csv", index=False)
    assert load_image_folder(root).fingerprint() != before


def test_groups_and_summary(dataset):
    groups = dataset.groups()
    assert groups.ngroups == 12 and groups.size().eq(3).all()
    summary = dataset.summary()
    assert summary["images"] == 36 and summary["places"] == 12
    assert summary["views_per_place"] == {"min": 3, "mean": 3.0, "max": 3, "histogram": {3: 12}}
    assert summary["countries"]["count"] == 1 and summary["countries"]["top"] == [["HR", 36]]
    assert sum(s["images"] for s in summary["splits"].values()) == 36
    assert sum(s["places"] for s in summary["splits"].values()) == 12
    assert summary["problems"] == {}


def test_place_keys_split_a_group_that_spans_several_positions(shared_data):
    streets = load_image_folder(shared_data / "croatia-streetview", check_images="none")
    assert streets.place_keys().nunique() == 100  # 4 views of each place stay together
    photographers = load_image_folder(shared_data / "im2gps3k", check_images="none")
    keys = photographers.place_keys()
    # one photographer's photos taken in different places are different places
    assert keys.nunique() > photographers.frame["location_id"].nunique()
    per_place = photographers.frame.groupby(keys.to_numpy())[["lat", "lon"]].nunique()
    assert (per_place == 1).all().all()
