"""fp32 inference through a graph runtime (geoai.models.runtime): same answers as eager
PyTorch, an exported graph cached beside the checkpoint and never trusted when stale,
foreign or damaged, and PyTorch whenever the runtime is missing, refused or wrong."""
from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from geoai.bench.architectures import build_model, build_processor
from geoai.data import open_image
from geoai.models import load_backbone, runtime
from geoai.models.embeddings import EmbeddingError, _ImageFiles, image_loader
from geoai.models.runtime import GraphEmbedder, resolve_runtime, worker_context
from geoai.models.speed import FastEmbedder, choose_settings, embedding_cosine, optimize_for_inference
from tiny_models import make_tiny_beit, make_tiny_resnet, tiny_model_env  # noqa: F401 (a fixture, used by pytestmark)

pytestmark = pytest.mark.usefixtures("tiny_model_env")
RUNTIMES = [pytest.param(r, marks=pytest.mark.skipif(not runtime.installed(r), reason=f"{r} not installed"))
            for r in runtime.GRAPH_RUNTIMES]


@pytest.fixture(autouse=True)
def _auto_runtime(monkeypatch):
    monkeypatch.delenv("GEOAI_RUNTIME", raising=False)
    monkeypatch.delenv("GEOAI_PRECISION", raising=False)


@pytest.fixture(scope="module")
def photos(shared_data) -> list:
    folder = shared_data / "croatia-streetview" / "images"
    return [open_image(p) for p in sorted(folder.glob("*.jpg"))[:5]]


