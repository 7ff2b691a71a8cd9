"""ReLU + LRN + max-pool fused in Triton: the LRN output never reaches memory.

Forward: each program owns BLOCK pooled positions (flattened over N*OH*OW) and walks all channels. Its pixel
tile is [BLOCK, KK_P2] (the K*K window pixels of each pooled position, padded to a power of two)
and the LRN window sum is carried in a register ring over channels, as in ``relu_lrn_kernel``.
Per channel it reduces the tile to the window maximum (ATen's rule: NaN wins - the last NaN in scan
order - else the first maximum) and stores only the pooled value and its int8 window offset.
The LRN of overlapping windows' shared pixels is recomputed (compute is cheap, bytes are not).

Backward: saved for backward are only ``x`` and the offsets. ``lrn_backward_kernel``
with POOL=True gathers each pixel's gradient from the pooled positions whose argmax it is and
recomputes a and d locally.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels.backends.triton.launch import launch
from kernels.backends.triton.offsets import index_is_64
from kernels.backends.triton.tiling import ChannelWalk, channel_walk
from kernels.backends.triton.indexing import as_index, channel_chunk, position_ptr, position_tile
from kernels.backends.triton.lrn_backward_kernel import lrn_backward
from kernels.backends.triton.lrn_math import (
    acc_zeros, check_walk, fast_log2, join_float, load_relu, lrn_log2, split_float,
)
from kernels.op_shapes import pooled


@triton.jit
def _relu_lrn_pool_fwd_kernel(
    x_ptr,  # input, any strides
    y_ptr,  # pooled output, any strides
    off_ptr,  # argmax window offsets (int8/int32), with y's strides (op_shapes.pooled allocates both alike)
    N, C, H, W, OH, OW,
    sxn, sxc, sxh, sxw,
    syn, syc, syh, syw,  # strides of y and of the offsets
    CHUNK,  # channels per program
    alpha_hi, alpha_lo, beta, k,
    SIZE: tl.constexpr, SIZE_P2: tl.constexpr,
    KS: tl.constexpr, STRIDE: tl.constexpr,
    KK_P2: tl.constexpr,  # next power of two >= KS*KS
    USE_FP64: tl.constexpr,
    INDEX_64: tl.constexpr,
    FAST_LOG2: tl.constexpr,  # approximate log2 (see lrn_math.lrn_log2)
    BLOCK: tl.constexpr,  # pooled positions per program
):
    HALF: tl.constexpr = SIZE // 2
    tile, c0, c1 = channel_chunk(C, CHUNK)
    qmask, n, oh, ow = position_tile(tile, N, OH, OW, BLOCK, INDEX_64)  # pooled positions over (n, oh, ow)
    kk = tl.arange(0, KK_P2)
    kh = kk // KS
    kw = kk % KS
    pix_ok = qmask[:, None] & (kk < KS * KS)[None, :]  # [BLOCK, KK_P2]
    h = oh[:, None] * STRIDE + kh[None, :]
    w = ow[:, None] * STRIDE + kw[None, :]
    xs = x_ptr + (n * sxn)[:, None] + h * sxh + w * sxw  # [BLOCK, KK_P2] pointers
    ys = position_ptr(y_ptr, n, oh, ow, syn, syh, syw)
    offs = position_ptr(off_ptr, n, oh, ow, syn, syh, syw)
    ring = acc_zeros([SIZE_P2, BLOCK, KK_P2], USE_FP64)
    ACC: tl.constexpr = ring.dtype
    alpha = join_float(alpha_hi, alpha_lo, ACC)
    slots = tl.arange(0, SIZE_P2)[:, None, None]
    lane0 = tl.zeros([BLOCK, KK_P2], tl.int32)  # channel tests as vectors (the interpreter mis-types scalar ones)
    qlane0 = tl.zeros([BLOCK], tl.int32)
    # prologue: the window of channel c0 fills up. Then steps in groups of SIZE from c0 (a multiple
    # of SIZE), so every ring slot is a compile-time constant.
    for i in tl.static_range(2 * HALF):
        a = load_relu(xs, c0 - HALF + i, sxc, pix_ok, C, lane0, ACC, INDEX_64)
        ring = tl.where(slots == (i - HALF + SIZE) % SIZE, (a * a)[None, :, :], ring)
    a_next = load_relu(xs, c0 + HALF, sxc, pix_ok, C, lane0, ACC, INDEX_64)
    for g in range(c0, c1, SIZE):
        for i in tl.static_range(SIZE):
            j = g + i
            a = a_next
            a_next = load_relu(xs, j + HALF + 1, sxc, pix_ok, C, lane0, ACC, INDEX_64)  # prefetch
            ring = tl.where(slots == (i + HALF) % SIZE, (a * a)[None, :, :], ring)
            d = k + alpha * tl.sum(ring, axis=0)
            aj = load_relu(xs, j, sxc, pix_ok, C, lane0, ACC, INDEX_64)  # cache hit
            b = tl.where(pix_ok, aj * tl.exp2(-beta * lrn_log2(d, FAST_LOG2)), float("-inf"))
            # window max with ATen's rule: any NaN wins (the last one), else the first maximum
            is_nan = b != b
            last_nan = tl.max(tl.where(is_nan, kk[None, :], -1), axis=1)
            best = tl.max(tl.where(is_nan, float("-inf"), b), axis=1)
            first_max = tl.min(tl.where(b == best[:, None], kk[None, :], KK_P2), axis=1)
            has_nan = last_nan >= 0
            out = tl.where(has_nan, float("nan"), best)
            at = tl.where(has_nan, last_nan, first_max)
            ji = as_index(j, INDEX_64)
            ok = qmask & ((qlane0 + j) < c1)
            tl.store(ys + ji * syc, out.to(y_ptr.dtype.element_ty), mask=ok)
            tl.store(offs + ji * syc, at.to(off_ptr.dtype.element_ty), mask=ok)


# ---------------------------------------------------------------------------------- host side

def fused_walk(x: torch.Tensor, pooled_positions: int, size: int) -> ChannelWalk:
    """Launch shape of the fused forward: 32 pooled positions x 16 window lanes (4 per thread) per
    program on a GPU, channels split until every SM has programs (``tiling``)."""
    return channel_walk(pooled_positions, x.shape[1], x.device, gpu_block=32, interpreter_block=2048,
                        chunk_multiple=size)


def relu_lrn_pool_forward(
    x: torch.Tensor, size: int, alpha: float, beta: float, k: float, kernel_size: int, stride: int,
    walk: ChannelWalk | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """max_pool(relu_lrn(x)) and the pool's int8/int32 argmax window offsets, in ``x``'s memory format."""
    if x.ndim != 4 or size % 2 == 0:
        raise ValueError(f"relu_lrn_pool_forward: need a 4-D tensor and odd size, got {tuple(x.shape)}, size={size}")
    n, c, h, w = x.shape
    y, offsets = pooled(x, kernel_size, stride)
    oh, ow = y.shape[-2:]
    walk = check_walk(walk or fused_walk(x, n * oh * ow, size), c, size)
    launch(
        _relu_lrn_pool_fwd_kernel, (walk.programs,),
        x, y, offsets, n, c, h, w, oh, ow, *x.stride(), *y.stride(),
        walk.chunk, *split_float(alpha), beta, k,
        SIZE=size, SIZE_P2=triton.next_power_of_2(size), KS=kernel_size, STRIDE=stride,
        KK_P2=triton.next_power_of_2(kernel_size * kernel_size), USE_FP64=x.dtype == torch.float64,
        FAST_LOG2=fast_log2(x),
        INDEX_64=index_is_64(x, y, offsets, lanes=n * oh * ow),
        BLOCK=walk.block, num_warps=walk.num_warps,
    )
    return y, offsets


def relu_lrn_pool_backward(
    x: torch.Tensor, grad_out: torch.Tensor, offsets: torch.Tensor,
    size: int, alpha: float, beta: float, k: float, kernel_size: int, stride: int, walk: ChannelWalk | None = None,
) -> torch.Tensor:
    """Gradient w.r.t. ``x`` from the pooled gradient, recomputing the LRN from ``x``."""
    return lrn_backward(x, grad_out, size, alpha, beta, k, offsets=offsets, kernel_size=kernel_size, stride=stride,
                             walk=walk)
