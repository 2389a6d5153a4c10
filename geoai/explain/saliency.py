"""Saliency maps: Grad-CAM for CNN backbones, attention rollout for vision transformers.

What Grad-CAM explains is the head's own prediction (`prediction_score`):
- classifier heads (grid, geocell): the logit of the most probable cell, Grad-CAM's usual
  target (the class the model chose);
- regression heads (linear-*): the length of the standardised output z, i.e. how far the
  guess moves from the training places' mean position. Its gradient points along z, so
  with global average pooling and a linear head each location's value is its
  contribution to the guess projected on the direction the guess actually took;
- anything else (baselines): the embedding's length, the strength of what the backbone saw.

Attention rollout has no target: it multiplies the layers' head-averaged attention (plus
the identity for the residual path, rows renormalised) and reads the row of the token
the embedding is pooled from (CLS, or the mean of the patch tokens for mean-pooled
models such as BEiT).
"""
from __future__ import annotations

import copy
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from geoai.explain.cache import bundle_digest
from geoai.explain.geometry import InputGeometry, input_geometry
from geoai.models.pooling import pool_outputs

GRAD_CAM, ROLLOUT = "grad-cam", "attention-rollout"
ROLLOUT_SATURATE = 0.98
METHOD_CAPTIONS = {
    GRAD_CAM: "Grad-CAM: the warm areas are the parts of the photo that pushed this CNN towards its "
              "answer most, found by tracing its answer back to its last layer of image features.",
    ROLLOUT: "Attention rollout: the warm areas are the patches of the photo that this transformer's "
             "attention, followed through all of its layers, gathered its summary of the photo from.",
}
Score = Callable[[torch.Tensor], tuple[torch.Tensor, str]]


class ExplainError(RuntimeError):
    """A saliency map cannot be computed for this model or photo; the message says why."""


@dataclass(frozen=True)
class Saliency:
    """A photo-shaped saliency map.

    values: (H, W) float32 in [0, 1] (1 where the model looked most; 0 where it did not
    look or did not see). seen: (H, W) bool, the photo pixels inside the model's input
    (processors may crop). target: what the map explains, in words.
    """
    values: np.ndarray
    seen: np.ndarray
    method: str
    target: str
    seconds: float

    @property
    def caption(self) -> str:
        return METHOD_CAPTIONS[self.method]


def prediction_score(head: torch.nn.Module) -> Score:
    """The scalar Grad-CAM explains for `head` (see the module docstring), and its description."""
    def score(embedding: torch.Tensor) -> tuple[torch.Tensor, str]:
        outputs = head(embedding) if isinstance(head, torch.nn.Module) else {}
        logits = outputs.get("logits") if isinstance(outputs, dict) else None
        if isinstance(logits, torch.Tensor) and logits.requires_grad:
            return logits[0, int(logits[0].argmax())], "its most likely cell"
        z = outputs.get("z") if isinstance(outputs, dict) else None
        if isinstance(z, torch.Tensor) and z.requires_grad:
            return z[0].norm(), "how far its guess moves from the middle of the map"
        return embedding[0].norm(), "the strength of its image features"
    return score


def grad_cam(model: torch.nn.Module, pixel_values: torch.Tensor, score: Score) -> tuple[np.ndarray, str]:
    """(h, w) Grad-CAM of a CNN's last feature map (its last_hidden_state) for `score`, in [0, 1]."""
    with torch.enable_grad():
        pixel_values = pixel_values.detach().requires_grad_(True)  # the graph runs from the input
        outputs = model(pixel_values=pixel_values)
        features = outputs.last_hidden_state
        if features.ndim != 4:
            raise ExplainError(f"Grad-CAM needs a (B, C, H, W) feature map, got {tuple(features.shape)}")
        target, what = score(pool_outputs(outputs))
        (gradient,) = torch.autograd.grad(target, features)
    weights = gradient.mean(dim=(2, 3), keepdim=True)  # one weight per channel
    cam = torch.relu((weights * features.detach()).sum(dim=1))[0]
    return _normalised(cam), what


def attention_rollout(model: torch.nn.Module, pixel_values: torch.Tensor,
                      mean_pooled: bool = False) -> np.ndarray:
    """(h, w) attention rollout over the patch grid, in [0, 1]; the model must run eager attention."""
    with torch.inference_mode():
        outputs = model(pixel_values=pixel_values, output_attentions=True)
    attentions = getattr(outputs, "attentions", None)
    if not attentions or any(a is None for a in attentions):
        raise ExplainError("the model returned no attention weights (it needs attn_implementation='eager')")
    tokens = attentions[0].shape[-1]
    identity = torch.eye(tokens, dtype=torch.float64)
    rollout = identity
    for layer in attentions:
        mixed = layer[0].double().mean(dim=0) + identity  # heads averaged; + residual connection
        rollout = (mixed / mixed.sum(dim=-1, keepdim=True)) @ rollout
    patch = getattr(model.config, "patch_size", None)
    ph, pw = (patch, patch) if isinstance(patch, int) else tuple(patch or (0, 0))
    height, width = pixel_values.shape[-2:]
    if not ph or not pw:
        raise ExplainError("the model's config has no patch_size: cannot lay its tokens out as a grid")
    gh, gw = height // ph, width // pw
    prefix = tokens - gh * gw  # CLS (and any register tokens) come first
    if prefix < 0:
        raise ExplainError(f"{tokens} tokens cannot hold a {gh}x{gw} patch grid")
    source = rollout[prefix:].mean(dim=0) if mean_pooled or prefix == 0 else rollout[0]
    # A few tokens can take most of the attention (DINOv2's high-norm tokens): saturating the
    # top 2 % keeps the rest of the map readable instead of one hot dot on a blue photo.
    return _normalised(source[prefix:].reshape(gh, gw), top_quantile=ROLLOUT_SATURATE)


