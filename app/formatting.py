"""How numbers read on every page: km with at most one decimal, points with thousands separators."""
from __future__ import annotations

import math


def km(value: float | None) -> str:
    """A distance for people: "0.4 km", "133.2 km", "4,583 km" (no decimal from 1,000 km on)."""
    if value is None or not math.isfinite(value):
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f} km"
    return f"{value:,.1f} km"


def km_number(value: float | None) -> str:
    """km() without the unit, for table columns already headed "km"."""
    return km(value).removesuffix(" km")


def points(value: float | int | None) -> str:
    """Points as a whole number with thousands separators: "12,345"."""
    if value is None or not math.isfinite(float(value)):
        return "-"
    return f"{round(float(value)):,}"


def percent(share: float | None, decimals: int = 0) -> str:
    """A probability or share in [0, 1] as "42%" (below the shown precision: "<1%")."""
    if share is None or not math.isfinite(share):
        return "-"
    value = 100 * share
    smallest = 10 ** -decimals
    if 0 < value < smallest:
        return f"<{smallest:g}%"
    return f"{value:.{decimals}f}%"


def coordinate(lat: float, lon: float) -> str:
    """A position people can read: "45.140° N, 15.766° E"."""
    ns = "N" if lat >= 0 else "S"
    ew = "E" if lon >= 0 else "W"
    return f"{abs(lat):.3f}° {ns}, {abs(lon):.3f}° {ew}"
