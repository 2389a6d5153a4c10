"""Checks that make a hostile or damaged bundle a one-line `BundleError` before any big
allocation: config fields of the wrong type or null, impossible sizes, pickled weights,
weights that disagree with the config, and NaN or infinite values.

Order matters: the config is checked as plain JSON (geoai.bundle_config, then the head's
fields here), then the head is built on PyTorch's meta device (shapes without memory) and
compared with the safetensors header (read without loading), and only then are real
tensors allocated and loaded.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from geoai.bundle_config import MAX_EMBED_DIM, BundleConfig, ConfigProblem, int_in

MAX_HEAD_PARAMETERS = 200_000_000  # 800 MB in fp32; real heads are a few million at most
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
SAFE_BACKBONE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
FLOAT_DTYPES = {"F16", "BF16", "F32", "F64"}


def check_head_fields(config: BundleConfig, head_types: tuple[str, ...]) -> None:
    """Types and ranges of the head config's fields that building it relies on (ConfigProblem
    naming the field); the rest of the config is checked by BundleConfig."""
    head, backbone_dim = config.head, config.backbone.embed_dim
    if head.get("type") not in head_types:
        raise ConfigProblem(f"unknown head type {head.get('type')!r:.60}; head.type must be one of "
                            f"{', '.join(head_types)}")
    embed_dim = int_in(head.get("embed_dim"), "head.embed_dim", 1, MAX_EMBED_DIM)
    if backbone_dim is not None and backbone_dim != embed_dim:
        raise ConfigProblem(f"head.embed_dim {embed_dim} differs from backbone.embed_dim {backbone_dim}")
    hidden = head.get("hidden")
    for i, size in enumerate(hidden if isinstance(hidden, list) else [] if hidden is None else [hidden]):
        int_in(size, f"head.hidden[{i}]" if isinstance(hidden, list) else "head.hidden", 1, MAX_EMBED_DIM)
    if head.get("top_k") is not None:
        int_in(head["top_k"], "head.top_k", 1, 1_000_000)
    for key in ("dropout", "tau_km", "distance_scale_km"):
        value = head.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value)):
            raise ConfigProblem(f"head.{key} must be a finite number, got {value!r:.60}")


def _refuse_too_many(parameters: int) -> None:
    if parameters > MAX_HEAD_PARAMETERS:
        raise ConfigProblem(f"the head would need {parameters:,} parameters ({parameters * 4 / 2**30:,.1f} GiB), "
                            f"over the {MAX_HEAD_PARAMETERS:,} a head may have")


def build_on_meta(build, head_config: dict) -> dict[str, tuple[int, ...]]:
    """Shapes of the head's weights, from a head built on the meta device (no memory)."""
    with torch.device("meta"):
        skeleton: nn.Module = build(head_config)
    shapes = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    _refuse_too_many(sum(math.prod(s) for s in shapes.values()))
    return shapes


def read_weights_header(path: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """name -> (shape, dtype) from a safetensors header, without loading any tensor."""
    with safe_open(str(path), framework="pt", device="cpu") as handle:
        header = {}
        for key in handle.keys():
            tensor_slice = handle.get_slice(key)
            header[key] = (tuple(tensor_slice.get_shape()), str(tensor_slice.get_dtype()))
    return header


def weights_problems(header: dict[str, tuple[tuple[int, ...], str]],
                     expected: dict[str, tuple[int, ...]]) -> list[str]:
    """What keeps the weights file from fitting the head the config describes."""
    problems = [f"missing {k}" for k in expected if k not in header]
    problems += [f"unexpected {k}" for k in header if k not in expected]
    problems += [f"{k} has shape {header[k][0]}, config needs {shape}"
                 for k, shape in expected.items() if k in header and header[k][0] != shape]
    problems += [f"{k} is {dtype}, not floating point" for k, (_, dtype) in header.items()
                 if k in expected and dtype not in FLOAT_DTYPES]
    return problems


def non_finite(tensors: dict[str, torch.Tensor]) -> list[str]:
    """Names of floating tensors holding NaN or infinity."""
    return [k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]


def pickled_files(folder: Path) -> list[str]:
    """Weight files in a folder that only a pickle loader could read."""
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() in PICKLE_SUFFIXES)


__all__ = ["ConfigProblem", "MAX_HEAD_PARAMETERS", "SafetensorError",
           "SAFE_BACKBONE_WEIGHTS", "build_on_meta", "check_head_fields", "non_finite", "pickled_files",
           "read_weights_header", "weights_problems"]
