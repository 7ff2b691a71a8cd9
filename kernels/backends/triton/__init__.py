"""The ``triton`` backend: hand-written Triton kernels registered as PyTorch custom ops.

Ops (namespace ``alexnet_kernels``), each with a hand-written backward kernel:

  ``relu_lrn(x, size, alpha, beta, k) -> y``                      saves x only (a, d recomputed)
  ``max_pool(x, kernel_size, stride) -> (y, offsets)``            saves only int8 window offsets
  ``relu_lrn_pool(x, size, alpha, beta, k, kernel_size, stride) -> (y, offsets)``
                                                                  saves x and int8 window offsets

(int32 offsets for windows over 128 elements), plus ``*_backward`` ops. Their outputs' shapes, dtypes
and memory formats are ``kernels/op_shapes.py``'s, shared with the cpp backend.
On a CUDA GPU they are ``torch.library.triton_op`` s launching through
``wrap_triton``, so ``torch.compile(fullgraph=True)`` sees the kernels themselves. Under Triton's
CPU interpreter ``wrap_triton`` cannot be traced (FakeTensors have no data pointer), so there they
are opaque ``torch.library.custom_op`` s with ``register_fake`` shape functions - still traceable
without graph breaks. Autograd for both comes from ``register_autograd``.
"""
from __future__ import annotations

import torch

from kernels.interpreter import announce_interpreter_once, triton_interpreted

try:
    import triton  # noqa: F401

    _IMPORT_ERROR: str | None = None
except Exception as exc:  # no triton wheel: the backend reports why instead of failing imports
    _IMPORT_ERROR = f"cannot import triton ({type(exc).__name__}: {exc})"

NAMESPACE = "alexnet_kernels"


def unavailable_reason() -> str | None:
    if _IMPORT_ERROR is not None:
        return _IMPORT_ERROR
    if not triton_interpreted() and not torch.cuda.is_available():
        return "no CUDA GPU is visible and TRITON_INTERPRET is not 1 (set it to run on CPU, slowly)"
    return None


def device_problem(device: torch.device) -> str | None:
    if triton_interpreted():
        if device.type != "cpu":
            return ("Triton kernels run through the CPU interpreter here (TRITON_INTERPRET=1), "
                    "which needs CPU tensors")
        return None
    if device.type != "cuda":
        return "Triton kernels are compiled for the CUDA GPU; move the tensor to a CUDA device"
    return None


if _IMPORT_ERROR is None:
    from kernels import op_shapes
    from kernels.backends import autograd
    from kernels.backends.triton import max_pool_kernel as _mp
    from kernels.backends.triton import relu_lrn_kernel as _lrn
    from kernels.backends.triton import relu_lrn_pool_kernel as _fused

    _INTERPRETED = triton_interpreted()

    def _define(name: str):
        """``triton_op`` on a GPU; ``custom_op`` (+ ``register_fake`` below) under the interpreter."""
        qualname = f"{NAMESPACE}::{name}"
        if _INTERPRETED:
            return torch.library.custom_op(qualname, mutates_args=())
        return torch.library.triton_op(qualname, mutates_args=())

    def _register_fake(op, name: str) -> None:
        """The op's shape function (kernels/op_shapes.py), needed only where it is opaque (interpreter custom_op)."""
        if _INTERPRETED:
            torch.library.register_fake(op)(op_shapes.FAKES[name])

    # ------------------------------------------------------------------ relu_lrn

    @_define("relu_lrn")
    def _relu_lrn_op(x: torch.Tensor, size: int, alpha: float, beta: float, k: float) -> torch.Tensor:
        return _lrn.relu_lrn_forward(x, size, alpha, beta, k)

    @_define("relu_lrn_backward")
    def _relu_lrn_backward_op(
        grad: torch.Tensor, x: torch.Tensor, size: int, alpha: float, beta: float, k: float
    ) -> torch.Tensor:
        return _lrn.relu_lrn_backward(x, grad, size, alpha, beta, k)

    _register_fake(_relu_lrn_op, "relu_lrn")
    _register_fake(_relu_lrn_backward_op, "relu_lrn_backward")

    autograd.register_relu_lrn(_relu_lrn_op, _relu_lrn_backward_op)

    # ------------------------------------------------------------------ max_pool

    @_define("max_pool")
    def _max_pool_op(x: torch.Tensor, kernel_size: int, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
        return _mp.max_pool_forward(x, kernel_size, stride)

    @_define("max_pool_backward")
    def _max_pool_backward_op(
        grad: torch.Tensor, offsets: torch.Tensor, height: int, width: int, kernel_size: int, stride: int,
        channels_last: bool,
    ) -> torch.Tensor:
        return _mp.max_pool_backward(grad, offsets, (height, width), kernel_size, stride, channels_last)

    _register_fake(_max_pool_op, "max_pool")
    _register_fake(_max_pool_backward_op, "max_pool_backward")

    autograd.register_max_pool(_max_pool_op, _max_pool_backward_op,
                               channels_last=lambda x: op_shapes.output_format(x) == torch.channels_last)

    # ------------------------------------------------------------------ relu_lrn_pool (fused)

    @_define("relu_lrn_pool")
    def _relu_lrn_pool_op(
        x: torch.Tensor, size: int, alpha: float, beta: float, k: float, kernel_size: int, stride: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return _fused.relu_lrn_pool_forward(x, size, alpha, beta, k, kernel_size, stride)

    @_define("relu_lrn_pool_backward")
    def _relu_lrn_pool_backward_op(
        grad: torch.Tensor, x: torch.Tensor, offsets: torch.Tensor, size: int, alpha: float, beta: float,
        k: float, kernel_size: int, stride: int,
    ) -> torch.Tensor:
        return _fused.relu_lrn_pool_backward(x, grad, offsets, size, alpha, beta, k, kernel_size, stride)

    _register_fake(_relu_lrn_pool_op, "relu_lrn_pool")
    _register_fake(_relu_lrn_pool_backward_op, "relu_lrn_pool_backward")

    autograd.register_relu_lrn_pool(_relu_lrn_pool_op, _relu_lrn_pool_backward_op)


# ---------------------------------------------------------------------- backend interface (ops.py)

def relu_lrn(x: torch.Tensor, size: int, alpha: float, beta: float, k: float) -> torch.Tensor:
    announce_interpreter_once()
    return torch.ops.alexnet_kernels.relu_lrn(x, size, alpha, beta, k)


def max_pool(x: torch.Tensor, kernel_size: int, stride: int) -> torch.Tensor:
    announce_interpreter_once()
    return torch.ops.alexnet_kernels.max_pool(x, kernel_size, stride)[0]


def relu_lrn_pool(
    x: torch.Tensor, size: int, alpha: float, beta: float, k: float, kernel_size: int, stride: int
) -> torch.Tensor:
    announce_interpreter_once()
    return torch.ops.alexnet_kernels.relu_lrn_pool(x, size, alpha, beta, k, kernel_size, stride)[0]
