"""Model bundles: a trained head plus everything needed to play and evaluate with it.

A bundle is a directory:

    config.json        geoai.bundle_config.BundleConfig: format, name, backbone, the head's
                       config, view mode ("single" or "mean"), dataset, metrics
    head.safetensors   the head's weights (read with safetensors only: no pickle)
    README.md          a human summary
    backbone/          optional: fine-tuned backbone weights (transformers checkpoint)

The backbone itself is loaded by name (so offline checkpoints resolve on each machine)
lazily on first use, or shared between bundles by passing one in.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

import geoai
from geoai.atomic import atomic_path, write_text_atomic
from geoai.bundle_config import BUNDLE_FORMAT, VIEW_MODES, BackboneRef, BundleConfig, BundleError, ConfigProblem
from geoai.bundle_files import discover_bundles  # noqa: F401  (torch-free, re-exported)
from geoai.geodesy import spherical_mean
from geoai.prediction import TOP_CELLS, PlacePrediction
from geoai.models.backbones import (
    known_backbones,
    Backbone,
    BackboneError,
    BackboneSpec,
    load_backbone,
)
from geoai.models.bundle_checks import (
    SAFE_BACKBONE_WEIGHTS,
    build_on_meta,
    check_head_fields,
    non_finite,
    pickled_files,
    read_weights_header,
    weights_problems,
)
from geoai.models.heads import cell_probabilities, predict_latlon
from geoai.models.registry import HeadError, head_from_config, head_names

CONFIG_FILE, WEIGHTS_FILE, README_FILE, BACKBONE_DIR = "config.json", "head.safetensors", "README.md", "backbone"


def _json_safe(value: Any) -> Any:
    """Plain JSON: NumPy scalars to Python, non-finite floats to null (JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _readme(config: BundleConfig) -> str:
    lines = [f"# {config.name}", "",
             f"Geolocation model bundle ({config.format}), created {config.created} "
             f"with geoai {config.geoai_version}.", "",
             f"- backbone: `{config.backbone.name}` ({config.backbone.source})",
             f"- head: `{config.head_type}` on {config.head['embed_dim']}-dimensional embeddings",
             f"- views: {config.fusion}",
             f"- dataset: {config.dataset.get('name', '?')} "
             f"(fingerprint {str(config.dataset.get('fingerprint', '?'))[:12]})", ""]
    splits = [s for s in ("test", "val", "train") if isinstance(config.metrics.get(s), dict)]
    if splits:
        keys = ["mean_km", "median_km", "within_25km", "within_200km", "within_750km", "mean_points"]
        lines += ["| split | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
        for split in splits:
            row = [config.metrics[split].get(k) for k in keys]
            lines.append(f"| {split} | " + " | ".join("" if v is None else f"{v:.4g}" for v in row) + " |")
        lines.append("")
    lines.append("Load with `geoai.models.Bundle.load(path)`.")
    return "\n".join(lines) + "\n"


def save_bundle(path: str | Path, *, backbone: Backbone | BackboneSpec, head: nn.Module, metrics: dict,
                dataset_info: dict, fusion: str, name: str | None = None,
                include_backbone_weights: bool = False) -> Path:
    """Write a bundle directory (created if needed, files replaced) and return its path.

    backbone: the Backbone the head was trained on (records its cache_key, image size and
        embedding size, which loading checks) or just its spec.
    metrics: {"test": compute_metrics(...), "val": ..., "train": ...} (any subset).
    dataset_info: {"name", "fingerprint", "split_sizes"}.
    fusion: the view mode, "single" or "mean" (see Bundle.predict_place_embeddings).
    include_backbone_weights: also save the backbone's weights into the bundle (needed
        when it was fine-tuned; otherwise it is loaded by name).
    """
    if fusion not in VIEW_MODES:
        raise BundleError(f"fusion must be one of {', '.join(VIEW_MODES)}, got {fusion!r}")
    if not hasattr(head, "config") or not hasattr(head, "predict"):
        raise BundleError(f"{type(head).__name__} is not a geoai head (no config/predict)")
    head_config = head.config
    if isinstance(backbone, Backbone):
        if backbone.embed_dim != head_config["embed_dim"]:
            raise BundleError(f"the head expects {head_config['embed_dim']}-dimensional embeddings but backbone "
                              f"{backbone.spec.name} gives {backbone.embed_dim}")
        info = BackboneRef(backbone.spec.name, backbone.spec.source, backbone.cache_key, backbone.image_size,
                           backbone.embed_dim, backbone.spec.family)
    elif isinstance(backbone, BackboneSpec):
        if include_backbone_weights:
            raise BundleError("include_backbone_weights needs the loaded Backbone, not only its spec")
        info = BackboneRef(backbone.name, backbone.source, embed_dim=head_config["embed_dim"], family=backbone.family)
    else:
        raise BundleError(f"backbone must be a Backbone or BackboneSpec, got {type(backbone).__name__}")
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    if include_backbone_weights:
        backbone.model.save_pretrained(out / BACKBONE_DIR)
        backbone.processor.save_pretrained(out / BACKBONE_DIR)
        info = dataclasses.replace(info, source=BACKBONE_DIR, bundled=True)

    config = BundleConfig(
        name=name or out.name, backbone=info, head=_json_safe(head_config), fusion=fusion,
        dataset=_json_safe(dict(dataset_info)), metrics=_json_safe(dict(metrics)),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), geoai_version=geoai.__version__)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in head.state_dict().items()}
    with atomic_path(out / WEIGHTS_FILE) as tmp:
        save_file(tensors, str(tmp), metadata={"format": BUNDLE_FORMAT})
    write_text_atomic(out / CONFIG_FILE, config.to_json())
    write_text_atomic(out / README_FILE, _readme(config))
    return out


