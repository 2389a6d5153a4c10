"""`python -m geoai.bench insight`: time per photo of what the result screen shows per model.

For each backbone: a geocell-head bundle fitted on a few training photos, then for each
test photo (one view) the belief (top cells with probabilities, from the place's
embedding) and where it looked (saliency + heat overlay JPEG), as the game computes them
after a guess. Prints one line per photo and a summary table, then a JSON line.

Default backbones are the offline pair (`python -m train convert-offline`); `--tiny`
measures miniature random-weight models instead (the machinery only, not real times).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from geoai import settings

DEFAULT_MAP = "croatia-streetview"  # under GEOAI_DATA_DIR
OFFLINE = ("dinov2-small-imgfocus", "mobilenetv2-1.0-deepsort")
TRAIN_PHOTOS = 40


def build_bundle(backbone_name: str, folder: Path, data: Path, tiny: bool, log):
    """(bundle, photos) : a geocell bundle on `backbone_name` and the map's test photos."""
    from geoai.bench.architectures import build_model, save_checkpoint
    from geoai.data import load_image_folder, open_image
    from geoai.models import Bundle, build_head, fit_head, load_backbone, save_bundle

    if tiny:
        arch = "beit" if "dino" in backbone_name or "beit" in backbone_name else "resnet50"
        target = str(save_checkpoint(build_model(arch, tiny=True), arch, folder / f"tiny-{arch}", tiny=True))
    else:
        target = backbone_name
    backbone = load_backbone(target, device="cpu")
    dataset = load_image_folder(data, check_images="none")
    train = dataset.subset("train").frame.head(TRAIN_PHOTOS)
    latlon = train[["lat", "lon"]].to_numpy()
    started = time.perf_counter()
    embeddings = backbone.embed([open_image(p) for p in train["path"]])
    log(f"{backbone_name}: embedded {len(train)} training photos in {time.perf_counter() - started:.1f} s")
    head = build_head("geocell", backbone.embed_dim, train_latlon=latlon, cell_min_samples=2, cell_max_samples=8)
    head, _ = fit_head(head, embeddings, latlon, epochs=5, seed=0)
    path = save_bundle(folder / f"{backbone_name}-geocell", backbone=backbone, head=head, metrics={},
                       dataset_info={"name": data.name, "fingerprint": "bench", "split_sizes": {}},
                       fusion="mean")
    test = dataset.subset("test").frame
    return Bundle.load(path, device="cpu", backbone=backbone), list(test["path"])


def measure(bundle, paths: list[str], log) -> dict:
    """Seconds per photo for the belief and for where it looked (first photo included)."""
    from geoai.data import open_image
    from geoai.explain import Explainer, overlay_jpeg

    started = time.perf_counter()
    explainer = Explainer(bundle)
    setup = time.perf_counter() - started
    belief, looked = [], []
    for path in paths:
        image = open_image(path)
        embedding = bundle.backbone.embed([image])  # computed for the guess anyway; not timed
        t0 = time.perf_counter()
        prediction = bundle.predict_place_embeddings(embedding)
        t1 = time.perf_counter()
        saliency = explainer.saliency(image)
        overlay_jpeg(image, saliency.values, saliency.seen)
        t2 = time.perf_counter()
        belief.append(t1 - t0)
        looked.append(t2 - t1)
        log(f"{bundle.backbone_name} {Path(path).name} {image.size[0]}x{image.size[1]}: belief "
            f"{belief[-1]:.4f} s ({len(prediction.top_cells or ())} cells), {saliency.method} "
            f"{looked[-1]:.3f} s")
    return {"backbone": bundle.backbone_name, "method": explainer.method, "photos": len(paths),
            "explainer_setup_s": setup, "belief_s": summary(belief), "looked_s": summary(looked)}


def summary(values: list[float]) -> dict:
    ordered = sorted(values)
    return {"mean": statistics.fmean(values), "p50": ordered[len(ordered) // 2],
            "p95": ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))], "max": ordered[-1]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m geoai.bench insight", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help=f"map (image folder; default GEOAI_DATA_DIR/{DEFAULT_MAP})")
    parser.add_argument("--photos", type=int, default=12, help="test photos timed per backbone (default 12)")
    parser.add_argument("--backbones", default=",".join(OFFLINE), help="comma-separated backbones")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as on a shared CPU)")
    parser.add_argument("--tiny", action="store_true", help="miniature random-weight models (machinery only)")
    args = parser.parse_args(argv)
    args.data = args.data or settings.data_dir() / DEFAULT_MAP
    if args.photos < 1 or args.threads < 1:
        parser.error("--photos and --threads must be at least 1")
    if not (args.data / "metadata.csv").is_file():
        print(f"error: no metadata.csv in {args.data}; pass --data an image folder", file=sys.stderr)
        return 2
    import torch

    from geoai.models.backbones import BackboneError

    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    log = lambda msg: print(f"[insight] {msg}", file=sys.stderr, flush=True)  # noqa: E731
    results = []
    with tempfile.TemporaryDirectory(prefix="geoai-bench-insight-") as tmp:
        for name in [b.strip() for b in args.backbones.split(",") if b.strip()]:
            try:
                bundle, paths = build_bundle(name, Path(tmp), args.data, args.tiny, log)
            except BackboneError as exc:
                print(f"error: {exc} (or measure miniature models with --tiny)", file=sys.stderr)
                return 2
            results.append(measure(bundle, paths[:args.photos], log))
    kind = "tiny random-weight models" if args.tiny else "real backbones"
    print(f"\nTime per photo after a guess ({kind}, {args.threads} torch thread(s), {args.data.name}):")
    print(f"{'backbone':<28} {'method':<19} {'belief p50/max s':>17} {'looked p50/p95/max s':>22} {'setup s':>8}")
    for r in results:
        b, s = r["belief_s"], r["looked_s"]
        print(f"{r['backbone']:<28} {r['method']:<19} {b['p50']:>8.4f}/{b['max']:<8.4f} "
              f"{s['p50']:>7.3f}/{s['p95']:.3f}/{s['max']:<6.3f} {r['explainer_setup_s']:>8.2f}")
    print(json.dumps({"kind": kind, "threads": args.threads, "results": results}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
