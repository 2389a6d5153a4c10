"""How models are named to people: "<display name> · <family>", the same on every screen.

Kept free of torch so the game can name its opponents without loading any model.
"""
from __future__ import annotations

# Short backbone name (as in a bundle's config) -> the name people know it by.
DISPLAY_NAMES = {
    "beit": "BEiT-base",
    "beit-384": "BEiT-base 384",
    "resnet50": "ResNet-50",
    "dinov2-small-imgfocus": "DINOv2-small",
    "mobilenetv2-1.0-deepsort": "MobileNetV2",
}
FAMILY_WORDS = {"transformer": "transformer", "cnn": "CNN"}


def model_label(backbone_name: str, family: str) -> str:
    """E.g. model_label("beit", "transformer") == "BEiT-base · transformer"."""
    display = DISPLAY_NAMES.get(backbone_name, backbone_name)
    return f"{display} · {FAMILY_WORDS.get(family, family)}"
