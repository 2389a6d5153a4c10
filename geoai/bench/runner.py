"""Runs every measurement of the benchmark and collects the results into one dict."""
from __future__ import annotations

import gc
import platform
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import torch

from geoai.bench.accuracy import compare_embeddings
from geoai.bench.architectures import build_model, build_processor, image_size, save_checkpoint
from geoai.bench.game import make_bundles, run_game_process
from geoai.bench.photos import default_data, load_photos
from geoai.bench.pipeline import end_to_end_ips, loader_ips
from geoai.bench.timing import time_interleaved
from geoai.models.speed import (FastEmbedder, InferenceSettings, choose_settings, cpu_supports_bf16,
                               optimize_for_inference)

OFFLINE_BACKBONES = ("dinov2-small-imgfocus", "mobilenetv2-1.0-deepsort")
FAMILY = {"beit": "transformer", "resnet50": "cnn"}
# The speed targets.
TARGETS = {"beit_fast_speedup": 2.0, "resnet50_fast_speedup": 4.0, "min_cosine": 0.999,
           "max_drift_km": 1.0, "round_p95_ms_offline": 500.0, "round_p95_ms": 1500.0,
           "peak_rss_mb": 2048.0, "peak_rss_mb_offline": 2048.0,
           "beit_bf16_speedup": 2.0, "resnet50_bf16_speedup": 4.0, "min_cosine_bf16": 0.999,
           "max_drift_km_bf16": 1.0}


@dataclass
class BenchOptions:
    batch: int = 32
    iters: int = 3            # timed rounds per measurement (after warm-up)
    rounds: int = 20          # game rounds
    quick: bool = False       # fewer iterations and a smaller batch (CI)
    tiny: bool = False        # miniature models (unit tests)
    data: Path | None = None  # None: default_data()
    workers: int = 2
    force_fp32: bool = False  # veto reduced precision (GEOAI_FORCE_FP32)
    game_bf16: bool = True    # also time the game's rounds with bf16

    def resolved(self) -> "BenchOptions":
        if self.tiny:
            return replace(self, batch=min(self.batch, 4), iters=1, rounds=3, game_bf16=False)
        if self.quick:
            return replace(self, batch=min(self.batch, 8), iters=min(self.iters, 2),
                           rounds=min(self.rounds, 10), game_bf16=False)
        return self


