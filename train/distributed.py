"""Process-group plumbing through Hugging Face Accelerate.

One code path serves a plain `python -m train` (one process) and a data-parallel launch:
every process runs the same grid, work is sharded across processes (embedding rows,
training batches), and only the main process writes files. Launch with

    torchrun --standalone --nproc_per_node 2 -m train --data DIR ...         (CPU: gloo)
    accelerate launch --multi_gpu --num_processes 2 -m train --data DIR ...  (GPUs: nccl)

Note that `accelerate launch --cpu --num_processes 2` starts ONE process unless an
accelerate config with distributed_type MULTI_CPU and mpirun is set up; torchrun needs none.
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch

T = TypeVar("T")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so CPU runs repeat exactly."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _launched_distributed() -> bool:
    """True under accelerate launch / torchrun (they export WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


@dataclass
class Runtime:
    """Where this process runs and how it talks to the others.

    accelerator: the `accelerate.Accelerator` (always created, so the training loop is the
    same code in one process or many); device: torch device of this process.
    """

    accelerator: Any
    device: torch.device

    @property
    def rank(self) -> int:
        return int(self.accelerator.process_index)

    @property
    def world_size(self) -> int:
        return int(self.accelerator.num_processes)

    @property
    def is_main(self) -> bool:
        return bool(self.accelerator.is_main_process)

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        """Wait for every process (no-op in one process)."""
        if self.distributed:
            self.accelerator.wait_for_everyone()

    def gather_objects(self, value: T) -> list[T]:
        """Every process's `value`, in rank order (picklable objects)."""
        if not self.distributed:
            return [value]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, value)
        return out


def check_device(device: str | None) -> str | None:
    """`device` unchanged when this machine has it, else TrainError saying what is available."""
    if device is None:
        return None
    from train.errors import TrainError

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise TrainError(f"unknown device {device!r}; use cpu, cuda or cuda:N") from None
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise TrainError(f"device {device!r} asked for, but this machine (or this torch build) has no "
                             "CUDA GPU; use --device cpu")
        if parsed.index is not None and parsed.index >= count:
            raise TrainError(f"device {device!r} does not exist: this machine has {count} GPU(s), "
                             f"cuda:0 to cuda:{count - 1}")
    elif parsed.type != "cpu":
        raise TrainError(f"unsupported device {device!r}; use cpu, cuda or cuda:N")
    return device


def make_runtime(device: str | None = None) -> Runtime:
    """Create the Accelerator for `device` ("cpu", "cuda", "cuda:1", or None for the default).

    In one process a specific device is honoured as given; under a multi-process launch
    each process takes the device Accelerate assigns to its local rank.
    """
    from accelerate import Accelerator

    want_cpu = device is not None and str(device).startswith("cpu")
    if want_cpu and not _launched_distributed():
        # Accelerator(cpu=True) in one process: no process group, just the CPU.
        accelerator = Accelerator(cpu=True)
    else:
        accelerator = Accelerator(cpu=want_cpu)
    chosen = accelerator.device
    if device and not want_cpu and not _launched_distributed():
        chosen = torch.device(device)
    return Runtime(accelerator=accelerator, device=chosen)
