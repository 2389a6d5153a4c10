"""`python -m train.world_results`: the world maps' table (docs/results/world.md).

For each world dataset's test split and for their union, the bundles of a joined run (the
world pair: best per backbone by validation median km, as `make play` publishes them; its
medoid and nearest-neighbour baselines) and of per-dataset runs (each evaluated on its own
dataset): mean / median km, shares within 25 / 200 / 750 / 2,500 km and the share of
guesses more than 50 km from land (geoai.land). Embeddings come from the cache.

    python -m train.world_results --world runs/world --single runs/world-im2gps3k ... --out docs/results/world.md
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from geoai.bundle_config import BundleConfig
from geoai.data import load_image_folder
from geoai.geodesy import haversine_km
from geoai.land import km_from_land
from geoai.models import Bundle, load_backbone
from geoai.models.embeddings import compute_embeddings
from geoai.models.heads import predict_latlon
from geoai.models.registry import head_spec
from train.publish import best_per_backbone
from train.results import RunResults
from train.samples import build_samples

SEA_KM = 50.0
SHARES = (25, 200, 750, 2500)


def _rows_of(run: Path, metric: str) -> list[tuple[str, str, Path]]:
    """(key, label, bundle) of a run: every learned head and the baselines, in the view mode of the
    best bundle by validation `metric`. The key names the model alike across runs (for the union row)."""
    rows = RunResults.read(run).results
    best = best_per_backbone(rows, metric)
    views = best[sorted(best)[0]].views
    chosen = [(row, head_spec(row.head)) for row in rows if row.views == views]
    # Trained heads first, then the baselines; one that ignores the image is named without a backbone.
    chosen.sort(key=lambda pair: pair[1].baseline)
    found = []
    for row, spec in chosen:
        key = f"{row.backbone} {spec.short}" if spec.uses_images else spec.short
        found.append((key, key, run / row.bundle))
    return found


class Predictor:
    """Test-split guesses of bundles on datasets, embeddings from the cache, backbones shared."""

    def __init__(self, cache_dir: str) -> None:
        self.cache_dir = Path(cache_dir)
        self.backbones: dict[str, object] = {}
        self.embeddings: dict[tuple[str, str], np.ndarray] = {}

    def predict(self, bundle_dir: Path, data: Path) -> tuple[np.ndarray, np.ndarray]:
        """(guesses, truth) per test sample, views fused as the bundle fuses them."""
        source = BundleConfig.read(bundle_dir).backbone.source
        if source not in self.backbones:
            self.backbones[source] = load_backbone(source, device="cpu")
        bundle = Bundle.load(bundle_dir, backbone=self.backbones[source])
        dataset = load_image_folder(data, check_images="none").subset("test")
        key = (source, str(data))
        if key not in self.embeddings:
            self.embeddings[key] = compute_embeddings(bundle.backbone, dataset, self.cache_dir, num_workers=0)
        samples = build_samples(dataset, "all", bundle.fusion, self.embeddings[key])
        return predict_latlon(bundle.head, samples.embeddings), samples.latlon


def measures(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    km = haversine_km(true[:, 0], true[:, 1], pred[:, 0], pred[:, 1])
    out = {"n": len(km), "mean": float(np.mean(km)), "median": float(np.median(km))}
    out.update({f"w{s}": float(np.mean(km <= s)) for s in SHARES})
    out["sea"] = float(np.mean(km_from_land(pred) > SEA_KM))
    return out


def table(entries: list[tuple[str, str, dict]]) -> str:
    lines = ["| test split | model | n | mean km | median km | ≤25 km | ≤200 km | ≤750 km | ≤2,500 km | >50 km from land |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for where, label, m in entries:
        lines.append(f"| {where} | {label} | {m['n']} | {m['mean']:,.0f} | {m['median']:,.0f} | "
                     + " | ".join(f"{100 * m[f'w{s}']:.1f}%" for s in SHARES) + f" | {100 * m['sea']:.1f}% |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.world_results", description=__doc__.splitlines()[0])
    parser.add_argument("--world", required=True, help="the joined run (python -m train --data A --data B ...)")
    parser.add_argument("--single", nargs="*", default=[], help="runs trained on one world dataset each")
    parser.add_argument("--metric", default="median_km", help="validation metric that picks the pair")
    parser.add_argument("--cache-dir", default=".cache/embeddings")
    parser.add_argument("--json", help="also write the numbers as JSON here")
    args = parser.parse_args(argv)
    world = Path(args.world)
    members = RunResults.read(world).maps()
    predictor = Predictor(args.cache_dir)
    entries: list[tuple[str, str, dict]] = []
    union: dict[str, list] = {}
    for key, label, bundle in _rows_of(world, args.metric):
        for name, root in members:
            pred, true = predictor.predict(bundle, root)
            entries.append((name, f"world: {label}", measures(pred, true)))
            union.setdefault(f"world: {label}", []).append((pred, true))
    for run in map(Path, args.single):
        name, root = RunResults.read(run).maps()[0]
        for key, label, bundle in _rows_of(run, args.metric):
            pred, true = predictor.predict(bundle, root)
            entries.append((name, f"own dataset: {label}", measures(pred, true)))
            union.setdefault(f"own dataset: {key}", []).append((pred, true))
    for label, parts in union.items():
        if len(parts) == len(members):
            entries.append(("union", label, measures(np.concatenate([p for p, _ in parts]),
                                                     np.concatenate([t for _, t in parts]))))
    entries.sort(key=lambda e: ([n for n, _ in members] + ["union"]).index(e[0]) if e[0] != "union" else len(members))
    print(table(entries))
    if args.json:
        Path(args.json).write_text(json.dumps([{"split": w, "model": l, **m} for w, l, m in entries], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