def _read_config(path: Path) -> BundleConfig:
    config = BundleConfig.read(path)
    try:
        check_head_fields(config, head_names())
    except ConfigProblem as exc:
        raise BundleError(f"{path / CONFIG_FILE}: {exc}") from None
    if config.backbone.bundled:
        _check_bundled_backbone(path)
    return config


def _check_bundled_backbone(path: Path) -> None:
    """Fine-tuned backbone weights travel as safetensors, never as a pickle."""
    folder = path / BACKBONE_DIR
    if any((folder / name).is_file() for name in SAFE_BACKBONE_WEIGHTS):
        return
    pickles = pickled_files(folder)
    if pickles:
        raise BundleError(f"{folder} holds its weights as {', '.join(pickles)} (a pickle); geoai loads only "
                          "safetensors: re-save it with save_pretrained(..., safe_serialization=True)")
    raise BundleError(f"{path} says its backbone is bundled, but {folder} has no model.safetensors")


def _load_head(path: Path, config: BundleConfig) -> nn.Module:
    """The head with its weights, checked before allocating: shapes from a meta-device
    build against the safetensors header, then values for NaN and infinity."""
    weights_path = path / WEIGHTS_FILE
    if not weights_path.is_file():
        pickles = pickled_files(path)
        if pickles:
            raise BundleError(f"{path} holds {', '.join(pickles)} (a pickle) instead of {WEIGHTS_FILE}; "
                              "geoai loads weights only from safetensors (a pickle can run code)")
        raise BundleError(f"{path} is incomplete: {WEIGHTS_FILE} (the head's weights) is missing")
    try:
        expected = build_on_meta(head_from_config, config.head)
    except ConfigProblem as exc:
        raise BundleError(f"{path / CONFIG_FILE}: {exc}") from None
    except HeadError as exc:
        raise BundleError(f"{path}: {exc}") from exc
    except (TypeError, ValueError, RuntimeError, KeyError) as exc:  # a config the head cannot be built from
        raise BundleError(f"{path / CONFIG_FILE}: the head cannot be built from it ({exc})") from exc
    try:
        header = read_weights_header(weights_path)
    except (OSError, SafetensorError, ValueError) as exc:
        raise BundleError(f"{weights_path} cannot be read as safetensors: {exc}") from exc
    problems = weights_problems(header, expected)
    if problems:
        raise BundleError(f"{weights_path} does not match the {config.head_type} head in "
                          f"{CONFIG_FILE}: " + "; ".join(problems[:5]) + (" ..." if len(problems) > 5 else ""))
    try:
        head = head_from_config(config.head)
        weights = load_file(str(weights_path), device="cpu")
    except HeadError as exc:
        raise BundleError(f"{path}: {exc}") from exc
    except (OSError, SafetensorError, ValueError) as exc:
        raise BundleError(f"{weights_path} cannot be read as safetensors: {exc}") from exc
    bad = non_finite(weights)
    if bad:
        raise BundleError(f"{weights_path} holds NaN or infinite values in {', '.join(bad[:5])}"
                          f"{' ...' if len(bad) > 5 else ''}: the model would guess nonsense; retrain it")
    state = head.state_dict()
    head.load_state_dict({k: v.to(state[k].dtype) for k, v in weights.items()})
    return head.eval()


