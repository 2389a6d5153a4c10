"""The map benchmark's generator: any number of places, below the filesystem's link limit."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from geoai.bench import maps


@pytest.mark.parametrize("places, per_source", [(1, 3), (7, 3), (9, 3), (25, 4)])
def test_views_spread_over_sources_under_the_link_limit(tmp_path, monkeypatch, places, per_source):
    monkeypatch.setattr(maps, "LINKS_PER_SOURCE", per_source)
    lats, lons = np.linspace(43, 46, places), np.linspace(14, 19, places)
    maps.write_map(tmp_path / "m", lats, lons)
    views = sorted((tmp_path / "m" / "images").glob("*.jpg"))
    assert len(views) == places
    sources = sorted((tmp_path / "m").glob("view-*.jpg"))
    assert len(sources) == -(-places // per_source)
    assert max(s.stat().st_nlink for s in sources) <= per_source + 1  # the source itself and its links
    for view in views[:: max(1, places // 5)]:
        with Image.open(view) as image:
            assert image.size == (32, 24)
