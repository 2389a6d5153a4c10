"""Refined geocell guesses: always a training location, inside the head's most probable cells,
and kept by a bundle through save and load."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from geoai.models.backbones import BackboneSpec
from geoai.models.bundle import Bundle, save_bundle
from geoai.models.fit import fit_head
from geoai.models.heads import cell_probabilities, predict_latlon
from geoai.models.registry import HeadError, build_head, head_from_config
from geoai.models.refinement import fit_refinement, with_refinement


def clustered(n_per: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Places around four cities (one across the Atlantic), embeddings that encode the city plus noise."""
    rng = np.random.default_rng(seed)
    cities = np.array([[48.85, 2.35], [40.71, -74.0], [35.68, 139.69], [-33.87, 151.21]])
    latlon = np.concatenate([c + rng.normal(0, 0.3, (n_per, 2)) for c in cities])
    which = np.repeat(np.arange(len(cities)), n_per)
    prototypes = np.random.default_rng(42).normal(size=(len(cities), 16))  # the same cities in every split
    emb = prototypes[which] + rng.normal(0, 0.3, (len(which), 16))
    return latlon, emb.astype(np.float32)


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    train_latlon, train_emb = clustered(30, 0)
    val_latlon, val_emb = clustered(8, 1)
    head = build_head("geocell", 16, train_latlon=train_latlon, cell_min_samples=5, cell_max_samples=20)
    head, _ = fit_head(head, train_emb, train_latlon, None, val_emb, val_latlon, epochs=30, lr=1e-2, patience=30,
                       seed=0, batch_size=32, device="cpu")
    return head.eval(), train_latlon, train_emb, val_latlon, val_emb


def test_refined_guesses_are_training_locations_inside_the_top_cells(trained):
    head, train_latlon, train_emb, _, val_emb = trained
    refined = with_refinement(head, train_emb, train_latlon, top_cells=3, temperature=0.1)
    guesses = predict_latlon(refined, val_emb)
    plain = predict_latlon(head, val_emb)
    nearest = np.abs(guesses[:, None, :] - train_latlon[None, :, :]).max(axis=2).min(axis=1)
    assert (nearest < 1e-4).all()  # each guess is exactly where a training photo was taken
    _, probs = cell_probabilities(head, val_emb)
    top3 = np.argsort(-probs, axis=1)[:, :3]
    cells = head.cells.assign(guesses)
    assert all(cell in row for cell, row in zip(cells, top3))
    # The unrefined head averages centroids, a point no photo may come from.
    assert (np.abs(plain[:, None, :] - train_latlon[None]).max(axis=2).min(axis=1) > 1e-4).any()


def test_refinement_settings_come_from_validation_and_travel_in_the_bundle(trained, tmp_path):
    head, train_latlon, train_emb, val_latlon, val_emb = trained
    refined, info = fit_refinement(head, train_emb, train_latlon, val_emb, val_latlon)
    assert info["val_median_km"] <= info["unrefined_val_median_km"]  # retrieval beats cell centres here
    spec = BackboneSpec("colour", "colour", "transformer", "stand-in")
    save_bundle(tmp_path / "b", backbone=spec, head=refined, metrics={}, dataset_info={"name": "x"}, fusion="single")
    loaded = Bundle.load(tmp_path / "b")
    assert loaded.config.head["refine"] == refined.config["refine"]
    np.testing.assert_allclose(predict_latlon(loaded.head, val_emb), predict_latlon(refined, val_emb))


def test_a_broken_refine_setting_is_a_head_error(trained):
    config = trained[0].config
    config["refine"] = {"places": 3, "top_cells": 0, "temperature": 0.1}
    with pytest.raises(HeadError, match="top_cells"):
        head_from_config(config)
