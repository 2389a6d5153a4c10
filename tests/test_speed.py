"""The fast inference path (geoai.models.speed) and the benchmark command (geoai.bench).

Timing is never asserted here (the CI machine is shared and noisy); what is asserted is
that the fast path gives the same embeddings as fp32 and that the benchmark runs and
reports every number the speed targets need.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from geoai.bench.accuracy import compare_embeddings
from geoai.bench.architectures import build_model, build_processor
from geoai.data import open_image
from geoai.models import speed
from geoai.models.speed import (InferenceSettings, SpeedError, calibrate_settings, choose_settings,
                                embedding_cosine, optimize_for_inference)

REPO = Path(__file__).resolve().parents[1]
REQUIRED_KEYS = {"beit_baseline_ips", "beit_fast_ips", "resnet50_baseline_ips", "resnet50_fast_ips",
                 "min_cosine", "max_drift_km", "round_p95_ms", "peak_rss_mb"}
BF16_TRANSFORMER = InferenceSettings(dtype="bfloat16", attn_implementation="sdpa")
BF16_CNN = InferenceSettings(dtype="bfloat16", cast_weights=True, channels_last=True)


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """optimize_for_inference may set torch's (process-wide) thread count: undo it."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def photos(shared_data: Path) -> list:
    folder = shared_data / "croatia-streetview" / "images"
    return [open_image(p) for p in sorted(folder.glob("*.jpg"))[:6]]


def _pixels(name: str, photos: list) -> torch.Tensor:
    return build_processor(name, tiny=True)(images=photos, return_tensors="pt")["pixel_values"]


