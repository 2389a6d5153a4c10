"""The training loop: a head on precomputed embeddings, or a backbone fine-tuned with its
head, in one process or data-parallel over several, with the same result either way.

Adam. Each epoch draws one permutation of the training samples from a seeded generator
and cuts it into batches; with N processes (torch.distributed initialised, e.g. under
torchrun) each process takes every N-th sample of a batch, weights its mean loss by its
share of the batch, and the gradients are summed across processes, so every process makes
the update one process would make (equal up to float rounding, unless dropout or batch
statistics such as BatchNorm's see each process's share on its own). Early
stopping on the validation mean great-circle error; the best epoch's weights are restored
at the end. With a checkpoint path the state after each epoch is saved there, and a later
call with the same path continues where the interrupted one stopped.
"""
from __future__ import annotations

import copy
import pickle
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from geoai.atomic import atomic_path
from geoai.geodesy import haversine_km
from geoai.models.heads import check_latlon
from geoai.models.registry import HeadError
from geoai.progress import progress_bar

CHECKPOINT_FORMAT = "geoai-fit-checkpoint/1"


@dataclass
class EpochRecord:
    """One epoch: mean training loss and the monitored set's great-circle error."""

    epoch: int
    train_loss: float
    val_mean_km: float
    val_median_km: float
    seconds: float


@dataclass
class FitResult:
    """What training did. The model itself holds the best epoch's weights."""

    epochs: list[EpochRecord] = field(default_factory=list)
    best_epoch: int = 0  # 1-based
    best_val_km: float = float("inf")
    stopped_early: bool = False
    monitored: str = "val"  # "val", or "train" when no validation set was given
    seconds: float = 0.0
    resumed_at: int = 0  # epochs already done by an interrupted run this one continued

    @property
    def epochs_run(self) -> int:
        return len(self.epochs)

    def summary(self) -> dict[str, Any]:
        """The fields a results row records about the fit."""
        return {"epochs_run": self.epochs_run, "best_epoch": self.best_epoch, "best_val_km": self.best_val_km}


def _process_group() -> tuple[int, int]:
    """(rank, world size) of the running process group; (0, 1) without one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _sum_across_processes(params: list[nn.Parameter], loss: torch.Tensor) -> float:
    """Sum every process's gradients (in place) and weighted losses; returns the summed loss."""
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads] + [loss.detach().reshape(1).to(grads[0].dtype)])
    torch.distributed.all_reduce(flat)
    offset = 0
    for p in params:
        p.grad = flat[offset:offset + p.numel()].view_as(p).clone()
        offset += p.numel()
    return float(flat[-1])


def _broadcast_from_first(tensors: Iterable[torch.Tensor]) -> None:
    for tensor in tensors:
        torch.distributed.broadcast(tensor.data, src=0)


def _load_checkpoint(path: Path, key: str) -> dict | None:
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, EOFError, RuntimeError, pickle.UnpicklingError) as exc:  # damaged or not ours
        warnings.warn(f"{path} cannot be read ({type(exc).__name__}); starting afresh", stacklevel=3)
        return None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT or state.get("key") != key:
        warnings.warn(f"{path} belongs to another training run; starting afresh", stacklevel=3)
        return None
    return state


