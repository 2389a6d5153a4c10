"""Which part of a photo a backbone's input shows, whatever its image processor does.

Processors resize, centre-crop, pad or squash in ways that differ per model (DINOv2's
fits the photo inside 224x224 and pads, MobileNetV2's squashes it, ConvNeXt's crops).
Rather than re-deriving each one, a probe image of the photo's size is run through the
processor itself: its red channel ramps with x, its green channel with y and its blue
channel marks photo pixels (padding stays dark). A straight-line fit of the ramps over
the marked input pixels gives the input->photo mapping per axis.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from PIL import Image

PROBE_MAX_SIDE = 512  # the mapping is in fractions of the photo: a small probe gives the same fit


@dataclass(frozen=True)
class InputGeometry:
    """Photo position (fraction of width/height, pixel centres) of the model's input pixel (u, v):
    x = x_scale * u + x_offset, y = y_scale * v + y_offset."""
    x_scale: float
    x_offset: float
    y_scale: float
    y_offset: float

    @classmethod
    def squash(cls, input_width: int, input_height: int) -> "InputGeometry":
        """The whole photo resized to the input (the fallback when a probe cannot be read)."""
        return cls(1.0 / input_width, 0.5 / input_width, 1.0 / input_height, 0.5 / input_height)

    def to_input(self, fx: np.ndarray, fy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Input pixel coordinates (u, v) of photo fractions (fx, fy)."""
        return (fx - self.x_offset) / self.x_scale, (fy - self.y_offset) / self.y_scale


def _unnormalise(pixels: torch.Tensor, processor) -> np.ndarray | None:
    """(H, W, 3) values in [0, 1] from a processor's normalised pixel_values, None if unknown."""
    mean = getattr(processor, "image_mean", None)
    std = getattr(processor, "image_std", None)
    values = pixels[0].detach().float().cpu().numpy().transpose(1, 2, 0)
    if getattr(processor, "do_normalize", True) and mean is not None and std is not None:
        values = values * np.asarray(std, dtype=np.float32) + np.asarray(mean, dtype=np.float32)
    elif getattr(processor, "do_normalize", True):
        return None
    return values


def input_geometry(preprocess: Callable[[list[Image.Image]], torch.Tensor], processor,
                   width: int, height: int) -> InputGeometry:
    """The input->photo mapping of `preprocess` (PIL images -> pixel_values) for a width x height photo."""
    scale = min(1.0, PROBE_MAX_SIDE / max(width, height))
    pw, ph = max(2, round(width * scale)), max(2, round(height * scale))
    fx = (np.arange(pw) + 0.5) / pw
    fy = (np.arange(ph) + 0.5) / ph
    probe = np.empty((ph, pw, 3), dtype=np.float64)
    probe[..., 0] = fx[None, :]
    probe[..., 1] = fy[:, None]
    probe[..., 2] = 1.0
    pixels = preprocess([Image.fromarray((probe * 255).round().astype(np.uint8))])
    _, _, in_h, in_w = pixels.shape
    values = _unnormalise(pixels, processor)
    if values is None:
        return InputGeometry.squash(in_w, in_h)
    inside = values[..., 2] > 0.75  # photo pixels; padding and blurred edges are left out
    if inside.sum() < 4:
        return InputGeometry.squash(in_w, in_h)
    v, u = np.nonzero(inside)
    x_scale, x_offset = _line(u, values[..., 0][inside])
    y_scale, y_offset = _line(v, values[..., 1][inside])
    if not (x_scale > 0 and y_scale > 0):
        return InputGeometry.squash(in_w, in_h)
    return InputGeometry(x_scale, x_offset, y_scale, y_offset)


def _line(t: np.ndarray, value: np.ndarray) -> tuple[float, float]:
    """Least-squares slope and intercept of value = slope * t + intercept."""
    if np.ptp(t) == 0:
        return 0.0, float(value.mean())
    slope, intercept = np.polyfit(t.astype(np.float64), value.astype(np.float64), 1)
    return float(slope), float(intercept)