def _fp32_embeddings(name: str, pixels: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return build_model(name, tiny=True)(pixel_values=pixels).pooler_output.flatten(1)


# --- choosing settings -------------------------------------------------------------------

def test_default_keeps_fp32_numbers_with_layout_and_attention_levers(monkeypatch):
    for var in ("GEOAI_FORCE_FP32", "GEOAI_COMPILE", "GEOAI_PRECISION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(speed, "cpu_supports_bf16", lambda: True)
    vit = choose_settings("transformer", "cpu")
    cnn = choose_settings("cnn", "cpu")
    assert (vit.dtype, vit.attn_implementation, vit.channels_last) == ("float32", "sdpa", False)
    assert (cnn.dtype, cnn.attn_implementation, cnn.channels_last) == ("float32", None, True)
    assert not vit.compile and not cnn.compile, "the game's latency settings must never compile"


def test_reduced_precision_on_a_bf16_cpu(monkeypatch):
    for var in ("GEOAI_FORCE_FP32", "GEOAI_PRECISION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(speed, "cpu_supports_bf16", lambda: True)
    vit = choose_settings("transformer", "cpu", precision="reduced")
    cnn = choose_settings("cnn", "cpu", precision="reduced")
    assert (vit.dtype, vit.cast_weights) == ("bfloat16", False)
    assert (cnn.dtype, cnn.cast_weights) == ("bfloat16", True)
    monkeypatch.setenv("GEOAI_PRECISION", "reduced")
    assert choose_settings("cnn", "cpu").tag == "bfloat16-weights"


def test_cpu_without_bf16_stays_fp32_even_when_reduced_is_asked(monkeypatch):
    monkeypatch.delenv("GEOAI_FORCE_FP32", raising=False)
    monkeypatch.setattr(speed, "cpu_supports_bf16", lambda: False)
    assert choose_settings("transformer", "cpu", precision="reduced").dtype == "float32"
    assert choose_settings("cnn", "cpu", precision="reduced").dtype == "float32"


def test_force_fp32_switch_vetoes_reduced_precision(monkeypatch):
    monkeypatch.setattr(speed, "cpu_supports_bf16", lambda: True)
    assert choose_settings("cnn", "cpu", force_fp32=True, precision="reduced").tag == "fp32"
    monkeypatch.setenv("GEOAI_FORCE_FP32", "1")
    assert choose_settings("transformer", "cpu", precision="reduced").tag == "fp32"
    monkeypatch.setenv("GEOAI_PRECISION", "reduced")
    assert choose_settings("cnn", "cpu").tag == "fp32"
    monkeypatch.setenv("GEOAI_FORCE_FP32", "0")
    assert choose_settings("cnn", "cpu").tag == "bfloat16-weights"


def test_compile_only_for_throughput_and_overridable(monkeypatch):
    monkeypatch.delenv("GEOAI_COMPILE", raising=False)
    monkeypatch.setattr(speed, "_compiler_available", lambda: True)
    monkeypatch.setenv("GEOAI_RUNTIME", "onnxruntime")  # a graph runtime is the compiler: no torch.compile
    assert not choose_settings("cnn", "cpu", workload="throughput").compile
    monkeypatch.setenv("GEOAI_RUNTIME", "torch")
    assert choose_settings("cnn", "cpu", workload="throughput").compile
    assert not choose_settings("cnn", "cpu", workload="latency").compile
    monkeypatch.setenv("GEOAI_COMPILE", "0")
    assert not choose_settings("cnn", "cpu", workload="throughput").compile


def test_game_uses_half_the_cores_unless_told(monkeypatch):
    monkeypatch.delenv("GEOAI_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert choose_settings("cnn", "cpu").threads == 4
    assert choose_settings("cnn", "cpu", workload="throughput").threads is None
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert choose_settings("transformer", "cpu").threads == 1
    monkeypatch.setenv("GEOAI_THREADS", "3")
    assert choose_settings("transformer", "cpu").threads == 3
    monkeypatch.setenv("GEOAI_THREADS", "many")
    with pytest.raises(SpeedError, match="GEOAI_THREADS"):
        choose_settings("cnn", "cpu")


def test_bad_settings_are_refused_with_a_clear_message():
    with pytest.raises(SpeedError, match="dtype must be one of"):
        InferenceSettings(dtype="int8")
    with pytest.raises(SpeedError, match="family must be"):
        choose_settings("rnn", "cpu")
    with pytest.raises(SpeedError, match="precision must be"):
        choose_settings("cnn", "cpu", precision="int4")
    with pytest.raises(SpeedError, match="workload must be"):
        choose_settings("cnn", "cpu", workload="fast")
    with pytest.raises(SpeedError, match="differ in shape"):
        embedding_cosine(torch.zeros(2, 3), torch.zeros(2, 4))


# --- the fast path keeps the answers ------------------------------------------------------

@pytest.mark.parametrize("name, settings", [("beit", BF16_TRANSFORMER), ("resnet50", BF16_CNN)])
def test_bf16_fast_path_matches_fp32_on_real_photos(name, settings, photos):
    pixels = _pixels(name, photos)
    reference = _fp32_embeddings(name, pixels)
    fast = optimize_for_inference(build_model(name, tiny=True), settings)
    out = fast(pixels)
    assert out.dtype == torch.float32 and out.shape == reference.shape
    assert embedding_cosine(reference, out) >= 0.999
    assert not torch.equal(out, reference), "bf16 should not be bit-identical: was it applied?"


@pytest.mark.parametrize("name", ["beit", "resnet50"])
def test_automatic_settings_match_fp32_on_real_photos(name, photos):
    pixels = _pixels(name, photos)
    reference = _fp32_embeddings(name, pixels)
    family = "transformer" if name == "beit" else "cnn"
    fast = optimize_for_inference(build_model(name, tiny=True), choose_settings(family, "cpu"))
    assert embedding_cosine(reference, fast(pixels)) >= 0.99999  # fp32 numbers: no real change


def test_calibration_keeps_bf16_only_when_it_keeps_the_answers(monkeypatch, photos):
    monkeypatch.delenv("GEOAI_FORCE_FP32", raising=False)
    monkeypatch.setattr(speed, "cpu_supports_bf16", lambda: True)
    pixels = _pixels("resnet50", photos)
    model = build_model("resnet50", tiny=True)
    chosen, cosine = calibrate_settings(model, "cnn", pixels)
    assert chosen.dtype == "bfloat16" and 0.999 <= cosine < 1.0
    assert all(p.dtype == torch.float32 for p in model.parameters()), "calibration must not touch the model"
    # Nothing reduced reaches a perfect cosine: calibration must fall back to fp32.
    strict, cosine = calibrate_settings(model, "cnn", pixels, min_cosine=1.0 + 1e-9)
    assert strict.dtype == "float32" and cosine == 1.0


def test_forced_fp32_gives_the_plain_forward_and_keeps_fp32_weights(photos):
    pixels = _pixels("resnet50", photos)
    reference = _fp32_embeddings("resnet50", pixels)
    model = build_model("resnet50", tiny=True)
    fast = optimize_for_inference(model, choose_settings("cnn", "cpu", force_fp32=True))
    assert all(p.dtype == torch.float32 for p in model.parameters())
    torch.testing.assert_close(fast(pixels), reference, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_compiled_fast_path_matches_fp32(photos):
    pixels = _pixels("resnet50", photos)
    reference = _fp32_embeddings("resnet50", pixels)
    settings = InferenceSettings(dtype="bfloat16", cast_weights=True, channels_last=True, compile=True)
    fast = optimize_for_inference(build_model("resnet50", tiny=True), settings)
    assert embedding_cosine(reference, fast(pixels)) >= 0.999


def test_drift_measure_sees_a_changed_embedding():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(40, 16)).astype(np.float32)
    latlon = np.column_stack([rng.uniform(-60, 60, 40), rng.uniform(-180, 180, 40)])
    same = compare_embeddings(emb, emb.copy(), latlon)
    assert same["min_cosine"] == pytest.approx(1.0) and same["max_drift_km"] == pytest.approx(0.0, abs=1e-6)
    moved = compare_embeddings(emb, emb + rng.normal(scale=0.5, size=emb.shape).astype(np.float32), latlon)
    assert moved["min_cosine"] < 0.99 and moved["max_drift_km"] > 1.0


# --- the benchmark command ------------------------------------------------------------------

def _bench(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, GEOAI_COMPILE="0")  # compile is covered above; keep CI fast
    return subprocess.run([sys.executable, "-m", "geoai.bench", *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=timeout)


@pytest.mark.slow
def test_bench_tiny_prints_table_then_json_with_every_required_key(shared_data):
    done = _bench("--tiny", "--data", str(shared_data / "streetview-world-tiles"))
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert any("round p50 / p95" in line for line in lines[:-1]), "the table is missing"
    summary = json.loads(lines[-1])
    assert REQUIRED_KEYS <= summary.keys()
    for key in REQUIRED_KEYS:
        assert isinstance(summary[key], (int, float)) and summary[key] >= 0, key
    assert summary["mode"] == "tiny"
    assert summary["min_cosine"] >= 0.9999
    # CI measures the graph runtime path as the fast one whenever one is installed.
    from geoai.models.runtime import resolve_runtime
    assert summary["runtime"] == resolve_runtime("cpu")
    assert summary["machine_gemm_gflops"] > 0 and summary["beit_fast_gflops"] > 0


def test_bench_reports_a_missing_data_folder(tmp_path):
    done = _bench("--tiny", "--json-only", "--data", str(tmp_path / "nowhere"), timeout=120)
    assert done.returncode == 2
    assert "metadata.csv" in done.stderr
