"""The small commands: `backbones` and `convert-offline`, plus the helpers behind the grid."""
from __future__ import annotations

import numpy as np
import pytest

import geoai.backbones.offline as offline
from geoai.data import load_image_folder
from geoai.models.backbones import known_backbones
from train.cells import grid_choice, quadtree_bounds
from train.config import ExperimentConfig
from train.grid import choose_cells
from train.samples import Samples
from train.cli import main
from train.publish import best_per_backbone
from train.results import ResultRow
from train.samples import build_samples


def test_backbones_lists_every_known_backbone_with_availability(capsys):
    assert main(["backbones"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for name, spec in known_backbones().items():
        line = next(line for line in lines if line.startswith(name + " "))
        assert spec.family in line and (" yes " in line or " no " in line)


def test_convert_offline_skips_converted_checkpoints(tmp_path, capsys, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a converted backbone must not be converted again")

    monkeypatch.setattr(offline, "convert_dinov2_small", refuse)
    monkeypatch.setattr(offline, "convert_mobilenetv2", refuse)
    for name in ("dinov2-small-imgfocus", "mobilenetv2-1.0-deepsort"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text("{}")
        (tmp_path / name / "model.safetensors").write_bytes(b"x")
    assert main(["convert-offline", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.count("already converted") == 2


def test_convert_offline_converts_missing_ones(tmp_path, capsys, monkeypatch):
    calls = []

    def fake(out_dir, overwrite=False):
        calls.append(out_dir.name)
        return out_dir

    monkeypatch.setattr(offline, "convert_dinov2_small", fake)
    monkeypatch.setattr(offline, "convert_mobilenetv2", fake)
    assert main(["convert-offline", "--out", str(tmp_path)]) == 0
    assert calls == ["dinov2-small-imgfocus", "mobilenetv2-1.0-deepsort"]
    assert capsys.readouterr().out.count(": converted") == 2


def test_fused_samples_are_one_per_place_with_mean_embeddings(shared_data):
    dataset = load_image_folder(shared_data / "croatia-streetview")
    emb = np.arange(len(dataset) * 2, dtype=np.float32).reshape(-1, 2)
    single = build_samples(dataset, "test", "single", emb)
    fused = build_samples(dataset, "test", "mean", emb)
    test = dataset.frame[dataset.frame["split"] == "test"]
    assert len(single) == len(test) and len(fused) == test["location_id"].nunique()
    for rows, vector, latlon in zip(fused.rows, fused.embeddings, fused.latlon):
        assert dataset.frame.loc[rows, "location_id"].nunique() == 1 and len(rows) == 4
        np.testing.assert_allclose(vector, emb[rows].mean(axis=0))
        np.testing.assert_allclose(latlon, dataset.frame.loc[rows[0], ["lat", "lon"]].to_numpy(float))


def test_quadtree_bounds_shrink_for_small_datasets_only():
    assert quadtree_bounds(10_000) == (10, 100)  # the study's scale: the usual bounds
    lo, hi = quadtree_bounds(60)
    assert 1 <= lo <= hi < 60  # a small dataset still gets several cells


def test_grid_cells_come_from_square_ids_when_present():
    latlon = np.array([[45.0, 15.0], [45.1, 15.1], [48.0, 2.0]])
    choice = grid_choice(latlon, np.array(["7", "7", "12"], dtype=object))
    assert choice.cells.labels == ["7", "12"] and list(choice.train_cells) == [0, 0, 1]
    assert "square_id" in choice.source


def test_publish_ranks_by_metric_direction():
    def row(backbone, head, km, points):
        return ResultRow(id=f"{backbone}-{head}", backbone=backbone, head=head, views="single",
                         bundle=f"bundles/{head}", metrics={"val": {"mean_km": km, "mean_points": points}})

    results = [row("b", "grid", 100.0, 900), row("b", "geocell", 80.0, 800), row("baseline", "medoid", 10.0, 4000)]
    assert best_per_backbone(results, "mean_km")["b"].head == "geocell"
    assert best_per_backbone(results, "mean_points")["b"].head == "grid"
    assert "baseline" not in best_per_backbone(results)  # the medoid is never published
    with pytest.raises(Exception, match="no val 'median_points'"):
        best_per_backbone(results, "median_points")


def test_geocell_cell_bounds_from_head_params_shape_the_quadtree():
    rng = np.random.default_rng(0)
    latlon = np.column_stack([rng.uniform(42, 46, 400), rng.uniform(13, 19, 400)])
    train = Samples(rows=[np.array([i]) for i in range(400)], latlon=latlon)
    hparams = {"cell_min_samples": 20, "cell_max_samples": 50, "tau_km": 60}
    choice = choose_cells("geocell", train, ExperimentConfig(data="d"), hparams)
    assert hparams == {"tau_km": 60}  # the cell bounds were used here, not passed on
    assert choice.cells.counts.min() >= 20 and "20-50 samples" in choice.source
    wide = choose_cells("grid", train, ExperimentConfig(data="d", head_params={"cells": {"max_samples": 400}}), {})
    assert len(wide.cells) == 1  # no square_id: quadtree with the "cells" bounds
    assert choose_cells("linear-mse", train, ExperimentConfig(data="d"), {}) is None


def test_place_counts_match_the_fused_samples_when_ids_span_several_positions(shared_data):
    """im2gps3k groups photos by photographer: a place is a position, as the fused rows count."""
    from train.grid import split_sizes

    dataset = load_image_folder(shared_data / "im2gps3k")
    sizes = split_sizes(dataset)
    for split in ("train", "val", "test"):
        assert sizes[split]["places"] == len(build_samples(dataset, split, "mean", None))
    assert sum(s["places"] for s in sizes.values()) > dataset.frame["location_id"].nunique()