def _normalised(grid: torch.Tensor, top_quantile: float = 1.0) -> np.ndarray:
    """Min-max scaled to [0, 1], values above the top_quantile saturating at 1."""
    values = grid.detach().double().cpu().numpy()
    values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    if top_quantile < 1.0:
        values = np.minimum(values, np.quantile(values, top_quantile))
    span = values.max() - values.min()
    if span <= 1e-12:  # nothing stands out (e.g. no positive evidence at all)
        return np.zeros(values.shape, dtype=np.float32)
    return ((values - values.min()) / span).astype(np.float32)


def to_photo(grid: np.ndarray, input_size: tuple[int, int], geometry: InputGeometry,
             photo_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Spread a (h, w) map over the model's input onto a photo of photo_size = (W, H).

    Bilinear between grid cells; photo pixels outside the input (cropped away) get 0 and
    seen=False. Returns (values (H, W) float32, seen (H, W) bool).
    """
    in_h, in_w = input_size
    width, height = photo_size
    u, v = geometry.to_input((np.arange(width) + 0.5) / width, (np.arange(height) + 0.5) / height)
    seen = ((v >= -0.5) & (v <= in_h - 0.5))[:, None] & ((u >= -0.5) & (u <= in_w - 0.5))[None, :]
    # grid_sample's coordinates (align_corners=False): -1 and 1 are the input's outer edges.
    gx = np.broadcast_to((2 * u + 1) / in_w - 1, (height, width))
    gy = np.broadcast_to(((2 * v + 1) / in_h - 1)[:, None], (height, width))
    where = torch.from_numpy(np.stack([gx, gy], axis=-1)[None].astype(np.float32))
    values = F.grid_sample(torch.from_numpy(grid)[None, None].float(), where, mode="bilinear",
                           padding_mode="border", align_corners=False)[0, 0].numpy()
    values = np.where(seen, np.clip(values, 0.0, 1.0), 0.0).astype(np.float32)
    return values, seen


class Explainer:
    """Saliency maps for one bundle's model, from a private fp32 copy of its backbone.

    The copy keeps the game's (possibly sped-up, SDPA) backbone untouched and lets the
    transformer run eager attention, the only kind that returns attention weights.
    Thread-safe: one map at a time per explainer.
    """

    def __init__(self, bundle: Any) -> None:
        backbone = bundle.backbone
        self.name = bundle.name
        self.head = bundle.head
        self.method = GRAD_CAM if backbone.spec.family == "cnn" else ROLLOUT
        self.digest = bundle_digest(bundle)
        self.preprocess = backbone.preprocess
        self.processor = backbone.processor
        self.device = backbone.device
        self.model = explanation_copy(backbone.model, eager=self.method == ROLLOUT)
        self.mean_pooled = bool(getattr(self.model.config, "use_mean_pooling", False))
        self._geometries: dict[tuple[int, int], InputGeometry] = {}
        self._lock = threading.Lock()

    def saliency(self, image: Image.Image, size: tuple[int, int] | None = None) -> Saliency:
        """The map for `image` (as the model sees it), laid over a photo of size (W, H) (default: image's)."""
        started = time.perf_counter()
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        size = size or rgb.size
        with self._lock:
            pixels = self.preprocess([rgb]).to(self.device, torch.float32)
            if self.method == GRAD_CAM:
                grid, target = grad_cam(self.model, pixels, prediction_score(self.head))
            else:
                grid, target = attention_rollout(self.model, pixels, self.mean_pooled), "what it attends to"
            geometry = self._geometry(rgb.size)
        values, seen = to_photo(grid, tuple(pixels.shape[-2:]), geometry, size)
        return Saliency(values, seen, self.method, target, time.perf_counter() - started)

    def _geometry(self, size: tuple[int, int]) -> InputGeometry:
        # Only the aspect ratio matters (the mapping is in fractions): key on it, rounded.
        key = (round(1000 * size[0] / size[1]), 1000)
        if key not in self._geometries:
            self._geometries[key] = input_geometry(self.preprocess, self.processor, *size)
        return self._geometries[key]


def explanation_copy(model: torch.nn.Module, eager: bool) -> torch.nn.Module:
    """An fp32, contiguous, frozen copy of a transformers model (eager attention when asked)."""
    clone = copy.deepcopy(model).float().to(memory_format=torch.contiguous_format).eval()
    if eager:
        if not hasattr(clone, "set_attn_implementation"):
            raise ExplainError(f"{type(model).__name__} cannot switch to eager attention")
        clone.set_attn_implementation("eager")
    for parameter in clone.parameters():
        parameter.requires_grad_(False)
    return clone
