"""Country borders drawn from a local file, so the map works without any tile server.

assets/countries-50m.geojson holds Natural Earth's 1:50m countries (public domain), taken
from the `world-atlas` npm package (TopoJSON, ISC licence) and converted by this module:

    npm pack world-atlas@2.0.2 && tar xzf world-atlas-2.0.2.tgz
    python -m app.borders package/countries-50m.json assets/countries-50m.geojson

Arcs are simplified to 0.03 degree and coordinates rounded to 0.01 degree (~1-3 km),
below what a player can click on a country map, for a file of a few hundred kB.
"""
from __future__ import annotations

import argparse
import json
from functools import lru_cache
from pathlib import Path

from geoai.land import BORDERS as BORDERS_FILE

DECIMALS = 2
TOLERANCE_DEG = 0.03  # ~3 km: keeps the file small, hardly visible at country zoom
WORLD_TOLERANCE_DEG = 0.25  # the whole world at once needs ~25 km detail at most


class BordersError(RuntimeError):
    """The borders file is missing or unreadable."""


@lru_cache(maxsize=1)
def load_borders(path: Path = BORDERS_FILE) -> dict:
    """The country borders as a GeoJSON FeatureCollection (cached for the process)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BordersError(f"cannot read the country borders {path}: {exc}. "
                           "Regenerate it with `python -m app.borders` (see app/borders.py).") from exc
    if data.get("type") != "FeatureCollection":
        raise BordersError(f"{path} is not a GeoJSON FeatureCollection")
    return data


def topojson_to_geojson(topology: dict, object_name: str = "countries", decimals: int = DECIMALS,
                        tolerance_deg: float = TOLERANCE_DEG) -> dict:
    """Decode one object of a quantized TopoJSON topology into a GeoJSON FeatureCollection.

    Arcs are simplified (Douglas-Peucker, `tolerance_deg`) before rings are assembled, so
    neighbouring countries keep sharing exactly the same border line.
    """
    arcs = [_simplify(arc, tolerance_deg) for arc in _decode_arcs(topology)]

    def ring(indices: list[int]) -> list[list[float]]:
        points: list[list[float]] = []
        for i in indices:
            pts = arcs[i] if i >= 0 else arcs[~i][::-1]  # a negative index is a reversed arc
            points.extend(pts if not points else pts[1:])  # consecutive arcs share an end point
        return _dedupe([[round(x, decimals), round(y, decimals)] for x, y in points])

    features = []
    for geometry in topology["objects"][object_name]["geometries"]:
        kind = geometry.get("type")
        if kind == "Polygon":
            coordinates = [ring(r) for r in geometry["arcs"]]
        elif kind == "MultiPolygon":
            coordinates = [[ring(r) for r in polygon] for polygon in geometry["arcs"]]
        else:
            continue  # null geometries (none in Natural Earth countries)
        features.append({"type": "Feature",
                         "properties": {"name": geometry.get("properties", {}).get("name", "")},
                         "geometry": {"type": kind, "coordinates": coordinates}})
    return {"type": "FeatureCollection", "features": features}


def _decode_arcs(topology: dict) -> list[list[list[float]]]:
    transform = topology.get("transform")
    decoded = []
    for arc in topology["arcs"]:
        if transform is None:
            decoded.append([list(map(float, p[:2])) for p in arc])
            continue
        (sx, sy), (tx, ty) = transform["scale"], transform["translate"]
        x = y = 0
        points = []
        for dx, dy, *_ in arc:  # delta-encoded quantized positions
            x += dx
            y += dy
            points.append([x * sx + tx, y * sy + ty])
        decoded.append(points)
    return decoded


def _simplify(points: list[list[float]], tolerance: float) -> list[list[float]]:
    """Douglas-Peucker simplification keeping both end points (iterative, no recursion limit)."""
    if tolerance <= 0 or len(points) < 3:
        return points
    keep = [False] * len(points)
    keep[0] = keep[-1] = True
    stack = [(0, len(points) - 1)]
    while stack:
        first, last = stack.pop()
        (x1, y1), (x2, y2) = points[first], points[last]
        dx, dy = x2 - x1, y2 - y1
        norm = (dx * dx + dy * dy) ** 0.5
        worst, worst_i = -1.0, -1
        for i in range(first + 1, last):
            px, py = points[i]
            if norm == 0:
                d = ((px - x1) ** 2 + (py - y1) ** 2) ** 0.5
            else:
                d = abs(dy * px - dx * py + x2 * y1 - y2 * x1) / norm
            if d > worst:
                worst, worst_i = d, i
        if worst > tolerance:
            keep[worst_i] = True
            stack += [(first, worst_i), (worst_i, last)]
    return [p for p, k in zip(points, keep) if k]


def _dedupe(points: list[list[float]]) -> list[list[float]]:
    """Drop consecutive repeats that rounding creates; keep the ring closed."""
    out = [p for i, p in enumerate(points) if i == 0 or p != points[i - 1]]
    if len(out) >= 2 and out[0] != out[-1]:
        out.append(out[0])
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Convert world-atlas TopoJSON to the game's GeoJSON borders.")
    parser.add_argument("topojson", type=Path)
    parser.add_argument("output", type=Path, nargs="?", default=BORDERS_FILE)
    parser.add_argument("--decimals", type=int, default=DECIMALS)
    parser.add_argument("--tolerance", type=float, default=TOLERANCE_DEG, help="simplification, degrees")
    args = parser.parse_args(argv)
    try:
        topology = json.loads(args.topojson.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        parser.error(f"cannot read {args.topojson}: {exc}")
    try:
        geojson = topojson_to_geojson(topology, decimals=args.decimals, tolerance_deg=args.tolerance)
    except (KeyError, TypeError, IndexError, AttributeError) as exc:
        parser.error(f"{args.topojson} is not a world-atlas TopoJSON topology with 'countries' "
                     f"({type(exc).__name__}: {exc})")
    args.output.write_text(json.dumps(geojson, separators=(",", ":")), encoding="utf-8")
    print(f"wrote {len(geojson['features'])} countries to {args.output} ({args.output.stat().st_size / 1e3:.0f} kB)")


@lru_cache(maxsize=32)
def borders_json(region: tuple[float, float, float, float] | None) -> str:
    """Compact GeoJSON of the borders for a map: the countries touching `region`
    (south, west, north, east), or the whole world, further simplified, when None."""
    features = load_borders()["features"]
    if region is None:
        chosen = [_simplified_feature(f, WORLD_TOLERANCE_DEG) for f in features]
    else:
        chosen = [f for f in features if _touches(f, region)]
    return json.dumps({"type": "FeatureCollection", "features": [f for f in chosen if f]},
                      separators=(",", ":"))


def _polygons(feature: dict) -> list:
    """A Polygon or MultiPolygon feature's polygons (each a list of rings)."""
    geometry = feature["geometry"]
    return [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]


def _touches(feature: dict, region: tuple[float, float, float, float]) -> bool:
    south, west, north, east = region
    for ring in (ring for polygon in _polygons(feature) for ring in polygon):
        xs = [p[0] for p in ring]
        ys = [p[1] for p in ring]
        if min(xs) <= east and max(xs) >= west and min(ys) <= north and max(ys) >= south:
            return True
    return False


def _simplified_feature(feature: dict, tolerance: float) -> dict | None:
    kept = []
    for polygon in _polygons(feature):
        rings = [_dedupe(_simplify(ring, tolerance)) for ring in polygon]
        if len(rings[0]) >= 4:  # an island smaller than the tolerance disappears
            kept.append([r for r in rings if len(r) >= 4])
    if not kept:
        return None
    return {"type": "Feature", "properties": feature["properties"],
            "geometry": {"type": "MultiPolygon", "coordinates": kept}}


if __name__ == "__main__":
    main()
