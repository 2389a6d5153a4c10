"""A minimal, deterministic training loop for a head on precomputed embeddings.

Adam, mini-batches shuffled by a seeded generator, early stopping on the validation mean
great-circle error, and the best epoch's weights restored at the end. The training
command (train/) reuses it; it does not touch the global random state.
"""
from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from geoai.geodesy import haversine_km
from geoai.models.heads import check_latlon
from geoai.models.registry import HeadError


def _errors_km(head: nn.Module, emb: torch.Tensor, latlon: np.ndarray, batch_size: int) -> np.ndarray:
    preds = np.concatenate([head.predict(emb[i:i + batch_size]).cpu().numpy()
                            for i in range(0, len(emb), batch_size)])
    return haversine_km(preds[:, 0], preds[:, 1], latlon[:, 0], latlon[:, 1])


def fit_head(head: nn.Module, train_emb: np.ndarray, train_latlon: np.ndarray,
             train_cells: np.ndarray | None = None, val_emb: np.ndarray | None = None,
             val_latlon: np.ndarray | None = None, *, epochs: int = 100, lr: float = 1e-3,
             patience: int = 10, seed: int = 0, batch_size: int = 256, weight_decay: float = 0.0,
             device: str | torch.device | None = None, log: Any = None) -> tuple[nn.Module, dict]:
    """Train `head` with Adam and early stopping; returns (head with best weights, history).

    train_cells: (N,) cell index per training sample (needed by the grid head).
    val_emb/val_latlon: the validation set monitored for early stopping (mean haversine km);
        without it the training set is monitored (no real early stopping then).
    patience: epochs without improvement of the monitored error before stopping.
    log: optional callable receiving each epoch's record (e.g. print or a logger).

    history = {"epochs": [{"epoch", "train_loss", "val_mean_km", "val_median_km", "seconds"}],
               "best_epoch", "best_val_mean_km", "stopped_early", "monitored": "val"|"train"}.
    Same seed, data and device give the same weights.
    """
    if not any(p.requires_grad for p in head.parameters()):
        raise HeadError(f"{type(head).__name__} has no trainable parameters (baselines need no fitting)")
    if epochs < 1 or patience < 1 or batch_size < 1 or lr <= 0:
        raise HeadError(f"need epochs, patience, batch_size >= 1 and lr > 0; got {epochs}, {patience}, "
                        f"{batch_size}, {lr}")
    train_latlon = check_latlon(train_latlon, "train_latlon")
    if len(train_emb) != len(train_latlon):
        raise HeadError(f"{len(train_emb)} training embeddings for {len(train_latlon)} coordinates")
    if train_cells is not None and len(train_cells) != len(train_latlon):
        raise HeadError(f"{len(train_cells)} training cells for {len(train_latlon)} coordinates")
    monitored = "val" if val_emb is not None else "train"
    if val_emb is None:
        val_emb, val_latlon = train_emb, train_latlon
    elif val_latlon is None:
        raise HeadError("val_emb given without val_latlon")
    val_latlon = check_latlon(val_latlon, "val_latlon")
    if len(val_emb) != len(val_latlon):
        raise HeadError(f"{len(val_emb)} validation embeddings for {len(val_latlon)} coordinates")

    if device is not None:
        head.to(device)
    x = head.as_embeddings(train_emb)
    y = torch.tensor(np.asarray(train_latlon), dtype=torch.float32, device=x.device)  # a copy: inputs may be read-only
    cells = None if train_cells is None else torch.as_tensor(np.asarray(train_cells), dtype=torch.long, device=x.device)
    x_val = head.as_embeddings(val_emb)

    history: dict[str, Any] = {"epochs": [], "best_epoch": 0, "best_val_mean_km": float("inf"),
                               "stopped_early": False, "monitored": monitored}
    best_state = copy.deepcopy(head.state_dict())
    optimiser = torch.optim.Adam([p for p in head.parameters() if p.requires_grad], lr=lr,
                                 weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed)
    stale = 0
    with torch.random.fork_rng(devices=[]):  # dropout draws from a seeded, private stream
        torch.manual_seed(seed)
        for epoch in range(1, epochs + 1):
            start = time.perf_counter()
            head.train()
            order = torch.randperm(len(x), generator=generator).to(x.device)
            total, seen = 0.0, 0
            for i in range(0, len(order), batch_size):
                idx = order[i:i + batch_size]
                outputs = head(x[idx])
                loss = head.loss(outputs, y[idx], None if cells is None else cells[idx])
                if not torch.isfinite(loss):
                    raise HeadError(f"the training loss became {loss.item()} at epoch {epoch}; "
                                    "lower the learning rate")
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                total += float(loss.detach()) * len(idx)
                seen += len(idx)
            km = _errors_km(head, x_val, val_latlon, 4096)
            record = {"epoch": epoch, "train_loss": total / seen, "val_mean_km": float(km.mean()),
                      "val_median_km": float(np.median(km)), "seconds": time.perf_counter() - start}
            history["epochs"].append(record)
            if log is not None:
                log(record)
            if record["val_mean_km"] < history["best_val_mean_km"]:
                history["best_val_mean_km"] = record["val_mean_km"]
                history["best_epoch"] = epoch
                best_state = copy.deepcopy(head.state_dict())
                stale = 0
            else:
                stale += 1
                if stale >= patience:
                    history["stopped_early"] = True
                    break
    head.load_state_dict(best_state)
    head.eval()
    return head, history
