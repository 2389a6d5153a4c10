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
# The speed targets. Latencies are batch 1 at 1 thread; cold start is a cached graph's.
TARGETS = {"beit_fast_speedup": 2.3, "resnet50_fast_speedup": 3.8, "min_cosine": 0.9999,
           "beit_fast_latency_ms": 200.0, "resnet50_fast_latency_ms": 45.0,
           "dinov2-small-imgfocus_fast_latency_ms": 80.0, "max_graph_cold_start_s": 2.0,
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


def machine_description(tiny: bool = False) -> dict:
    from geoai.models.runtime import resolve_runtime, runtime_version

    lines = _cpuinfo().splitlines()
    model = next((line.split(":", 1)[1].strip() for line in lines
                  if line.startswith("model name")), platform.processor() or "unknown CPU")
    flags = next((set(line.split(":", 1)[1].split()) for line in lines if line.startswith("flags")), set())
    runtime = resolve_runtime("cpu")
    return {"cpu": model, "cores": torch.get_num_threads(), "avx512_bf16": "avx512_bf16" in flags,
            "amx": "amx_bf16" in flags, "bf16_fast_path": cpu_supports_bf16(),
            "torch": torch.__version__, "transformers": __import__("transformers").__version__,
            "runtime": runtime, "runtime_version": runtime_version(runtime),
            "gemm_gflops": gemm_gflops(512 if tiny else 2048)}


def gemm_gflops(n: int = 2048, repeats: int = 5) -> float:
    """The machine's measured fp32 matrix-multiply rate (torch.mm, n x n, all threads), GFLOP/s:
    what a model's achieved GFLOP/s is compared with."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best / 1e9


def model_gflops(model: torch.nn.Module, pixels: torch.Tensor) -> float:
    """GFLOP (multiply-add = 2) of one image through the model, counted by torch."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(pixel_values=pixels[:1])
    return counter.get_total_flops() / 1e9


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


def _latency_1t(variants: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median ms per call of each variant with torch at 1 thread (graph runtimes are built
    with 1 thread for this), timed in alternation."""
    default_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        timing = time_interleaved(variants, rounds)
    finally:
        torch.set_num_threads(default_threads)
    return {name: timing.median_ms(name) for name in variants}


def _one_thread(embedder: torch.nn.Module, example: torch.Tensor, graph_cache: Path | None,
                digest: str | None) -> torch.nn.Module:
    """The same inference path with 1 thread (a graph is read back from its cache)."""
    settings = replace(embedder.settings, threads=1, compile=False)
    if settings.runtime == "torch":
        return FastEmbedder(embedder.model, settings)
    return optimize_for_inference(embedder.model, settings, example=example, graph_cache=graph_cache,
                                  digest=digest)


def bench_architecture(name: str, opts: BenchOptions, photos, log: Callable[[str], None],
                       save_to: Path) -> dict:
    """Throughput, batch-1 latency, accuracy and end-to-end pipeline of one architecture.

    The fast tier is the checkpoint saved in `save_to` as `load_backbone` gives it, sped up
    for throughput: with a graph runtime, its graph is exported into `save_to`/.graphs, which
    the game's fresh process then reads back (its cold start is that of a cached graph).
    """
    from geoai.models.backbones import load_backbone

    out: dict = {}
    base = build_model(name, tiny=opts.tiny)
    baseline = _baseline_fn(base)
    save_checkpoint(base, name, save_to, tiny=opts.tiny)
    side = image_size(name, opts.tiny)
    x = torch.randn(opts.batch, 3, side, side, generator=torch.Generator().manual_seed(0))
    one = x[:1]

    backbone = load_backbone(str(save_to), device="cpu")
    backbone.speed_up("throughput")
    fast: dict[str, torch.nn.Module] = {"fast": backbone._fast}
    digest, graph_cache = backbone.weights_digest, backbone.graph_cache_dir()
    reduced = _tier_settings(FAMILY[name], opts, "throughput").get("bf16")
    if reduced is not None:
        model = build_model(name, tiny=opts.tiny)
        model.load_state_dict(base.state_dict())
        fast["bf16"] = optimize_for_inference(model, reduced)
    for tier, f in fast.items():
        out[tier] = {"settings": f.settings.to_dict(),
                     "export_s": getattr(f, "cold_start_s", None)}

    log(f"{name}: model-only throughput at batch {opts.batch}: baseline vs "
        + ", ".join(f"{t} ({f.settings.tag}, {f.settings.runtime}, compile={f.settings.compile})"
                    for t, f in fast.items()))
    timing = time_interleaved({"baseline": lambda: baseline(x),
                               **{t: (lambda f=f: f(x)) for t, f in fast.items()}}, opts.iters)
    out["baseline_ips"] = timing.ips("baseline", opts.batch)
    out["gflops_per_image"] = model_gflops(base, x)
    out["baseline_gflops"] = out["gflops_per_image"] * out["baseline_ips"]
    for tier in fast:
        ips = timing.ips(tier, opts.batch)
        out[tier].update(ips=ips, speedup=timing.paired_speedup(tier), first_call_s=timing.first_call_s[tier],
                         gflops=out["gflops_per_image"] * ips)

    log(f"{name}: batch-1 latency at 1 thread")
    single = {t: _one_thread(f, one, graph_cache, digest) if t == "fast" else FastEmbedder(f.model,
              replace(f.settings, threads=1, compile=False)) for t, f in fast.items()}
    if getattr(single["fast"], "cached", False):
        out["graph_cold_start_s"] = single["fast"].cold_start_s
    lat = _latency_1t({"baseline": lambda: baseline(one), **{t: (lambda f=f: f(one)) for t, f in single.items()}},
                      max(3, 3 * opts.iters))
    out["latency_baseline_ms"] = lat["baseline"]
    for tier in fast:
        out[tier]["latency_ms"] = lat[tier]

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
    del base, fast, single, backbone
    gc.collect()
    return out


def bench_offline_backbone(name: str, photos, log: Callable[[str], None], opts: BenchOptions) -> dict | None:
    """Cosine and drift of a real-weight offline backbone per tier, and its batch-1 latency
    at 1 thread (eager vs the fast path); None if it has not been converted.

    The fast tier is what the game and the embedding cache run: `Backbone.speed_up`, through
    the graph runtime (its graph cached beside the checkpoint) when one is installed."""
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
    eager = copy.deepcopy(backbone.model)
    result: dict = {}
    fast: dict[str, torch.nn.Module] = {}
    for tier, settings in _tier_settings(backbone.spec.family, opts, "throughput").items():
        if tier == "fast":
            backbone.speed_up("throughput")
            fast[tier] = backbone._fast
        else:
            fast[tier] = optimize_for_inference(copy.deepcopy(backbone.model), replace(settings, compile=False))
        result[tier] = compare_embeddings(reference, fast[tier](pixels).numpy(), photos.latlon)
        result[tier]["settings"] = fast[tier].settings.to_dict()
    log(f"{name}: batch-1 latency at 1 thread")
    one = pixels[:1]
    digest = backbone.weights_digest
    single = {"fast": _one_thread(fast["fast"], one, backbone.graph_cache_dir(), digest)}
    if getattr(single["fast"], "cached", False):
        result["graph_cold_start_s"] = single["fast"].cold_start_s

    def run_eager() -> torch.Tensor:
        with torch.inference_mode():
            return eager(pixel_values=one)

    lat = _latency_1t({"baseline": run_eager, "fast": lambda: single["fast"](one)}, max(3, 3 * opts.iters))
    result["latency_baseline_ms"] = lat["baseline"]
    result["fast"]["latency_ms"] = lat["fast"]
    return result


def run_benchmark(opts: BenchOptions, log: Callable[[str], None] = print) -> dict:
    """Run every measurement; returns {"machine", "models", "offline", "game", "summary"}."""
    opts = opts.resolved()
    started = time.perf_counter()
    data = opts.data or default_data()
    photos = load_photos(data, max(2 * opts.batch, 4))
    results: dict = {"machine": machine_description(opts.tiny), "options": {
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
    offline = [{t: v for t, v in o.items() if isinstance(v, dict) and "min_cosine" in v} for o in offline]
    opts = results["options"]
    s: dict = {"mode": "tiny" if opts["tiny"] else "quick" if opts["quick"] else "full", "batch": opts["batch"],
               "runtime": results["machine"]["runtime"],
               "machine_gemm_gflops": round(results["machine"]["gemm_gflops"], 1)}
    cold = []
    for name, m in models.items():
        s[f"{name}_gflops_per_image"] = round(m["gflops_per_image"], 3)
        s[f"{name}_baseline_gflops"] = round(m["baseline_gflops"], 1)
        if "fast" in m:
            s[f"{name}_fast_gflops"] = round(m["fast"]["gflops"], 1)
        if m.get("graph_cold_start_s") is not None:
            cold.append(m["graph_cold_start_s"])
        s[f"{name}_baseline_ips"] = round(m["baseline_ips"], 3)
        s[f"{name}_latency_baseline_ms"] = round(m["latency_baseline_ms"], 1)
        for tier in ("fast", "bf16"):
            if tier in m:
                s[f"{name}_{tier}_ips"] = round(m[tier]["ips"], 3)
                s[f"{name}_{tier}_speedup"] = round(m[tier]["speedup"], 3)
                s[f"{name}_{tier}_latency_ms"] = round(m[tier]["latency_ms"], 1)
        s[f"{name}_e2e_ips"] = round(m["e2e_ips"], 3)
        s[f"{name}_loader_ips"] = round(m["loader_ips"], 3)
    for name, o in results.get("offline", {}).items():
        if o and "latency_baseline_ms" in o:
            s[f"{name}_latency_baseline_ms"] = round(o["latency_baseline_ms"], 1)
            s[f"{name}_fast_latency_ms"] = round(o["fast"]["latency_ms"], 1)
            if o.get("graph_cold_start_s") is not None:
                cold.append(o["graph_cold_start_s"])
    s["max_graph_cold_start_s"] = round(max(cold), 2) if cold else None
    for tier, suffix in (("fast", ""), ("bf16", "_bf16")):
        checks = [m[tier] for m in models.values() if tier in m] + [o[tier] for o in offline if tier in o]
        if checks:
            s[f"min_cosine{suffix}"] = round(min(c["min_cosine"] for c in checks), 6)
            s[f"max_drift_km{suffix}"] = round(max(c["max_drift_km"] for c in checks), 4)
    for key, g in (("", game.get("full")), ("_offline", game.get("offline")), ("_bf16", game.get("full_bf16"))):
        for field in ("round_p50_ms", "round_p95_ms", "cold_start_s", "peak_rss_mb"):
            s[f"{field}{key}"] = round(g[field], 2) if g else None
    s["targets_met"] = {key: (s[key] >= goal if "speedup" in key or "cosine" in key else s[key] <= goal)
                        for key, goal in TARGETS.items() if s.get(key) is not None}
    return s
