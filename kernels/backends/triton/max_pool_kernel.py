"""Unpadded floor-mode max-pool in Triton: forward saving int8 window offsets, gather-style backward.

Forward: one lane per pooled output element, walked in the output's memory order (``w`` fastest for
NCHW, ``c`` fastest for channels_last, so stores and most loads are coalesced); the input is read
through its own strides. Ties and NaN follow ATen: the first maximum in (kh, kw) scan order wins, and
a NaN wins over everything (the last NaN in scan order, as ATen's ``val > max || isnan(val)``).
Instead of ATen's int64 flat indices the forward saves the argmax's position inside its window,
``kh * kernel_size + kw``, as int8 (int32 when ``kernel_size**2 > 128``): 1/8 of the bytes.

Backward: one lane per *input* element; it visits the at most ``ceil(K/S)**2`` windows that cover
it and adds the gradient of those whose saved offset points at it. No atomics, deterministic.
``window_geometry`` / ``window_grad`` are shared with the fused ReLU+LRN+pool backward.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels.interpreter import triton_interpreted
from kernels.backends.triton.launch import launch
from kernels.backends.triton.offsets import index_is_64
from kernels.backends.triton.indexing import as_index, unravel
from kernels.backends.triton.pool_windows import window_geometry, window_grad
from kernels import op_shapes
from kernels.op_shapes import output_format, pooled


@triton.jit
def _max_pool_fwd_kernel(
    x_ptr,  # input, any strides
    y_ptr,  # pooled output, dense in the memory order given by CHANNELS_LAST
    off_ptr,  # argmax offset within the window (int8/int32), same layout as y
    total,  # number of output elements N*C*OH*OW
    C, H, W, OH, OW,
    sxn, sxc, sxh, sxw,  # input strides (elements)
    KS: tl.constexpr,  # kernel_size
    STRIDE: tl.constexpr,
    CHANNELS_LAST: tl.constexpr,  # walk the output with c fastest (else w fastest)
    USE_FP64: tl.constexpr,  # compare in float64 (else float32: exact for 16-bit inputs)
    INDEX_64: tl.constexpr,  # int64 index arithmetic (some offset passes 2**31 - 1)
    BLOCK: tl.constexpr,
):
    idx = as_index(tl.program_id(0), INDEX_64) * BLOCK + tl.arange(0, BLOCK)
    mask = idx < total
    n, c, oh, ow = unravel(idx, C, OH, OW, CHANNELS_LAST)
    base = x_ptr + n * sxn + c * sxc + (oh * STRIDE) * sxh + (ow * STRIDE) * sxw
    if USE_FP64:
        best = tl.full([BLOCK], float("-inf"), tl.float64)
    else:
        best = tl.full([BLOCK], float("-inf"), tl.float32)
    best_at = tl.zeros([BLOCK], tl.int32)
    for kh in tl.static_range(KS):
        for kw in tl.static_range(KS):
            v = tl.load(base + kh * sxh + kw * sxw, mask=mask, other=float("-inf")).to(best.dtype)
            take = (v > best) | (v != v)  # ATen: strictly greater, or NaN (NaN always wins)
            best = tl.where(take, v, best)
            best_at = tl.where(take, kh * KS + kw, best_at)
    tl.store(y_ptr + idx, best.to(y_ptr.dtype.element_ty), mask=mask)
    tl.store(off_ptr + idx, best_at.to(off_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _max_pool_bwd_kernel(
    g_ptr,  # gradient of the pooled output, any strides
    off_ptr,  # argmax offsets from the forward, any strides
    dx_ptr,  # input gradient, dense in the memory order given by CHANNELS_LAST
    total,  # N*C*H*W
    C, H, W, OH, OW,
    sgn, sgc, sgh, sgw,
    son, soc, soh, sow,
    KS: tl.constexpr, STRIDE: tl.constexpr, NWIN: tl.constexpr, NW2_P2: tl.constexpr,
    CHANNELS_LAST: tl.constexpr,
    USE_FP64: tl.constexpr,
    INDEX_64: tl.constexpr,
    BLOCK: tl.constexpr,
):
    idx = as_index(tl.program_id(0), INDEX_64) * BLOCK + tl.arange(0, BLOCK)
    mask = idx < total
    n, c, h, w = unravel(idx, C, H, W, CHANNELS_LAST)
    valid, code, g_off, o_off = window_geometry(n, c, h, w, mask, OH, OW, sgn, sgc, sgh, sgw,
                                                 son, soc, soh, sow, KS, STRIDE, NWIN, NW2_P2)
    if USE_FP64:
        acc = window_grad(g_ptr, off_ptr, valid, code, g_off, o_off, tl.float64)
    else:
        acc = window_grad(g_ptr, off_ptr, valid, code, g_off, o_off, tl.float32)
    tl.store(dx_ptr + idx, acc.to(dx_ptr.dtype.element_ty), mask=mask)


# ---------------------------------------------------------------------------------- host side

def _block(total: int, gpu_block: int) -> int:
    """Lanes per program. Interpreter: few, wide programs (its cost is per program). GPU: 4 warps with
    ``gpu_block / 128`` elements each, sized by the sm_90 compile (``bench.tools.kernel_resources``): the
    forward at 512 vectorises its channels_last loads in 32 registers (NCHW: 48); the NCHW backward's
    2x2-window gather needs 117 registers at 512 lanes but 70 at 256."""
    if triton_interpreted():
        return min(triton.next_power_of_2(total), 1 << 16)
    return gpu_block


def max_pool_forward(x: torch.Tensor, kernel_size: int, stride: int, block: int | None = None,
                     num_warps: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled output and argmax window offsets (``op_shapes.pooled``). ``block`` and ``num_warps``
    override the launch shape (``bench.tools.tune_tiling`` sweeps them)."""
    if x.ndim != 4:
        raise ValueError(f"max_pool_forward: expected a 4-D NCHW tensor, got shape {tuple(x.shape)}")
    n, c, h, w = x.shape
    y, offsets = pooled(x, kernel_size, stride)
    oh, ow = y.shape[-2:]
    fmt = output_format(x)
    total = y.numel()
    block = block or _block(total, gpu_block=512)
    launch(
        _max_pool_fwd_kernel, (triton.cdiv(total, block),),
        x, y, offsets, total, c, h, w, oh, ow, *x.stride(),
        KS=kernel_size, STRIDE=stride, CHANNELS_LAST=fmt == torch.channels_last,
        USE_FP64=x.dtype == torch.float64, INDEX_64=index_is_64(x, y, offsets, lanes=total), BLOCK=block,
        num_warps=num_warps,
    )
    return y, offsets


