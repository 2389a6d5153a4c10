"""Where the map writes country names: one point well inside each country, computed once.

`python -m app.country_labels` reads the borders (assets/countries-50m.geojson, Natural
Earth) and writes assets/country-labels.json: per country its name, a label point (the
point of its largest polygon farthest from the coast and borders, found by a refined
grid search) and its area, which decides which names win when labels would overlap.
"""
from __future__ import annotations

import argparse
import json
import math
from functools import lru_cache
from pathlib import Path

import numpy as np

from app.borders import BORDERS_FILE, load_borders

LABELS_FILE = BORDERS_FILE.parent / "country-labels.json"
GRID = 24  # samples per side of each search grid
REFINEMENTS = 3
EARTH_KM_PER_DEG = 111.32


class LabelsError(RuntimeError):
    """The labels file is missing or unreadable."""


def _unwrapped(ring: list[list[float]]) -> np.ndarray:
    """A ring's (lon, lat) with longitudes made continuous across the antimeridian."""
    points = np.asarray(ring, dtype=np.float64)
    steps = np.diff(points[:, 0])
    shift = np.concatenate([[0.0], np.cumsum(-360.0 * np.round(steps / 360.0))])
    points[:, 0] += shift
    return points


def _area_km2(ring: np.ndarray) -> float:
    """Approximate area of a ring (shoelace on an equirectangular projection at its latitude)."""
    x = ring[:, 0] * np.cos(np.radians(ring[:, 1]))
    y = ring[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2) * EARTH_KM_PER_DEG ** 2


def _inside(px: np.ndarray, py: np.ndarray, ring: np.ndarray) -> np.ndarray:
    """Even-odd rule: which points lie inside the ring."""
    inside = np.zeros(px.shape, dtype=bool)
    x1, y1 = ring[:-1, 0], ring[:-1, 1]
    x2, y2 = ring[1:, 0], ring[1:, 1]
    for ax, ay, bx, by in zip(x1, y1, x2, y2):
        crosses = (ay > py) != (by > py)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = ax + (py - ay) * (bx - ax) / (by - ay)
        inside ^= crosses & (px < x_at)
    return inside


def _edge_distance(px: np.ndarray, py: np.ndarray, rings: list[np.ndarray], scale: float) -> np.ndarray:
    """Distance (degrees of latitude) from each point to the nearest edge of any ring."""
    best = np.full(px.shape, np.inf)
    for ring in rings:
        if len(ring) < 2:
            continue
        ax, ay = ring[:-1, 0] * scale, ring[:-1, 1]
        bx, by = ring[1:, 0] * scale, ring[1:, 1]
        qx, qy = (px * scale)[:, None], py[:, None]
        dx, dy = bx - ax, by - ay
        length2 = np.maximum(dx * dx + dy * dy, 1e-18)
        t = np.clip(((qx - ax) * dx + (qy - ay) * dy) / length2, 0.0, 1.0)
        d = np.hypot(qx - (ax + t * dx), qy - (ay + t * dy)).min(axis=1)
        best = np.minimum(best, d)
    return best


def label_point(polygon: list[list[list[float]]]) -> tuple[float, float]:
    """(lon, lat) inside a polygon (outer ring first, then holes), far from its edges."""
    rings = [_unwrapped(r) for r in polygon]
    outer = rings[0]
    west, south = outer.min(axis=0)
    east, north = outer.max(axis=0)
    scale = math.cos(math.radians((south + north) / 2))
    best = (float(outer[:, 0].mean()), float(outer[:, 1].mean()))
    half_w, half_h = (east - west) / 2, (north - south) / 2
    centre = ((west + east) / 2, (south + north) / 2)
    best_distance = -1.0
    for _ in range(REFINEMENTS):
        xs = np.linspace(centre[0] - half_w, centre[0] + half_w, GRID)
        ys = np.linspace(centre[1] - half_h, centre[1] + half_h, GRID)
        px, py = (a.ravel() for a in np.meshgrid(xs, ys))
        ok = _inside(px, py, outer)
        for hole in rings[1:]:
            ok &= ~_inside(px, py, hole)
        if ok.any():
            distance = _edge_distance(px[ok], py[ok], rings, scale)
            i = int(np.argmax(distance))
            if distance[i] > best_distance:
                best_distance = float(distance[i])
                best = (float(px[ok][i]), float(py[ok][i]))
        centre = best
        half_w, half_h = half_w / 4, half_h / 4
    lon = (best[0] + 180.0) % 360.0 - 180.0
    return round(lon, 3), round(best[1], 3)


def build_labels(borders: dict) -> list[dict]:
    """One label per named country: its name, label point and total area (km2, rounded)."""
    labels = []
    for feature in borders["features"]:
        name = (feature.get("properties") or {}).get("name", "").strip()
        geometry = feature["geometry"]
        polygons = [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]
        if not name or not polygons:
            continue
        areas = [_area_km2(_unwrapped(p[0])) for p in polygons]
        largest = polygons[int(np.argmax(areas))]
        lon, lat = label_point(largest)
        labels.append({"name": name, "lon": lon, "lat": lat, "area": int(round(sum(areas), -2))})
    labels.sort(key=lambda label: -label["area"])
    return labels


@lru_cache(maxsize=1)
def load_labels(path: Path = LABELS_FILE) -> tuple[dict, ...]:
    """The committed label points (largest countries first)."""
    try:
        labels = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LabelsError(f"cannot read the country labels {path}: {exc}. "
                          "Regenerate them with `python -m app.country_labels`.") from exc
    return tuple(labels)


@lru_cache(maxsize=1)
def label_characters() -> str:
    """Every character of every country name: the map's font atlas is built once from it."""
    return "".join(sorted({c for label in load_labels() for c in label["name"]}))


def labels_json(region: tuple[float, float, float, float] | None) -> str:
    """The labels for a map as compact JSON: inside `region` (south, west, north, east), or all."""
    chosen = []
    for label in load_labels():
        if region is not None:
            south, west, north, east = region
            if not (south <= label["lat"] <= north and west <= label["lon"] <= east):
                continue
        # deck.gl's collision priority runs from -1000 to 1000: bigger countries rank higher.
        priority = round(min(1000.0, 100 * math.log10(max(label["area"], 1))))
        chosen.append({"n": label["name"], "p": [label["lon"], label["lat"]], "r": priority})
    return json.dumps(chosen, separators=(",", ":"), ensure_ascii=False)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Compute the map's country label points from the borders.")
    parser.add_argument("--borders", type=Path, default=BORDERS_FILE)
    parser.add_argument("--output", type=Path, default=LABELS_FILE)
    args = parser.parse_args(argv)
    labels = build_labels(load_borders(args.borders))
    args.output.write_text(json.dumps(labels, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    print(f"wrote {len(labels)} country labels to {args.output}")


if __name__ == "__main__":
    main()
