import numpy as np
import pandas as pd
import pytest

from geoai.metrics import compute_metrics


def test_metrics_on_known_errors():
    true = np.array([[45.0, 15.0]] * 5)
    # predictions straight north of the truth by known distances
    km = np.array([0.5, 20.0, 150.0, 700.0, 3000.0])
    pred = true.copy()
    pred[:, 0] += km / 111.195  # 1 degree of latitude = 111.195 km on geopy's sphere
    m = compute_metrics(pred, true)
    assert m["n"] == 5
    assert m["mean_km"] == pytest.approx(km.mean(), rel=1e-3)
    assert m["median_km"] == pytest.approx(150.0, rel=1e-3)
    assert [m[f"within_{t}km"] for t in (1, 25, 200, 750, 2500)] == [0.2, 0.4, 0.6, 0.8, 0.8]
    assert 0 < m["mean_points"] < 5000
    # The same errors are worth fewer points on a small (country-sized) map.
    assert compute_metrics(pred, true, map_size_km=500.0)["mean_points"] < m["mean_points"]


def test_country_accuracy_uses_offline_reverse_geocoding(shared_data):
    df = pd.read_csv(shared_data / "croatia-streetview" / "metadata.csv", keep_default_na=False).head(40)
    true = df[["lat", "lon"]].to_numpy()
    perfect = compute_metrics(true, true)
    assert perfect["country_accuracy"] == 1.0 and perfect["mean_points"] == 5000
    paris = np.tile([[48.8566, 2.3522]], (len(true), 1))
    assert compute_metrics(paris, true)["country_accuracy"] == 0.0
    # given labels override the geocoder for the truth
    labels = ["FR"] * len(true)
    assert compute_metrics(paris, true, true_country=labels)["country_accuracy"] == 1.0


def test_metrics_reject_mismatched_or_invalid_input():
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        compute_metrics(np.zeros((3, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="invalid"):
        compute_metrics([[95.0, 0.0]], [[0.0, 0.0]])
    with pytest.raises(ValueError, match="map size must be positive"):
        compute_metrics([[45.0, 15.0]], [[45.0, 15.0]], map_size_km=0.0)