def max_pool_backward(
    grad_out: torch.Tensor, offsets: torch.Tensor, input_hw: tuple[int, int], kernel_size: int, stride: int,
    block: int | None = None, num_warps: int = 4,
) -> torch.Tensor:
    """Input gradient from the pooled gradient and the saved offsets, in the offsets' layout
    (``op_shapes.max_pool_backward``)."""
    n, c, oh, ow = grad_out.shape
    h, w = input_hw
    dx = op_shapes.max_pool_backward(grad_out, offsets, h, w, kernel_size, stride)
    channels_last = output_format(offsets) == torch.channels_last
    total = dx.numel()
    block = block or _block(total, gpu_block=512 if channels_last else 256)
    launch(
        _max_pool_bwd_kernel, (triton.cdiv(total, block),),
        grad_out, offsets, dx, total, c, h, w, oh, ow, *grad_out.stride(), *offsets.stride(),
        KS=kernel_size, STRIDE=stride, NWIN=triton.cdiv(kernel_size, stride),
        NW2_P2=triton.next_power_of_2(triton.cdiv(kernel_size, stride) ** 2), CHANNELS_LAST=channels_last,
        USE_FP64=grad_out.dtype == torch.float64, INDEX_64=index_is_64(grad_out, offsets, dx, lanes=total), BLOCK=block,
        num_warps=num_warps,
    )
    return dx
