"""Human-readable text for dataset summaries and problem lists (used by the CLI)."""
from __future__ import annotations

from collections import Counter
from typing import Any

from geoai.data.errors import Problem

MAX_HISTOGRAM_ITEMS = 12


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def format_summary(summary: dict[str, Any]) -> str:
    """Multi-line text of `GeoDataset.summary()`."""
    views = summary["views_per_place"]
    items = list(views["histogram"].items())
    histogram = ", ".join(f"{_plural(n, 'view')}: {g}" for n, g in items[:MAX_HISTOGRAM_ITEMS])
    if len(items) > MAX_HISTOGRAM_ITEMS:
        histogram += f", ... ({len(items) - MAX_HISTOGRAM_ITEMS} more sizes)"
    countries = summary["countries"]
    top = ", ".join(f"{code} {n}" for code, n in countries["top"])
    lines = [
        f"Dataset {summary['name']} ({summary['root']})",
        f"  images:          {summary['images']:,}",
        f"  places:          {summary['places']:,} (location_id)",
        f"  views per place: min {views['min']}, mean {views['mean']:.2f}, max {views['max']}"
        + (f"  [{histogram}]" if histogram else ""),
        f"  countries:       {countries['count']}" + (f"  (top: {top})" if top else "")
        + (f"; {countries['unknown_images']} images without country"
           if countries["unknown_images"] else ""),
        "  splits:          " + ", ".join(
            f"{name} {_plural(s['images'], 'image')} / {_plural(s['places'], 'place')}"
            for name, s in summary["splits"].items()),
    ]
    return "\n".join(lines)


def format_problems(problems: list[Problem]) -> str:
    """Count by kind, then one line per problem naming its row and file."""
    if not problems:
        return "  problems:        none"
    counts = Counter(p.kind for p in problems)  # kinds in order of first appearance
    lines = [f"  problems:        {len(problems):,} ("
             + ", ".join(f"{k} {n}" for k, n in counts.items()) + ")"]
    lines += [f"    - {p.describe()}" for p in problems]
    return "\n".join(lines)
