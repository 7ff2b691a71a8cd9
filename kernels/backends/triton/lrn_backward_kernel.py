"""The backward of ReLU + LRN in Triton, alone (``relu_lrn``) or behind a max-pool (``relu_lrn_pool``):
one kernel, recomputing a and d from x (the forward's math: ``relu_lrn_kernel``).

Backward, with g the gradient of b (saved for backward: only x):

    grad_a_j = g_j d_j^-beta - 2 alpha beta a_j sum_{c in W(j)} g_c a_c d_c^(-beta-1)
    grad_x_j = grad_a_j where x_j > 0 (or NaN, like ATen's threshold_backward) else 0

is one more channel pipeline: at step t it enters a_t^2, finishes d_c for c = t - size//2 and
pushes T_c = g_c a_c d_c^(-beta-1) and g_c d_c^-beta into two more rings, and emits channel
j = t - 2*(size//2). With POOL=True, g_c is not loaded but gathered from a max-pool's output
gradient and argmax offsets (``pool_windows.window_grad``): the fused ReLU+LRN+pool backward.
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
from kernels.backends.triton.lrn_math import (
    acc_zeros, check_walk, fast_log2, join_float, load_relu, lrn_log2, lrn_walk, split_float,
)
from kernels.backends.triton.pool_windows import window_geometry, window_grad


@triton.jit
def _relu_lrn_bwd_kernel(
    x_ptr,  # forward input, any strides
    g_ptr,  # gradient of the LRN output (POOL=False) or of the pooled output (POOL=True)
    off_ptr,  # POOL=True: argmax window offsets of the pool (else unused)
    dx_ptr,  # input gradient, any strides
    N, C, H, W,
    OH, OW,  # pooled size (POOL=True)
    sxn, sxc, sxh, sxw,
    sgn, sgc, sgh, sgw,
    son, soc, soh, sow,
    sdn, sdc, sdh, sdw,
    CHUNK,  # channels per program
    alpha_hi, alpha_lo, beta, k,
    SIZE: tl.constexpr, SIZE_P2: tl.constexpr,
    POOL: tl.constexpr,  # gather g from a max-pool's gradient (fused ReLU+LRN+pool backward)
    KS: tl.constexpr, STRIDE: tl.constexpr, NWIN: tl.constexpr, NW2_P2: tl.constexpr,  # pool geometry (POOL=True)
    USE_FP64: tl.constexpr,
    INDEX_64: tl.constexpr,
    FAST_LOG2: tl.constexpr,
    BLOCK: tl.constexpr,
):
    HALF: tl.constexpr = SIZE // 2
    tile, c0, c1 = channel_chunk(C, CHUNK)
    mask, n, h, w = position_tile(tile, N, H, W, BLOCK, INDEX_64)
    xs = position_ptr(x_ptr, n, h, w, sxn, sxh, sxw)
    gs = position_ptr(g_ptr, n, h, w, sgn, sgh, sgw)
    ds = position_ptr(dx_ptr, n, h, w, sdn, sdh, sdw)
    sq = acc_zeros([SIZE_P2, BLOCK], USE_FP64)  # squares a_c^2
    ACC: tl.constexpr = sq.dtype
    t_ring = tl.zeros([SIZE_P2, BLOCK], ACC)  # T_c = g_c a_c d_c^(-beta-1)
    gp_ring = tl.zeros([SIZE_P2, BLOCK], ACC)  # g_c d_c^-beta
    alpha = join_float(alpha_hi, alpha_lo, ACC)
    two_alpha_beta = 2.0 * alpha * tl.cast(beta, ACC)
    slots = tl.arange(0, SIZE_P2)[:, None]
    lane0 = tl.zeros([BLOCK], tl.int32)  # channel tests as vectors (the interpreter mis-types scalar ones)
    if POOL:  # the windows covering each pixel do not depend on the channel: find them once
        valid, code, g_off, o_off = window_geometry(n, as_index(lane0, INDEX_64), h, w, mask, OH, OW,
                                                     sgn, sgc, sgh, sgw, son, soc, soh, sow,
                                                     KS, STRIDE, NWIN, NW2_P2)
    # The window of channel j needs T_c for c in [j-HALF, j+HALF], each needing squares of
    # [c-HALF, c+HALF]: squares enter from c0 - 2*HALF (prologue), T_c is finished from c0 - HALF.
    # Steps go in groups of SIZE from c0 (a multiple of SIZE), so every ring slot is a constant.
    for i in tl.static_range(2 * HALF):
        a = load_relu(xs, c0 - 2 * HALF + i, sxc, mask, C, lane0, ACC, INDEX_64)
        sq = tl.where(slots == (i - 2 * HALF + 2 * SIZE) % SIZE, (a * a)[None, :], sq)
    a_next = load_relu(xs, c0, sxc, mask, C, lane0, ACC, INDEX_64)
    for g in range(c0, c1 + 2 * HALF, SIZE):
        for i in tl.static_range(SIZE):
            t = g + i
            # 1. channel t enters the square ring (zero beyond C-1)
            a = a_next
            a_next = load_relu(xs, t + 1, sxc, mask, C, lane0, ACC, INDEX_64)  # prefetch
            sq = tl.where(slots == i, (a * a)[None, :], sq)
            # 2. the window of channel c = t - HALF is complete: d_c, T_c, g_c d_c^-beta
            c = t - HALF
            c_ok = ((lane0 + c) >= 0) & ((lane0 + c) < C)
            ci = as_index(c, INDEX_64)
            ac = load_relu(xs, c, sxc, mask, C, lane0, ACC, INDEX_64)  # cache hit
            if POOL:
                gc = window_grad(g_ptr, off_ptr, valid & c_ok[:, None], code, g_off + ci * sgc, o_off + ci * soc,
                                  ACC)
            else:
                gc = tl.load(gs + ci * sgc, mask=mask & c_ok, other=0.0).to(ACC)
            log2_d = lrn_log2(k + alpha * tl.sum(sq, axis=0), FAST_LOG2)
            tc = tl.where(c_ok, gc * ac * tl.exp2((-beta - 1.0) * log2_d), 0.0)  # d^(-beta-1): no division
            slot_c = (i - HALF + SIZE) % SIZE
            t_ring = tl.where(slots == slot_c, tc[None, :], t_ring)
            gp_ring = tl.where(slots == slot_c, (gc * tl.exp2(-beta * log2_d))[None, :], gp_ring)
            # 3. channel j = t - 2*HALF has all of W(j) in the T ring: emit its gradient (j in [c0, c1))
            j = t - 2 * HALF
            j_ok = ((lane0 + j) >= c0) & ((lane0 + j) < c1)
            gp_j = tl.sum(tl.where(slots == (i - 2 * HALF + 2 * SIZE) % SIZE, gp_ring, 0.0), axis=0)
            xj = tl.load(xs + as_index(j, INDEX_64) * sxc, mask=mask & j_ok, other=0.0).to(ACC)  # cache hit
            aj = tl.where(xj < 0, 0.0, xj)
            grad = gp_j - two_alpha_beta * aj * tl.sum(t_ring, axis=0)
            grad = tl.where(xj <= 0, 0.0, grad)  # relu'; NaN inputs pass the gradient, like ATen
            tl.store(ds + as_index(j, INDEX_64) * sdc, grad.to(dx_ptr.dtype.element_ty), mask=mask & j_ok)


# ---------------------------------------------------------------------------------- host side

def lrn_backward(
    x: torch.Tensor, grad: torch.Tensor, size: int, alpha: float, beta: float, k: float,
    offsets: torch.Tensor | None = None, kernel_size: int = 1, stride: int = 1, walk: ChannelWalk | None = None,
) -> torch.Tensor:
    """Gradient w.r.t. ``x`` of relu_lrn (``offsets is None``) or of max_pool(relu_lrn) given the
    pool's argmax ``offsets``; recomputes a and d from ``x``. Same memory format as ``x``."""
    n, c, h, w = x.shape
    dx = like(x)
    pool = offsets is not None
    if pool:
        oh, ow = grad.shape[-2:]
        off, off_strides = offsets, offsets.stride()
    else:
        oh, ow = h, w
        off, off_strides = grad, (0, 0, 0, 0)  # unused by the kernel
    walk = check_walk(walk or lrn_walk(x, size, pool_backward=pool), c, size)
    launch(
        _relu_lrn_bwd_kernel, (walk.programs,),
        x, grad, off, dx, n, c, h, w, oh, ow, *x.stride(), *grad.stride(), *off_strides, *dx.stride(),
        walk.chunk, *split_float(alpha), beta, k,
        SIZE=size, SIZE_P2=triton.next_power_of_2(size), POOL=pool, KS=kernel_size, STRIDE=stride,
        NWIN=triton.cdiv(kernel_size, stride), NW2_P2=triton.next_power_of_2(triton.cdiv(kernel_size, stride) ** 2),
        USE_FP64=x.dtype == torch.float64, INDEX_64=index_is_64(x, grad, off, dx, lanes=n * h * w),
        FAST_LOG2=fast_log2(x), BLOCK=walk.block, num_warps=walk.num_warps,
    )
    return dx
