"""`BundleConfig`: a model bundle's config.json as a typed, checked value. Torch-free, so the game
reads bundles before loading any model.

    {"format": "geoai-bundle/2", "name", "backbone": {name, source, cache_key, image_size,
     embed_dim, family, bundled?}, "head": head.config, "fusion": "single"|"mean",
     "dataset": {...}, "metrics": {...}, "created", "geoai_version"}

The view mode speaks the training's words: "single" (each view predicted, the guesses
averaged) or "mean" (the views' embeddings averaged, predicted once). Older bundles (format
geoai-bundle/1, or none recorded) called single views "none"; they still load, read as
"single", and one without a view mode reads as "single".
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geoai.bundle_files import CONFIG_FILE
from geoai.coverage import coverage_from_config

BUNDLE_FORMAT = "geoai-bundle/2"
# Older formats -> their view mode names that changed. The first bundles recorded no format.
OLD_FORMATS = {"geoai-bundle/1": {"none": "single"}, None: {"none": "single"}}
VIEW_MODES = ("single", "mean")
MAX_CONFIG_BYTES = 64 * 2**20  # geocell centroids of 100,000 cells are a few MiB
MAX_EMBED_DIM = 65_536  # the largest vision backbones embed into a few thousand dimensions
CNN_WORDS = ("resnet", "mobilenet", "convnext", "efficientnet")


class BundleError(ValueError):
    """A bundle cannot be saved or loaded: missing files, wrong format, mismatched weights."""


class ConfigProblem(ValueError):
    """One thing wrong with a bundle's config; the caller adds where it is."""


