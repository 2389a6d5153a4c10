"""`python -m train evaluate`: metrics of one bundle on a dataset's test split (or all rows)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from geoai.data import load_image_folder
from geoai.metrics import compute_metrics
from geoai.models.bundle import Bundle, BundleError
from geoai.models.embeddings import compute_embeddings
from geoai.models.heads import predict_latlon
from geoai.scoring import map_size_km
from train.distributed import check_device
from train.errors import TrainError
from train.grid import dataset_root
from train.samples import build_samples

def evaluate_bundle(bundle_path: str | Path, data: str | Path, *, all_rows: bool = False,
                    device: str | None = None, cache_dir: str | Path | None = None,
                    skip_bad: bool = False, batch_size: int = 32, num_workers: int = 2,
                    predictions_csv: str | Path | None = None) -> dict[str, Any]:
    """JSON-ready metrics of the bundle on `data` (test split, or every row with all_rows).

    The map size D for GeoGuessr points comes from all the dataset's coordinates, as in
    training. Raises TrainError (bundle broken, backbone unavailable, bad dataset folder)
    or DatasetError. predictions_csv: also write every photo's guess there (write_predictions_csv).
    """
    root = dataset_root(data)
    if predictions_csv is not None and Path(predictions_csv).is_dir():
        raise TrainError(f"--predictions {predictions_csv} is a folder; give a file name such as predictions.csv")
    if num_workers < 0:
        raise TrainError(f"num-workers must be 0 (decode in this process) or more, got {num_workers}")
    try:
        bundle = Bundle.load(bundle_path, device=check_device(device))
    except BundleError as exc:
        raise TrainError(f"cannot use bundle {bundle_path}: {exc}") from None
    dataset = load_image_folder(root, on_error="skip" if skip_bad else "raise", check_images="header")
    split = "all" if all_rows else "test"
    part = dataset if all_rows else dataset.subset("test")
    if len(part) == 0:
        raise TrainError(f"the test split of {dataset.name} is empty; pass --all to evaluate every row")
    try:
        backbone = bundle.backbone
    except BundleError as exc:
        raise TrainError(str(exc)) from None
    embeddings = compute_embeddings(backbone, part, Path(cache_dir) if cache_dir else None,
                                    batch_size=batch_size, num_workers=num_workers, progress=True)
    samples = build_samples(part, "all", bundle.fusion, embeddings)
    predictions = predict_latlon(bundle.head, samples.embeddings)
    size = map_size_km(dataset.frame["lat"].to_numpy(), dataset.frame["lon"].to_numpy())
    metrics = compute_metrics(predictions, samples.latlon, map_size_km=size)
    fingerprint = dataset.fingerprint()
    result: dict[str, Any] = {}
    if predictions_csv is not None:
        written = write_predictions_csv(predictions_csv, part.frame, samples.rows, predictions)
        result["predictions"] = {"path": str(predictions_csv), "photos": written}
    return {
        **result,
        "bundle": bundle.name,
        "bundle_path": str(Path(bundle_path)),
        "backbone": bundle.backbone_name,
        "head": bundle.head_type,
        "fusion": bundle.fusion,
        "dataset": {"name": dataset.name, "root": str(dataset.root), "fingerprint": fingerprint,
                    "same_as_training": fingerprint in bundle.config.fingerprints},
        "split": split,
        "images": len(part),
        "map_size_km": size,
        "metrics": metrics,
    }


PREDICTION_COLUMNS = ("file_name", "lat", "lon", "pred_lat", "pred_lon", "km")


def write_predictions_csv(path: str | Path, frame, sample_rows, predictions) -> int:
    """One line per photo: its true and guessed position and the error in km.

    The views of a place predicted together (fused bundles) share the place's guess.
    Written beside and renamed, so a reader never sees half a file. Returns the photos written.
    """
    import csv

    import numpy as np

    from geoai.atomic import atomic_path
    from geoai.geodesy import haversine_km

    path = Path(path)
    count = 0
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(PREDICTION_COLUMNS)
        for rows, (pred_lat, pred_lon) in zip(sample_rows, np.asarray(predictions, dtype=np.float64)):
            for row in np.atleast_1d(rows):
                lat, lon = float(frame["lat"].iloc[row]), float(frame["lon"].iloc[row])
                km = float(haversine_km(lat, lon, pred_lat, pred_lon))
                writer.writerow([frame["file_name"].iloc[row], f"{lat:.6f}", f"{lon:.6f}", f"{pred_lat:.6f}",
                                 f"{pred_lon:.6f}", f"{km:.3f}"])
                count += 1
    return count
