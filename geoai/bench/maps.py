"""`python -m geoai.bench maps [--places N] [--keep DIR]`: time and peak memory of loading maps.

Generates image-folder maps in a temporary folder (tiny JPEGs hard-linked across places,
a fresh source file every LINKS_PER_SOURCE links, below every filesystem's link limit, so
100,000 places cost almost no disk) and loads each the way the game does
(`app.maps.load_map`, then its view), printing one line per map and a last JSON line.
A map must load in time and memory that grow with its number of places, never with its
area: Fiji across the antimeridian, places around both poles, the whole world and a
100,000-place country.
"""
from __future__ import annotations

import argparse
import csv
import errno
import json
import os
import shutil
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

# name -> (places, generator of (lat, lon) arrays)
Generator = Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray]]


def _fiji(rng, n):  # ~122 km across, straddling 180 degrees
    lons = rng.uniform(179.45, 180.55, n)
    return rng.uniform(-17.3, -16.7, n), np.where(lons >= 180.0, lons - 360.0, lons)


def _north_pole(rng, n):
    return rng.uniform(88.0, 90.0, n), rng.uniform(-180.0, 180.0, n)


def _south_pole(rng, n):
    return rng.uniform(-90.0, -88.0, n), rng.uniform(-180.0, 180.0, n)


def _world(rng, n):
    return np.degrees(np.arcsin(rng.uniform(-1, 1, n))), rng.uniform(-180.0, 180.0, n)


def _country(rng, n):  # many places in a small area: the worst case for the map's size
    return rng.uniform(42.4, 46.5, n), rng.uniform(13.5, 19.4, n)


MAPS: dict[str, tuple[int, Generator]] = {
    "fiji": (30, _fiji),
    "north-pole": (200, _north_pole),
    "south-pole": (200, _south_pole),
    "world": (2_000, _world),
    "country-100k": (100_000, _country),
}


# ext4 allows 65,000 links to a file, XFS and btrfs more; stay well under all of them.
LINKS_PER_SOURCE = 10_000


class ViewFiles:
    """Places one small JPEG at many paths: hard links to a source file, a new source every
    LINKS_PER_SOURCE links (or when the filesystem refuses another link), plain copies
    where the filesystem has no hard links at all."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.sources = 0
        self.links = 0
        self.can_link = True
        self._new_source()

    def _new_source(self) -> None:
        self.source = self.folder / f"view-{self.sources:04d}.jpg"
        Image.new("RGB", (32, 24), (90, 120, 80)).save(self.source, "JPEG")
        self.sources += 1
        self.links = 0

    def place(self, target: Path) -> None:
        if self.links >= LINKS_PER_SOURCE:
            self._new_source()
        if self.can_link:
            try:
                os.link(self.source, target)
                self.links += 1
                return
            except OSError as exc:
                if exc.errno == errno.EMLINK:  # this source is full: start another
                    self._new_source()
                    return self.place(target)
                if exc.errno not in (errno.EPERM, errno.EXDEV, errno.ENOTSUP, errno.EOPNOTSUPP):
                    raise
                self.can_link = False  # no hard links here: copy the few hundred bytes
        shutil.copyfile(self.source, target)


def write_map(folder: Path, lats: np.ndarray, lons: np.ndarray) -> None:
    """An image folder of one view per place, the views hard links to a few small JPEGs."""
    images = folder / "images"
    images.mkdir(parents=True)
    views = ViewFiles(folder)
    with (folder / "metadata.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file_name", "lat", "lon", "location_id"])
        for i, (lat, lon) in enumerate(zip(lats, lons, strict=True)):
            name = f"images/{i:06d}.jpg"
            views.place(folder / name)
            writer.writerow([name, f"{lat:.6f}", f"{lon:.6f}", f"p{i:06d}"])


def measure(folder: Path) -> dict:
    """Load one map as the game does; seconds, peak traced memory and what it framed."""
    from app.maps import load_map

    tracemalloc.start()
    start = time.perf_counter()
    game_map = load_map(folder)
    bounds = game_map.bounds
    view = bounds.view() if hasattr(bounds, "view") else None
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    lon_span = getattr(bounds, "lon_span", bounds.east - bounds.west)
    return {"seconds": round(seconds, 3), "peak_mib": round(peak / 2**20, 1),
            "test_places": len(game_map.places), "size_km": round(game_map.size_km, 1),
            "lon_span_deg": round(lon_span, 3), "zoom": round(view.zoom, 2) if view else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m geoai.bench maps", description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=list(MAPS), help="maps to load (default: all)")
    parser.add_argument("--places", type=int, help="places of the country map (default 100000)")
    parser.add_argument("--keep", type=Path, help="write the generated maps here and keep them")
    args = parser.parse_args(argv)
    if args.places is not None and args.places < 1:
        parser.error("--places must be at least 1")
    rng = np.random.default_rng(0)
    results = {}
    with tempfile.TemporaryDirectory(prefix="geoai-maps-") as tmp:
        root = args.keep or Path(tmp)
        for name in args.only or list(MAPS):
            n, generate = MAPS[name]
            if name == "country-100k" and args.places:
                n = args.places
            folder = root / name
            if not (folder / "metadata.csv").is_file():
                write_map(folder, *generate(rng, n))
            result = {"places": n, **measure(folder)}
            results[name] = result
            print(f"{name:>13}: {n:>7,} places  {result['seconds']:>7.2f} s  peak {result['peak_mib']:>7.1f} MiB"
                  f"  lon span {result['lon_span_deg']:>7.2f} deg  size {result['size_km']:>8,.0f} km"
                  f"  zoom {result['zoom']}", flush=True)
    print(json.dumps(results), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
