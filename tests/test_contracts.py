"""The typed files between stages: a bundle's config.json (BundleConfig) and a run's results.json
(RunResults): they round-trip, and files written by older versions still load."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from app.players import read_opponent
from geoai.bundle_config import BUNDLE_FORMAT, BackboneRef, BundleConfig, BundleError
from geoai.models import Bundle, BackboneSpec, build_head, save_bundle
from train.errors import TrainError
from train.results import RESULTS_FORMAT, ResultRow, RunResults

REPO = Path(__file__).resolve().parents[1]
LATLON = np.array([[45.0, 15.0], [46.0, 16.0], [44.0, 14.0], [45.5, 13.5]])


def _config(**changes) -> BundleConfig:
    values = dict(name="b", backbone=BackboneRef("resnet50", "microsoft/resnet-50", "resnet50-abc", 224, 4, "cnn"),
                  head={"type": "linear-mse", "embed_dim": 4, "coord_mean": [45, 15], "coord_std": [1, 1]},
                  fusion="mean", dataset={"name": "croatia", "fingerprint": "f1", "members": [
                      {"name": "a", "fingerprint": "f2"}]}, metrics={"test": {"mean_km": 12.5}},
                  created="2026-01-01T00:00:00+00:00", geoai_version="1.0")
    return BundleConfig(**{**values, **changes})


def test_bundle_config_round_trips_through_json():
    config = _config()
    again = BundleConfig.from_dict(json.loads(config.to_json()))
    assert again == config and again.format == BUNDLE_FORMAT
    assert again.fusion == "mean" and again.head_type == "linear-mse" and again.family == "cnn"
    assert again.fingerprints == {"f1", "f2"} and again.member_names == ("a",)
    assert again.backbone_key == ("resnet50", "resnet50-abc")
    bundled = _config(backbone=BackboneRef("resnet50", "backbone", "k", embed_dim=4, bundled=True))
    assert BundleConfig.from_dict(bundled.to_dict()).backbone_key is None  # a fine-tuned backbone is its own


def test_old_bundle_configs_read_in_todays_words():
    old = {**_config().to_dict(), "format": "geoai-bundle/1", "fusion": "none"}
    assert BundleConfig.from_dict(old).fusion == "single"
    first = {"backbone": {"name": "b"}, "head": {"type": "linear-mse"}}  # no format, no view mode
    assert BundleConfig.from_dict(first).fusion == "single"
    guessed = BundleConfig.from_dict({**first, "backbone": {"name": "mobilenetv2-1.0-deepsort"}})
    assert guessed.family == "cnn"  # bundles before the family was recorded
    with pytest.raises(ValueError, match="bundle format 'geoai-bundle/9'.*geoai-bundle/2"):
        BundleConfig.from_dict({**old, "format": "geoai-bundle/9"})
    with pytest.raises(ValueError, match="fusion must be one of single, mean"):
        BundleConfig.from_dict({**_config().to_dict(), "fusion": "none"})  # the old word is not written any more


def test_an_old_bundle_on_disk_loads_and_plays_single_views(tmp_path):
    head = build_head("linear-haversine", 4, train_latlon=LATLON)
    path = save_bundle(tmp_path / "old", backbone=BackboneSpec("stand-in", "stand-in", "transformer", "x"),
                       head=head, metrics={}, dataset_info={"name": "croatia"}, fusion="single")
    config = json.loads((path / "config.json").read_text())
    assert config["format"] == BUNDLE_FORMAT and config["fusion"] == "single"
    config.update({"format": "geoai-bundle/1", "fusion": "none"})  # as the previous version wrote it
    (path / "config.json").write_text(json.dumps(config))
    bundle = Bundle.load(path)
    assert bundle.fusion == "single" and bundle.head_type == "linear-haversine"
    emb = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    np.testing.assert_allclose(bundle.predict_embeddings(emb), head.predict(emb).numpy(), rtol=1e-6)
    assert read_opponent(path).fusion == "single"


def test_a_broken_bundle_config_is_one_clear_error(tmp_path):
    (tmp_path / "config.json").write_text('{"format": "geoai-bundle/2", "backbone": {"name": "b"}, "head": []')
    with pytest.raises(BundleError, match="config.json is not valid JSON"):
        BundleConfig.read(tmp_path)
    with pytest.raises(BundleError, match="not a model bundle: no such directory"):
        BundleConfig.read(tmp_path / "nothing-here")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match="config.json is missing"):
        BundleConfig.read(tmp_path / "empty")


def test_the_game_reads_bundles_without_torch():
    code = "import sys, app.players; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _results() -> RunResults:
    row = ResultRow(id="r-geocell-single", backbone="r", head="geocell", views="single", architecture="r",
                    metrics={"val": {"mean_km": 80.0}}, bundle="bundles/r-geocell-single", loss="KL",
                    head_label="Geocell", fit={"epochs_run": 3, "best_epoch": 2, "refine": {"mode": "retrieve"}})
    return RunResults(dataset={"name": "croatia", "root": "/data/croatia", "split_sizes": {}},
                      run={"fusion": ["single"], "seed": 0}, results=[row], config={"seed": 0},
                      notes=["a note"], stages=[{"name": "fit", "seconds": 1.5}], geoai_version="1.0")


def test_run_results_round_trip_and_keep_the_json_layout():
    results = _results()
    data = json.loads(results.to_json())
    assert RunResults.from_dict(data) == results
    assert data["format"] == RESULTS_FORMAT
    # The row layout readers of results.json have always seen: fit details beside the metrics.
    assert list(data["results"][0]) == ["id", "architecture", "backbone", "head", "loss", "head_label", "views",
                                        "metrics", "bundle", "epochs_run", "best_epoch", "refine"]
    assert results.results[0].metric("val", "mean_km") == 80.0 and results.results[0].metric("test", "mean_km") is None
    assert results.maps() == [("croatia", Path("/data/croatia"))]


def test_old_and_broken_results_files(tmp_path):
    data = json.loads(_results().to_json())
    del data["format"]  # written before the format was recorded
    (tmp_path / "results.json").write_text(json.dumps(data))
    assert RunResults.read(tmp_path).results[0].fit["best_epoch"] == 2
    (tmp_path / "results.json").write_text(json.dumps({**data, "format": "geoai-results/7"}))
    with pytest.raises(TrainError, match="results format 'geoai-results/7'"):
        RunResults.read(tmp_path)
    (tmp_path / "results.json").write_text(json.dumps({"results": "none"}))
    with pytest.raises(TrainError, match="not the results of `python -m train`"):
        RunResults.read(tmp_path)
    with pytest.raises(TrainError, match="is not a training run"):
        RunResults.read(tmp_path / "elsewhere")
