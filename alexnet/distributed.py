"""Data-parallel scale-out: torchrun environment -> process group, DDP wrapping, samplers, metric reduction.

Typical use inside a training script started by ``torchrun --nproc_per_node=N -m alexnet.train ...``::

    ctx = init_distributed(device_type)                   # single-process context when not under torchrun
    devices = parse_devices(spec, layout, local_rank=ctx.local_rank, local_world_size=ctx.local_world_size)
    model = wrap_ddp(place_model(model, devices), ctx, devices)
    sampler = make_sampler(train_set, ctx, shuffle=True, seed=seed)   # call sampler.set_epoch(epoch)
    totals = reduce_metrics({"loss_sum": ..., "count": ...}, ctx)     # SUM over ranks
    if ctx.is_main: write logs and checkpoints
    cleanup_distributed(ctx)

Backends: NCCL when the model lives on CUDA devices, gloo on CPU. A data-parallel replica may span two
devices (the paper's two-tower layout): DDP is then built with ``device_ids=None`` as PyTorch requires for
multi-device modules. Misconfigurations (partial torchrun environment, rank outside the world, ranks of one
node sharing a GPU, ranks that disagree on the layout or on metric names, a global batch that does not
split over the ranks) raise errors that name the problem.
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Iterator, Sequence

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset, Sampler
from torch.utils.data.distributed import DistributedSampler

from infra.errors import UsageError

_TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass
class DistContext:
    """Where this process sits in the job. ``backend`` is None for a single-process run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    is_main: bool = True
    backend: str | None = None
    local_world_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.backend is not None


class LaunchError(UsageError, RuntimeError):
    """The torchrun environment or the requested process layout cannot work (the message says how to fix it)."""


def _env_int(name: str) -> int:
    raw = os.environ[name]
    try:
        return int(raw)
    except ValueError:
        raise LaunchError(f"environment variable {name}={raw!r} is not an integer (set by torchrun?)") from None


def init_distributed(device_type: str, *, backend: str | None = None, timeout_s: float = 600.0) -> DistContext:
    """Join the process group described by torchrun's environment, or return a single-process context.

    ``device_type`` is where the model lives ("cuda" -> NCCL, "cpu" -> gloo); ``backend`` overrides that.
    A world of size 1 (``torchrun --nproc_per_node=1``) runs without a process group.
    """
    present = [v for v in _TORCHRUN_VARS if v in os.environ]
    if not present:
        return DistContext()
    if len(present) != len(_TORCHRUN_VARS):
        missing = sorted(set(_TORCHRUN_VARS) - set(present))
        raise LaunchError(
            f"partial torchrun environment: {', '.join(present)} set but {', '.join(missing)} missing; "
            "start the job with torchrun (or set RANK, WORLD_SIZE and LOCAL_RANK together)"
        )
    rank, world_size, local_rank = (_env_int(v) for v in _TORCHRUN_VARS)
    local_world_size = _env_int("LOCAL_WORLD_SIZE") if "LOCAL_WORLD_SIZE" in os.environ else world_size
    if world_size < 1:
        raise LaunchError(f"WORLD_SIZE must be >= 1, got {world_size}")
    if not 0 <= rank < world_size:
        raise LaunchError(f"RANK={rank} is outside the world of WORLD_SIZE={world_size}")
    if not 0 <= local_rank < local_world_size:
        raise LaunchError(f"LOCAL_RANK={local_rank} is outside LOCAL_WORLD_SIZE={local_world_size}")
    if local_world_size > world_size:
        raise LaunchError(f"LOCAL_WORLD_SIZE={local_world_size} exceeds WORLD_SIZE={world_size}")
    if world_size == 1:
        return DistContext(local_rank=local_rank, local_world_size=local_world_size)

    if device_type not in ("cpu", "cuda"):
        raise LaunchError(f"distributed training supports device types 'cpu' and 'cuda', got {device_type!r}")
    if backend is None:
        backend = "nccl" if device_type == "cuda" else "gloo"
    if backend == "nccl" and not (torch.cuda.is_available() and dist.is_nccl_available()):
        raise LaunchError("NCCL backend requested but this torch build has no CUDA/NCCL; use CPU devices (gloo)")
    if not dist.is_available():
        raise LaunchError("this torch build has no torch.distributed support")
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))
    if dist.get_world_size() != world_size or dist.get_rank() != rank:
        raise RuntimeError(
            f"process group (rank {dist.get_rank()} of {dist.get_world_size()}) disagrees with the environment "
            f"(RANK={rank}, WORLD_SIZE={world_size})"
        )
    return DistContext(rank, world_size, local_rank, rank == 0, backend, local_world_size)


