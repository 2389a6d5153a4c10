"""Where a model looked: saliency maps for the game's backbones, drawn over the photo.

- CNNs (ResNet, MobileNetV2, ...): Grad-CAM on the last convolutional feature map, for the
  score the head actually predicts (see `saliency.prediction_score`).
- Vision transformers (BEiT, DINOv2, ...): attention rollout (Abnar & Zuidema, 2020) from
  the token the embedding is pooled from.

`Explainer(bundle)` computes a photo-shaped map in [0, 1]; `heat_overlay` draws it;
`ExplanationCache` keeps the drawings per (photo bytes, bundle weights). Nothing here is
on the path that computes guesses, distances or points.
"""
from geoai.explain.cache import ExplanationCache, bundle_digest, photo_digest
from geoai.explain.geometry import InputGeometry, input_geometry
from geoai.explain.overlay import heat_overlay, overlay_jpeg
from geoai.explain.saliency import (
    METHOD_CAPTIONS,
    ExplainError,
    Explainer,
    Saliency,
    attention_rollout,
    grad_cam,
)

__all__ = ["METHOD_CAPTIONS", "ExplainError", "Explainer", "ExplanationCache", "InputGeometry", "Saliency",
           "attention_rollout", "bundle_digest", "grad_cam", "heat_overlay", "input_geometry",
           "overlay_jpeg", "photo_digest"]
