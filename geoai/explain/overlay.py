"""Drawing a saliency map over its photo as a heat overlay."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

# The classic "jet"-like ramp students know from heat maps: blue (little) to red (most).
_STOPS = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
_COLOURS = np.array([[0, 0, 160], [0, 170, 255], [60, 220, 60], [255, 210, 0], [230, 20, 20]], dtype=np.float64)
MIN_ALPHA, MAX_ALPHA = 0.2, 0.6  # faint where it barely looked, strong where it looked most
UNSEEN_DIM = 0.35  # photo parts the model never saw (cropped away) are darkened


def heat_colours(values: np.ndarray) -> np.ndarray:
    """(H, W, 3) float RGB in [0, 255] for values in [0, 1]."""
    flat = np.clip(values, 0.0, 1.0).ravel()
    rgb = np.stack([np.interp(flat, _STOPS, _COLOURS[:, c]) for c in range(3)], axis=-1)
    return rgb.reshape(*values.shape, 3)


def heat_overlay(image: Image.Image, values: np.ndarray, seen: np.ndarray | None = None) -> Image.Image:
    """The photo with the heat map blended over it; `values` must have the photo's (H, W)."""
    photo = np.asarray(image.convert("RGB"), dtype=np.float64)
    if values.shape != photo.shape[:2]:
        raise ValueError(f"saliency of shape {values.shape} does not match the photo's {photo.shape[:2]}")
    alpha = (MIN_ALPHA + (MAX_ALPHA - MIN_ALPHA) * np.clip(values, 0.0, 1.0))[..., None]
    blended = photo * (1 - alpha) + heat_colours(values) * alpha
    if seen is not None:
        blended = np.where(seen[..., None], blended, photo * UNSEEN_DIM)
    return Image.fromarray(np.clip(blended, 0, 255).round().astype(np.uint8))


def overlay_jpeg(image: Image.Image, values: np.ndarray, seen: np.ndarray | None = None,
                 quality: int = 85) -> bytes:
    """heat_overlay encoded as a JPEG (no metadata)."""
    out = io.BytesIO()
    heat_overlay(image, values, seen).save(out, "JPEG", quality=quality)
    return out.getvalue()
