"""Data-parallel training with `torchrun` (DistributedDataParallel), kept out of the loop's way.

Under `torchrun --nproc_per_node N -m stageX.train ...` every process runs the same training loop on
its own shard of each batch; DDP averages the gradients during backward. Only rank 0 prints and
writes files. Without torchrun every helper here is a no-op (rank 0 of a world of 1).
"""

from __future__ import annotations

import contextlib
import os

import torch
from torch import nn

from shared.devices import resolve_device


def rank_world() -> tuple[int, int]:
    """(rank, world size): (0, 1) unless running under torchrun with a process group."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def setup(device_flag: str) -> torch.device:
    """Join the torchrun process group when launched by torchrun; return this process's device."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return resolve_device(device_flag)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_flag)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    torch.distributed.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return device


def teardown() -> None:
    """Leave together: a process that exits early can take gloo's threads down with it."""
    if rank_world()[1] > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """The model wrapped in DDP when there are several processes, else the model itself."""
    if rank_world()[1] == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def sync_gradients(model: nn.Module, last_micro_batch: bool):
    """DDP averages the gradients across processes during backward; with gradient accumulation only
    the last micro-batch of a step needs to (the others skip the exchange: no_sync)."""
    if rank_world()[1] == 1 or last_micro_batch:
        return contextlib.nullcontext()
    return model.no_sync()


def mean_over_processes(value: torch.Tensor) -> torch.Tensor:
    """The mean of a tensor over all processes (gloo has no AVG: sum, then divide)."""
    world = rank_world()[1]
    if world > 1:
        torch.distributed.all_reduce(value)
        value = value / world
    return value


def any_process(flag: bool, device: torch.device) -> bool:
    """True on every process if it is True on any (e.g. one of them got Ctrl-C)."""
    if rank_world()[1] == 1:
        return flag
    tensor = torch.tensor(float(flag), device=device)
    torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MAX)
    return bool(tensor.item())


def broadcast_weights(model: nn.Module) -> None:
    """Give every process rank 0's weights (e.g. after rank 0 loaded best.pt)."""
    if rank_world()[1] > 1:
        for tensor in model.state_dict().values():
            torch.distributed.broadcast(tensor, src=0)
