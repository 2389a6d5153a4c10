"""Tiny backbones and a learnable image folder for tests (no hub, no downloads, seconds on CPU).

- `make_tiny_beit(dir)`, `make_tiny_resnet(dir)`: random-weight transformers checkpoints
  (config.json, model.safetensors, preprocessor_config.json) loadable with
  `geoai.models.load_backbone(dir)` like any local checkpoint.
- `write_colour_coded_folder(root)`: an image folder (metadata.csv + images/) where the image
  determines the location: hue encodes longitude and brightness latitude over Europe, and
  each place has several views (different patterns around the same colour).
- `colour_features(paths)`: hand-made embeddings of those images that make the task learnable.
"""
from __future__ import annotations

import colorsys
import csv
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

TINY_IMAGE_SIZE = 32
# The map of the generated dataset: roughly Europe.
LAT_RANGE = (38.0, 58.0)
LON_RANGE = (-8.0, 26.0)
GRID_STEP_DEG = (5.0, 8.5)  # grid squares of the generated dataset (lat, lon)


@contextmanager
def single_torch_thread():
    """Run torch on one thread: with tiny tensors on a busy machine, thread hand-offs cost
    far more than the arithmetic (a 20x slowdown measured on 2 shared cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def tiny_model_env(monkeypatch):
    """For tests of tiny models: one torch thread, and never a reach for the network."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with single_torch_thread():
        yield


def make_tiny_beit(directory: str | Path, seed: int = 0) -> Path:
    """A 2-layer BEiT (hidden 32, patch 8, 32x32 input, mean pooling) saved in `directory`."""
    from transformers import BeitConfig, BeitModel
    from transformers.models.beit.image_processing_pil_beit import BeitImageProcessorPil

    directory = Path(directory)
    config = BeitConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                        image_size=TINY_IMAGE_SIZE, patch_size=8, use_mean_pooling=True)
    torch.manual_seed(seed)
    BeitModel(config).save_pretrained(directory)
    size = {"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE}
    BeitImageProcessorPil(size=size, crop_size=size, do_center_crop=False).save_pretrained(directory)
    return directory


def make_tiny_resnet(directory: str | Path, seed: int = 0) -> Path:
    """A 2-stage ResNet (widths 8, 16; 32x32 input) saved in `directory`; embed_dim 16."""
    from transformers import ResNetConfig, ResNetModel
    from transformers.models.convnext.image_processing_pil_convnext import ConvNextImageProcessorPil

    directory = Path(directory)
    config = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], num_channels=3)
    torch.manual_seed(seed)
    ResNetModel(config).save_pretrained(directory)
    # shortest_edge < 384 with crop_pct 1.0: resize the short side to 32, centre-crop 32x32.
    ConvNextImageProcessorPil(size={"shortest_edge": TINY_IMAGE_SIZE}, crop_pct=1.0).save_pretrained(directory)
    return directory


def location_colour(lat: float, lon: float) -> tuple[float, float, float]:
    """(hue, saturation, value) in [0, 1] that encodes a location: hue <- lon, value <- lat."""
    hue = 0.7 * (lon - LON_RANGE[0]) / (LON_RANGE[1] - LON_RANGE[0])
    value = 0.35 + 0.6 * (lat - LAT_RANGE[0]) / (LAT_RANGE[1] - LAT_RANGE[0])
    return hue, 0.8, value


def _view_image(lat: float, lon: float, view: int, size: int) -> Image.Image:
    """The place's colour with a view-specific zero-mean pattern (stripes of varying angle)."""
    rgb = np.array(colorsys.hsv_to_rgb(*location_colour(lat, lon)))
    y, x = np.mgrid[0:size, 0:size]
    angle = np.pi * view / 4
    stripes = np.sign(np.sin((x * np.cos(angle) + y * np.sin(angle)) * 2 * np.pi / 8))
    pixels = rgb[None, None, :] * (1.0 + 0.08 * stripes[..., None])
    return Image.fromarray(np.clip(pixels * 255, 0, 255).round().astype(np.uint8))


def write_colour_coded_folder(root: str | Path, n_places: int = 50, views: int = 4, seed: int = 0,
                              image_size: int = 40) -> Path:
    """Write `n_places` x `views` JPEGs and metadata.csv (with location_id, heading, square_id)."""
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    lats = rng.uniform(*LAT_RANGE, n_places)
    lons = rng.uniform(*LON_RANGE, n_places)
    with (root / "metadata.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file_name", "lat", "lon", "location_id", "heading", "square_id"])
        for place, (lat, lon) in enumerate(zip(lats, lons)):
            square = (int((lat - LAT_RANGE[0]) // GRID_STEP_DEG[0]) * 100
                      + int((lon - LON_RANGE[0]) // GRID_STEP_DEG[1]))
            for view in range(views):
                name = f"images/place{place:03d}_v{view}.jpg"
                _view_image(lat, lon, view, image_size).save(root / name, "JPEG", quality=92)
                writer.writerow([name, f"{lat:.6f}", f"{lon:.6f}", f"place{place:03d}", view * 90, square])
    return root


def colour_features(paths, dim: int = 24, seed: int = 0) -> np.ndarray:
    """(N, dim) float32 embeddings of images: mean HSV colour, expanded and randomly mixed.

    A stand-in for a pretrained backbone on the colour-coded folder: the location is a smooth
    function of these features, but not a trivial copy of any single one of them.
    """
    hsv = []
    for path in paths:
        mean_rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64).mean(axis=(0, 1)) / 255.0
        hsv.append(colorsys.rgb_to_hsv(*mean_rgb))
    h, s, v = np.asarray(hsv).T
    basis = np.stack([h, v, s, h * h, v * v, h * v, np.sin(3 * h), np.cos(3 * v)], axis=1)
    mixing = np.random.default_rng(seed).normal(size=(basis.shape[1], dim))
    return (basis @ mixing).astype(np.float32)
