"""End-to-end embedding throughput: JPEG decode + resize/normalise in DataLoader workers,
then the model, as the embedding cache of `python -m train` runs it (the same loader: worker
processes, or threads once a graph runtime is loaded in this process)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch.utils.data import DataLoader

# The loader compute_embeddings uses: the benchmark times the real decoding path.
from geoai.models.embeddings import image_loader


def make_loader(paths: Sequence[Path], processor, batch_size: int, workers: int,
                device: torch.device) -> DataLoader:
    return image_loader([str(p) for p in paths], processor, batch_size, workers, device)


def loader_ips(paths: Sequence[Path], processor, batch_size: int, workers: int) -> float:
    """Images per second of decoding + preprocessing alone."""
    start = time.perf_counter()
    n = sum(len(batch) for batch in make_loader(paths, processor, batch_size, workers, torch.device("cpu")))
    return n / (time.perf_counter() - start)


def end_to_end_ips(paths: Sequence[Path], processor, embed: Callable[[torch.Tensor], torch.Tensor],
                   batch_size: int, workers: int, device: torch.device) -> float:
    """Images per second from JPEG files to embeddings (workers overlap with the model)."""
    start = time.perf_counter()
    n = 0
    for batch in make_loader(paths, processor, batch_size, workers, device):
        n += len(embed(batch))
    return n / (time.perf_counter() - start)
