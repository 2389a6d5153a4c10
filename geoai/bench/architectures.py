"""The benchmarked architectures, built from configs with random weights.

Timing does not depend on the weights, and no pretrained BEiT/ResNet-50 weights can be
downloaded here, so the exact architectures are built from their configs:
`microsoft/beit-base-patch16-224` and `microsoft/resnet-50`. `tiny=True` gives
miniature versions for tests.
"""
from __future__ import annotations

from pathlib import Path

import torch
from transformers import (AutoModel, BeitConfig, BeitImageProcessor, ConvNextImageProcessor,
                          PreTrainedModel, ResNetConfig)

# microsoft/beit-base-patch16-224's config, where it differs from BeitConfig()'s defaults:
# relative position bias per layer, mean pooling of the patch tokens (+ LayerNorm).
BEIT_BASE_224 = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                     intermediate_size=3072, patch_size=16, image_size=224,
                     use_relative_position_bias=True, use_shared_relative_position_bias=False,
                     use_absolute_position_embeddings=False, use_mean_pooling=True,
                     layer_scale_init_value=0.1, use_mask_token=False)
BEIT_TINY = dict(BEIT_BASE_224, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                 intermediate_size=64, image_size=64)
RESNET_TINY = dict(embedding_size=8, hidden_sizes=[16, 32, 32, 64], depths=[1, 1, 1, 1])


def build_model(name: str, *, tiny: bool = False, seed: int = 0) -> PreTrainedModel:
    """A random-weight "beit" (BEiT-base/16 at 224) or "resnet50" (ResNet-50 v1.5), eval mode.

    BEiT uses eager attention: the baseline is plain eager fp32.
    """
    torch.manual_seed(seed)
    if name == "beit":
        config = BeitConfig(**(BEIT_TINY if tiny else BEIT_BASE_224))
        return AutoModel.from_config(config, attn_implementation="eager").eval()
    if name == "resnet50":
        config = ResNetConfig(**(RESNET_TINY if tiny else {}))
        return AutoModel.from_config(config).eval()
    raise ValueError(f"unknown benchmark architecture {name!r}; use 'beit' or 'resnet50'")


def build_processor(name: str, *, tiny: bool = False):
    """The image processor of the real checkpoint (BEiT: plain resize to 224, mean/std 0.5;
    ResNet-50: resize the short side to 224/0.875 and centre-crop 224, ImageNet mean/std)."""
    if name == "beit":
        side = BEIT_TINY["image_size"] if tiny else 224
        return BeitImageProcessor(size={"height": side, "width": side}, do_center_crop=False)
    if name == "resnet50":
        return ConvNextImageProcessor(size={"shortest_edge": 64 if tiny else 224}, crop_pct=0.875)
    raise ValueError(f"unknown benchmark architecture {name!r}")


def image_size(name: str, tiny: bool = False) -> int:
    return 64 if tiny else 224


def save_checkpoint(model: PreTrainedModel, name: str, folder: Path, *, tiny: bool = False) -> Path:
    """Write model + processor as a local checkpoint folder that `load_backbone` can read."""
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    build_processor(name, tiny=tiny).save_pretrained(folder)
    return folder
