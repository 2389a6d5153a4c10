"""Bundles: save/load round trips, clear errors on broken bundles, and the full image path."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from geoai.data import load_image_folder, open_image
from geoai.geocells import grid_cells
from geoai.geodesy import haversine_km
from geoai.metrics import compute_metrics
from geoai.models import (
    Bundle,
    BundleError,
    build_head,
    compute_embeddings,
    discover_bundles,
    fit_head,
    fuse_views,
    load_backbone,
    predict_latlon,
    save_bundle,
)
from tiny_models import make_tiny_beit, make_tiny_resnet, write_colour_coded_folder, tiny_model_env  # noqa: F401 (a fixture, used by pytestmark)

DATASET_INFO = {"name": "colours", "fingerprint": "abc", "split_sizes": {"train": 1}}


pytestmark = pytest.mark.usefixtures("tiny_model_env")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Tiny BEiT embeddings of the colour-coded folder (train/val/test)."""
    root = tmp_path_factory.mktemp("bundle")
    backbone = load_backbone(str(make_tiny_beit(root / "beit")), device="cpu")
    dataset = load_image_folder(write_colour_coded_folder(root / "data"))
    emb = compute_embeddings(backbone, dataset, root / "cache", num_workers=0, progress=False)
    masks = {s: (dataset.frame["split"] == s).to_numpy() for s in ("train", "val", "test")}
    return {"root": root, "backbone": backbone, "dataset": dataset, "emb": emb, "masks": masks}


def _geocell_head(setup):
    torch.manual_seed(0)
    train = setup["masks"]["train"]
    return build_head("geocell", setup["backbone"].embed_dim, train_latlon=setup["dataset"].coords[train],
                      cell_min_samples=4, cell_max_samples=12)


def _save(setup, path, head, fusion="mean"):
    return save_bundle(path, backbone=setup["backbone"], head=head, metrics={"test": {"mean_km": 1.0}},
                       dataset_info=DATASET_INFO, fusion=fusion)


def test_image_to_backbone_to_head_learns_and_survives_a_round_trip(setup, tmp_path):
    """End to end with the tiny BEiT: features of random weights already carry the colour."""
    frame, coords, emb, m = setup["dataset"].frame, setup["dataset"].coords, setup["emb"], setup["masks"]
    train_cells = grid_cells(frame.loc[m["train"], "square_id"], coords[m["train"]])
    torch.manual_seed(0)
    head = build_head("grid", emb.shape[1], train_latlon=coords[m["train"]], cells=train_cells)
    head, _ = fit_head(head, emb[m["train"]], coords[m["train"]],
                       train_cells.labels_of(frame.loc[m["train"], "square_id"].tolist()),
                       emb[m["val"]], coords[m["val"]], epochs=300, lr=1e-2, patience=40, batch_size=128)
    test_metrics = compute_metrics(predict_latlon(head, emb[m["test"]]), coords[m["test"]])
    medoid = build_head("medoid", emb.shape[1], train_latlon=coords[m["train"]])
    medoid_metrics = compute_metrics(predict_latlon(medoid, emb[m["test"]]), coords[m["test"]])
    assert test_metrics["median_km"] < medoid_metrics["median_km"] / 3

    path = save_bundle(tmp_path / "tiny-grid", backbone=setup["backbone"], head=head,
                       metrics={"test": test_metrics}, dataset_info=DATASET_INFO, fusion="mean")
    assert {p.name for p in path.iterdir()} == {"config.json", "head.safetensors", "README.md"}
    bundle = Bundle.load(path)  # backbone loaded lazily from its local folder
    np.testing.assert_array_equal(bundle.predict_embeddings(emb), predict_latlon(head, emb))

    # One test place, all its views, straight from the image files.
    test_rows = frame[m["test"]]
    place = test_rows["location_id"].iloc[0]
    rows = test_rows[test_rows["location_id"] == place]
    guess = bundle.predict_images([open_image(p) for p in rows["path"]])
    fused, _ = fuse_views(emb[rows.index], rows["location_id"].tolist())
    np.testing.assert_allclose(guess, predict_latlon(head, fused)[0], atol=1e-3)
    assert bundle.metrics["test"]["median_km"] == pytest.approx(test_metrics["median_km"])
    assert "median_km" in (path / "README.md").read_text()


@pytest.mark.parametrize("kind", ["geocell", "nearest-neighbour", "medoid"])
def test_round_trip_gives_identical_predictions(setup, tmp_path, kind):
    emb, coords, train = setup["emb"], setup["dataset"].coords, setup["masks"]["train"]
    if kind == "geocell":
        head = _geocell_head(setup)
    else:
        head = build_head(kind, emb.shape[1], train_latlon=coords[train], train_embeddings=emb[train])
    path = _save(setup, tmp_path / kind, head)
    bundle = Bundle.load(path, backbone=setup["backbone"])
    np.testing.assert_array_equal(bundle.predict_embeddings(emb), predict_latlon(head, emb))
    config = json.loads((path / "config.json").read_text())
    assert config["format"] == "geoai-bundle/2" and config["backbone"]["cache_key"] == setup["backbone"].cache_key
    assert config["backbone"]["image_size"] == 32 and config["head"]["type"] == kind
    assert bundle.name == kind and bundle.backbone_name == "beit"


