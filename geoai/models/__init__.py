"""Geolocation models: backbones (image -> embedding), heads (embedding -> [lat, lon]),
baselines (each head type declared in geoai.models.registry), the training loop for heads,
the embedding cache and model bundles.

    backbone = load_backbone("beit")                  # or a local checkpoint folder
    emb = compute_embeddings(backbone, dataset, cache_dir)
    head = build_head("geocell", backbone.embed_dim, train_latlon=dataset.coords)
    head, result = fit_head(head, emb, dataset.coords, val_emb=..., val_latlon=...)  # FitResult
    save_bundle("models/beit-geocell", backbone=backbone, head=head, ...)
    Bundle.load("models/beit-geocell").predict_images([photo])   # -> [lat, lon]
"""
from geoai.models.backbones import (
    Backbone,
    BackboneError,
    BackboneSpec,
    backbone_status,
    known_backbones,
    load_backbone,
    resolve_backbone,
)
# Importing the head modules declares their head types in the registry.
from geoai.models.baselines import MedoidBaseline, NearestNeighbourBaseline, medoid
from geoai.models.bundle import BUNDLE_FORMAT, Bundle, BundleError, discover_bundles, save_bundle
from geoai.models.embeddings import EmbeddingError, compute_embeddings, fuse_views
from geoai.models.fit import EpochRecord, FitResult, fit_head, train_model
from geoai.models.heads import predict_latlon
from geoai.models.registry import (
    HeadError,
    HeadSpec,
    build_head,
    default_heads,
    head_from_config,
    head_names,
    head_spec,
    register_head,
)

__all__ = [
    "BUNDLE_FORMAT",
    "Backbone", "BackboneError", "BackboneSpec", "Bundle", "BundleError", "EmbeddingError", "EpochRecord", "FitResult",
    "HeadError", "HeadSpec", "MedoidBaseline", "NearestNeighbourBaseline", "backbone_status",
    "build_head", "compute_embeddings", "default_heads", "discover_bundles", "fit_head", "fuse_views",
    "head_from_config", "head_names", "head_spec", "known_backbones", "load_backbone", "medoid", "predict_latlon",
    "register_head", "resolve_backbone", "save_bundle", "train_model",
]