def _collective_device(ctx: DistContext) -> torch.device:
    if ctx.backend == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_gather_objects(obj: Any, ctx: DistContext) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order; ``[obj]`` in a single process."""
    if not ctx.distributed:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(ctx: DistContext) -> None:
    """Wait for all ranks (no-op in a single process)."""
    if not ctx.distributed:
        return
    if ctx.backend == "nccl":
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


def assert_same_across_ranks(ctx: DistContext, what: str, value: Any) -> None:
    """Raise on every rank when ranks disagree about ``value`` (layout, batch size, config...)."""
    values = all_gather_objects(value, ctx)
    if any(v != values[0] for v in values):
        listing = ", ".join(f"rank {r}: {v!r}" for r, v in enumerate(values))
        raise RuntimeError(f"ranks disagree on {what}: {listing}")


def per_rank_batch_size(global_batch: int, ctx: DistContext) -> int:
    """The global batch split evenly over the ranks; a clear error when it does not divide."""
    if global_batch < 1:
        raise ValueError(f"batch size must be >= 1, got {global_batch}")
    if global_batch % ctx.world_size:
        raise ValueError(
            f"global batch {global_batch} does not split over world size {ctx.world_size}; "
            f"use a multiple of {ctx.world_size}"
        )
    return global_batch // ctx.world_size


def wrap_ddp(model: nn.Module, ctx: DistContext, devices: Sequence[torch.device]) -> nn.Module:
    """DistributedDataParallel around ``model`` when the world has several ranks, else ``model`` itself.

    ``devices`` are the devices this rank's replica occupies (one, or two for the two-tower layout).
    DDP broadcasts rank 0's parameters at construction, so every replica starts identical.
    """
    if not ctx.distributed:
        return model
    devices = [torch.device(d) for d in devices]
    distinct = list(dict.fromkeys(devices))
    types = {d.type for d in distinct}
    if ctx.backend == "nccl" and types != {"cuda"}:
        raise ValueError(f"NCCL data parallelism needs CUDA devices, this rank got {[str(d) for d in devices]}")
    if ctx.backend == "gloo" and types != {"cpu"}:
        raise ValueError(
            f"gloo data parallelism is used for CPU devices, this rank got {[str(d) for d in devices]}; "
            "CUDA models use NCCL (init_distributed('cuda'))"
        )
    param_devices = {p.device for p in model.parameters()}
    if not param_devices <= set(distinct):
        raise ValueError(
            f"model parameters live on {sorted(map(str, param_devices))}, not on this rank's devices "
            f"{[str(d) for d in distinct]}; place the model before wrap_ddp"
        )
    # Every replica must have the same structure: same number of devices, same parameter shapes.
    assert_same_across_ranks(ctx, "devices per replica", len(devices))
    assert_same_across_ranks(ctx, "parameter shapes", [tuple(p.shape) for p in model.parameters()])
    if "cuda" in types:
        host = socket.gethostname()
        claims = all_gather_objects((host, sorted(d.index for d in distinct)), ctx)
        for r, (h, idx) in enumerate(claims):
            for r2 in range(r + 1, len(claims)):
                h2, idx2 = claims[r2]
                shared = set(idx) & set(idx2)
                if h == h2 and shared:
                    raise RuntimeError(
                        f"ranks {r} and {r2} on host {h} both use cuda:{min(shared)}; give each local rank its own "
                        "GPU(s) (omit --devices, or list devices for every local rank)"
                    )
        torch.cuda.set_device(distinct[0])
    if len(distinct) == 1 and distinct[0].type == "cuda":
        return nn.parallel.DistributedDataParallel(
            model, device_ids=[distinct[0].index], output_device=distinct[0].index
        )
    # CPU and multi-device (two-tower) replicas: device_ids must be None.
    return nn.parallel.DistributedDataParallel(model, device_ids=None)


def unwrap_ddp(model: nn.Module) -> nn.Module:
    """The module inside DDP (for checkpoints and evaluation), or ``model`` itself."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


class ShardSampler(Sampler[int]):
    """Rank ``r`` of ``W`` gets indices r, r+W, r+2W, ...: every sample exactly once over all ranks, no padding.

    For evaluation, where ranks may see one sample more or less (no per-step collectives there).
    """

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int) -> None:
        self.length = len(dataset)  # type: ignore[arg-type]
        self.num_replicas, self.rank = num_replicas, rank

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.length, self.num_replicas))

    def __len__(self) -> int:
        return len(range(self.rank, self.length, self.num_replicas))

    def set_epoch(self, epoch: int) -> None:
        """Same order every epoch (present so callers can treat all samplers alike)."""


def make_sampler(dataset: Dataset, ctx: DistContext, *, shuffle: bool, seed: int) -> Sampler | None:
    """None in a single process; otherwise this rank's share of ``dataset``.

    ``shuffle=True`` (training): ``DistributedSampler`` with a seeded per-epoch permutation shared by all ranks,
    padded so every rank runs the same number of steps (DDP needs that); call ``sampler.set_epoch(epoch)``.
    ``shuffle=False`` (evaluation): ``ShardSampler``, every sample exactly once, so reduced metrics are exact.
    """
    if not ctx.distributed:
        return None
    if len(dataset) < ctx.world_size:  # type: ignore[arg-type]
        raise ValueError(f"dataset of {len(dataset)} samples is smaller than world size {ctx.world_size}")  # type: ignore[arg-type]
    if shuffle:
        return DistributedSampler(
            dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=seed, drop_last=False
        )
    return ShardSampler(dataset, ctx.world_size, ctx.rank)


def reduce_metrics(sums: dict[str, float], ctx: DistContext) -> dict[str, float]:
    """All-reduce SUM of per-rank sums (loss sums, error counts, sample counts); identity in a single process.

    Pass sums, not means: divide by the reduced count afterwards. Ranks must pass the same keys.
    """
    if not ctx.distributed:
        return {k: float(v) for k, v in sums.items()}
    keys = sorted(sums)
    assert_same_across_ranks(ctx, "metric names passed to reduce_metrics", keys)
    values = [float(sums[k]) for k in keys]
    tensor = torch.tensor(values, dtype=torch.float64, device=_collective_device(ctx))
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return dict(zip(keys, tensor.tolist()))


def cleanup_distributed(ctx: DistContext) -> None:
    """Leave the process group (no-op in a single process or when it was never joined)."""
    if ctx.distributed and dist.is_initialized():
        # All ranks meet first: a rank tearing down gloo while its peer is still inside a collective
        # aborted the peer ("terminate called without an active exception", SIGABRT) in a CI run.
        dist.barrier()
        dist.destroy_process_group()