def train_model(model: nn.Module, step_loss: Callable[[nn.Module, Any], torch.Tensor], n_train: int,
                batches: Callable[[list[torch.Tensor]], Iterable[Any]],
                predict_val: Callable[[nn.Module], np.ndarray], val_latlon: np.ndarray, *,
                param_groups: list[dict[str, Any]], epochs: int, patience: int, batch_size: int, seed: int,
                monitored: str = "val", checkpoint: str | Path | None = None, resume_key: str = "",
                desc: str | None = None, log: Callable[[EpochRecord], None] | None = None) -> FitResult:
    """Train `model` in place; it ends holding the weights of its best validation epoch.

    step_loss(model, batch): mean loss over one batch's samples.
    batches(parts): one batch per part, a part being the sample indices (1-D LongTensor)
        this process trains on in that step, in order.
    predict_val(model): (N_val, 2) [lat, lon] predictions, the same on every process.
    patience: epochs without a better validation mean km before stopping.
    checkpoint: file for the state after each epoch; an existing one saved under the same
        resume_key is continued from. It is removed once training ends.
    log: called on the first process with each epoch's record (after its checkpoint is saved).
    """
    if epochs < 1 or patience < 1 or batch_size < 1 or n_train < 1:
        raise HeadError(f"need epochs, patience, batch_size and training samples >= 1; got {epochs}, "
                        f"{patience}, {batch_size}, {n_train}")
    rank, world = _process_group()
    params = [p for group in param_groups for p in group["params"] if p.requires_grad]
    if not params:
        raise HeadError(f"{type(model).__name__} has no trainable parameters (baselines need no fitting)")
    if world > 1:  # every process starts from the first one's weights
        _broadcast_from_first([*model.parameters(), *model.buffers()])
    optimiser = torch.optim.Adam(param_groups)
    generator = torch.Generator().manual_seed(seed)
    result = FitResult(monitored=monitored)
    best_state = copy.deepcopy(model.state_dict())
    stale, start_epoch, done = 0, 1, False
    path = Path(checkpoint) if checkpoint is not None else None
    saved = _load_checkpoint(path, resume_key) if path is not None else None
    started = time.perf_counter()
    with torch.random.fork_rng(devices=[]):  # dropout draws from a seeded, private stream
        torch.manual_seed(seed + rank)
        if saved is not None:
            model.load_state_dict(saved["model"])
            optimiser.load_state_dict(saved["optimiser"])
            best_state = saved["best_state"]
            generator.set_state(saved["generator"])
            torch.set_rng_state(saved["rng"][rank] if rank < len(saved["rng"]) else saved["rng"][0])
            result.epochs = [EpochRecord(**r) for r in saved["epochs"]]
            result.best_epoch, result.best_val_km = saved["best_epoch"], saved["best_val_km"]
            result.stopped_early, stale, done = saved["stopped_early"], saved["stale"], saved["done"]
            start_epoch = result.resumed_at = len(result.epochs)
            start_epoch += 1
        bar = progress_bar(range(start_epoch, epochs + 1), desc=desc, unit="epoch", leave=False,
                           show=desc is not None and rank == 0 and not done)
        for epoch in bar:
            if done:
                break
            epoch_start = time.perf_counter()
            model.train()
            order = torch.randperm(n_train, generator=generator)
            steps = [order[i:i + batch_size] for i in range(0, n_train, batch_size)]
            parts = [step[rank::world] for step in steps]
            feed = iter(batches([p for p in parts if len(p)]))
            total = 0.0
            for step, part in zip(steps, parts):
                optimiser.zero_grad(set_to_none=True)
                loss = torch.zeros((), device=params[0].device)
                if len(part):
                    loss = step_loss(model, next(feed))
                    if world > 1:  # this process's share of the batch mean
                        loss = loss * (len(part) / len(step))
                    loss.backward()
                value = _sum_across_processes(params, loss) if world > 1 else float(loss.detach())
                if not np.isfinite(value):
                    raise HeadError(f"the training loss became {value} at epoch {epoch}; lower the learning rate")
                optimiser.step()
                total += value * len(step)
            if world > 1:  # running statistics (BatchNorm) of the first process, for identical validation
                _broadcast_from_first(model.buffers())
            model.eval()
            with torch.no_grad():
                pred = np.asarray(predict_val(model), dtype=np.float64)
            km = haversine_km(pred[:, 0], pred[:, 1], val_latlon[:, 0], val_latlon[:, 1])
            record = EpochRecord(epoch, total / n_train, float(km.mean()), float(np.median(km)),
                                 time.perf_counter() - epoch_start)
            result.epochs.append(record)
            bar.set_postfix(loss=f"{record.train_loss:.4g}", val_km=f"{record.val_mean_km:.1f}")
            if record.val_mean_km < result.best_val_km:
                result.best_val_km, result.best_epoch, stale = record.val_mean_km, epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                stale += 1
                if stale >= patience:
                    result.stopped_early = done = True
            if path is not None:
                _save_checkpoint(path, rank, world, resume_key, model, optimiser, best_state, generator,
                                 result, stale, done or epoch == epochs)
            if log is not None and rank == 0:
                log(record)
        bar.close()
    model.load_state_dict(best_state)
    model.eval()
    if path is not None and rank == 0:
        path.unlink(missing_ok=True)
    result.seconds = time.perf_counter() - started
    return result


