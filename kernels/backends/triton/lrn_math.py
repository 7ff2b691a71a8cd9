"""Shared pieces of the ReLU+LRN kernels: the accumulators, alpha from its float32 pair, the denominator's
log2, the ReLU'd channel load, and the host helpers that pass LRN settings and launch shapes to them
(``relu_lrn_kernel``, ``relu_lrn_pool_kernel``, ``lrn_backward_kernel`` and the experimental
channel-vector kernel use them)."""
from __future__ import annotations

import struct

import torch
import triton
import triton.language as tl
from triton.language.extra import libdevice

from kernels.interpreter import triton_interpreted
from kernels.backends.triton.indexing import as_index
from kernels.backends.triton.tiling import ChannelWalk, channel_walk


@triton.jit
def acc_zeros(shape, USE_FP64: tl.constexpr):
    """Zeros of ``shape`` in the accumulation type: float64 for float64 inputs, float32 otherwise."""
    return tl.zeros(shape, tl.float64 if USE_FP64 else tl.float32)


@triton.jit
def join_float(hi, lo, ACC: tl.constexpr):
    """``hi + lo`` in ACC: the kernel side of ``split_float``."""
    return tl.cast(hi, ACC) + tl.cast(lo, ACC)


@triton.jit
def lrn_log2(d, FAST_LOG2: tl.constexpr):
    """log2 of the LRN denominator. FAST_LOG2 (float32 on a GPU): the SFU's lg2.approx (relative
    error ~2**-22, d >= k > 0 here) instead of libdevice's exact log2f, a ~20-instruction polynomial
    per element in the channel loop. The interpreter has no libdevice, and float64 keeps the exact one."""
    if FAST_LOG2:
        return libdevice.fast_log2f(d)
    else:
        return tl.log2(d)


@triton.jit
def load_relu(base, channel, stride_c, mask, C, lane0, ACC: tl.constexpr, INDEX_64: tl.constexpr):
    """relu(x) of one channel at every lane (any shape: ``base``, ``mask`` and ``lane0`` alike), in ACC;
    zero where the channel is outside [0, C) (the window's zero padding) or the lane is masked. NaN
    stays NaN (ATen's relu keeps it)."""
    ok = mask & ((lane0 + channel) >= 0) & ((lane0 + channel) < C)
    v = tl.load(base + as_index(channel, INDEX_64) * stride_c, mask=ok, other=0.0).to(ACC)
    return tl.where(v < 0, 0.0, v)


# ---------------------------------------------------------------------------------- host side

def split_float(value: float) -> tuple[float, float]:
    """``value`` as a float32 pair hi + lo (kernels get float32 scalars; float64 kernels re-add them)."""
    hi = struct.unpack("f", struct.pack("f", value))[0]  # plain Python: also fine while tracing
    return hi, value - hi


def fast_log2(x: torch.Tensor) -> bool:
    """The approximate log2 (``lrn_log2``) for compiled float32/16-bit kernels; exact under the interpreter
    (which has no libdevice) and for float64."""
    return not triton_interpreted() and x.dtype != torch.float64


def check_walk(walk: ChannelWalk, channels: int, size: int) -> ChannelWalk:
    """The kernels step through channels in groups of ``size`` from each chunk's first channel, which
    must therefore be a multiple of ``size``: a chunked walk needs ``chunk % size == 0``."""
    if walk.chunk < channels and walk.chunk % size:
        raise ValueError(f"channel chunk {walk.chunk} is not a multiple of the LRN size {size} "
                         f"(needed when the {channels} channels are split)")
    return walk


def lrn_walk(x: torch.Tensor, size: int, pool_backward: bool = False) -> ChannelWalk:
    """Launch shape of the ReLU+LRN kernels over ``x``: 256 positions (2 per thread) per program on a
    GPU - 128 for the fused backward, whose per-pixel window geometry doubles its registers - with
    channels split until every SM has programs (``tiling``); under the interpreter one wide program
    per 16,384 positions."""
    n, c, h, w = x.shape
    return channel_walk(n * h * w, c, x.device, gpu_block=128 if pool_backward else 256, interpreter_block=16384,
                        chunk_multiple=size)
