"""ReLU + LRN forward for channels_last tensors, walking channels in 16-byte vectors (experimental).

The ring kernel (``kernels.backends.triton.relu_lrn_kernel``) steps through one channel at a time; in channels_last each step
then touches one element per position, strided by C: every 4-byte load and store is its own memory
transaction. Here each thread owns a ``[positions, CV]`` tile of contiguous channels (CV = 16 bytes /
element size: 4 float32, 8 bfloat16/float16), so loads and stores are whole 16-byte vectors. The
window of a channel reaches HALF channels into the previous and next vectors, so three vectors are
kept in registers and the window sums are formed from constant column picks (``_column``), which
compile to register reads because a thread holds its whole vector.

Same semantics as the ring kernel: a NaN or inf stays inside the windows it belongs to (sums are
re-formed, never updated by subtraction), float32 accumulation, d^-beta as exp2(-beta * log2 d).
Not on the main path: the triton backend never calls it; tests call ``relu_lrn_forward_cvec`` directly, and ``bench.tools.tune_tiling``
times it against the ring kernel on channels_last inputs; whether it becomes the default is for
that GPU measurement to decide.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels.interpreter import triton_interpreted
from kernels.backends.triton.launch import launch
from kernels.backends.triton.offsets import index_is_64
from kernels.backends.triton.indexing import as_index, position_ptr, position_tile
from kernels.backends.triton.lrn_math import fast_log2, join_float, lrn_log2, split_float


@triton.jit
def _column(tile, cols, q: tl.constexpr):
    """Column ``q`` of a [BLOCK, CV] tile as a [BLOCK] vector (a register pick when a thread owns a row)."""
    return tl.sum(tl.where(cols == q, tile, 0.0), axis=1)


@triton.jit
def _load_relu_vector(xs, first, cols, mask, C, ACC: tl.constexpr, INDEX_64: tl.constexpr):
    """relu(x) of channels first .. first + CV - 1 at every position ([BLOCK, CV]; zero beyond C)."""
    ch = first + cols
    ok = mask[:, None] & (ch >= 0) & (ch < C)
    v = tl.load(xs[:, None] + as_index(ch, INDEX_64), mask=ok, other=0.0).to(ACC)
    return tl.where(v < 0, 0.0, v)


@triton.jit
def _relu_lrn_fwd_cvec_kernel(
    x_ptr,  # input, channels_last-dense (channel stride 1)
    y_ptr,  # output, channels_last-dense
    N, C, H, W,
    sxn, sxh, sxw,
    syn, syh, syw,
    alpha_hi, alpha_lo, beta, k,
    SIZE: tl.constexpr,
    CV: tl.constexpr,  # channels per vector (16 bytes); SIZE // 2 <= CV
    USE_FP64: tl.constexpr,
    INDEX_64: tl.constexpr,
    FAST_LOG2: tl.constexpr,
    BLOCK: tl.constexpr,  # positions per program
):
    HALF: tl.constexpr = SIZE // 2
    mask, n, h, w = position_tile(tl.program_id(0), N, H, W, BLOCK, INDEX_64)
    xs = position_ptr(x_ptr, n, h, w, sxn, sxh, sxw)
    ys = y_ptr + n * syn + h * syh + w * syw
    cols = tl.arange(0, CV)[None, :]
    if USE_FP64:  # relu(x) of the vector before the current one (zero before channel 0)
        prev = tl.zeros([BLOCK, CV], tl.float64)
    else:
        prev = tl.zeros([BLOCK, CV], tl.float32)
    ACC: tl.constexpr = prev.dtype
    alpha = join_float(alpha_hi, alpha_lo, ACC)
    cur = _load_relu_vector(xs, 0, cols, mask, C, ACC, INDEX_64)
    for g in range(0, C, CV):
        nxt = _load_relu_vector(xs, g + CV, cols, mask, C, ACC, INDEX_64)
        out = tl.zeros([BLOCK, CV], ACC)
        for q in tl.static_range(CV):
            total = tl.zeros([BLOCK], ACC)
            for s in tl.static_range(-HALF, HALF + 1):
                if q + s < 0:
                    v = _column(prev, cols, q + s + CV)
                elif q + s >= CV:
                    v = _column(nxt, cols, q + s - CV)
                else:
                    v = _column(cur, cols, q + s)
                total += v * v
            y_q = _column(cur, cols, q) * tl.exp2(-beta * lrn_log2(k + alpha * total, FAST_LOG2))
            out = tl.where(cols == q, y_q[:, None], out)
        ch = g + cols
        tl.store(ys[:, None] + as_index(ch, INDEX_64), out.to(y_ptr.dtype.element_ty), mask=mask[:, None] & (ch < C))
        prev = cur
        cur = nxt


def channel_vector(dtype: torch.dtype) -> int:
    """Channels per 16-byte vector."""
    return 16 // torch.empty((), dtype=dtype).element_size()


def supports(x: torch.Tensor, size: int) -> str | None:
    """None when the channel-vector kernel can run on ``x``; otherwise why not."""
    if x.ndim != 4 or x.stride(1) != 1 or not x.is_contiguous(memory_format=torch.channels_last):
        return f"needs a channels_last-dense 4-D tensor (strides {tuple(x.stride())})"
    if size // 2 > channel_vector(x.dtype):
        return f"the LRN window {size} reaches past one {channel_vector(x.dtype)}-channel vector on each side"
    return None


def relu_lrn_forward_cvec(x: torch.Tensor, size: int, alpha: float, beta: float, k: float,
                          block: int | None = None, num_warps: int = 4) -> torch.Tensor:
    """ReLU + LRN of a channels_last ``x``, channel vectors per thread; same result as the ring kernel."""
    if size % 2 == 0:
        raise ValueError(f"relu_lrn_forward_cvec: LRN size must be odd, got {size}")
    reason = supports(x, size)
    if reason is not None:
        raise ValueError(f"relu_lrn_forward_cvec: {reason}")
    n, c, h, w = x.shape
    y = torch.empty_like(x, memory_format=torch.channels_last)
    positions = n * h * w
    if block is None:  # one position per thread on a GPU; few wide programs under the interpreter
        block = min(triton.next_power_of_2(positions), 1024) if triton_interpreted() else 32 * num_warps
    launch(
        _relu_lrn_fwd_cvec_kernel, (triton.cdiv(positions, block),),
        x, y, n, c, h, w, x.stride(0), x.stride(2), x.stride(3), y.stride(0), y.stride(2), y.stride(3),
        *split_float(alpha), beta, k,
        SIZE=size, CV=channel_vector(x.dtype), USE_FP64=x.dtype == torch.float64,
        INDEX_64=index_is_64(x, y, lanes=positions), FAST_LOG2=fast_log2(x), BLOCK=block, num_warps=num_warps,
    )
    return y
