"""Shared set-up for the game's tests (no tests here): tiny model bundles and environments.

Bundles are built once per test process from tests/tiny_models.py backbones and a head
fitted for a few epochs on part of croatia-streetview's train split, so the app plays
with real geoai.models code paths in seconds, offline.
"""
from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from tiny_models import make_tiny_beit, make_tiny_resnet

GAME_MAP = "croatia-streetview"
WORLD_MAP = "streetview-world-tiles"
TRAIN_IMAGES = 48


@functools.lru_cache(maxsize=1)
def tiny_bundles_dir(shared_data: Path) -> Path:
    """A models folder with two bundles (tiny BEiT = transformer, tiny ResNet = cnn)."""
    from geoai.data import load_image_folder, open_image
    from geoai.metrics import compute_metrics
    from geoai.models import build_head, fit_head, load_backbone, predict_latlon, save_bundle

    root = Path(tempfile.mkdtemp(prefix="geoai-game-bundles-"))
    dataset = load_image_folder(shared_data / GAME_MAP, check_images="none")
    train = dataset.subset("train").frame.head(TRAIN_IMAGES)
    test = dataset.subset("test").frame.head(16)
    latlon = train[["lat", "lon"]].to_numpy()
    for maker, name in ((make_tiny_beit, "tiny-beit-linear"), (make_tiny_resnet, "tiny-resnet-linear")):
        backbone = load_backbone(str(maker(root / "checkpoints" / name)), device="cpu")
        emb = backbone.embed([open_image(p) for p in train["path"]])
        head = build_head("linear-haversine", backbone.embed_dim, train_latlon=latlon)
        head, _ = fit_head(head, emb, latlon, epochs=3, seed=0)
        test_pred = predict_latlon(head, backbone.embed([open_image(p) for p in test["path"]]))
        metrics = {"test": compute_metrics(test_pred, test[["lat", "lon"]].to_numpy())}
        save_bundle(root / "models" / name, backbone=backbone, head=head, metrics=metrics,
                    dataset_info={"name": GAME_MAP, "fingerprint": "test", "split_sizes": {}},
                    fusion="mean", name=name)
    return root / "models"


def data_dir_with(shared_data: Path, tmp: Path, maps=(GAME_MAP, WORLD_MAP)) -> Path:
    """A data folder holding links to some shared maps (never copies of their images)."""
    folder = tmp / "maps"
    folder.mkdir(parents=True, exist_ok=True)
    for name in maps:
        link = folder / name
        if not link.exists():
            link.symlink_to(shared_data / name, target_is_directory=True)
    return folder


def game_environment(shared_data: Path, tmp: Path) -> dict[str, str]:
    """Environment variables for an app playing the tiny bundles with a fresh SQLite file."""
    return {
        "GEOAI_DATA_DIR": str(data_dir_with(shared_data, tmp)),
        "GEOAI_MODELS_DIR": str(tiny_bundles_dir(shared_data)),
        "GEOAI_DATABASE_URL": f"sqlite:///{tmp / 'game.sqlite'}",
        "GEOAI_BASEMAP": "off",
        "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
    }


@contextlib.contextmanager
def app_environment(monkeypatch, env: Mapping[str, str]) -> Iterator[None]:
    """The app's settings in the environment, with Streamlit's per-process caches (store,
    maps, models) empty before and after, so no test sees another's."""
    import streamlit as st

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    st.cache_resource.clear()
    st.cache_data.clear()
    try:
        yield
    finally:
        st.cache_resource.clear()
        st.cache_data.clear()
