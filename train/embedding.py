"""Embedding a dataset once per backbone, sharded across processes when data-parallel."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from geoai.data import GeoDataset
from geoai.models.embeddings import compute_embeddings
from train.distributed import Runtime


def shard_dataset(dataset: GeoDataset, rank: int, world_size: int) -> GeoDataset:
    """Rows rank, rank + world_size, ... of the dataset (all rows in one process)."""
    if world_size == 1:
        return dataset
    frame = dataset.frame.iloc[rank::world_size].reset_index(drop=True)
    # Share the file-hash cache (as GeoDataset.subset does) so no file is hashed twice.
    return GeoDataset(root=dataset.root, frame=frame, problems=list(dataset.problems),
                      name=dataset.name, _hash_cache=dataset._hash_cache)


def embed_dataset(runtime: Runtime, backbone, dataset: GeoDataset, cache_dir: str | Path | None, *,
                  batch_size: int, num_workers: int) -> np.ndarray:
    """(len(dataset), D) float32 embeddings aligned with dataset.frame, on every process.

    Each process embeds its shard of rows; the shards are gathered and put back in row
    order. The on-disk cache reuses rows already embedded by an earlier run.
    """
    # Processes share the cache: each writes uniquely named, atomically renamed parts.
    cache = Path(cache_dir) if cache_dir else None
    shard = shard_dataset(dataset, runtime.rank, runtime.world_size)
    emb = compute_embeddings(backbone, shard, cache, batch_size=batch_size,
                             num_workers=num_workers, progress=runtime.is_main)
    emb = np.asarray(emb, dtype=np.float32)
    if not runtime.distributed:
        return emb
    parts = runtime.gather_objects(emb)
    out = np.empty((len(dataset), parts[0].shape[1]), dtype=np.float32)
    for rank, part in enumerate(parts):
        out[rank::runtime.world_size] = part
    return out
