"""Backbones: resolving names, loading local checkpoints, embeddings, offline errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from geoai.models import (
    BackboneError,
    backbone_status,
    known_backbones,
    load_backbone,
    resolve_backbone,
)
from tiny_models import make_tiny_beit, make_tiny_resnet, tiny_model_env  # noqa: F401 (a fixture, used by pytestmark)


pytestmark = pytest.mark.usefixtures("tiny_model_env")


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("backbones")
    return {"beit": make_tiny_beit(root / "beit"), "resnet": make_tiny_resnet(root / "resnet"),
            "beit_other": make_tiny_beit(root / "beit_other", seed=1)}


@pytest.fixture(scope="module")
def tiny_beit(tiny_dirs):
    return load_backbone(str(tiny_dirs["beit"]), device="cpu")


def _images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (40 + 7 * i, 50, 3), dtype=np.uint8)) for i in range(5)]


def test_known_names_resolve_to_the_studys_checkpoints():
    assert resolve_backbone("beit").source == "microsoft/beit-base-patch16-224"
    assert resolve_backbone("beit-384").source == "microsoft/beit-base-patch16-384"
    assert resolve_backbone("resnet50") == known_backbones()["resnet50"]
    assert resolve_backbone("resnet50").family == "cnn"
    offline = resolve_backbone("mobilenetv2-1.0-deepsort")
    assert offline.is_local and offline.source.endswith("mobilenetv2-1.0-deepsort")
    assert resolve_backbone("microsoft/resnet-50").name == "resnet50"  # by source: same short name
    assert resolve_backbone(offline.source).name == "mobilenetv2-1.0-deepsort"
    hub = resolve_backbone("google/vit-base-patch16-224")
    assert not hub.is_local and hub.name == "vit-base-patch16-224"


def test_local_checkpoint_folders_resolve(tiny_dirs, tmp_path):
    spec = resolve_backbone(str(tiny_dirs["resnet"]))
    assert spec.is_local and spec.family == "cnn" and spec.name == "resnet"
    assert backbone_status(spec)[0]
    (tmp_path / "empty").mkdir()
    with pytest.raises(BackboneError, match="no config.json"):
        resolve_backbone(str(tmp_path / "empty"))
    with pytest.raises(BackboneError, match="non-empty string"):
        resolve_backbone("  ")


def test_missing_offline_checkpoint_says_how_to_convert(monkeypatch, tmp_path):
    monkeypatch.setenv("GEOAI_CHECKPOINTS", str(tmp_path / "nowhere"))  # read when the name is resolved
    spec = resolve_backbone("dinov2-small-imgfocus")
    assert spec.source == str(tmp_path / "nowhere" / "dinov2-small-imgfocus")
    available, reason = backbone_status(spec)
    assert not available and "python -m train convert-offline" in reason
    with pytest.raises(BackboneError, match="not available: not converted yet.*convert-offline"):
        load_backbone("dinov2-small-imgfocus")
    with pytest.raises(BackboneError, match="does not exist.*known backbone name"):
        load_backbone(str(tmp_path / "typo"))


def test_uncached_hub_model_offline_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    available, reason = backbone_status(resolve_backbone("resnet50"))
    assert not available and "not in the Hugging Face cache" in reason
    with pytest.raises(BackboneError, match=r"microsoft/resnet-50 is not available offline.*convert-offline"):
        load_backbone("resnet50")


@pytest.mark.parametrize("kind, dim", [("beit", 32), ("resnet", 16)])
def test_tiny_backbones_embed_images(tiny_dirs, kind, dim):
    backbone = load_backbone(str(tiny_dirs[kind]), device="cpu")
    assert backbone.embed_dim == dim and backbone.image_size == 32
    assert backbone.device == torch.device("cpu") and not backbone.model.training
    images = _images()
    emb = backbone.embed(images, batch_size=2)
    assert emb.shape == (5, dim) and emb.dtype == np.float32 and np.isfinite(emb).all()
    # Batching does not change an image's embedding; different images differ.
    np.testing.assert_allclose(backbone.embed(images[3:4]), emb[3:4], rtol=1e-4, atol=1e-5)
    assert np.abs(emb[0] - emb[1]).max() > 1e-3
    # Greyscale input is converted, not rejected.
    assert backbone.embed([images[0].convert("L")]).shape == (1, dim)


def test_forward_is_differentiable_for_fine_tuning(tiny_beit):
    pixels = tiny_beit.preprocess(_images()[:2])
    assert pixels.shape == (2, 3, 32, 32)
    tiny_beit.forward(pixels).sum().backward()
    grads = [p.grad for p in tiny_beit.model.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
    tiny_beit.model.zero_grad(set_to_none=True)


def test_cache_key_follows_the_weights_not_the_folder(tiny_dirs, tiny_beit, tmp_path):
    import shutil

    moved = shutil.copytree(tiny_dirs["beit"], tmp_path / "beit")
    again = load_backbone(str(moved), device="cpu")
    assert again.cache_key == tiny_beit.cache_key
    other = load_backbone(str(tiny_dirs["beit_other"]), device="cpu")
    assert other.cache_key.split("-")[-1] != tiny_beit.cache_key.split("-")[-1]
    with torch.no_grad():
        next(again.model.parameters()).add_(1.0)  # e.g. fine-tuning
    assert again.cache_key != tiny_beit.cache_key


@pytest.mark.parametrize("kind", ["beit", "resnet"])
def test_speed_up_keeps_the_embeddings_and_the_cache_key(tiny_dirs, kind):
    backbone = load_backbone(str(tiny_dirs[kind]), device="cpu")
    images = _images()
    before, key = backbone.embed(images), backbone.cache_key
    threads = torch.get_num_threads()
    try:
        backbone.speed_up("latency")
        after = backbone.embed(images)
    finally:
        torch.set_num_threads(threads)  # speed_up sets the game's thread count process-wide
    np.testing.assert_allclose(after, before, rtol=1e-4, atol=1e-5)
    assert backbone.cache_key == key  # bundles trained before still match this backbone


def test_reduced_precision_speed_up_keeps_the_cache_key(tiny_dirs, monkeypatch):
    """bf16 weights are the same weights: bundles trained on the fp32 ones must still match."""
    import geoai.models.speed as speed

    backbone = load_backbone(str(tiny_dirs["resnet"]), device="cpu")
    key = backbone.cache_key
    cast = speed.InferenceSettings(dtype="bfloat16", cast_weights=True, channels_last=True)
    monkeypatch.setattr(speed, "choose_settings", lambda *args, **kwargs: cast)
    backbone.speed_up("latency")
    assert next(backbone.model.parameters()).dtype == torch.bfloat16  # the weights really changed
    assert backbone.cache_key == key
