"""One vector per image from a transformers vision model's outputs.

Its own module so that backbones.py and speed.py both use it without importing each other.
"""
from __future__ import annotations

from typing import Any

import torch


def pool_outputs(outputs: Any) -> torch.Tensor:
    """pooler_output where the model has one (BEiT with use_mean_pooling: mean of patch tokens
    + LayerNorm; ResNet/MobileNetV2: global average pool, (B, C, 1, 1) flattened; DINOv2:
    LayerNormed CLS token), otherwise the mean of the last hidden state over tokens or pixels.
    """
    pooled = getattr(outputs, "pooler_output", None)
    if pooled is not None:
        return pooled.flatten(1)
    hidden = outputs.last_hidden_state
    if hidden.ndim == 3:  # (B, tokens, D)
        return hidden.mean(dim=1)
    if hidden.ndim == 4:  # (B, C, H, W)
        return hidden.mean(dim=(2, 3))
    raise RuntimeError(f"cannot pool a last_hidden_state of shape {tuple(hidden.shape)}")
