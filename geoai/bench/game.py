"""The game's view of speed, measured in a fresh process: cold start to the first
prediction, warm round latency with two models guessing a new photo each round, and the
process's peak memory with both models loaded.

The rounds run the game's own code: app.players.ModelPlayers loads the bundles as the game
does (shared backbones sped up with workload "latency": no torch.compile) and answers each
round through `predictions`, the call the Play page makes when a guess is confirmed. There
is no predictions file, so every answer is computed live (a map without one, or a photo a
person uploaded). GEOAI_PRECISION picks the precision.

Run as a worker by the benchmark: `python -m geoai.bench.game --bundles A B --photos ...`
prints one JSON line. `make_bundles` writes the geocell bundles it plays from backbone
checkpoints.
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

from geoai import settings

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


def make_bundles(checkpoints: list[Path], latlon, out_dir: Path) -> list[Path]:
    """A geocell bundle on each backbone checkpoint, its cells made from `latlon` ((N, 2) degrees).

    The head is not trained: its answers are meaningless, but it costs what a trained one does
    (the game asks it for the guess and the cells it believed in).
    """
    import numpy as np

    from geoai.models import build_head, load_backbone, save_bundle
    from geoai.models.registry import head_names, head_spec

    # The game's usual opponent: a cell classifier whose guesses are refined in its cells.
    kind = next(name for name in head_names(baseline=False) if head_spec(name).refinable)
    latlon = np.asarray(latlon, dtype=np.float64)
    cell_max = max(2, len(latlon) // 4)
    bundles = []
    for checkpoint in checkpoints:
        backbone = load_backbone(str(checkpoint), device="cpu")
        head = build_head(kind, backbone.embed_dim, train_latlon=latlon, cell_min_samples=1,
                          cell_max_samples=cell_max)
        bundles.append(save_bundle(Path(out_dir) / f"{backbone.spec.name}-{kind}", backbone=backbone, head=head,
                                   metrics={}, dataset_info={"name": "bench", "fingerprint": "bench",
                                                             "split_sizes": {}}, fusion="mean"))
        del backbone
    return bundles


def _play(bundle_dirs: list[str], photos: list[str], rounds: int) -> dict:
    import tempfile

    import numpy as np
    import torch

    from app.game import Place
    from app.players import ModelPlayers, read_opponent

    with tempfile.TemporaryDirectory(prefix="geoai-bench-game-") as no_predictions:
        players = ModelPlayers(device="cpu", models_dir=Path(no_predictions))
        infos = [read_opponent(Path(folder)) for folder in bundle_dirs]

        def play_round(i: int) -> dict:
            # A new photo each round: decoding it is part of the round, as in the game.
            place = Place(f"round-{i}", 0.0, 0.0, (str(photos[i % len(photos)]),))
            return players.predictions(infos, place)

        problems = players.warm_up(infos)  # what the game does when the map opens
        if problems:
            raise RuntimeError(f"the models cannot play: {problems}")
        play_round(0)
        cold_start_s = time.time() - _STARTED
        times, answers = [], {}
        for i in range(1, rounds + 1):
            start = time.perf_counter()
            answers = play_round(i)
            times.append(time.perf_counter() - start)
        fast = [getattr(players.bundle(info).backbone, "_fast", None) for info in infos]
    ms = np.asarray(times) * 1000
    return {"cold_start_s": cold_start_s, "round_p50_ms": float(np.percentile(ms, 50)),
            "round_p95_ms": float(np.percentile(ms, 95)), "rounds": rounds,
            "peak_rss_mb": _peak_rss_mb(), "threads": torch.get_num_threads(),
            "settings": [f"{f.settings.tag} {f.settings.runtime}" if f is not None else "plain" for f in fast],
            "last_round": {"photo": str(photos[rounds % len(photos)]),
                           "answers": {name: list(a.latlon) for name, a in answers.items()}}}


def run_game_process(bundle_dirs: list[Path], photos: list[Path], rounds: int, *,
                     precision: str = "fp32", timeout_s: float = 600) -> dict:
    """Measure the game in a fresh Python process (so cold start and memory are real)."""
    env = dict(os.environ, GEOAI_PRECISION=precision)
    cmd = [sys.executable, "-m", "geoai.bench.game", "--rounds", str(rounds),
           "--bundles", *map(str, bundle_dirs), "--photos", *map(str, photos)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout_s,
                          cwd=settings.REPO_ROOT)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"game benchmark process failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m geoai.bench.game", description=__doc__)
    parser.add_argument("--bundles", nargs="+", required=True, help="model bundle folders (see make_bundles)")
    parser.add_argument("--photos", nargs="+", required=True, help="JPEG files, one per round (rounds + 1 for new ones)")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args(argv)
    print(json.dumps(_play(args.bundles, args.photos, args.rounds)))


if __name__ == "__main__":
    main()
