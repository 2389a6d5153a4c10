"""Checks that make a hostile or damaged bundle a one-line `BundleError` before any big
allocation: config fields of the wrong type or null, impossible sizes, pickled weights,
weights that disagree with the config, and NaN or infinite values.

Order matters: the config is checked as plain JSON, then the head is built on PyTorch's
meta device (shapes without memory) and compared with the safetensors header (read
without loading), and only then are real tensors allocated and loaded.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

MAX_CONFIG_BYTES = 64 * 2**20  # geocell centroids of 100,000 cells are a few MiB
MAX_EMBED_DIM = 65_536  # the largest vision backbones embed into a few thousand dimensions
MAX_HEAD_PARAMETERS = 200_000_000  # 800 MB in fp32; real heads are a few million at most
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
SAFE_BACKBONE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
FLOAT_DTYPES = {"F16", "BF16", "F32", "F64"}


class ConfigProblem(ValueError):
    """One thing wrong with a bundle's config; the caller adds where it is."""


def _int_in(value: Any, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigProblem(f"{what} must be a whole number, got {value!r:.60}")
    if not low <= value <= high:
        raise ConfigProblem(f"{what} must be between {low:,} and {high:,}, got {value:,}")
    return value


def _optional(config: dict, key: str, kind: type | tuple[type, ...], what: str) -> None:
    value = config.get(key)
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool) and kind is not bool):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise ConfigProblem(f"{what} must be {names} or absent, got {value!r:.60}")


def check_config_fields(config: dict, head_types: tuple[str, ...], fusions: tuple[str, ...]) -> None:
    """Types and ranges of every field loading relies on (ConfigProblem naming the field)."""
    _optional(config, "name", str, "name")
    for key in ("metrics", "dataset"):
        _optional(config, key, dict, key)
    if config.get("fusion") not in fusions:
        raise ConfigProblem(f"fusion must be one of {', '.join(fusions)}, got {config.get('fusion')!r:.60}")
    backbone = config.get("backbone")
    if not isinstance(backbone, dict):
        raise ConfigProblem(f"backbone must be an object with name, source and embed_dim, got {backbone!r:.60}")
    if not isinstance(backbone.get("name"), str) or not backbone["name"].strip():
        raise ConfigProblem(f"backbone.name must be a non-empty string, got {backbone.get('name')!r:.60}")
    for key in ("source", "cache_key", "family"):
        _optional(backbone, key, str, f"backbone.{key}")
    _optional(backbone, "bundled", bool, "backbone.bundled")
    if backbone.get("embed_dim") is not None:
        _int_in(backbone["embed_dim"], "backbone.embed_dim", 1, MAX_EMBED_DIM)
    if backbone.get("image_size") is not None:
        _int_in(backbone["image_size"], "backbone.image_size", 1, 16_384)
    head = config.get("head")
    if not isinstance(head, dict):
        raise ConfigProblem(f"head must be an object with type and embed_dim, got {head!r:.60}")
    if head.get("type") not in head_types:
        raise ConfigProblem(f"unknown head type {head.get('type')!r:.60}; head.type must be one of "
                            f"{', '.join(head_types)}")
    embed_dim = _int_in(head.get("embed_dim"), "head.embed_dim", 1, MAX_EMBED_DIM)
    if backbone.get("embed_dim") is not None and backbone["embed_dim"] != embed_dim:
        raise ConfigProblem(f"head.embed_dim {embed_dim} differs from backbone.embed_dim {backbone['embed_dim']}")
    hidden = head.get("hidden")
    for i, size in enumerate(hidden if isinstance(hidden, list) else [] if hidden is None else [hidden]):
        _int_in(size, f"head.hidden[{i}]" if isinstance(hidden, list) else "head.hidden", 1, MAX_EMBED_DIM)
    if head.get("top_k") is not None:
        _int_in(head["top_k"], "head.top_k", 1, 1_000_000)
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


__all__ = ["ConfigProblem", "MAX_CONFIG_BYTES", "MAX_EMBED_DIM", "MAX_HEAD_PARAMETERS", "SafetensorError",
           "SAFE_BACKBONE_WEIGHTS", "build_on_meta", "check_config_fields", "non_finite", "pickled_files",
           "read_weights_header", "weights_problems"]
