"""Geolocation models: backbones (image -> embedding), heads (embedding -> [lat, lon]),
baselines, the training loop for heads, the embedding cache and model bundles.

    backbone = load_backbone("beit")                  # or a local checkpoint folder
    emb = compute_embeddings(backbone, dataset, cache_dir)
    head = build_head("geocell", backbone.embed_dim, train_latlon=dataset.coords)
    head, history = fit_head(head, emb, dataset.coords, val_emb=..., val_latlon=...)
    save_bundle("models/beit-geocell", backbone=backbone, head=head, ...)
    Bundle.load("models/beit-geocell").predict_images([photo])   # -> [lat, lon]
"""
from geoai.models.backbones import (
    CHECKPOINTS_DIR,
    KNOWN_BACKBONES,
    Backbone,
    BackboneError,
    BackboneSpec,
    backbone_status,
    load_backbone,
    resolve_backbone,
)
from geoai.models.baselines import MedoidBaseline, NearestNeighbourBaseline, build_baseline, medoid
from geoai.models.bundle import BUNDLE_FORMAT, Bundle, BundleError, discover_bundles, save_bundle
from geoai.models.embeddings import EmbeddingError, compute_embeddings, fuse_views
from geoai.models.fit import fit_head
from geoai.models.heads import (
    BASELINE_TYPES,
    HEAD_TYPES,
    HeadError,
    build_head,
    head_from_config,
    predict_latlon,
)

__all__ = [
    "BASELINE_TYPES", "BUNDLE_FORMAT", "CHECKPOINTS_DIR", "HEAD_TYPES", "KNOWN_BACKBONES",
    "Backbone", "BackboneError", "BackboneSpec", "Bundle", "BundleError", "EmbeddingError",
    "HeadError", "MedoidBaseline", "NearestNeighbourBaseline", "backbone_status", "build_baseline",
    "build_head", "compute_embeddings", "discover_bundles", "fit_head", "fuse_views",
    "head_from_config", "load_backbone", "medoid", "predict_latlon", "resolve_backbone", "save_bundle",
]
