"""Shared set-up for the result-screen tests (no tests here).

A models folder with a classifier opponent (tiny ResNet with a geocell head, so it has a
belief to draw) beside the regression one (tiny BEiT, linear head), and a small map whose
JPEGs carry EXIF GPS tags, for checking what the browser receives.
"""
from __future__ import annotations

import csv
import functools
import io
import tempfile
from pathlib import Path

from PIL import Image

from test_game_support import GAME_MAP, tiny_bundles_dir
from tiny_models import make_tiny_resnet

TRAIN_IMAGES = 48
EXIF_MAP = "exif-places"


@functools.lru_cache(maxsize=1)
def classifier_models_dir(shared_data: Path) -> Path:
    """tiny-beit-linear (transformer, regression) and tiny-resnet-geocell (CNN, classifier)."""
    from geoai.data import load_image_folder, open_image
    from geoai.metrics import compute_metrics
    from geoai.models import build_head, fit_head, load_backbone, predict_latlon, save_bundle

    root = Path(tempfile.mkdtemp(prefix="geoai-result-bundles-"))
    models = root / "models"
    models.mkdir()
    (models / "tiny-beit-linear").symlink_to(tiny_bundles_dir(shared_data) / "tiny-beit-linear")
    dataset = load_image_folder(shared_data / GAME_MAP, check_images="none")
    train = dataset.subset("train").frame.head(TRAIN_IMAGES)
    test = dataset.subset("test").frame.head(16)
    latlon = train[["lat", "lon"]].to_numpy()
    backbone = load_backbone(str(make_tiny_resnet(root / "checkpoints" / "tiny-resnet")), device="cpu")
    emb = backbone.embed([open_image(p) for p in train["path"]])
    head = build_head("geocell", backbone.embed_dim, train_latlon=latlon, cell_min_samples=2, cell_max_samples=8)
    head, _ = fit_head(head, emb, latlon, epochs=3, seed=0)
    test_pred = predict_latlon(head, backbone.embed([open_image(p) for p in test["path"]]))
    save_bundle(models / "tiny-resnet-geocell", backbone=backbone, head=head,
                metrics={"test": compute_metrics(test_pred, test[["lat", "lon"]].to_numpy())},
                dataset_info={"name": GAME_MAP, "fingerprint": "test", "split_sizes": {}},
                fusion="mean", name="tiny-resnet-geocell")
    return models


def jpeg_with_gps(colour: tuple[int, int, int], lat: float, lon: float, size=(96, 64)) -> bytes:
    """A JPEG whose EXIF holds a GPS position (what phones write)."""
    exif = Image.Exif()
    gps = exif.get_ifd(0x8825)
    gps[1], gps[3] = ("N" if lat >= 0 else "S"), ("E" if lon >= 0 else "W")
    gps[2] = dms(abs(lat))
    gps[4] = dms(abs(lon))
    exif[0x010F] = "TestCam"
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "JPEG", exif=exif)
    return out.getvalue()


def dms(value: float) -> tuple[float, float, float]:
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    return (float(degrees), float(minutes), round((value - degrees - minutes / 60) * 3600, 4))


def write_exif_map(folder: Path, places: int = 30, views: int = 2) -> Path:
    """A map of `places` places in Croatia, 2 views each, every JPEG tagged with its GPS position,
    credited to a made-up source and licence."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(places):
        lat, lon = 43.0 + 0.1 * i, 14.0 + 0.15 * i
        for v in range(views):
            name = f"images/p{i}_{v}.jpg"
            (folder / name).write_bytes(jpeg_with_gps((20 * v, 8 * i, 100), lat, lon))
            rows.append({"file_name": name, "lat": lat, "lon": lon, "location_id": f"p{i}", "heading": v * 90,
                         "source": "Test Camera Club", "license": "CC-BY-SA 4.0 (test photographers)"})
    with (folder / "metadata.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return folder
