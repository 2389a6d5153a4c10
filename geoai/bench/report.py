"""The benchmark's printed table."""
from __future__ import annotations

NAMES = {"beit": "BEiT-base/16", "resnet50": "ResNet-50",
         "dinov2-small-imgfocus": "DINOv2-small (real weights)",
         "mobilenetv2-1.0-deepsort": "MobileNetV2 (real weights)"}


def _fmt(value, unit: str = "", digits: int = 2) -> str:
    if value is None:
        return "n/a"
    return f"{value:.{digits}f}{unit}"


def format_table(results: dict) -> str:
    """A plain-text table of everything measured, one row per figure."""
    rows: list[tuple[str, str, str]] = []
    m = results["machine"]
    rows.append(("machine", "CPU", f"{m['cpu']}, {m['cores']} threads, avx512_bf16={m['avx512_bf16']}, "
                                   f"amx={m['amx']}, torch {m['torch']}, transformers {m['transformers']}"))
    rows.append(("machine", "fp32 GEMM (torch.mm)", f"{_fmt(m['gemm_gflops'], ' GFLOP/s', 1)}; graph runtime: "
                                                   f"{m['runtime']} {m['runtime_version']}"))
    for name, r in results["models"].items():
        label = NAMES[name]
        rows.append((label, "baseline img/s / batch-1 ms", f"{_fmt(r['baseline_ips'])} img/s / "
                     f"{_fmt(r['latency_baseline_ms'], ' ms', 0)}  (fp32 eager, no_grad; batch 1 at 1 thread)"))
        rows.append((label, "GFLOP per image / baseline GFLOP/s",
                     f"{_fmt(r['gflops_per_image'])} / {_fmt(r['baseline_gflops'], '', 1)}"))
        if r.get("graph_cold_start_s") is not None:
            rows.append((label, "cached graph cold start", _fmt(r["graph_cold_start_s"], " s")))
        for tier in ("fast", "bf16"):
            if tier not in r:
                continue
            t, st = r[tier], r[tier]["settings"]
            rows.append((f"{label} {tier}", "settings", f"{st['dtype']}{' weights' if st['cast_weights'] else ''}, "
                         f"channels_last={st['channels_last']}, attn={st['attn_implementation']}, "
                         f"compile={st['compile']}, runtime={st.get('runtime', 'torch')}"))
            rows.append((f"{label} {tier}", "model-only img/s (speed-up)",
                         f"{_fmt(t['ips'])}  ({_fmt(t['speedup'])}x paired), {_fmt(t['gflops'], ' GFLOP/s', 1)}"))
            rows.append((f"{label} {tier}", "first call (compile) / batch-1, 1 thread",
                         f"{_fmt(t['first_call_s'], ' s', 1)} / {_fmt(t['latency_ms'], ' ms', 0)}"))
            rows.append((f"{label} {tier}", "min cosine / max drift",
                         f"{t['min_cosine']:.6f} / {t['max_drift_km']:.3f} km"))
        rows.append((label, "end-to-end img/s (loader alone)", f"{_fmt(r['e2e_ips'])}  ({_fmt(r['loader_ips'])})"))
    for name, r in results.get("offline", {}).items():
        if r is None:
            rows.append((NAMES.get(name, name), "min cosine / max drift", "not converted"))
            continue
        for tier, t in r.items():
            if not isinstance(t, dict):
                continue
            rows.append((f"{NAMES.get(name, name)} {tier}", "min cosine / max drift",
                         f"{t['min_cosine']:.6f} / {t['max_drift_km']:.3f} km"))
        if "latency_baseline_ms" in r:
            rows.append((NAMES.get(name, name), "batch-1 ms at 1 thread: eager / fast",
                         f"{_fmt(r['latency_baseline_ms'], ' ms', 1)} / {_fmt(r['fast']['latency_ms'], ' ms', 1)}"))
        if r.get("graph_cold_start_s") is not None:
            rows.append((NAMES.get(name, name), "cached graph cold start", _fmt(r["graph_cold_start_s"], " s")))
    for key, g in results["game"].items():
        label = f"game: {g.get('pair', key)}"
        rows.append((label, "round p50 / p95", f"{_fmt(g['round_p50_ms'], ' ms', 0)} / "
                                                f"{_fmt(g['round_p95_ms'], ' ms', 0)}"))
        rows.append((label, "cold start / peak RSS", f"{_fmt(g['cold_start_s'], ' s', 1)} / "
                                                     f"{_fmt(g['peak_rss_mb'], ' MiB', 0)}"))
    met = results["summary"]["targets_met"]
    rows.append(("targets", "met", ", ".join(f"{k}={'yes' if v else 'NO'}" for k, v in met.items())))
    w1 = max(len(r[0]) for r in rows)
    w2 = max(len(r[1]) for r in rows)
    return "\n".join(f"{a:<{w1}}  {b:<{w2}}  {c}" for a, b, c in rows)