def _save_checkpoint(path: Path, rank: int, world: int, key: str, model: nn.Module, optimiser, best_state,
                     generator: torch.Generator, result: FitResult, stale: int, done: bool) -> None:
    """The state after an epoch, written by the first process (the weights are the same everywhere)."""
    rng = torch.get_rng_state()
    if world > 1:
        states: list[Any] = [None] * world
        torch.distributed.all_gather_object(states, rng)
        rng_states = states
    else:
        rng_states = [rng]
    if rank != 0:
        return
    state = {"format": CHECKPOINT_FORMAT, "key": key, "model": model.state_dict(),
             "optimiser": optimiser.state_dict(), "best_state": best_state, "generator": generator.get_state(),
             "rng": rng_states, "epochs": [asdict(r) for r in result.epochs], "best_epoch": result.best_epoch,
             "best_val_km": result.best_val_km, "stopped_early": result.stopped_early, "stale": stale,
             "done": done}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def fit_head(head: nn.Module, train_emb: np.ndarray, train_latlon: np.ndarray,
             train_cells: np.ndarray | None = None, val_emb: np.ndarray | None = None,
             val_latlon: np.ndarray | None = None, *, epochs: int = 100, lr: float = 1e-3,
             patience: int = 10, seed: int = 0, batch_size: int = 256, weight_decay: float = 0.0,
             device: str | torch.device | None = None, checkpoint: str | Path | None = None,
             resume_key: str = "", desc: str | None = None,
             log: Callable[[EpochRecord], None] | None = None) -> tuple[nn.Module, FitResult]:
    """Train `head` on embeddings with `train_model`; returns (head with best weights, result).

    train_cells: (N,) cell index per training sample (needed by the grid head).
    val_emb/val_latlon: the validation set monitored for early stopping (mean haversine km);
        without it the training set is monitored (no real early stopping then).
    Same seed, data and device give the same weights.
    """
    if not any(p.requires_grad for p in head.parameters()):
        raise HeadError(f"{type(head).__name__} has no trainable parameters (baselines need no fitting)")
    if lr <= 0:
        raise HeadError(f"lr must be > 0, got {lr}")
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

    def batches(parts: list[torch.Tensor]):
        for part in parts:
            idx = part.to(x.device)
            yield x[idx], y[idx], None if cells is None else cells[idx]

    def step_loss(model: nn.Module, batch) -> torch.Tensor:
        emb, latlon, cell = batch
        return model.loss(model(emb), latlon, cell)

    def predict_val(model: nn.Module) -> np.ndarray:
        return np.concatenate([model.predict(x_val[i:i + 4096]).cpu().numpy() for i in range(0, len(x_val), 4096)])

    groups = [{"params": [p for p in head.parameters() if p.requires_grad], "lr": lr, "weight_decay": weight_decay}]
    result = train_model(head, step_loss, len(x), batches, predict_val, val_latlon, param_groups=groups,
                         epochs=epochs, patience=patience, batch_size=batch_size, seed=seed,
                         monitored=monitored, checkpoint=checkpoint, resume_key=resume_key, desc=desc, log=log)
    return head, result
