"""Fused ReLU + cross-channel LRN in Triton: the forward kernel (the backward recomputes from x).

    a = relu(x),  d_c = k + alpha * sum_{i in W(c)} a_i^2,  b_c = a_c / d_c^beta
    W(c) = [c - size//2, c + size//2] clipped to [0, C-1]              (alpha: paper convention)

Each program owns a tile of BLOCK spatial positions (flattened over N*H*W) and walks a chunk of
channels once (all C of them unless positions alone give too few programs: ``tiling``); a chunk
re-reads the size - 1 halo channels around it. The window sum is carried in a small register ring of
the last ``size`` squares (one slot per channel, SIZE_P2 >= size slots): every channel is loaded from
DRAM once and reused for the ``size`` windows it belongs to, and the sum is re-added from the ring
(never "add new, subtract old"), so an inf or NaN leaves the window as cleanly as it entered. Channel
steps go in groups of ``size`` from a chunk start that is a multiple of ``size``, so each step's ring
slot is a compile-time constant; the next channel is prefetched during a step's arithmetic.
Accumulation is float32 (float64 for float64); d^-beta is exp2(-beta * log2 d), with the SFU's
approximate log2 in compiled float32/16-bit kernels (``lrn_log2``).

Backward: ``lrn_backward_kernel`` (shared with the fused op's backward).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels.backends.triton.launch import launch
from kernels.backends.triton.offsets import index_is_64
from kernels.op_shapes import like
from kernels.backends.triton.tiling import ChannelWalk
from kernels.backends.triton.indexing import as_index, channel_chunk, position_ptr, position_tile
from kernels.backends.triton.lrn_backward_kernel import lrn_backward
from kernels.backends.triton.lrn_math import (
    acc_zeros, check_walk, fast_log2, join_float, load_relu, lrn_log2, lrn_walk, split_float,
)


@triton.jit
def _relu_lrn_fwd_kernel(
    x_ptr,  # input, any strides
    y_ptr,  # output, any strides
    N, C, H, W,
    sxn, sxc, sxh, sxw,  # input strides (elements)
    syn, syc, syh, syw,  # output strides
    CHUNK,  # channels per program (the channel axis is split when positions alone give too few programs)
    alpha_hi, alpha_lo,  # alpha = alpha_hi + alpha_lo (float32 pair, exact enough for float64)
    beta, k,
    SIZE: tl.constexpr,  # LRN window (odd)
    SIZE_P2: tl.constexpr,  # ring slots: next power of two >= SIZE
    USE_FP64: tl.constexpr,
    INDEX_64: tl.constexpr,  # int64 index arithmetic (some offset passes 2**31 - 1)
    FAST_LOG2: tl.constexpr,  # approximate log2 (see lrn_log2)
    BLOCK: tl.constexpr,  # spatial positions per program
):
    HALF: tl.constexpr = SIZE // 2
    tile, c0, c1 = channel_chunk(C, CHUNK)
    mask, n, h, w = position_tile(tile, N, H, W, BLOCK, INDEX_64)
    xs = position_ptr(x_ptr, n, h, w, sxn, sxh, sxw)
    ys = position_ptr(y_ptr, n, h, w, syn, syh, syw)
    ring = acc_zeros([SIZE_P2, BLOCK], USE_FP64)
    ACC: tl.constexpr = ring.dtype
    alpha = join_float(alpha_hi, alpha_lo, ACC)
    slots = tl.arange(0, SIZE_P2)[:, None]
    lane0 = tl.zeros([BLOCK], tl.int32)  # channel tests as vectors (the interpreter mis-types scalar ones)
    # Channel steps go in groups of SIZE (c0 is a multiple of SIZE, see relu_lrn_forward), so the ring
    # slot of every step is a compile-time constant and the ring update compiles to register moves.
    # prologue: channels c0-HALF .. c0+HALF-1 enter the window before channel c0 is emitted
    for i in tl.static_range(2 * HALF):
        a = load_relu(xs, c0 - HALF + i, sxc, mask, C, lane0, ACC, INDEX_64)
        ring = tl.where(slots == (i - HALF + SIZE) % SIZE, (a * a)[None, :], ring)
    a_next = load_relu(xs, c0 + HALF, sxc, mask, C, lane0, ACC, INDEX_64)
    for g in range(c0, c1, SIZE):
        for i in tl.static_range(SIZE):
            j = g + i
            e = j + HALF  # channel entering the window of channel j; beyond C-1 it is zero
            a = a_next
            a_next = load_relu(xs, e + 1, sxc, mask, C, lane0, ACC, INDEX_64)  # prefetch: in flight during the math
            ring = tl.where(slots == (i + HALF) % SIZE, (a * a)[None, :], ring)
            d = k + alpha * tl.sum(ring, axis=0)
            aj = load_relu(xs, j, sxc, mask, C, lane0, ACC, INDEX_64)  # cache hit: loaded HALF steps ago
            y = aj * tl.exp2(-beta * lrn_log2(d, FAST_LOG2))  # times d^-beta: no division
            tl.store(ys + as_index(j, INDEX_64) * syc, y.to(y_ptr.dtype.element_ty), mask=mask & ((lane0 + j) < c1))


# ---------------------------------------------------------------------------------- host side

def relu_lrn_forward(x: torch.Tensor, size: int, alpha: float, beta: float, k: float,
                     walk: ChannelWalk | None = None) -> torch.Tensor:
    """ReLU + LRN of ``x`` (any strides); the output is in ``op_shapes.output_format(x)``. ``walk``
    overrides the launch shape (``bench.tools.tune_tiling`` sweeps it); by default ``lrn_walk`` picks it."""
    if x.ndim != 4 or size % 2 == 0:
        raise ValueError(f"relu_lrn_forward: need a 4-D tensor and odd size, got {tuple(x.shape)}, size={size}")
    n, c, h, w = x.shape
    y = like(x)
    walk = check_walk(walk or lrn_walk(x, size), c, size)
    launch(
        _relu_lrn_fwd_kernel, (walk.programs,),
        x, y, n, c, h, w, *x.stride(), *y.stride(), walk.chunk, *split_float(alpha), beta, k,
        SIZE=size, SIZE_P2=triton.next_power_of_2(size), USE_FP64=x.dtype == torch.float64,
        INDEX_64=index_is_64(x, y, lanes=n * h * w), FAST_LOG2=fast_log2(x), BLOCK=walk.block, num_warps=walk.num_warps,
    )
    return y


def relu_lrn_backward(x: torch.Tensor, grad: torch.Tensor, size: int, alpha: float, beta: float, k: float,
                      walk: ChannelWalk | None = None) -> torch.Tensor:
    """Gradient w.r.t. ``x`` of relu_lrn, recomputing a and d from ``x``; same memory format as ``x``."""
    return lrn_backward(x, grad, size, alpha, beta, k, walk=walk)
