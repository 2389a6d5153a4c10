"""Training on several datasets at once: each place keeps its own dataset's split, and
evaluation reports every dataset's own test split beside the union's."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from safetensors.numpy import load_file

from geoai.data import load_image_folder
from geoai.data.union import dataset_folders, union_datasets
from geoai.geodesy import haversine_km
from tiny_models import make_tiny_resnet, tiny_model_env, write_colour_coded_folder  # noqa: F401
from train.cli import main

pytestmark = pytest.mark.usefixtures("tiny_model_env")


@pytest.fixture(scope="module")
def two_datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("maps")
    # Both folders name their places place000, place001...: the same ids, different places.
    write_colour_coded_folder(root / "east", n_places=30, views=2, seed=1, image_size=32)
    write_colour_coded_folder(root / "west", n_places=30, views=2, seed=2, image_size=32)
    return root


def place_splits(dataset) -> dict[tuple[float, float], str]:
    frame = dataset.frame
    return {(round(lat, 5), round(lon, 5)): split for lat, lon, split in zip(frame["lat"], frame["lon"], frame["split"])}


def test_union_keeps_every_place_in_its_own_datasets_split(two_datasets):
    east, west = (load_image_folder(two_datasets / n) for n in ("east", "west"))
    union = union_datasets([east, west])
    assert union.name == "east+west" and len(union) == len(east) + len(west)
    assert union.place_keys().nunique() == east.place_keys().nunique() + west.place_keys().nunique()
    joined = place_splits(union)
    for member in (east, west):
        for point, split in place_splits(member).items():
            assert joined[point] == split
    assert dataset_folders([two_datasets]) == [two_datasets / "east", two_datasets / "west"]


def test_a_folder_without_datasets_is_one_clear_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    resnet = make_tiny_resnet(tmp_path / "tiny-resnet")
    assert main(["--data", str(tmp_path / "empty"), "--backbones", str(resnet), "--heads", "medoid",
                 "--out", str(tmp_path / "run")]) == 1
    assert "neither a dataset nor a folder of datasets" in capsys.readouterr().err


@pytest.mark.slow
def test_joined_run_trains_on_no_test_place_and_reports_each_dataset(two_datasets, tmp_path):
    resnet = make_tiny_resnet(tmp_path / "tiny-resnet")
    out = tmp_path / "run"
    status = main(["--data", str(two_datasets / "east"), "--data", str(two_datasets / "west"), "--name", "both",
                   "--backbones", str(resnet), "--heads", "geocell,medoid,nearest-neighbour", "--fusion", "single",
                   "--epochs", "2", "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
                   "--num-workers", "0", "--device", "cpu"])
    assert status == 0
    results = json.loads((out / "results.json").read_text())
    assert results["dataset"]["name"] == "both"
    assert [m["name"] for m in results["dataset"]["members"]] == ["east", "west"]
    east, west = (load_image_folder(two_datasets / n) for n in ("east", "west"))
    held_out = {p for d in (east, west) for p, s in place_splits(d).items() if s != "train"}
    trained = {p for d in (east, west) for p, s in place_splits(d).items() if s == "train"}
    # What the refined geocell head retrieves from is exactly the training places.
    geocell = next(r for r in results["results"] if r["head"] == "geocell")
    gallery = load_file(str(out / geocell["bundle"] / "head.safetensors"))["refine_latlon"]
    gallery_points = {(round(float(a), 5), round(float(b), 5)) for a, b in gallery}
    assert gallery_points == trained and not gallery_points & held_out
    coverage = {(round(a, 3), round(b, 3)) for a, b in results["dataset"]["coverage"]}
    assert coverage == {(round(a, 3), round(b, 3)) for a, b in trained}
    for row in results["results"]:
        per = row["metrics"]["datasets"]
        assert set(per) == {"east", "west"}
        for name, member in (("east", east), ("west", west)):
            test_images = int((member.frame["split"] == "test").sum())
            assert per[name]["test"]["n"] == test_images
        assert per["east"]["test"]["n"] + per["west"]["test"]["n"] == row["metrics"]["test"]["n"]
    assert "## Each dataset's test split" in (out / "results.md").read_text()

    # Per-photo predictions of the joined bundle on one member's test split.
    csv_path = tmp_path / "east-predictions.csv"
    assert main(["evaluate", "--bundle", str(out / geocell["bundle"]), "--data", str(two_datasets / "east"),
                 "--predictions", str(csv_path), "--cache-dir", str(tmp_path / "cache"), "--num-workers", "0",
                 "--device", "cpu"]) == 0
    rows = pd.read_csv(csv_path)
    assert list(rows.columns) == ["file_name", "lat", "lon", "pred_lat", "pred_lon", "km"]
    test_rows = east.frame[east.frame["split"] == "test"]
    assert sorted(rows["file_name"]) == sorted(test_rows["file_name"])
    km = haversine_km(rows["lat"], rows["lon"], rows["pred_lat"], rows["pred_lon"])
    np.testing.assert_allclose(rows["km"], km, atol=0.01)
    guessed = {(round(a, 3), round(b, 3)) for a, b in zip(rows["pred_lat"], rows["pred_lon"])}
    assert guessed <= {(round(a, 3), round(b, 3)) for a, b in trained}