def _eager(model: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(pixel_values=pixels).pooler_output.flatten(1)


@pytest.mark.parametrize("kind", RUNTIMES)
@pytest.mark.parametrize("name", ["beit", "resnet50"])
def test_graph_gives_the_eager_embeddings_of_real_photos_at_any_batch_size(name, kind, photos):
    pixels = build_processor(name, tiny=True)(images=photos, return_tensors="pt")["pixel_values"]
    model = build_model(name, tiny=True)
    reference = _eager(model, pixels)
    settings = choose_settings("cnn" if name == "resnet50" else "transformer", "cpu", workload="throughput")
    graph = optimize_for_inference(model, settings.__class__(**{**settings.to_dict(), "runtime": kind}),
                                   example=pixels[:1])
    assert isinstance(graph, GraphEmbedder) and graph.runtime == kind
    for batch in (pixels[:1], pixels):  # the batch dimension is dynamic
        assert embedding_cosine(reference[:len(batch)], graph(batch)) >= 0.9999
    torch.testing.assert_close(graph(pixels), reference, rtol=1e-3, atol=1e-4)


@pytest.mark.skipif(not runtime.installed("openvino"), reason="openvino not installed")
def test_openvino_is_made_to_compute_in_fp32(photos):
    model = build_model("resnet50", tiny=True)
    settings = choose_settings("cnn", "cpu")
    graph = optimize_for_inference(model, settings.__class__(**{**settings.to_dict(), "runtime": "openvino"}),
                                   example=torch.zeros(1, 3, 64, 64))
    # On CPUs with AVX512-BF16/AMX OpenVINO would otherwise compute in bf16.
    assert str(graph.runner.compiled.get_property("INFERENCE_PRECISION_HINT")) in ("f32", "<Type: 'float32'>")


def test_backbone_uses_the_graph_and_reads_it_back_from_beside_the_checkpoint(tmp_path, photos):
    if resolve_runtime("cpu") == "torch":
        pytest.skip("no graph runtime installed")
    folder = make_tiny_resnet(tmp_path / "resnet")
    first = load_backbone(str(folder), device="cpu")
    eager = first.embed(photos)
    first.speed_up("latency")
    assert isinstance(first._fast, GraphEmbedder) and not first._fast.cached
    graphs = sorted(p.name for p in (folder / ".graphs").iterdir() if p.is_file())
    assert graphs == [f"graph-{first._fast.runtime}.json", f"graph-{first._fast.runtime}.onnx"]
    np.testing.assert_allclose(first.embed(photos), eager, rtol=1e-4, atol=1e-5)

    again = load_backbone(str(folder), device="cpu")
    again.speed_up("throughput")
    assert again._fast.cached  # a cache hit: nothing exported
    np.testing.assert_allclose(again.embed(photos), eager, rtol=1e-4, atol=1e-5)


def test_changed_weights_rebuild_the_graph(tmp_path, photos):
    if resolve_runtime("cpu") == "torch":
        pytest.skip("no graph runtime installed")
    folder = make_tiny_beit(tmp_path / "beit", seed=0)
    old = load_backbone(str(folder), device="cpu")
    old.speed_up()
    make_tiny_beit(folder, seed=7)  # the checkpoint is overwritten with other weights
    new = load_backbone(str(folder), device="cpu")
    expected = new.embed(photos)
    assert embedding_cosine(torch.from_numpy(old.embed(photos)), torch.from_numpy(expected)) < 0.99
    new.speed_up()
    assert not new._fast.cached
    np.testing.assert_allclose(new.embed(photos), expected, rtol=1e-4, atol=1e-5)


def test_weights_changed_in_place_drop_the_stale_graph(tmp_path, photos):
    if resolve_runtime("cpu") == "torch":
        pytest.skip("no graph runtime installed")
    backbone = load_backbone(str(make_tiny_resnet(tmp_path / "resnet")), device="cpu")
    backbone.speed_up()
    with torch.no_grad():  # as fine-tuning would
        for p in backbone.model.parameters():
            p.mul_(1.5).add_(0.01)
    pixels = backbone.preprocess(photos)
    with torch.no_grad():
        expected = backbone(pixels)
    torch.testing.assert_close(backbone.infer(pixels), expected)
    assert backbone._fast is None
    # Through the runtime again, but the checkpoint's cached graph stays the checkpoint's.
    key_file = next((tmp_path / "resnet" / ".graphs").glob("graph-*.json"))
    before = key_file.read_text()
    assert backbone.use_runtime() and isinstance(backbone._fast, GraphEmbedder)
    torch.testing.assert_close(backbone.infer(pixels), expected, rtol=1e-4, atol=1e-5)
    assert key_file.read_text() == before


@pytest.mark.parametrize("damage", ["garbage graph", "truncated graph", "garbage key", "foreign cache",
                                    "foreign graph", "key without graph"])
def test_damaged_or_foreign_cache_is_rebuilt_without_a_traceback(damage, tmp_path, photos, caplog):
    kind = resolve_runtime("cpu")
    if kind == "torch":
        pytest.skip("no graph runtime installed")
    folder = make_tiny_resnet(tmp_path / "resnet", seed=0)
    other = make_tiny_resnet(tmp_path / "other", seed=3)
    for f in (folder, other):
        load_backbone(str(f), device="cpu").speed_up()
    graph, key = folder / ".graphs" / f"graph-{kind}.onnx", folder / ".graphs" / f"graph-{kind}.json"
    if damage == "garbage graph":
        graph.write_bytes(b"not a graph at all" * 100)
    elif damage == "truncated graph":
        graph.write_bytes(graph.read_bytes()[:500])
    elif damage == "garbage key":
        key.write_text("{ this is not json")
    elif damage == "foreign cache":  # another model's graph and key, consistent with each other
        shutil.copy(other / ".graphs" / graph.name, graph)
        shutil.copy(other / ".graphs" / key.name, key)
    elif damage == "foreign graph":  # another model's graph (same architecture) under this key file
        shutil.copy(other / ".graphs" / graph.name, graph)
    elif damage == "key without graph":
        graph.unlink()
    backbone = load_backbone(str(folder), device="cpu")
    expected = backbone.embed(photos)
    with caplog.at_level(logging.INFO, logger="geoai.models.runtime"):
        backbone.speed_up()
    assert isinstance(backbone._fast, GraphEmbedder) and not backbone._fast.cached
    np.testing.assert_allclose(backbone.embed(photos), expected, rtol=1e-4, atol=1e-5)
    assert not any(r.exc_info for r in caplog.records)
    assert json.loads(key.read_text())["key"]["weights"] == backbone.weights_digest
    again = load_backbone(str(folder), device="cpu")
    again.speed_up()
    assert again._fast.cached  # the rebuilt cache is used next time


def test_runtime_setting_torch_keeps_pytorch(monkeypatch, tmp_path, photos):
    monkeypatch.setenv("GEOAI_RUNTIME", "torch")
    assert choose_settings("cnn", "cpu").runtime == "torch"
    backbone = load_backbone(str(make_tiny_resnet(tmp_path / "resnet")), device="cpu")
    assert backbone.use_runtime("throughput") is False and backbone._fast is None
    backbone.speed_up("latency")
    assert isinstance(backbone._fast, FastEmbedder)
    assert not (tmp_path / "resnet" / ".graphs").exists()


def test_missing_runtimes_fall_back_in_order(monkeypatch, caplog):
    monkeypatch.setattr(runtime, "_warned", set())
    monkeypatch.setattr(runtime, "installed", lambda name: False)
    assert resolve_runtime("cpu") == "torch"
    assert choose_settings("transformer", "cpu").runtime == "torch"
    monkeypatch.setattr(runtime, "installed", lambda name: name == "onnxruntime")
    monkeypatch.setenv("GEOAI_RUNTIME", "openvino")
    with caplog.at_level(logging.WARNING, logger="geoai.models.runtime"):
        assert resolve_runtime("cpu") == "onnxruntime"
    assert "openvino is not installed" in caplog.text
    # CUDA and reduced precision always stay in PyTorch.
    assert resolve_runtime("cuda") == "torch"
    monkeypatch.setenv("GEOAI_PRECISION", "reduced")
    monkeypatch.delenv("GEOAI_FORCE_FP32", raising=False)
    if choose_settings("cnn", "cpu").dtype != "float32":
        assert choose_settings("cnn", "cpu").runtime == "torch"


def test_a_graph_that_changes_the_answers_falls_back_to_pytorch(monkeypatch, photos, caplog):
    kind = resolve_runtime("cpu")
    if kind == "torch":
        pytest.skip("no graph runtime installed")
    real = runtime._RUNNERS[kind]

    class Bf16Like(real):  # a runtime that quietly computes something else
        def __call__(self, pixels):
            out = super().__call__(pixels)
            return out + np.random.default_rng(0).normal(scale=out.std(), size=out.shape).astype(np.float32)

    monkeypatch.setitem(runtime._RUNNERS, kind, Bf16Like)
    pixels = build_processor("resnet50", tiny=True)(images=photos, return_tensors="pt")["pixel_values"]
    model = build_model("resnet50", tiny=True)
    reference = _eager(model, pixels)
    with caplog.at_level(logging.WARNING, logger="geoai.models.speed"):
        fast = optimize_for_inference(model, choose_settings("cnn", "cpu"), example=pixels[:1])
    assert isinstance(fast, FastEmbedder) and "differ from eager" in caplog.text
    torch.testing.assert_close(fast(pixels), reference, rtol=1e-4, atol=1e-5)


def test_no_worker_is_forked_from_a_process_holding_a_graph(tmp_path, shared_data):
    if resolve_runtime("cpu") == "torch":
        pytest.skip("no graph runtime installed")
    backbone = load_backbone(str(make_tiny_resnet(tmp_path / "resnet")), device="cpu")
    backbone.speed_up()
    assert runtime.graphs_loaded()
    assert worker_context().get_start_method() == "forkserver"  # training's DataLoaders
    # The inference loader decodes in threads: same batches, in order, and no process.
    paths = [str(p) for p in sorted((shared_data / "croatia-streetview" / "images").glob("*.jpg"))[:7]]
    threaded = image_loader(paths, backbone.processor, 3, 2, torch.device("cpu"))
    assert not isinstance(threaded, DataLoader)
    in_process = list(DataLoader(_ImageFiles(paths, backbone.processor), batch_size=3))
    got = list(threaded)
    assert [len(b) for b in got] == [3, 3, 1]
    for a, b in zip(got, in_process):
        torch.testing.assert_close(a, b)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(open(paths[0], "rb").read()[:300])
    with pytest.raises(EmbeddingError, match="broken.jpg"):
        list(image_loader(paths[:4] + [str(bad)] + paths[4:], backbone.processor, 2, 2, torch.device("cpu")))


@pytest.mark.skipif(not runtime.installed("openvino"), reason="openvino not installed")
def test_openvino_compiled_cache_is_per_graph_and_survives_damage(monkeypatch, tmp_path, photos):
    monkeypatch.setenv("GEOAI_RUNTIME", "openvino")
    folder = make_tiny_beit(tmp_path / "beit", seed=0)
    load_backbone(str(folder), device="cpu").speed_up()
    compiled = sorted((folder / ".graphs").glob("openvino-compiled-*"))
    assert len(compiled) == 1 and any(compiled[0].iterdir())
    for blob in compiled[0].iterdir():  # damaged compiled blobs: compiled afresh, answers unchanged
        if blob.is_file():
            blob.write_bytes(b"\0garbage" * 64)
    backbone = load_backbone(str(folder), device="cpu")
    expected = backbone.embed(photos)
    backbone.speed_up()
    assert backbone._fast.cached
    np.testing.assert_allclose(backbone.embed(photos), expected, rtol=1e-4, atol=1e-5)
    make_tiny_beit(folder, seed=5)  # new weights: a new graph, and the old compiled model goes
    load_backbone(str(folder), device="cpu").speed_up()
    now = sorted((folder / ".graphs").glob("openvino-compiled-*"))
    assert len(now) == 1 and now != compiled


def test_a_graph_without_a_weights_digest_is_never_cached(tmp_path):
    """The digest is what ties a cached graph to its weights: without one, nothing is kept."""
    if resolve_runtime("cpu") == "torch":
        pytest.skip("no graph runtime installed")
    model = build_model("resnet50", tiny=True)
    cache = tmp_path / "graphs"
    graph = optimize_for_inference(model, choose_settings("cnn", "cpu"), example=torch.zeros(1, 3, 64, 64),
                                   graph_cache=cache)
    assert isinstance(graph, GraphEmbedder) and graph.path is None
    assert not cache.exists() or not any(cache.iterdir())
