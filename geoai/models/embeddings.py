"""Backbone embeddings of a whole dataset, cached on disk, and multi-view fusion.

Embedding every image through a large backbone dominates the cost of an experiment, and
the same images are embedded again for every head. The cache therefore keys each row by
the backbone's `cache_key` (weights + preprocessing), the input image size and the SHA-1
of the image file: rows already embedded are reused when a dataset grows or is re-split,
and a different backbone (or fine-tuned weights) never reads stale vectors.

Cache layout: <cache_dir>/<cache_key>-<size>px/part-*.safetensors, each part holding
"sha1" (M, 20) uint8 digests and "embeddings" (M, D) float32. New rows go into new parts,
written every `FLUSH_EVERY` images so an interrupted run resumes where it stopped; parts
are merged when there are many.

On CPU the backbone runs through the graph runtime (geoai.models.runtime, fp32 answers) when
one is installed; its exported graph is cached beside a local checkpoint, or in
<cache_dir>/graphs/ for a hub model. Images are then decoded in threads, not in forked
worker processes: forking a process that runs the runtime's threads can crash.
"""
from __future__ import annotations

import json
import uuid
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader, Dataset

from geoai.atomic import atomic_path
from geoai.data.dataset import GeoDataset
from geoai.data.errors import ImageError
from geoai.data.images import open_image
from geoai.models.backbones import Backbone
from geoai.models.runtime import graphs_loaded
from geoai.progress import progress_bar

FLUSH_EVERY = 2048  # images per cache part while computing
MAX_PARTS = 8  # merge the parts into one above this many


class EmbeddingError(RuntimeError):
    """Embeddings cannot be computed (an unreadable image, a broken cache folder)."""


class _ImageFiles(Dataset):
    """Decodes and preprocesses one image per item (runs inside DataLoader workers)."""

    def __init__(self, paths: Sequence[str], processor) -> None:
        self.paths = list(paths)
        self.processor = processor

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        try:
            image = open_image(self.paths[i])
        except ImageError as exc:
            # A one-argument exception survives the trip back from a worker process.
            raise EmbeddingError(f"cannot embed {self.paths[i]}: {exc.reason}") from exc
        return self.processor(images=[image], return_tensors="pt")["pixel_values"][0]


class _ThreadedBatches:
    """Batches of `dataset` items in order, decoded by `workers` threads, a few batches ahead.

    Used instead of worker processes once a graph runtime is loaded: nothing is forked, and
    nothing starts up (JPEG decoding and resizing release the GIL, as does the runtime)."""

    def __init__(self, dataset: Dataset, batch_size: int, workers: int) -> None:
        self.dataset, self.batch_size, self.workers = dataset, batch_size, workers

    def __len__(self) -> int:
        return -(-len(self.dataset) // self.batch_size)

    def __iter__(self):
        from collections import deque
        from concurrent.futures import ThreadPoolExecutor

        n, ahead = len(self.dataset), max(2 * self.batch_size, 4 * self.workers)
        with ThreadPoolExecutor(self.workers, thread_name_prefix="geoai-decode") as pool:
            pending: deque = deque()
            submitted = 0
            try:
                for start in range(0, n, self.batch_size):
                    stop = min(start + self.batch_size, n)
                    while submitted < min(n, stop + ahead):
                        pending.append(pool.submit(self.dataset.__getitem__, submitted))
                        submitted += 1
                    yield torch.stack([pending.popleft().result() for _ in range(stop - start)])
            finally:
                for future in pending:
                    future.cancel()


def image_loader(paths: Sequence[str], processor, batch_size: int, num_workers: int,
                 device: torch.device):
    """Batches of preprocessed images, decoded by `num_workers` workers (0: here, in order).

    Workers are processes, except once this process holds a graph runtime's compiled graph:
    forking it could crash (runtime.worker_context), so its images are decoded in threads.
    """
    dataset = _ImageFiles(list(paths), processor)
    if num_workers > 0 and graphs_loaded():
        return _ThreadedBatches(dataset, batch_size, num_workers)
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                      pin_memory=device.type == "cuda")


def _cache_folder(cache_dir: Path, backbone: Backbone, key: str) -> Path:
    folder = Path(cache_dir) / f"{key}-{backbone.image_size}px"
    folder.mkdir(parents=True, exist_ok=True)
    info = folder / "key.json"
    if not info.exists():  # for humans browsing the cache
        info.write_text(json.dumps({"cache_key": key, "backbone": backbone.spec.name,
                                    "source": backbone.spec.source, "image_size": backbone.image_size,
                                    "embed_dim": backbone.embed_dim}, indent=2))
    return folder


def _read_cache(folder: Path, embed_dim: int) -> tuple[dict[bytes, np.ndarray], list[Path]]:
    """sha1 bytes -> embedding from every readable part, and the parts read."""
    table: dict[bytes, np.ndarray] = {}
    parts = sorted(folder.glob("part-*.safetensors"))
    good = []
    for part in parts:
        try:
            data = load_file(str(part))
            sha, emb = data["sha1"].numpy(), data["embeddings"].numpy()
            if sha.shape[1:] != (20,) or emb.shape != (len(sha), embed_dim):
                raise ValueError(f"shapes {sha.shape} and {emb.shape} do not fit embed_dim {embed_dim}")
        except (OSError, SafetensorError, KeyError, ValueError) as exc:
            # A cache is only an optimisation: a damaged part is recomputed, not trusted.
            warnings.warn(f"ignoring damaged embedding cache file {part} ({exc}); its rows are recomputed",
                          stacklevel=3)
            continue
        good.append(part)
        for digest, vector in zip(sha, emb):
            table[digest.tobytes()] = vector
    return table, good


