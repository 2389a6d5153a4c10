"""Full fine-tuning: images go through the backbone at every step (the study's setting).

The backbone learns at 1e-5 and the head at 1e-4 (the study's rates). A sample is a
place: all its views are embedded and mean-fused before the head ("single" places are
one image each), so the same model serves both view modes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from geoai.data import open_image
from geoai.models.fit import FitResult, train_model
from geoai.models.runtime import worker_context
from train.distributed import Runtime
from train.samples import Samples


class PlaceImages(Dataset):
    """Pixel tensors of each sample's views, decoded and preprocessed (in DataLoader workers)."""

    def __init__(self, paths: np.ndarray, samples: Samples, processor: Any, cells: np.ndarray | None):
        self.paths = paths
        self.rows = samples.rows
        self.latlon = torch.as_tensor(samples.latlon, dtype=torch.float32)
        self.cells = torch.as_tensor(cells if cells is not None else np.full(len(samples), -1),
                                     dtype=torch.long)
        self.processor = processor

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int):
        images = [open_image(self.paths[r]) for r in self.rows[i]]
        pixels = self.processor(images=images, return_tensors="pt")["pixel_values"]
        return pixels, self.latlon[i], self.cells[i]


def collate_places(batch):
    """Concatenate every view of the batch; group_index says which sample each view belongs to."""
    pixels = torch.cat([item[0] for item in batch])
    group_index = torch.cat([torch.full((len(item[0]),), i, dtype=torch.long) for i, item in enumerate(batch)])
    latlon = torch.stack([item[1] for item in batch])
    cells = torch.stack([item[2] for item in batch])
    return pixels, group_index, latlon, cells


class FinetuneModel(nn.Module):
    """Backbone + head trained together; views of a sample are mean-fused before the head."""

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def fused_embeddings(self, pixel_values: torch.Tensor, group_index: torch.Tensor,
                         n_groups: int) -> torch.Tensor:
        emb = self.backbone(pixel_values)
        sums = torch.zeros(n_groups, emb.shape[1], dtype=emb.dtype, device=emb.device)
        sums = sums.index_add(0, group_index, emb)
        counts = torch.bincount(group_index, minlength=n_groups).clamp(min=1).to(emb.dtype)
        return sums / counts[:, None]

    def forward(self, pixel_values: torch.Tensor, group_index: torch.Tensor, n_groups: int):
        return self.head(self.fused_embeddings(pixel_values, group_index, n_groups))


def _workers(num_workers: int):
    """How decoding workers start: never forked from a process holding a graph runtime's
    threads (the embeddings may have run through one before fine-tuning)."""
    return worker_context() if num_workers > 0 else None


def predict_places(runtime: Runtime, model: FinetuneModel, dataset: PlaceImages, batch_size: int,
                   num_workers: int) -> np.ndarray:
    """(N, 2) predictions for every sample of `dataset`, sharded across processes, on every process."""
    device = next(model.parameters()).device
    indices = list(range(runtime.rank, len(dataset), runtime.world_size))
    shard = torch.utils.data.Subset(dataset, indices)
    preds = []
    model.eval()
    with torch.no_grad():
        for pixels, group_index, _, _ in DataLoader(shard, batch_size=batch_size, shuffle=False,
                                                      num_workers=num_workers, collate_fn=collate_places,
                                                      multiprocessing_context=_workers(num_workers)):
            emb = model.fused_embeddings(pixels.to(device), group_index.to(device), int(group_index.max()) + 1)
            preds.append(model.head.predict(emb).detach().cpu().numpy())
    mine = np.concatenate(preds) if preds else np.zeros((0, 2))
    parts = runtime.gather_objects(mine)
    out = np.empty((len(dataset), 2), dtype=np.float64)
    for rank, part in enumerate(parts):
        out[rank::runtime.world_size] = part
    return out


def finetune(runtime: Runtime, backbone: nn.Module, head: nn.Module, paths: np.ndarray,
             train: Samples, train_cells: np.ndarray | None, val: Samples, *, epochs: int,
             patience: int, batch_size: int, backbone_lr: float, head_lr: float, num_workers: int,
             seed: int, desc: str, checkpoint: Path | None = None, resume_key: str = "") -> FitResult:
    """Train backbone and head together in place; both keep the best validation epoch's weights.

    checkpoint: where the state after each epoch is kept, so that running again after an
    interruption continues from the last finished epoch (see geoai.models.fit.train_model).
    """
    model = FinetuneModel(backbone, head).to(runtime.device)
    train_set = PlaceImages(paths, train, backbone.processor, train_cells)
    val_set = PlaceImages(paths, val, backbone.processor, None)

    def batches(parts: list[torch.Tensor]):
        # Images are decoded in DataLoader workers, in the order the loop drew.
        return DataLoader(train_set, batch_sampler=[p.tolist() for p in parts], num_workers=num_workers,
                          collate_fn=collate_places, multiprocessing_context=_workers(num_workers))

    def step_loss(model: nn.Module, batch) -> torch.Tensor:
        pixels, group_index, latlon, cells = batch
        device = runtime.device
        outputs = model(pixels.to(device), group_index.to(device), len(latlon))
        return head.loss(outputs, latlon.to(device, torch.float32),
                         cells.to(device) if train_cells is not None else None)

    groups = [{"params": list(backbone.parameters()), "lr": backbone_lr},
              {"params": list(head.parameters()), "lr": head_lr}]
    result = train_model(model, step_loss, len(train_set), batches,
                         lambda m: predict_places(runtime, m, val_set, batch_size, num_workers), val.latlon,
                         param_groups=groups, epochs=epochs, patience=patience, batch_size=batch_size,
                         seed=seed, checkpoint=checkpoint, resume_key=resume_key, desc=desc)
    backbone.eval()
    return result
