"""Shared pieces of the max-pool kernels: the windows that cover an input element and the gradient it
gathers from them (``max_pool_kernel``'s backward, ``lrn_backward_kernel`` with POOL=True)."""
from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def window_geometry(
    n, c, h, w,  # coordinates of the input elements (in the index type), shape [BLOCK]
    mask,
    OH, OW,
    sgn, sgc, sgh, sgw,  # pooled-gradient strides
    son, soc, soh, sow,  # offsets strides
    KS: tl.constexpr, STRIDE: tl.constexpr,
    NWIN: tl.constexpr,  # ceil(KS / STRIDE): windows covering an element per spatial dim
    NW2_P2: tl.constexpr,  # next power of two >= NWIN**2
):
    """The windows covering each input element, as [BLOCK, NW2_P2] tensors: (valid, the window
    offset that would point at the element, gradient offsets, offsets-tensor offsets)."""
    # windows oh with oh*S <= h <= oh*S + K - 1, i.e. ceil((h-K+1)/S) <= oh <= h // S
    th = h - KS + 1
    tw = w - KS + 1
    oh_lo = tl.where(th > 0, (th + STRIDE - 1) // STRIDE, 0)
    ow_lo = tl.where(tw > 0, (tw + STRIDE - 1) // STRIDE, 0)
    oh_hi = tl.minimum(h // STRIDE, OH - 1)
    ow_hi = tl.minimum(w // STRIDE, OW - 1)
    wnd = tl.arange(0, NW2_P2)[None, :]
    oh = oh_lo[:, None] + wnd // NWIN
    ow = ow_lo[:, None] + wnd % NWIN
    valid = mask[:, None] & (wnd < NWIN * NWIN) & (oh <= oh_hi[:, None]) & (ow <= ow_hi[:, None])
    code = (h[:, None] - oh * STRIDE) * KS + (w[:, None] - ow * STRIDE)
    g_off = (n * sgn + c * sgc)[:, None] + oh * sgh + ow * sgw
    o_off = (n * son + c * soc)[:, None] + oh * soh + ow * sow
    return valid, code, g_off, o_off


@triton.jit
def window_grad(g_ptr, off_ptr, valid, code, g_off, o_off, ACC: tl.constexpr):
    """Sum of the pooled gradients (of the windows in the geometry) whose argmax is the element."""
    o = tl.load(off_ptr + o_off, mask=valid, other=-1)
    hit = valid & (o.to(tl.int32) == code)
    gv = tl.load(g_ptr + g_off, mask=hit, other=0.0).to(ACC)
    return tl.sum(gv, axis=1)
