"""The shared datasets load with the right counts, intact groups and no problems."""
from __future__ import annotations

import pytest

from fixtures_data import SHARED_DATASETS as EXPECTED
from geoai.data import DatasetError, load_image_folder


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shared_dataset_loads(shared_data, name):
    dataset = load_image_folder(shared_data / name, check_images="header")
    images, groups, countries = EXPECTED[name]
    summary = dataset.summary()
    assert (summary["images"], summary["places"], summary["countries"]["count"]) == (images, groups, countries)
    assert dataset.problems == []
    assert dataset.frame.groupby("location_id")["split"].nunique().max() == 1
    assert set(dataset.frame["split"]) == {"train", "val", "test"}
    assert {"source", "license", "note"} <= set(dataset.frame.columns)
    assert dataset.coords.shape == (images, 2)


def test_croatia_has_four_headings_per_place(shared_data):
    dataset = load_image_folder(shared_data / "croatia-streetview", check_images="none")
    headings = dataset.groups()["heading"].apply(lambda h: tuple(sorted(h, key=int)))
    assert (headings == ("0", "90", "180", "270")).all()


def test_seed_annotations_folder_points_to_import_study(shared_data):
    with pytest.raises(DatasetError) as info:
        load_image_folder(shared_data / "seed-europe-locations")
    assert "import-study" in str(info.value) and "without images" in str(info.value)
