"""Several processes, one model: torch.distributed + DistributedDataParallel, launched by ``torchrun``.

torchrun starts one process per worker (GPU or CPU slot) and tells each, through RANK / WORLD_SIZE / LOCAL_RANK /
MASTER_ADDR / MASTER_PORT, who it is. Every process runs the same recipe; this module turns that into:

- a device per process: with ``[train] device`` "auto" or "cuda", process LOCAL_RANK of a machine trains on its GPU
  LOCAL_RANK (``process_device``);
- a process group (gloo on CPU, nccl on CUDA) whose collectives give up after the recipe's timeout, so a stuck or
  dead peer ends the job with an error instead of a hang;
- a shard of every global batch per rank: contiguous slices of B / W rows, so the global batch order is the
  single-process one for the same seed;
- DistributedDataParallel around the encoder: gradients are averaged over ranks during backward;
- ``gather_loss``: the loss computed on the whole global batch (in-batch negatives from every rank), with gradients
  flowing back to the rank that embedded each row;
- a loss with parameters (a learnable temperature, a head) lives outside DDP: ``broadcast_parameters`` starts it
  equal on every rank and ``average_gradients`` averages its gradients over ranks, as DDP does the encoder's.

With W = 1 (plain ``python -m minilm``) none of it is switched on.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Iterator
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import Tensor, nn

from minilm.util.devices import resolve_device


def launched_processes() -> int:
    """How many processes torchrun started for this job (1 without torchrun)."""
    return env_int("WORLD_SIZE", 1)


def process_device(setting: str | None, where: str = "[train] device") -> torch.device:
    """The device this process trains on. Under torchrun with several processes, "auto" and "cuda" mean this
    process's own GPU, cuda:LOCAL_RANK; a fixed "cuda:N" (every process on one GPU) and "mps" are refused by name."""
    device = resolve_device(setting, where)
    processes = launched_processes()
    if processes <= 1 or device.type == "cpu":
        return device
    if device.type != "cuda":
        raise ValueError(
            f"{where} {setting!r}: torchrun's {processes} processes train on CUDA (nccl) or the CPU "
            f"(gloo); use device 'cuda' or 'cpu'"
        )
    if setting not in (None, "auto", "cuda"):
        raise ValueError(
            f"{where} {setting!r} would put all {processes} torchrun processes on one GPU; use 'cuda' "
            f"(or 'auto'): each process takes its LOCAL_RANK GPU"
        )
    local = env_int("LOCAL_RANK", 0)
    if local >= torch.cuda.device_count():
        raise ValueError(
            f"LOCAL_RANK {local}: this machine has {torch.cuda.device_count()} CUDA device(s); start at "
            f"most that many processes per machine (torchrun --nproc_per_node)"
        )
    return torch.device("cuda", local)


def init_from_env(timeout_s: float, device: torch.device | None = None) -> bool:
    """Join the process group torchrun describes in the environment, over nccl when this process trains on a GPU
    (``device``; None: whenever CUDA is there), else gloo. True if this call created it (the caller then owns
    ``shutdown``); False when not launched by torchrun (WORLD_SIZE unset or 1) or already joined."""
    if dist.is_initialized() or launched_processes() <= 1:
        return False
    if not timeout_s > 0:
        raise ValueError(f"distributed_timeout_s must be > 0, got {timeout_s}")
    on_gpu = torch.cuda.is_available() if device is None else device.type == "cuda"
    backend = "nccl" if on_gpu else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(device if device is not None else env_int("LOCAL_RANK", 0))
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    return True


def env_int(name: str, default: int) -> int:
    """An environment variable torchrun sets, as a non-negative int; anything else is refused naming the variable."""
    text = os.environ.get(name)
    if text is None or not text.strip():
        return default
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise ValueError(
            f"environment variable {name}={text!r} is not a non-negative integer (torchrun sets it; unset it to "
            f"train in one process)"
        )
    return value


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def device() -> torch.device | None:
    """Where this rank's model lives: its own GPU under nccl; None (leave it where it is) otherwise."""
    if dist.is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return None


def check_batch_size(batch_size: int, world: int) -> None:
    if batch_size % world:
        raise ValueError(
            f"[train] batch_size {batch_size} is not divisible by the number of processes ({world}): each process "
            f"takes batch_size / {world} rows of every batch; use a multiple of {world}"
        )


# ------------------------------------------------------------------------------------------- data


class ShardedBatchSampler:
    """This rank's slice of every batch of ``sampler``: rows [rank * k, (rank + 1) * k) with k = len(batch) // W.

    Epoch, position and checkpoint state are the wrapped sampler's (global batches handed out), so every rank agrees
    and a checkpoint means the same under any world size. A short last batch of n rows loses its last n mod W rows
    (every rank must hold the same number of rows); a batch of fewer than W rows is skipped.
    """

    def __init__(self, sampler, rank: int, world: int):
        if not 0 <= rank < world:
            raise ValueError(f"rank must be in [0, {world}), got {rank}")
        self.sampler, self.rank, self.world = sampler, rank, world

    def _shard(self, rows: list[int]) -> list[int]:
        k = len(rows) // self.world
        return rows[self.rank * k : (self.rank + 1) * k]

    def batches(self, epoch: int | None = None) -> list[list[int]]:
        return [self._shard(rows) for rows in self.sampler.batches(epoch) if len(rows) >= self.world]

    def __len__(self) -> int:
        return len(self.batches())

    def __iter__(self) -> Iterator[list[int]]:
        for rows in self.sampler:
            if len(rows) >= self.world:
                yield self._shard(rows)

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def state_dict(self) -> dict:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.sampler.load_state_dict(state)


