"""Real pretrained image backbones that work without the model hub.

Machines without Hugging Face hub access cannot download ImageNet weights, but a few
packages on the package index ship real pretrained weights inside them. The converters
here turn those files into ordinary local `transformers` checkpoints, loadable with
`AutoModel.from_pretrained(folder)` and `AutoImageProcessor.from_pretrained(folder)`.
"""
from .dinov2_onnx import convert_dinov2_small
from .mobilenetv2_pt import convert_mobilenetv2

__all__ = ["convert_dinov2_small", "convert_mobilenetv2"]
