"""The Accelerate training loop: Adam, early stopping on validation mean Haversine km.

Used for full fine-tuning (images through the backbone each step) and for fitting a head
on frozen embeddings when several processes run data-parallel (in one process the frozen
case uses geoai.models.fit.fit_head). Every process sees the same validation numbers, so
the early-stopping decision is identical everywhere without extra messages.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from geoai.geodesy import haversine_km
from train.distributed import Runtime


@dataclass
class LoopResult:
    """What training did: per-epoch history, the best epoch (1-based) and its val mean km."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_val_km: float = math.inf
    seconds: float = 0.0


def mean_km(pred_latlon: np.ndarray, true_latlon: np.ndarray) -> float:
    """Mean great-circle error in km of (N, 2) predictions."""
    pred = np.asarray(pred_latlon, dtype=np.float64)
    true = np.asarray(true_latlon, dtype=np.float64)
    return float(haversine_km(pred[:, 0], pred[:, 1], true[:, 0], true[:, 1]).mean())


def run_training(runtime: Runtime, model: nn.Module, param_groups: list[dict[str, Any]],
                 train_loader: torch.utils.data.DataLoader,
                 step_loss: Callable[[nn.Module, Any], torch.Tensor],
                 predict_val: Callable[[nn.Module], np.ndarray], val_latlon: np.ndarray,
                 *, epochs: int, patience: int, desc: str = "train") -> LoopResult:
    """Train `model` in place and leave it holding the weights of its best validation epoch.

    param_groups: Adam parameter groups (each with its own lr).
    step_loss(prepared_model, batch) -> scalar loss of one batch.
    predict_val(unwrapped_model) -> (N_val, 2) predictions, the same on every process.
    patience: epochs without a better validation mean km before stopping (0: never stop early).
    """
    accelerator = runtime.accelerator
    optimizer = torch.optim.Adam(param_groups)
    prepared, optimizer, loader = accelerator.prepare(model, optimizer, train_loader)
    result = LoopResult()
    best_state: dict[str, torch.Tensor] | None = None
    since_best = 0
    started = time.perf_counter()
    bar = tqdm(range(1, epochs + 1), desc=desc, unit="epoch", leave=False,
               disable=not runtime.is_main)
    for epoch in bar:
        prepared.train()
        total, batches = 0.0, 0
        for batch in loader:
            optimizer.zero_grad(set_to_none=True)
            loss = step_loss(prepared, batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{desc}: loss became {loss.item()} at epoch {epoch}; "
                                         "try a smaller learning rate")
            accelerator.backward(loss)
            optimizer.step()
            total += float(loss.detach())
            batches += 1
        # Mean training loss over every process's batches.
        train_loss = float(accelerator.reduce(torch.tensor(total / max(batches, 1),
                                                           device=accelerator.device),
                                              reduction="mean"))
        unwrapped = accelerator.unwrap_model(prepared)
        unwrapped.eval()
        with torch.no_grad():
            val_km = mean_km(predict_val(unwrapped), val_latlon)
        result.history.append({"epoch": epoch, "train_loss": train_loss, "val_mean_km": val_km})
        bar.set_postfix(loss=f"{train_loss:.4g}", val_km=f"{val_km:.1f}")
        if val_km < result.best_val_km:
            result.best_val_km, result.best_epoch, since_best = val_km, epoch, 0
            best_state = copy.deepcopy({k: v.detach().cpu() for k, v in unwrapped.state_dict().items()})
        else:
            since_best += 1
            if patience and since_best >= patience:
                break
    bar.close()
    final = accelerator.unwrap_model(prepared)
    if best_state is not None:
        final.load_state_dict(best_state)
    final.eval()
    accelerator.free_memory()
    result.seconds = time.perf_counter() - started
    return result
