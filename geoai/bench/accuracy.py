"""Do the fast embeddings give the same answers? Cosine to fp32, and the drift in km of
coordinates predicted by a head fitted on the fp32 embeddings."""
from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import RidgeCV
from sklearn.preprocessing import StandardScaler

from geoai.geodesy import from_unit_vectors, haversine_km, to_unit_vectors
from geoai.models.speed import embedding_cosine


class LinearGeoHead:
    """A stand-in for a trained bundle's head: ridge regression from standardised embeddings
    to the unit vector of the place (no longitude wrap-around), alpha by leave-one-out CV."""

    def __init__(self, embeddings: np.ndarray, latlon: np.ndarray) -> None:
        self.scaler = StandardScaler().fit(embeddings)
        self.ridge = RidgeCV(alphas=np.logspace(-2, 4, 13)).fit(
            self.scaler.transform(embeddings), to_unit_vectors(latlon))

    def predict(self, embeddings: np.ndarray) -> np.ndarray:
        """(N, 2) [lat, lon] degrees."""
        return from_unit_vectors(self.ridge.predict(self.scaler.transform(embeddings)))


def compare_embeddings(reference: np.ndarray, fast: np.ndarray, latlon: np.ndarray) -> dict:
    """min cosine of fast vs fp32 embeddings and max km the head's predictions move."""
    head = LinearGeoHead(reference, latlon)
    before, after = head.predict(reference), head.predict(fast)
    drift = haversine_km(before[:, 0], before[:, 1], after[:, 0], after[:, 1])
    return {"min_cosine": embedding_cosine(torch.from_numpy(reference), torch.from_numpy(fast)),
            "max_drift_km": float(np.max(drift))}