class Bundle:
    """A loaded bundle: its config, its head, and (lazily) its backbone."""

    def __init__(self, path: Path, config: BundleConfig, head: nn.Module, device: torch.device | None,
                 backbone: Backbone | None = None) -> None:
        self.path = path
        self.config = config
        self.head = head
        self.device = device
        self._backbone = backbone

    @property
    def name(self) -> str:
        return self.config.name or self.path.name

    @property
    def backbone_name(self) -> str:
        return self.config.backbone.name

    @property
    def backbone_key(self) -> tuple[str, str] | None:
        """Bundles with the same key can share one loaded backbone (BundleConfig.backbone_key)."""
        return self.config.backbone_key

    @property
    def head_type(self) -> str:
        return self.config.head_type

    @property
    def fusion(self) -> str:
        """The view mode: "single" or "mean"."""
        return self.config.fusion

    @property
    def metrics(self) -> dict:
        return self.config.metrics

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device | None = None,
             backbone: Backbone | None = None) -> "Bundle":
        """Read a bundle; the backbone is loaded on first use unless one is given (and checked)."""
        path = Path(path)
        config = _read_config(path)
        head = _load_head(path, config)
        dev = torch.device(device) if device is not None else (backbone.device if backbone is not None else None)
        if dev is not None:
            head.to(dev)
        bundle = cls(path, config, head, dev)
        if backbone is not None:
            bundle.use_backbone(backbone)
        return bundle

    def use_backbone(self, backbone: Backbone) -> None:
        """Predict with this already loaded backbone (e.g. shared with other bundles), checked
        to be the one the head was trained on."""
        self._check_backbone(backbone)
        self.head.to(backbone.device)
        self._backbone = backbone

    def _check_backbone(self, backbone: Backbone) -> None:
        info = self.config.backbone
        if backbone.embed_dim != self.config.head["embed_dim"]:
            raise BundleError(f"bundle {self.name} needs {self.config.head['embed_dim']}-dimensional "
                              f"embeddings ({info.name}), backbone {backbone.spec.name} gives "
                              f"{backbone.embed_dim}")
        expected = info.cache_key
        # Compare the weights digest only: the name before it is a label (a bundled or
        # moved checkpoint may carry another one).
        if expected and backbone.weights_digest != str(expected).rsplit("-", 1)[-1]:
            raise BundleError(f"bundle {self.name} was trained on backbone weights {expected}, but the loaded "
                              f"{backbone.spec.name} has {backbone.cache_key}: its predictions would be "
                              "meaningless. Convert/download the same weights again or retrain.")

    @property
    def backbone(self) -> Backbone:
        """The bundle's backbone, loaded on first access (by known name, bundled weights or source)."""
        if self._backbone is None:
            info = self.config.backbone
            source = info.source or ""
            if info.bundled:
                target = str(self.path / source)
            elif source and os.path.isabs(source) and os.path.isdir(source):
                target = source  # the very folder it was trained with, still here
            elif info.name in known_backbones():
                target = info.name  # e.g. offline checkpoints, resolved on this machine
            else:
                target = source or info.name
            try:
                backbone = load_backbone(target, device=self.device)
            except BackboneError as exc:
                raise BundleError(f"bundle {self.name} needs backbone {info.name!r}: {exc}") from exc
            if info.bundled:
                backbone.spec = BackboneSpec(info.name, target, info.family or "transformer",
                                             f"fine-tuned {info.name} stored in bundle {self.name}")
            self._check_backbone(backbone)
            self.head.to(backbone.device)
            self._backbone = backbone
        return self._backbone

    def predict_embeddings(self, embeddings: np.ndarray) -> np.ndarray:
        """(B, 2) [lat, lon] degrees for (B, D) embeddings."""
        return predict_latlon(self.head, embeddings)

    def predict_images(self, images: list[Image.Image]) -> np.ndarray:
        """(2,) [lat, lon] for ONE place from all its views.

        view mode "mean": the views' embeddings are averaged and predicted once; "single":
        each view is predicted and the answer is the spherical mean of those predictions.
        """
        if not images:
            raise BundleError("predict_images needs at least one image of the place")
        return self.predict_place_embeddings(self.backbone.embed(list(images))).latlon

    def predict_place_embeddings(self, embeddings: np.ndarray, k: int = TOP_CELLS) -> PlacePrediction:
        """The guess for ONE place from its views' (V, D) embeddings, with the head's belief.

        top_cells: the k most probable cells as (lat, lon, probability) for classifier heads
        (probabilities averaged over the views when views are not fused), None otherwise.
        """
        if self.fusion == "mean":
            embeddings = embeddings.mean(axis=0, keepdims=True)
            latlon = self.predict_embeddings(embeddings)[0]
        else:
            latlon = spherical_mean(self.predict_embeddings(embeddings))
        belief = cell_probabilities(self.head, embeddings)
        cells = None
        if belief is not None:
            centroids, probs = belief
            mean = probs.mean(axis=0)
            order = np.argsort(-mean)[:k]
            cells = tuple((float(centroids[i, 0]), float(centroids[i, 1]), float(mean[i])) for i in order)
        return PlacePrediction(float(latlon[0]), float(latlon[1]), cells)

    def __repr__(self) -> str:
        return f"Bundle({self.name!r}, backbone={self.backbone_name!r}, head={self.head_type!r})"