def machine_description() -> dict:
    lines = _cpuinfo().splitlines()
    model = next((line.split(":", 1)[1].strip() for line in lines
                  if line.startswith("model name")), platform.processor() or "unknown CPU")
    flags = next((set(line.split(":", 1)[1].split()) for line in lines if line.startswith("flags")), set())
    return {"cpu": model, "cores": torch.get_num_threads(), "avx512_bf16": "avx512_bf16" in flags,
            "amx": "amx_bf16" in flags, "bf16_fast_path": cpu_supports_bf16(),
            "torch": torch.__version__, "transformers": __import__("transformers").__version__}


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def _baseline_fn(model: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """The baseline: plain transformers forward, fp32, eager, torch.no_grad."""
    def run(pixels: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(pixel_values=pixels).pooler_output.flatten(1).float()
    return run


def _tier_settings(family: str, opts: BenchOptions, workload: str) -> dict[str, InferenceSettings]:
    """fast = the default (answer-keeping) settings; bf16 = the opt-in reduced precision."""
    fast = choose_settings(family, "cpu", force_fp32=opts.force_fp32, workload=workload)
    tiers = {"fast": fast}
    reduced = choose_settings(family, "cpu", force_fp32=opts.force_fp32, workload=workload,
                              precision="reduced")
    if reduced.dtype != "float32":
        tiers["bf16"] = reduced
    return tiers


def bench_architecture(name: str, opts: BenchOptions, photos, log: Callable[[str], None],
                       save_to: Path | None) -> dict:
    """Throughput, batch-1 latency, accuracy and end-to-end pipeline of one architecture."""
    out: dict = {}
    base = build_model(name, tiny=opts.tiny)
    baseline = _baseline_fn(base)
    tiers = _tier_settings(FAMILY[name], opts, "throughput")
    fast: dict[str, FastEmbedder] = {}
    for tier, settings in tiers.items():
        model = build_model(name, tiny=opts.tiny)
        model.load_state_dict(base.state_dict())
        fast[tier] = optimize_for_inference(model, settings)
        out[tier] = {"settings": settings.to_dict()}
    side = image_size(name, opts.tiny)
    x = torch.randn(opts.batch, 3, side, side, generator=torch.Generator().manual_seed(0))

    log(f"{name}: model-only throughput at batch {opts.batch}: baseline vs "
        + ", ".join(f"{t} ({s.tag}, compile={s.compile})" for t, s in tiers.items()))
    timing = time_interleaved({"baseline": lambda: baseline(x),
                               **{t: (lambda f=f: f(x)) for t, f in fast.items()}}, opts.iters)
    out["baseline_ips"] = timing.ips("baseline", opts.batch)
    for tier in fast:
        out[tier].update(ips=timing.ips(tier, opts.batch), speedup=timing.paired_speedup(tier),
                         first_call_s=timing.first_call_s[tier])

    log(f"{name}: batch-1 latency (game settings: no compile, their thread count)")
    one = x[:1]
    game = _tier_settings(FAMILY[name], opts, "latency")
    latency = {t: FastEmbedder(f.model, game[t]) for t, f in fast.items()}
    default_threads = torch.get_num_threads()

    def with_threads(fn: Callable[[], object], threads: int | None) -> Callable[[], object]:
        def run() -> object:  # torch threads are process-wide: set them for each call
            torch.set_num_threads(threads or default_threads)
            return fn()
        return run

    try:
        lat = time_interleaved({"baseline": with_threads(lambda: baseline(one), None),
                                **{t: with_threads(lambda f=f: f(one), f.settings.threads)
                                   for t, f in latency.items()}}, max(3, 3 * opts.iters))
    finally:
        torch.set_num_threads(default_threads)
    out["latency_baseline_ms"] = lat.median_ms("baseline")
    for tier in fast:
        out[tier]["latency_ms"] = lat.median_ms(tier)

    log(f"{name}: fp32 vs fast embeddings of {opts.batch} real photos")
    processor = build_processor(name, tiny=opts.tiny)
    acc = photos.subset(opts.batch)
    pixels = processor(images=acc.images(), return_tensors="pt")["pixel_values"]
    reference = baseline(pixels).numpy()
    for tier, f in fast.items():
        out[tier].update(compare_embeddings(reference, f(pixels).numpy(), acc.latlon))

    log(f"{name}: end-to-end embedding pipeline with the default fast path ({opts.workers} workers)")
    paths = photos.paths[: 2 * opts.batch]
    out["loader_ips"] = loader_ips(paths, processor, opts.batch, opts.workers)
    out["e2e_ips"] = end_to_end_ips(paths, processor, fast["fast"], opts.batch, opts.workers,
                                    torch.device("cpu"))
    if save_to is not None:
        save_checkpoint(base, name, save_to, tiny=opts.tiny)
    del base, fast, latency
    gc.collect()
    return out


def bench_offline_backbone(name: str, photos, log: Callable[[str], None], opts: BenchOptions) -> dict | None:
    """Cosine and drift of a real-weight offline backbone per tier (game settings);
    None if it has not been converted."""
    import copy

    from geoai.models.backbones import backbone_status, load_backbone, resolve_backbone

    available, why = backbone_status(resolve_backbone(name))
    if not available:
        log(f"{name}: skipped ({why})")
        return None
    log(f"{name}: fp32 vs fast embeddings of {len(photos.paths)} real photos (real weights)")
    backbone = load_backbone(name, device="cpu")
    pixels = backbone.preprocess(photos.images())
    with torch.inference_mode():
        reference = backbone(pixels).float().numpy()
    result = {}
    for tier, settings in _tier_settings(backbone.spec.family, opts, "throughput").items():
        fast = optimize_for_inference(copy.deepcopy(backbone.model), replace(settings, compile=False))
        result[tier] = compare_embeddings(reference, fast(pixels).numpy(), photos.latlon)
        result[tier]["settings"] = settings.to_dict()
    return result


def run_benchmark(opts: BenchOptions, log: Callable[[str], None] = print) -> dict:
    """Run every measurement; returns {"machine", "models", "offline", "game", "summary"}."""
    opts = opts.resolved()
    started = time.perf_counter()
    data = opts.data or default_data()
    photos = load_photos(data, max(2 * opts.batch, 4))
    results: dict = {"machine": machine_description(), "options": {
        "batch": opts.batch, "iters": opts.iters, "rounds": opts.rounds, "quick": opts.quick,
        "tiny": opts.tiny, "data": str(data), "workers": opts.workers}}
    with tempfile.TemporaryDirectory(prefix="geoai-bench-") as tmp:
        pair = [Path(tmp) / "beit", Path(tmp) / "resnet50"]
        results["models"] = {name: bench_architecture(name, opts, photos, log, folder)
                             for name, folder in zip(FAMILY, pair)}
        results["offline"] = {} if opts.tiny else {
            name: bench_offline_backbone(name, photos.subset(opts.batch), log, opts)
            for name in OFFLINE_BACKBONES}
        game_photos = photos.paths[: max(opts.rounds + 1, 2)]
        label = "tiny BEiT + tiny ResNet" if opts.tiny else "BEiT-base + ResNet-50"
        log(f"game: {label}, {opts.rounds} rounds in a fresh process")
        bundles = make_bundles(pair, photos.latlon, Path(tmp) / "bundles")
        results["game"] = {"full": run_game_process(bundles, game_photos, opts.rounds)}
        results["game"]["full"]["pair"] = label
        if opts.game_bf16 and cpu_supports_bf16() and not opts.force_fp32:
            log("game: the same pair with reduced precision (GEOAI_PRECISION=reduced)")
            results["game"]["full_bf16"] = run_game_process(bundles, game_photos, opts.rounds,
                                                            precision="reduced")
            results["game"]["full_bf16"]["pair"] = label + " bf16"
    if not opts.tiny:
        offline_ok = all(results["offline"].get(n) for n in OFFLINE_BACKBONES)
        if offline_ok:
            log("game: the two offline backbones in a fresh process")
            from geoai.models.backbones import resolve_backbone

            dirs = [Path(resolve_backbone(n).source) for n in OFFLINE_BACKBONES]
            with tempfile.TemporaryDirectory(prefix="geoai-bench-") as tmp:
                bundles = make_bundles(dirs, photos.latlon, Path(tmp))
                results["game"]["offline"] = run_game_process(bundles, game_photos, opts.rounds)
            results["game"]["offline"]["pair"] = "DINOv2-small + MobileNetV2"
        else:
            log("game: offline backbones not converted (python -m train convert-offline); skipped")
    results["summary"] = summarise(results)
    results["summary"]["bench_wall_s"] = round(time.perf_counter() - started, 1)
    return results


def summarise(results: dict) -> dict:
    """The flat headline numbers printed as the JSON last line, with the speed targets.

    Unsuffixed keys are the default fast path (fp32 numbers); `_bf16` keys the opt-in
    reduced precision. Speed-ups are medians of paired (same-round) ratios.
    """
    models, game = results["models"], results["game"]
    offline = [o for o in results.get("offline", {}).values() if o]
    opts = results["options"]
    s: dict = {"mode": "tiny" if opts["tiny"] else "quick" if opts["quick"] else "full", "batch": opts["batch"]}
    for name, m in models.items():
        s[f"{name}_baseline_ips"] = round(m["baseline_ips"], 3)
        s[f"{name}_latency_baseline_ms"] = round(m["latency_baseline_ms"], 1)
        for tier in ("fast", "bf16"):
            if tier in m:
                s[f"{name}_{tier}_ips"] = round(m[tier]["ips"], 3)
                s[f"{name}_{tier}_speedup"] = round(m[tier]["speedup"], 3)
                s[f"{name}_{tier}_latency_ms"] = round(m[tier]["latency_ms"], 1)
        s[f"{name}_e2e_ips"] = round(m["e2e_ips"], 3)
        s[f"{name}_loader_ips"] = round(m["loader_ips"], 3)
    for tier, suffix in (("fast", ""), ("bf16", "_bf16")):
        checks = [m[tier] for m in models.values() if tier in m] + [o[tier] for o in offline if tier in o]
        if checks:
            s[f"min_cosine{suffix}"] = round(min(c["min_cosine"] for c in checks), 6)
            s[f"max_drift_km{suffix}"] = round(max(c["max_drift_km"] for c in checks), 4)
    for key, g in (("", game.get("full")), ("_offline", game.get("offline")), ("_bf16", game.get("full_bf16"))):
        for field in ("round_p50_ms", "round_p95_ms", "cold_start_s", "peak_rss_mb"):
            s[f"{field}{key}"] = round(g[field], 2) if g else None
    s["targets_met"] = {key: (s[key] >= goal if "speedup" in key or "cosine" in key else s[key] < goal)
                        for key, goal in TARGETS.items() if s.get(key) is not None}
    return s