def _write_part(folder: Path, sha: np.ndarray, emb: np.ndarray) -> Path:
    path = folder / f"part-{uuid.uuid4().hex}.safetensors"
    with atomic_path(path) as tmp:  # readers never see a half-written part
        save_file({"sha1": torch.from_numpy(np.array(sha, dtype=np.uint8)),
                   "embeddings": torch.from_numpy(np.array(emb, dtype=np.float32))}, str(tmp))
    return path


def _merge_parts(folder: Path, parts: list[Path], table: dict[bytes, np.ndarray]) -> None:
    _write_part(folder, _keys_array(list(table)), np.stack(list(table.values())))
    for part in parts:
        part.unlink(missing_ok=True)


def compute_embeddings(backbone: Backbone, dataset: GeoDataset, cache_dir: Path | None, *,
                       batch_size: int = 32, num_workers: int = 2, progress: bool = True) -> np.ndarray:
    """(N, D) float32 embeddings aligned with `dataset.frame` rows.

    With a `cache_dir`, images whose file content was embedded before by the same
    backbone weights and preprocessing are read from the cache, and only the others run
    through the backbone (decoded and preprocessed in `num_workers` DataLoader workers).
    Raises EmbeddingError naming the file when an image cannot be read.
    """
    frame = dataset.frame
    n, dim = len(frame), backbone.embed_dim
    if n == 0:
        return np.zeros((0, dim), dtype=np.float32)
    if batch_size < 1 or num_workers < 0:
        raise ValueError(f"batch_size must be >= 1 and num_workers >= 0, got {batch_size}, {num_workers}")
    keys = [bytes.fromhex(h) for h in dataset.file_hashes()]  # 20-byte SHA-1 digests

    table: dict[bytes, np.ndarray] = {}
    folder, parts = None, []
    if cache_dir is not None:
        folder = _cache_folder(Path(cache_dir), backbone, backbone.cache_key)
        table, parts = _read_cache(folder, dim)

    # One computation per distinct file content, in dataset order.
    todo: dict[bytes, str] = {}
    for key, path in zip(keys, frame["path"]):
        if key not in table and key not in todo:
            todo[key] = str(path)
    if todo:
        backbone.use_runtime("throughput", Path(cache_dir) / "graphs" if cache_dir is not None else None)
        loader = image_loader(list(todo.values()), backbone.processor, batch_size, num_workers,
                              backbone.device)
        todo_keys = list(todo)
        pending_keys: list[bytes] = []
        pending: list[np.ndarray] = []
        done = 0
        bar = progress_bar(total=len(todo), show=progress, unit="img",
                   desc=f"embedding with {backbone.spec.name}")
        backbone.model.eval()
        with torch.inference_mode():
            for pixels in loader:
                vectors = backbone.infer(pixels.to(backbone.device, non_blocking=True)).float().cpu().numpy()
                batch_keys = todo_keys[done:done + len(vectors)]
                done += len(vectors)
                table.update(zip(batch_keys, vectors))
                pending_keys += batch_keys
                pending.append(vectors)
                bar.update(len(vectors))
                if folder is not None and len(pending_keys) >= FLUSH_EVERY:
                    parts.append(_write_part(folder, _keys_array(pending_keys), np.concatenate(pending)))
                    pending_keys, pending = [], []
        bar.close()
        if folder is not None and pending_keys:
            parts.append(_write_part(folder, _keys_array(pending_keys), np.concatenate(pending)))
        if folder is not None and len(parts) > MAX_PARTS:
            _merge_parts(folder, parts, table)
    return np.stack([table[key] for key in keys]).astype(np.float32, copy=False)


def _keys_array(keys: list[bytes]) -> np.ndarray:
    """(M, 20) uint8 array of M SHA-1 digests, as stored in a cache part."""
    return np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(-1, 20)


def fuse_views(embeddings: np.ndarray, group_keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Mean embedding per group (the views of one place).

    Returns (G, D) fused embeddings and (G,) the row index of each group's first row (to
    fetch its lat/lon and split). Groups are in order of first appearance.
    """
    embeddings = np.asarray(embeddings, dtype=np.float32)
    if embeddings.ndim != 2:
        raise ValueError(f"embeddings must be (N, D), got shape {embeddings.shape}")
    if len(group_keys) != len(embeddings):
        raise ValueError(f"{len(group_keys)} group keys for {len(embeddings)} embeddings")
    codes, uniques = pd.factorize(pd.Series(list(group_keys), dtype=object), sort=False)
    if (codes < 0).any():
        raise ValueError("group keys must not be missing (NaN/None)")
    sums = np.zeros((len(uniques), embeddings.shape[1]), dtype=np.float64)
    np.add.at(sums, codes, embeddings)
    counts = np.bincount(codes, minlength=len(uniques))
    _, first = np.unique(codes, return_index=True)
    return (sums / counts[:, None]).astype(np.float32), first.astype(np.int64)
