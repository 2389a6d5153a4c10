"""`python -m train publish RUN`: put the best bundle of each backbone where the game finds it,
with its answers for every place of the map's test split (models/predictions/<map>.sqlite),
so the game serves standard rounds without loading the model."""
from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from geoai import settings
from geoai.models.registry import HeadError, head_spec
from train.errors import TrainError
from train.precompute import precompute_map, refresh_other_maps
from train.results import ResultRow, RunResults

# Metrics where a larger value is better; every *_km metric is better smaller.
HIGHER_IS_BETTER = {"mean_points", "country_accuracy", "within_1km", "within_25km", "within_200km",
                    "within_750km", "within_2500km"}


@dataclass(frozen=True)
class Published:
    """One bundle copied into the models folder."""

    backbone: str
    source: Path
    target: Path
    metric: str
    value: float
    predictions: Path | None = None  # the map's predictions file, when written
    places: int = 0  # places answered in it


def best_per_backbone(rows: list[ResultRow], metric: str = "mean_km", split: str = "val") -> dict[str, ResultRow]:
    """The best publishable row of each backbone by `metric` on `split` (first row wins ties)."""
    better_high = metric in HIGHER_IS_BETTER
    best: dict[str, ResultRow] = {}
    for row in rows:
        if not row.bundle or not _publishable(row.head):
            continue
        value = row.metric(split, metric)
        if value is None:
            raise TrainError(f"results have no {split} {metric!r} for {row.id}; choose a metric "
                             f"such as mean_km, median_km, mean_points")
        current = best.get(row.backbone)
        if current is None:
            best[row.backbone] = row
            continue
        old = current.metric(split, metric)
        if (value > old) if better_high else (value < old):
            best[row.backbone] = row
    return best


def _publishable(head: str | None) -> bool:
    """Whether the head type may play in the game (the registry says; unknown types stop)."""
    try:
        return head_spec(head).publishable
    except HeadError as exc:
        raise TrainError(f"results.json names a head this version cannot publish: {exc}") from None


def _replace_dir(source: Path, target: Path) -> None:
    """Copy source to target so the game never sees half a bundle: copy beside, then swap."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.new-{uuid.uuid4().hex[:8]}"
    shutil.copytree(source, staging)
    old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
    if target.exists():
        os.replace(target, old)
    os.replace(staging, target)
    if old.exists():
        shutil.rmtree(old)


def publish_run(run_dir: str | Path, models_dir: str | Path | None = None,
                metric: str = "mean_km", data_dir: str | Path | None = None, predictions: bool = True,
                progress: Callable[[str], None] | None = None) -> list[Published]:
    """Copy the best bundle per backbone of RUN into models_dir/<dataset>-<backbone>/, then write
    their answers for the map's test places into models_dir/predictions/<dataset>.sqlite.

    One folder per (map, backbone), so publishing runs on several maps gives the game
    models for each map; republishing the same map replaces its older bundles and their
    answers. data_dir: the dataset folder (default: the one the run trained on).
    """
    run_dir = Path(run_dir)
    results = RunResults.read(run_dir)
    target_root = Path(models_dir) if models_dir is not None else settings.models_dir()
    best = best_per_backbone(results.results, metric)
    if not best:
        raise TrainError(f"{run_dir} has no trained bundles to publish")
    # A joined run answers for every map it trained on: each member dataset is a map.
    maps = [Path(data_dir).expanduser()] if data_dir else [root for _, root in results.maps()]
    for data in maps if predictions else []:
        if not (data / "metadata.csv").is_file():
            raise TrainError(f"the dataset folder of this run ({data}) has no metadata.csv: pass --data DIR so "
                             "the game's answers can be computed, or --no-predictions to publish the models alone")
    published = []
    for backbone, row in sorted(best.items()):
        source = run_dir / row.bundle
        if not (source / "config.json").is_file():
            raise TrainError(f"bundle {source} listed in results.json is missing or incomplete")
        target = target_root / f"{results.dataset_name}-{backbone}"
        _replace_dir(source, target)
        published.append(Published(backbone, source, target, metric, row.metric("val", metric)))
    for data in maps if predictions else []:
        written = precompute_map([p.target for p in published], data, target_root,
                                 **({"progress": progress} if progress else {}))
        published = [replace(p, predictions=w.path if len(maps) == 1 else w.path.parent, places=p.places + w.places)
                     for p, w in zip(published, written)]
    if predictions:
        refresh_other_maps([p.target for p in published], maps[-1].name, target_root,
                           **({"progress": progress} if progress else {}))
    return published
