"""The one autograd pattern of the custom-op backends (``cpp`` and ``triton``), driven by each op's
declaration (``kernels.catalog.CUSTOM_OPS``): what the forward keeps for the backward and how the backward op
is called.

Every backward op takes its arguments in one order: the upstream gradient, then the saved tensors, then
the input geometry where the op keeps no input, then the op's settings::

    relu_lrn_backward(grad_y, x, size, alpha, beta, k)
    max_pool_backward(grad_y, offsets, height, width, kernel_size, stride)
    relu_lrn_pool_backward(grad_y, x, offsets, size, alpha, beta, k, kernel_size, stride)

What is kept is the least a kernel needs: ``x`` for ReLU+LRN (the LRN is recomputed), the pool's window
offsets (int8 for windows of up to 128 positions) for max-pool, ``x`` and the offsets for the fused op -
no LRN output and no int64 indices. The forward ops of the pooling kind return ``(y, offsets)``; the
offsets are marked non-differentiable.
"""
from __future__ import annotations

import torch

from kernels.custom_ops import CustomOp


def register(decl: CustomOp, op, backward_op) -> None:
    """Autograd for ``op`` (``decl``'s forward, an op or its qualified name) through ``backward_op``."""

    def setup(ctx, inputs, output):
        x, *ctx.settings = inputs
        kept = {"x": x}
        if decl.pooled:
            ctx.mark_non_differentiable(output[1])
            kept["offsets"] = output[1]
        ctx.save_for_backward(*(kept[name] for name in decl.saves))
        ctx.geometry = tuple(x.shape[-2:]) if decl.geometry else ()

    def backward(ctx, grad, *_grad_offsets):
        dx = backward_op(grad, *ctx.saved_tensors, *ctx.geometry, *ctx.settings)
        return (dx, *(None for _ in ctx.settings))

    torch.library.register_autograd(op, backward, setup_context=setup)