# ------------------------------------------------------------------------------------------- model and loss


def wrap(model: nn.Module) -> nn.Module:
    """DDP around ``model``; rank 0's weights are broadcast to every rank here, so all ranks start equal."""
    dev = device()
    return nn.parallel.DistributedDataParallel(model, device_ids=[dev] if dev is not None else None)


class _AllGatherRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        parts = [torch.empty_like(x) for _ in range(world_size())]
        dist.all_gather(parts, x.contiguous())  # the list form: the one every torch >= 2.2 has, undeprecated
        return torch.cat(parts)  # (W * b, ...)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        grad = grad.contiguous().clone()  # (W * b, ...); reduced in place below
        dist.all_reduce(grad)  # every rank's gradient for every row, summed (gloo has no reduce-scatter)
        b = grad.shape[0] // world_size()
        return grad[rank() * b : (rank() + 1) * b]


def all_gather_rows(x: Tensor) -> Tensor:
    """(b, ...) on every rank -> (W * b, ...), rank 0's rows first, on every rank. Differentiable: the backward
    sums, over all ranks, the gradient each one computed for this rank's rows, and hands it to this rank."""
    return _AllGatherRows.apply(x)


def gather_loss(loss_fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """``loss_fn`` on the global batch: every tensor argument is all-gathered first (embeddings with autograd;
    labels, scores and a guide model's embeddings as plain data), so each rank computes the loss of the whole batch.

    Why the gradient comes out right: every rank holds the same global loss L, so each rank's backward produces
    dL/d(all rows); the gather's backward sums those W identical contributions for this rank's rows (W * dL/d own
    rows), and DDP divides the parameter gradients by W. The update equals one process's on the whole batch.
    For MNRL the candidates are [positives of rank 0..W-1, then negatives of rank 0..W-1] and the target of anchor i
    of rank r is r * b + i: its own positive, never its own or another row's hard negative (sentence-transformers'
    gather_across_devices, with the loss averaged over the global batch rather than per rank, which is the same).
    """

    @functools.wraps(loss_fn)
    def gathered(*embeddings: Tensor, **targets) -> Tensor:
        where = embeddings[0].device
        embeddings = [all_gather_rows(e) for e in embeddings]  # (W * b, D) each
        targets = {k: _gathered(v, where) for k, v in targets.items()}
        return loss_fn(*embeddings, **targets)

    return gathered


def _gathered(value, where: torch.device):
    """A loss keyword on the global batch: a tensor of rows, or a list of them (a guide model's embeddings)."""
    if isinstance(value, Tensor):
        return all_gather_rows(value.to(where))
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, Tensor) for v in value):
        return [all_gather_rows(v.to(where)) for v in value]
    return value


def broadcast_parameters(module: nn.Module) -> None:
    """Rank 0's parameters and buffers of ``module`` on every rank (what DDP does for the model it wraps)."""
    if world_size() == 1:
        return
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor, src=0)


def average_gradients(params: list[Tensor]) -> None:
    """Replace each ``.grad`` by its mean over ranks, in one all-reduce.

    With ``gather_loss`` every rank computed the loss of the whole batch, so the gradients are equal and stay so;
    without it each rank's is that of its shard, and the mean is the gradient of the mean loss, as for the encoder.
    """
    grads = [p.grad for p in params if p.grad is not None]
    if world_size() == 1 or not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size()
    for g, part in zip(grads, flat.split([g.numel() for g in grads])):
        g.copy_(part.view_as(g))


def mean_over_ranks(x: Tensor) -> Tensor:
    """The average of a detached scalar over ranks (for logs and the divergence check, which all ranks agree on)."""
    if world_size() == 1:
        return x
    x = x.detach().clone()
    dist.all_reduce(x)
    return x / world_size()


def mean_statistics(stats: dict, device) -> dict:
    """A loss's statistics averaged over ranks (each rank's are of its shard unless the loss is gathered); None (a
    statistic a rank did not have) and non-finite means stay None."""
    if world_size() == 1:
        return stats
    values = torch.tensor([math.nan if v is None else v for v in stats.values()], device=device)
    means = mean_over_ranks(values).tolist()
    return {k: v if math.isfinite(v) else None for k, v in zip(stats, means)}


def gather_objects(obj) -> list:
    """``obj`` from every rank, in rank order, on every rank (a collective: all ranks must call it)."""
    if world_size() == 1:
        return [obj]
    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out
