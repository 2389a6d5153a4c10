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

# The bundle's fusion name -> the view mode of train.samples.
VIEW_MODE = {"none": "single", "mean": "mean"}


def evaluate_bundle(bundle_path: str | Path, data: str | Path, *, all_rows: bool = False,
                    device: str | None = None, cache_dir: str | Path | None = None,
                    skip_bad: bool = False, batch_size: int = 32, num_workers: int = 2) -> dict[str, Any]:
    """JSON-ready metrics of the bundle on `data` (test split, or every row with all_rows).

    The map size D for GeoGuessr points comes from all the dataset's coordinates, as in
    training. Raises TrainError (bundle broken, backbone unavailable, bad dataset folder)
    or DatasetError.
    """
    root = dataset_root(data)
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
    samples = build_samples(part, "all", VIEW_MODE[bundle.fusion], embeddings)
    predictions = predict_latlon(bundle.head, samples.embeddings)
    size = map_size_km(dataset.frame["lat"].to_numpy(), dataset.frame["lon"].to_numpy())
    metrics = compute_metrics(predictions, samples.latlon, map_size_km=size)
    trained_on = bundle.config.get("dataset", {}).get("fingerprint")
    fingerprint = dataset.fingerprint()
    return {
        "bundle": bundle.name,
        "bundle_path": str(Path(bundle_path)),
        "backbone": bundle.backbone_name,
        "head": bundle.config["head"].get("type"),
        "fusion": bundle.fusion,
        "dataset": {"name": dataset.name, "root": str(dataset.root), "fingerprint": fingerprint,
                    "same_as_training": trained_on == fingerprint},
        "split": split,
        "images": len(part),
        "map_size_km": size,
        "metrics": metrics,
    }
