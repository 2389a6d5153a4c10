"""Heads, baselines and the training loop: every head learns a location that the image determines."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from geoai.data import load_image_folder
from geoai.geocells import grid_cells, haversine_soft_targets as numpy_soft_targets
from geoai.geodesy import haversine_km
from geoai.models import (
    HeadError,
    MedoidBaseline,
    build_head,
    fit_head,
    head_from_config,
    head_names,
    medoid,
    predict_latlon,
)
from geoai.models.losses import haversine_soft_targets
from tiny_models import colour_features, write_colour_coded_folder, tiny_model_env  # noqa: F401 (a fixture, used by pytestmark)

SMALL_GEOCELLS = {"cell_min_samples": 4, "cell_max_samples": 12}  # 36 training places


pytestmark = pytest.mark.usefixtures("tiny_model_env")


@pytest.fixture(scope="module")
def colour_data(tmp_path_factory):
    """The colour-coded folder loaded as a GeoDataset, its embeddings and grid cells."""
    dataset = load_image_folder(write_colour_coded_folder(tmp_path_factory.mktemp("colours")))
    frame = dataset.frame
    emb = colour_features(frame["path"])
    masks = {split: (frame["split"] == split).to_numpy() for split in ("train", "val", "test")}
    assert all(m.sum() >= 20 for m in masks.values()), "the split must leave data in every part"
    train = masks["train"]
    cells = grid_cells(frame.loc[train, "square_id"], dataset.coords[train])
    return {"coords": dataset.coords, "emb": emb, "masks": masks, "cells": cells,
            "train_cells": cells.labels_of(frame.loc[train, "square_id"].tolist())}


def _median_km(pred: np.ndarray, true: np.ndarray) -> float:
    return float(np.median(haversine_km(pred[:, 0], pred[:, 1], true[:, 0], true[:, 1])))


def _new_head(head_type: str, data: dict, seed: int = 0):
    torch.manual_seed(seed)
    train = data["masks"]["train"]
    extra = SMALL_GEOCELLS if head_type == "geocell" else {}
    return build_head(head_type, data["emb"].shape[1], train_latlon=data["coords"][train],
                      cells=data["cells"] if head_type == "grid" else None, **extra)


def _fit(head, data: dict, **kwargs):
    m = data["masks"]
    settings = {"epochs": 300, "lr": 1e-2, "patience": 40, "batch_size": 128, "seed": 0, **kwargs}
    return fit_head(head, data["emb"][m["train"]], data["coords"][m["train"]], data["train_cells"],
                    data["emb"][m["val"]], data["coords"][m["val"]], **settings)


@pytest.mark.parametrize("head_type", head_names(baseline=False))
def test_every_head_learns_where_the_image_was_taken(colour_data, head_type):
    test = colour_data["masks"]["test"]
    truth, emb = colour_data["coords"][test], colour_data["emb"][test]
    head = _new_head(head_type, colour_data)
    untrained_km = _median_km(predict_latlon(head, emb), truth)
    baseline = build_head("medoid", emb.shape[1], train_latlon=colour_data["coords"][colour_data["masks"]["train"]])
    medoid_km = _median_km(predict_latlon(baseline, emb), truth)

    head, history = _fit(head, colour_data)
    trained_km = _median_km(predict_latlon(head, emb), truth)

    assert medoid_km > 500  # the map spans Europe: guessing its middle is far off
    assert trained_km < untrained_km / 3, (head_type, trained_km, untrained_km)
    assert trained_km < medoid_km / 3, (head_type, trained_km, medoid_km)
    assert history.best_epoch > 1


def test_fit_head_is_deterministic_and_keeps_the_best_epoch(colour_data):
    a, history_a = _fit(_new_head("linear-haversine", colour_data), colour_data, epochs=25, patience=3, lr=0.1)
    b, history_b = _fit(_new_head("linear-haversine", colour_data), colour_data, epochs=25, patience=3, lr=0.1)
    for (name, wa), wb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(wa, wb), name
    assert [(e.train_loss, e.val_mean_km) for e in history_a.epochs] == \
        [(e.train_loss, e.val_mean_km) for e in history_b.epochs]
    assert history_a.best_epoch == history_b.best_epoch

    val = colour_data["masks"]["val"]
    pred = predict_latlon(a, colour_data["emb"][val])
    true = colour_data["coords"][val]
    final_mean = float(haversine_km(pred[:, 0], pred[:, 1], true[:, 0], true[:, 1]).mean())
    best = min(e.val_mean_km for e in history_a.epochs)
    assert final_mean == pytest.approx(best, rel=1e-4)  # weights of the best epoch, not the last
    assert history_a.best_val_km == pytest.approx(best)


def test_fit_head_with_different_seed_gives_different_weights(colour_data):
    a, _ = _fit(_new_head("geocell", colour_data), colour_data, epochs=3, seed=0, batch_size=16)
    b, _ = _fit(_new_head("geocell", colour_data), colour_data, epochs=3, seed=1, batch_size=16)
    assert not torch.equal(a.classifier[0].weight, b.classifier[0].weight)


@pytest.mark.parametrize("head_type", head_names(baseline=False))
def test_head_rebuilt_from_its_config_predicts_the_same(colour_data, head_type):
    head = _new_head(head_type, colour_data)
    clone = head_from_config(head.config)
    clone.load_state_dict(head.state_dict())
    emb = colour_data["emb"][:10]
    np.testing.assert_array_equal(predict_latlon(head, emb), predict_latlon(clone, emb))
    import json
    assert json.loads(json.dumps(head.config)) == head.config  # JSON-able as promised


@pytest.mark.parametrize("head_type", head_names(baseline=False))
def test_predictions_are_always_valid_coordinates(colour_data, head_type):
    head = _new_head(head_type, colour_data)
    wild = np.random.default_rng(0).normal(scale=1e4, size=(64, colour_data["emb"].shape[1]))
    pred = predict_latlon(head, wild)
    assert np.isfinite(pred).all()
    assert (np.abs(pred[:, 0]) <= 90).all() and (pred[:, 1] >= -180).all() and (pred[:, 1] < 180).all()


def test_wrong_embedding_size_is_a_clear_error(colour_data):
    head = _new_head("linear-mse", colour_data)
    with pytest.raises(HeadError, match=r"shape \(B, 24\).*\(3, 7\)"):
        head.predict(np.zeros((3, 7), dtype=np.float32))


def test_build_head_rejects_bad_requests(colour_data):
    coords = colour_data["coords"]
    with pytest.raises(HeadError, match="unknown head type 'linear-foo'"):
        build_head("linear-foo", 8, train_latlon=coords)
    with pytest.raises(HeadError, match="grid head needs the grid cells"):
        build_head("grid", 8, train_latlon=coords)
    with pytest.raises(HeadError, match=r"unknown hyper-parameter\(s\) \['tau'\]"):
        build_head("geocell", 8, train_latlon=coords, tau=50)
    with pytest.raises(HeadError, match="train_latlon"):
        build_head("linear-mse", 8, train_latlon=np.array([[95.0, 0.0]]))
    # Values of the wrong type (as a JSON config can give) are named, not a bare ValueError.
    with pytest.raises(HeadError, match="geocell head config has an invalid value.*'big'"):
        build_head("geocell", 8, train_latlon=coords, tau_km="big")
    with pytest.raises(HeadError, match="invalid hyper-parameter for a grid head"):
        build_head("grid", 8, train_latlon=coords, cells=colour_data["cells"], hidden="wide")
    head = _new_head("grid", colour_data)
    outputs = head(torch.zeros(2, colour_data["emb"].shape[1]))
    with pytest.raises(HeadError, match="grid cell of every training sample"):
        head.loss(outputs, torch.zeros(2, 2), None)


def test_torch_soft_targets_match_the_geocells_definition(colour_data):
    cells = colour_data["cells"]
    coords = colour_data["coords"][:20]
    expected = numpy_soft_targets(coords, cells.centroids, cells.assign(coords), tau_km=75.0)
    got = haversine_soft_targets(torch.tensor(coords), torch.tensor(cells.centroids), 75.0).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-9)


def test_geocell_prediction_is_the_weighted_mean_of_the_top_cells(colour_data):
    head = _new_head("geocell", colour_data)
    head.top_k = 1
    with torch.no_grad():
        head.classifier[0].weight.zero_()
        head.classifier[0].bias.zero_()
        head.classifier[0].bias[3] = 10.0  # cell 3 is by far the most probable
    pred = predict_latlon(head, colour_data["emb"][:4])
    np.testing.assert_allclose(pred, np.repeat(head.cells.centroids[3:4], 4, axis=0), atol=1e-4)


def test_geocell_offset_variant_trains(colour_data):
    head = _new_head("geocell", colour_data)
    head_off = build_head("geocell", colour_data["emb"].shape[1],
                          train_latlon=colour_data["coords"][colour_data["masks"]["train"]], offset=True,
                          **SMALL_GEOCELLS)
    assert head_off.config["offset"] is True and head.offset is None
    head_off, history = _fit(head_off, colour_data, epochs=20)
    assert history.epochs[-1].val_mean_km < history.epochs[0].val_mean_km * 2
    assert head_off.offset.weight.abs().sum() > 0  # the offset regressor received gradients


def test_medoid_is_the_point_with_least_total_distance():
    points = np.array([[45.0, 5.0], [45.1, 5.1], [44.9, 4.9], [45.05, 5.0], [60.0, 20.0]])
    np.testing.assert_array_equal(medoid(points), points[3])
    # The candidate sample for large inputs still gives a central point.
    rng = np.random.default_rng(1)
    many = np.stack([rng.normal(47, 2, 3000), rng.normal(10, 3, 3000)], axis=1)
    approx = medoid(many, max_candidates=500)
    assert haversine_km(approx[0], approx[1], 47, 10) < 60


def test_baselines_predict_and_rebuild():
    rng = np.random.default_rng(0)
    latlon = np.stack([rng.uniform(40, 50, 30), rng.uniform(0, 10, 30)], axis=1)
    emb = rng.normal(size=(30, 6)).astype(np.float32)
    nn_baseline = build_head("nearest-neighbour", 6, train_latlon=latlon, train_embeddings=emb)
    # A training image (even rescaled: cosine similarity) is answered with its own location.
    np.testing.assert_allclose(predict_latlon(nn_baseline, emb[[4, 7]] * 3.0), latlon[[4, 7]])
    clone = head_from_config(nn_baseline.config)
    clone.load_state_dict(nn_baseline.state_dict())
    np.testing.assert_array_equal(predict_latlon(clone, emb), predict_latlon(nn_baseline, emb))

    med = build_head("medoid", 6, train_latlon=latlon)
    assert isinstance(med, MedoidBaseline)
    pred = predict_latlon(med, emb[:5])
    assert pred.shape == (5, 2) and (pred == pred[0]).all()
    with pytest.raises(HeadError, match="needs train_embeddings"):
        build_head("nearest-neighbour", 6, train_latlon=latlon)
    with pytest.raises(HeadError, match="no trainable parameters"):
        fit_head(med, emb, latlon)
