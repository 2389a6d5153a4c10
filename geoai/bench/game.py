"""The game's view of speed, measured in a fresh process: cold start to the first
prediction, warm round latency with two models guessing a new photo each round, and the
process's peak memory with both models loaded.

Run as a worker by the benchmark: `python -m geoai.bench.game --models A B --photos ...`
prints one JSON line. Each backbone is loaded with `load_backbone` and sped up with the
game's settings (`workload="latency"`: no torch.compile); GEOAI_PRECISION picks precision.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

_STARTED = psutil.Process().create_time()  # before torch/transformers imports


def _peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB.

    Linux: VmHWM of /proc/self/status. Not getrusage's ru_maxrss, which carries over the
    forking parent's peak across exec and so would report the benchmark's own memory.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # bytes on macOS
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _play(model_dirs: list[str], photos: list[str], rounds: int) -> dict:
    import numpy as np
    import torch

    from geoai.data import open_image
    from geoai.models.backbones import load_backbone
    from geoai.models.speed import choose_settings, optimize_for_inference

    players = []
    for folder in model_dirs:
        backbone = load_backbone(folder, device="cpu")
        settings = choose_settings(backbone.spec.family, backbone.device, workload="latency")
        fast = optimize_for_inference(backbone.model, settings)
        # A linear head to coordinates stands in for a bundle's head: its cost is negligible.
        head = np.random.default_rng(0).normal(size=(backbone.embed_dim, 3)).astype(np.float32)
        players.append((backbone, fast, head))

    def play_round(path: str) -> list[np.ndarray]:
        image = open_image(path)  # a new photo each round: decode is part of the round
        guesses = []
        for backbone, fast, head in players:
            emb = fast(backbone.preprocess([image])).numpy()
            xyz = emb @ head
            guesses.append(np.degrees([np.arcsin(np.clip(xyz[0, 2] / np.linalg.norm(xyz), -1, 1)),
                                       np.arctan2(xyz[0, 1], xyz[0, 0])]))
        return guesses

    play_round(photos[0])
    cold_start_s = time.time() - _STARTED
    times = []
    for i in range(rounds):
        start = time.perf_counter()
        play_round(photos[(i + 1) % len(photos)])
        times.append(time.perf_counter() - start)
    ms = np.asarray(times) * 1000
    return {"cold_start_s": cold_start_s, "round_p50_ms": float(np.percentile(ms, 50)),
            "round_p95_ms": float(np.percentile(ms, 95)), "rounds": rounds,
            "peak_rss_mb": _peak_rss_mb(), "threads": torch.get_num_threads(),
            "settings": [fast.settings.tag for _, fast, _ in players]}


def run_game_process(model_dirs: list[Path], photos: list[Path], rounds: int, *,
                     precision: str = "fp32", timeout_s: float = 600) -> dict:
    """Measure the game in a fresh Python process (so cold start and memory are real)."""
    env = dict(os.environ, GEOAI_PRECISION=precision)
    cmd = [sys.executable, "-m", "geoai.bench.game", "--rounds", str(rounds),
           "--models", *map(str, model_dirs), "--photos", *map(str, photos)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout_s,
                          cwd=Path(__file__).resolve().parents[2])
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"game benchmark process failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m geoai.bench.game", description=__doc__)
    parser.add_argument("--models", nargs="+", required=True, help="checkpoint folders or names")
    parser.add_argument("--photos", nargs="+", required=True, help="JPEG files, one per round")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args(argv)
    print(json.dumps(_play(args.models, args.photos, args.rounds)))


if __name__ == "__main__":
    main()
