"""How much work each Triton program gets on a GPU: positions per program, channels per program, warps.

The LRN kernels walk the channel axis sequentially (a register ring carries the window sum), so a
program's memory traffic is one new channel per step. Two things keep HBM busy:

- enough programs resident on every SM: when positions alone give too few programs (conv2 at
  batch 128 has 93,312 positions but 256 channels), the channel axis is split into chunks, each
  re-reading its ``size - 1`` halo channels (L2 hits: neighbouring chunks are neighbouring programs);
- more than one load in flight per thread: each thread owns ``BLOCK / (32 * num_warps)`` positions
  and the kernels prefetch the next channel while computing the current one.

The numbers are a starting point from Little's law (H100: ~22 GB/s per SM x ~0.6 us latency ~ 13 KB
in flight per SM), to be confirmed by the benchmark on the GPU. Under the interpreter a program costs
milliseconds whatever its size, so there each program takes as much as fits and channels stay whole.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import triton

from kernels.interpreter import triton_interpreted

DEFAULT_SMS = 132  # an H100 SXM; used where no CUDA device is at hand (meta tensors, ahead-of-time compiles)
PROGRAMS_PER_SM = 8  # 8 programs x 4 warps = 32 resident warps per SM wanted
MIN_CHUNK = 16  # channels per program at least: halo re-reads stay <= (size - 1) / 16 of the reads


@dataclass(frozen=True)
class ChannelWalk:
    """Launch shape of a kernel that walks channels: positions per program, channels per program,
    warps, and the resulting number of programs."""

    block: int
    chunk: int
    num_warps: int
    programs: int


def sm_count(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return DEFAULT_SMS


def walk_of(positions: int, channels: int, block: int, chunk: int, num_warps: int = 4, multiple: int = 1) -> ChannelWalk:
    """The walk with ``block`` positions and ``chunk`` channels per program (programs = tiles x chunks);
    a chunk that splits the channels is rounded up to a multiple of ``multiple``."""
    chunk = max(1, min(triton.cdiv(chunk, multiple) * multiple, channels))
    return ChannelWalk(block, chunk, num_warps, triton.cdiv(positions, block) * triton.cdiv(channels, chunk))


def channel_walk(positions: int, channels: int, device: torch.device, gpu_block: int, interpreter_block: int,
                 num_warps: int = 4, programs_per_sm: int = PROGRAMS_PER_SM, chunk_multiple: int = 1) -> ChannelWalk:
    """Tile ``positions`` into ``gpu_block``-wide programs and split the channels into chunks until
    there are ``programs_per_sm`` programs per SM (chunks never below ``MIN_CHUNK`` channels, and a
    multiple of ``chunk_multiple``: the LRN kernels step through channels in groups of the LRN size)."""
    if triton_interpreted():
        return walk_of(positions, channels, min(triton.next_power_of_2(positions), interpreter_block), channels,
                       num_warps)
    tiles = triton.cdiv(positions, gpu_block)
    wanted = triton.cdiv(programs_per_sm * sm_count(device), tiles)
    chunks = max(1, min(wanted, channels // MIN_CHUNK))
    return walk_of(positions, channels, gpu_block, triton.cdiv(channels, chunks), num_warps, chunk_multiple)
