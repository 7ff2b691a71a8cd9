"""The one autograd pattern of the custom-op backends (``cpp`` and ``triton``): what each op keeps for its
backward and how its backward op is called.

Every backward op takes its arguments in one order: the upstream gradient, then the saved tensors, then
the input geometry, then the op's settings::

    relu_lrn_backward(grad, x, size, alpha, beta, k)
    max_pool_backward(grad, offsets, height, width, kernel_size, stride[, channels_last])
    relu_lrn_pool_backward(grad, x, offsets, size, alpha, beta, k, kernel_size, stride)

What is kept is the least a kernel needs: ``x`` for ReLU+LRN (the LRN is recomputed), the pool's window
offsets (int8 for windows of up to 128 positions) for max-pool, ``x`` and the offsets for the fused op -
no LRN output and no int64 indices. The forward ops of the pooling kind return ``(y, offsets)``; the
offsets are marked non-differentiable.
"""
from __future__ import annotations

import torch


def register_relu_lrn(op, backward_op) -> None:
    """``op(x, size, alpha, beta, k) -> y``; ``backward_op(grad, x, size, alpha, beta, k) -> dx``."""

    def setup(ctx, inputs, output):
        x, ctx.size, ctx.alpha, ctx.beta, ctx.k = inputs
        ctx.save_for_backward(x)

    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return backward_op(grad, x, ctx.size, ctx.alpha, ctx.beta, ctx.k), None, None, None, None

    torch.library.register_autograd(op, backward, setup_context=setup)


def register_max_pool(op, backward_op, channels_last=None) -> None:
    """``op(x, kernel_size, stride) -> (y, offsets)``;
    ``backward_op(grad, offsets, height, width, kernel_size, stride[, channels_last]) -> dx``: the last
    argument only when ``channels_last`` (``x -> bool``, the backend's layout rule) is given."""

    def setup(ctx, inputs, output):
        x, ctx.kernel_size, ctx.stride = inputs
        ctx.input_hw = tuple(x.shape[-2:])
        ctx.layout = (channels_last(x),) if channels_last is not None else ()
        ctx.mark_non_differentiable(output[1])
        ctx.save_for_backward(output[1])

    def backward(ctx, grad, _grad_offsets):
        (offsets,) = ctx.saved_tensors
        return backward_op(grad, offsets, *ctx.input_hw, ctx.kernel_size, ctx.stride, *ctx.layout), None, None

    torch.library.register_autograd(op, backward, setup_context=setup)


def register_relu_lrn_pool(op, backward_op) -> None:
    """``op(x, size, alpha, beta, k, kernel_size, stride) -> (y, offsets)``;
    ``backward_op(grad, x, offsets, size, alpha, beta, k, kernel_size, stride) -> dx``."""

    def setup(ctx, inputs, output):
        x, ctx.size, ctx.alpha, ctx.beta, ctx.k, ctx.kernel_size, ctx.stride = inputs
        ctx.mark_non_differentiable(output[1])
        ctx.save_for_backward(x, output[1])

    def backward(ctx, grad, _grad_offsets):
        x, offsets = ctx.saved_tensors
        dx = backward_op(grad, x, offsets, ctx.size, ctx.alpha, ctx.beta, ctx.k, ctx.kernel_size, ctx.stride)
        return dx, None, None, None, None, None, None

    torch.library.register_autograd(op, backward, setup_context=setup)