def int_in(value: Any, what: str, low: int, high: int) -> int:
    """`value` if it is a whole number in [low, high], else ConfigProblem naming `what`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigProblem(f"{what} must be a whole number, got {value!r:.60}")
    if not low <= value <= high:
        raise ConfigProblem(f"{what} must be between {low:,} and {high:,}, got {value:,}")
    return value


def _optional(config: dict, key: str, kind: type, what: str) -> Any:
    value = config.get(key)
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool) and kind is not bool):
        raise ConfigProblem(f"{what} must be {kind.__name__} or absent, got {value!r:.60}")
    return value


@dataclass(frozen=True)
class BackboneRef:
    """The backbone a bundle's head was trained on: loaded by name (or from the bundle when
    `bundled`), checked against `cache_key`, a digest of its weights."""

    name: str
    source: str | None = None
    cache_key: str | None = None
    image_size: int | None = None
    embed_dim: int | None = None
    family: str | None = None
    bundled: bool = False  # fine-tuned weights stored in the bundle's backbone/ folder

    def to_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "source": self.source, "cache_key": self.cache_key,
               "image_size": self.image_size, "embed_dim": self.embed_dim, "family": self.family}
        return {**out, "bundled": True} if self.bundled else out

    @classmethod
    def from_dict(cls, data: Any) -> "BackboneRef":
        if not isinstance(data, dict):
            raise ConfigProblem(f"backbone must be an object with name, source and embed_dim, got {data!r:.60}")
        if not isinstance(data.get("name"), str) or not data["name"].strip():
            raise ConfigProblem(f"backbone.name must be a non-empty string, got {data.get('name')!r:.60}")
        text = {key: _optional(data, key, str, f"backbone.{key}") for key in ("source", "cache_key", "family")}
        sizes = {key: None if data.get(key) is None else int_in(data[key], f"backbone.{key}", 1, limit)
                 for key, limit in (("embed_dim", MAX_EMBED_DIM), ("image_size", 16_384))}
        return cls(name=data["name"], **text, **sizes,
                   bundled=bool(_optional(data, "bundled", bool, "backbone.bundled")))


@dataclass(frozen=True)
class BundleConfig:
    """A bundle's config.json. `head` is the head's own config (geoai.models.registry rebuilds
    the head from it); `dataset` and `metrics` are what training recorded."""

    name: str
    backbone: BackboneRef
    head: dict[str, Any]
    fusion: str
    dataset: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    created: str | None = None
    geoai_version: str | None = None
    format: str = BUNDLE_FORMAT

    # -- what the game and evaluation need ------------------------------------------------
    @property
    def head_type(self) -> str:
        return str(self.head.get("type", "?"))

    @property
    def family(self) -> str:
        """"transformer" or "cnn"; guessed from the names for bundles that did not record it."""
        if self.backbone.family:
            return self.backbone.family
        text = f"{self.backbone.name} {self.backbone.source or ''}".lower()
        return "cnn" if any(word in text for word in CNN_WORDS) else "transformer"

    @property
    def backbone_key(self) -> tuple[str, str] | None:
        """Bundles with the same key can share one loaded backbone; None for a bundled
        (fine-tuned) backbone, which belongs to its bundle alone."""
        return None if self.backbone.bundled else (self.backbone.name, self.backbone.cache_key or "")

    @property
    def dataset_name(self) -> str:
        return str(self.dataset.get("name", ""))

    @property
    def member_names(self) -> tuple[str, ...]:
        """Every dataset of a joined run it trained on; () for one dataset."""
        return tuple(str(m.get("name")) for m in self.dataset.get("members") or [] if isinstance(m, dict))

    @property
    def fingerprints(self) -> set[str]:
        """Fingerprints of the dataset it trained on and of each joined member."""
        members = [m.get("fingerprint") for m in self.dataset.get("members") or [] if isinstance(m, dict)]
        return {str(f) for f in [self.dataset.get("fingerprint"), *members] if f}

    @property
    def coverage(self) -> list:
        """Its training places (geoai.coverage)."""
        return coverage_from_config(self.to_dict())

    # -- JSON -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "name": self.name, "backbone": self.backbone.to_dict(), "head": self.head,
                "fusion": self.fusion, "dataset": self.dataset, "metrics": self.metrics, "created": self.created,
                "geoai_version": self.geoai_version}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    @classmethod
    def from_dict(cls, data: Any, default_name: str = "") -> "BundleConfig":
        """Checked: ConfigProblem names the field. Old formats are read in today's words."""
        if not isinstance(data, dict):
            raise ConfigProblem("must hold a JSON object")
        fmt = data.get("format")
        if not (fmt is None or isinstance(fmt, str) and (fmt == BUNDLE_FORMAT or fmt in OLD_FORMATS)):
            known = [BUNDLE_FORMAT, *(f for f in OLD_FORMATS if f)]
            raise ConfigProblem(f"has bundle format {fmt!r:.60}; this version of geoai reads "
                                f"{', '.join(map(repr, known))} (re-export the model with a matching geoai)")
        if fmt is None:
            data = {"fusion": "single", **data}
        missing = [k for k in ("backbone", "head", "fusion") if k not in data]
        if missing:
            raise ConfigProblem(f"lacks {', '.join(missing)}")
        name = _optional(data, "name", str, "name")
        dataset, metrics = (_optional(data, key, dict, key) for key in ("dataset", "metrics"))
        fusion = data["fusion"]
        if isinstance(fusion, str):
            fusion = OLD_FORMATS.get(fmt, {}).get(fusion, fusion)
        if fusion not in VIEW_MODES:
            raise ConfigProblem(f"fusion must be one of {', '.join(VIEW_MODES)}, got {data['fusion']!r:.60}")
        backbone = BackboneRef.from_dict(data["backbone"])
        if not isinstance(data["head"], dict):
            raise ConfigProblem(f"head must be an object with type and embed_dim, got {data['head']!r:.60}")
        return cls(name=name or default_name, backbone=backbone, head=data["head"], fusion=fusion,
                   dataset=dataset or {}, metrics=metrics or {}, created=data.get("created"),
                   geoai_version=data.get("geoai_version"), format=BUNDLE_FORMAT)

    @classmethod
    def read(cls, folder: str | Path) -> "BundleConfig":
        """The config.json of a bundle folder; BundleError (one line) when it is missing or bad."""
        path = Path(folder)
        if not path.is_dir():
            raise BundleError(f"{path} is not a model bundle: no such directory")
        config_path = path / CONFIG_FILE
        if not config_path.is_file():
            raise BundleError(f"{path} is not a model bundle: {CONFIG_FILE} is missing")
        try:
            size = config_path.stat().st_size
            if size > MAX_CONFIG_BYTES:
                raise BundleError(f"{config_path} is {size / 2**20:,.0f} MiB; a bundle config is at most "
                                  f"{MAX_CONFIG_BYTES // 2**20} MiB")
            data = json.loads(config_path.read_text(encoding="utf-8"))
        except BundleError:
            raise
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else repr(exc)
            raise BundleError(f"{config_path} is not valid JSON: {reason}") from exc
        try:
            return cls.from_dict(data, default_name=path.name)
        except ConfigProblem as exc:
            raise BundleError(f"{config_path}: {exc}") from None