def test_single_views_average_the_views_predictions(setup, tmp_path):
    head = _geocell_head(setup)
    bundle = Bundle.load(_save(setup, tmp_path / "b", head, fusion="single"), backbone=setup["backbone"])
    paths = setup["dataset"].frame["path"][:2]
    images = [open_image(p) for p in paths]
    per_view = predict_latlon(head, setup["backbone"].embed(images))
    guess = bundle.predict_images(images)
    d_to_views = haversine_km(guess[0], guess[1], per_view[:, 0], per_view[:, 1])
    assert abs(d_to_views[0] - d_to_views[1]) < 1.0  # the midpoint of the two views' answers
    with pytest.raises(BundleError, match="at least one image"):
        bundle.predict_images([])


def test_wrong_shaped_weights_are_rejected(setup, tmp_path):
    path = _save(setup, tmp_path / "b", _geocell_head(setup))
    weights = load_file(str(path / "head.safetensors"))
    name = next(iter(weights))
    weights[name] = torch.zeros(3, 3)
    save_file(weights, str(path / "head.safetensors"))
    with pytest.raises(BundleError, match=rf"does not match the geocell head.*{name} has shape \(3, 3\)"):
        Bundle.load(path)


def test_missing_or_unreadable_weights_are_rejected(setup, tmp_path):
    path = _save(setup, tmp_path / "b", _geocell_head(setup))
    (path / "head.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(BundleError, match="cannot be read as safetensors"):
        Bundle.load(path)
    (path / "head.safetensors").unlink()
    with pytest.raises(BundleError, match=r"incomplete: head\.safetensors .* is missing"):
        Bundle.load(path)


def test_unknown_format_and_broken_configs_are_rejected(setup, tmp_path):
    path = _save(setup, tmp_path / "b", _geocell_head(setup))
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "format": "geoai-bundle/9"}))
    with pytest.raises(BundleError, match="bundle format 'geoai-bundle/9'"):
        Bundle.load(path)
    (path / "config.json").write_text(json.dumps({**config, "head": {**config["head"], "type": "magic"}}))
    with pytest.raises(BundleError, match="unknown head type 'magic'"):
        Bundle.load(path)
    (path / "config.json").write_text("{ not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        Bundle.load(path)
    with pytest.raises(BundleError, match="config.json is missing"):
        Bundle.load(tmp_path)


def test_a_different_backbone_is_refused(setup, tmp_path):
    path = _save(setup, tmp_path / "b", _geocell_head(setup))
    other = load_backbone(str(make_tiny_beit(tmp_path / "other", seed=3)), device="cpu")
    with pytest.raises(BundleError, match="trained on backbone weights"):
        Bundle.load(path, backbone=other)
    resnet = load_backbone(str(make_tiny_resnet(tmp_path / "resnet")), device="cpu")
    with pytest.raises(BundleError, match="needs 32-dimensional embeddings"):
        Bundle.load(path, backbone=resnet)


def test_fine_tuned_backbone_weights_travel_with_the_bundle(setup, tmp_path):
    backbone = load_backbone(setup["backbone"].spec.source, device="cpu")
    with torch.no_grad():
        next(backbone.model.parameters()).add_(0.5)  # stands in for fine-tuning
    path = save_bundle(tmp_path / "ft", backbone=backbone, head=_geocell_head(setup), metrics={},
                       dataset_info=DATASET_INFO, fusion="mean", include_backbone_weights=True)
    bundle = Bundle.load(path)
    assert bundle.backbone.cache_key == backbone.cache_key != setup["backbone"].cache_key


def test_discover_bundles(setup, tmp_path, monkeypatch):
    _save(setup, tmp_path / "models" / "b-model", _geocell_head(setup))
    _save(setup, tmp_path / "models" / "a-model", _geocell_head(setup))
    (tmp_path / "models" / "notes").mkdir()
    with pytest.warns(UserWarning, match="notes has no config.json"):
        found = discover_bundles(tmp_path / "models")
    assert [p.name for p in found] == ["a-model", "b-model"]
    monkeypatch.setenv("GEOAI_MODELS_DIR", str(tmp_path / "models" / "a-model" / ".."))
    with pytest.warns(UserWarning):
        assert len(discover_bundles()) == 2
    assert discover_bundles(tmp_path / "absent") == []


def test_place_prediction_carries_classifier_belief_and_labels_name_models():
    """A geocell head reports its most probable cells; a linear head gives only a point."""
    import numpy as np

    from geoai.labels import model_label
    from geoai.models.heads import top_cells

    rng = np.random.default_rng(0)
    latlon = np.column_stack([rng.uniform(42, 46, 200), rng.uniform(13, 19, 200)])
    emb = rng.normal(size=(3, 8)).astype(np.float32)
    geocell = build_head("geocell", 8, train_latlon=latlon, cell_min_samples=5, cell_max_samples=40)
    cells = top_cells(geocell, emb, k=3)
    assert len(cells) == 3 and len(cells[0]) == 3
    probs = [p for _, _, p in cells[0]]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-9
    assert top_cells(build_head("linear-mse", 8, train_latlon=latlon), emb) is None
    assert model_label("mobilenetv2-1.0-deepsort", "cnn") == "MobileNetV2 · CNN"
    assert model_label("beit", "transformer") == "BEiT-base · transformer"
