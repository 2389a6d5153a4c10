"""Saliency maps: photo-shaped, finite, normalised, and following what the model responds to."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from geoai.explain import ExplanationCache, InputGeometry, grad_cam, heat_overlay
from geoai.explain.saliency import attention_rollout, explanation_copy, to_photo
from tiny_models import make_tiny_beit, tiny_model_env  # noqa: F401 - fixture


class BrightSpotCNN(torch.nn.Module):
    """A 'CNN' whose 8x8 feature map is the image's brightness: its Grad-CAM is known."""

    def forward(self, pixel_values):
        features = torch.nn.functional.avg_pool2d(pixel_values.mean(dim=1, keepdim=True), 4)
        return type("Out", (), {"last_hidden_state": features, "pooler_output": features.mean(dim=(2, 3))})()


def test_grad_cam_focuses_on_the_bright_object():
    pixels = torch.zeros(1, 3, 32, 32)
    pixels[..., 20:28, 4:12] = 1.0  # one bright object, bottom left
    grid, _ = grad_cam(BrightSpotCNN(), pixels, lambda emb: (emb[0].sum(), "brightness"))
    assert grid.shape == (8, 8) and np.isfinite(grid).all()
    assert grid.max() == 1.0 and grid.min() == 0.0
    assert grid[5:7, 1:3].mean() > 0.9 and grid[:4, 4:].max() < 0.1
    values, seen = to_photo(grid, (32, 32), InputGeometry.squash(32, 32), (64, 48))
    assert values.shape == (48, 64) and seen.all()
    assert values[35:40, 10:20].mean() > 5 * values[:20, 40:].mean()


def test_attention_rollout_on_a_tiny_beit(tmp_path, tiny_model_env):
    from transformers import AutoModel

    model = explanation_copy(AutoModel.from_pretrained(make_tiny_beit(tmp_path)), eager=True)
    grid = attention_rollout(model, torch.randn(1, 3, 32, 32), mean_pooled=True)
    assert grid.shape == (4, 4) and np.isfinite(grid).all() and grid.max() == 1.0


def test_overlay_and_cache():
    image = Image.new("RGB", (20, 10), (100, 100, 100))
    values = np.zeros((10, 20), dtype=np.float32)
    values[:, 10:] = 1.0
    drawn = np.asarray(heat_overlay(image, values))
    assert drawn[5, 15, 0] > drawn[5, 5, 0]  # red where it looked most
    cache = ExplanationCache(max_entries=1)
    cache.put(("a", "m"), b"1")
    cache.put(("b", "m"), b"2")
    assert cache.get(("a", "m")) is None and cache.get(("b", "m")) == b"2"
