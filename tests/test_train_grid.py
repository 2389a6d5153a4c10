"""End to end: the default experiment grid on croatia-streetview with tiny BEiT and ResNet.

One run (module fixture) is checked from every side a user sees: results.md, results.json,
the bundles, `python -m train evaluate` and `python -m train publish`.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from geoai.data import load_image_folder, open_image
from geoai.models import Bundle, discover_bundles, load_backbone
from tiny_models import make_tiny_beit, make_tiny_resnet, single_torch_thread, tiny_model_env  # noqa: F401
from train.cli import main

REPO = Path(__file__).resolve().parents[1]
LEARNED = ("linear-mse", "linear-eqrect", "grid", "linear-haversine", "geocell")
pytestmark = pytest.mark.usefixtures("tiny_model_env")  # one torch thread, never the network


@pytest.fixture(scope="module")
def run(tmp_path_factory, shared_data):
    tmp = tmp_path_factory.mktemp("grid")
    beit = make_tiny_beit(tmp / "tiny-beit")
    resnet = make_tiny_resnet(tmp / "tiny-resnet")
    out = tmp / "run"
    with single_torch_thread():  # tiny models: thread hand-offs would cost more than the arithmetic
        status = main(["--data", str(shared_data / "croatia-streetview"), "--backbones", f"{beit},{resnet}",
                       "--epochs", "2", "--out", str(out), "--cache-dir", str(tmp / "cache"),
                       "--num-workers", "0", "--device", "cpu"])
    assert status == 0
    return {"out": out, "data": shared_data / "croatia-streetview", "beit": beit, "resnet": resnet,
            "results": json.loads((out / "results.json").read_text())}


def expected_ids() -> set[str]:
    ids = set()
    for fusion in ("single", "mean"):
        for backbone in ("tiny-beit", "tiny-resnet"):
            ids |= {f"{backbone}-{head}-{fusion}" for head in (*LEARNED, "nearest-neighbour")}
        ids.add(f"baseline-medoid-{fusion}")
    return ids


@pytest.mark.slow
def test_results_json_lists_every_configuration_with_dataset_identity(run):
    results = run["results"]
    assert {row["id"] for row in results["results"]} == expected_ids()
    dataset = load_image_folder(run["data"])
    assert results["dataset"]["fingerprint"] == dataset.fingerprint()
    sizes = results["dataset"]["split_sizes"]
    assert sum(s["images"] for s in sizes.values()) == 400
    assert sum(s["places"] for s in sizes.values()) == 100
    assert sizes["train"]["places"] > sizes["test"]["places"] > 0
    assert results["run"]["fusion"] == ["single", "mean"]
    assert 100 < results["dataset"]["map_size_km"] < 1000  # Croatia, not the world
    for row in results["results"]:
        for split in ("train", "val", "test"):
            metrics = row["metrics"][split]
            assert np.isfinite(metrics["mean_km"]) and metrics["mean_km"] >= 0
            assert 0 <= metrics["mean_points"] <= 5000
        # Fused rows are evaluated once per place, single rows once per image.
        unit = "places" if row["views"] == "mean" else "images"
        assert row["metrics"]["test"]["n"] == sizes["test"][unit]


@pytest.mark.slow
def test_results_md_has_the_study_table_with_every_row_and_stage_times(run):
    text = (run["out"] / "results.md").read_text()
    assert run["results"]["dataset"]["fingerprint"] in text
    assert "| Architecture | Loss | Head | Views | Mean Train Haversine (km) | Mean Val Haversine (km) | " \
           "Mean Test Haversine (km) |" in text
    table_rows = [line for line in text.splitlines()
                  if line.startswith("| tiny-") or line.startswith("| baseline")]
    assert len(table_rows) == len(expected_ids())
    assert sum("fused (mean)" in line for line in table_rows) == len(expected_ids()) // 2
    assert "Map size D =" in text
    sizes = run["results"]["dataset"]["split_sizes"]["train"]
    assert f"train {sizes['images']} images / {sizes['places']} places" in text
    for stage in ("load and validate dataset", "embed tiny-beit", "embed tiny-resnet", "fit tiny-resnet-grid-mean"):
        assert f"| {stage} |" in text
    # Croatia has no square_id column: the grid head says it fell back to the quadtree.
    assert "no square_id column, so quadtree" in text


@pytest.mark.slow
def test_every_bundle_loads_and_predicts_a_place(run):
    bundle_dirs = sorted((run["out"] / "bundles").iterdir())
    assert {d.name for d in bundle_dirs} == expected_ids()
    backbones = {"tiny-beit": load_backbone(str(run["beit"]), device="cpu"),
                 "tiny-resnet": load_backbone(str(run["resnet"]), device="cpu")}
    dataset = load_image_folder(run["data"])
    place = dataset.frame[dataset.frame["location_id"] == dataset.frame["location_id"].iloc[0]]
    images = [open_image(p) for p in place["path"]]
    for directory in bundle_dirs:
        config = json.loads((directory / "config.json").read_text())
        bundle = Bundle.load(directory, backbone=backbones[config["backbone"]["name"]])
        lat, lon = bundle.predict_images(images)
        assert 40 < lat < 50 and 10 < lon < 22, (directory.name, lat, lon)  # near Croatia
        assert bundle.fusion == ("mean" if directory.name.endswith("-mean") else "single")


@pytest.mark.slow
def test_evaluate_command_reproduces_the_test_metrics(run, tmp_path):
    row = next(r for r in run["results"]["results"] if r["id"] == "tiny-resnet-geocell-mean")
    proc = subprocess.run(
        [sys.executable, "-m", "train", "evaluate", "--bundle", str(run["out"] / row["bundle"]),
         "--data", str(run["data"]), "--device", "cpu", "--num-workers", "0",
         "--cache-dir", str(tmp_path / "cache")],
        cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["split"] == "test" and report["fusion"] == "mean"
    assert report["dataset"]["same_as_training"] is True
    for key, value in row["metrics"]["test"].items():
        assert report["metrics"][key] == pytest.approx(value, rel=1e-5, abs=1e-9), key


@pytest.mark.slow
def test_evaluate_all_rows_counts_every_image(run, capsys):
    bundle = run["out"] / "bundles" / "tiny-beit-linear-mse-single"
    assert main(["evaluate", "--bundle", str(bundle), "--data", str(run["data"]), "--all",
                 "--device", "cpu", "--num-workers", "0", "--no-cache"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["split"] == "all" and report["metrics"]["n"] == 400


@pytest.mark.slow
def test_publish_copies_the_best_bundle_per_backbone(run, tmp_path, capsys):
    models = tmp_path / "models"
    assert main(["publish", str(run["out"]), "--models-dir", str(models)]) == 0
    printed = capsys.readouterr().out
    folders = ["croatia-streetview-tiny-beit", "croatia-streetview-tiny-resnet"]  # <map>-<backbone>
    assert sorted(p.name for p in discover_bundles(models)) == folders
    for backbone in ("tiny-beit", "tiny-resnet"):
        rows = [r for r in run["results"]["results"] if r["backbone"] == backbone]
        best = min(rows, key=lambda r: r["metrics"]["val"]["mean_km"])
        published = json.loads((models / f"croatia-streetview-{backbone}" / "config.json").read_text())
        assert published["name"] == best["id"]
        assert f"published {backbone}" in printed
    # Publishing again by points replaces the folders in place, leaving no staging debris.
    assert main(["publish", str(run["out"]), "--models-dir", str(models), "--metric", "mean_points"]) == 0
    assert sorted(p.name for p in models.iterdir()) == [*folders, "predictions"]
    assert sorted(p.name for p in (models / "predictions").iterdir()) == ["croatia-streetview.sqlite"]
    rows = [r for r in run["results"]["results"] if r["backbone"] == "tiny-beit"]
    best = max(rows, key=lambda r: r["metrics"]["val"]["mean_points"])
    assert json.loads((models / folders[0] / "config.json").read_text())["name"] == best["id"]
