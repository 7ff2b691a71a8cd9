"""The ``triton`` backend: hand-written Triton kernels registered as PyTorch custom ops.

Ops (namespace ``alexnet_kernels``): every op that ``kernels.catalog.CUSTOM_OPS`` declares and its
``*_backward`` op, with the declared names, signatures (schemas), fakes and saved tensors (``relu_lrn``
keeps ``x`` only, ``max_pool`` only int8 window offsets, ``relu_lrn_pool`` both), shared with the cpp
backend; ``LAUNCHERS`` names each op's forward and backward launcher.
On a CUDA GPU they are ``torch.library.triton_op`` s launching through
``wrap_triton``, so ``torch.compile(fullgraph=True)`` sees the kernels themselves. Under Triton's
CPU interpreter ``wrap_triton`` cannot be traced (FakeTensors have no data pointer), so there they
are opaque ``torch.library.custom_op`` s with ``register_fake`` shape functions - still traceable
without graph breaks. Autograd for both comes from ``register_autograd``.
"""
from __future__ import annotations

import inspect

import torch

from kernels.catalog import CUSTOM_OPS
from kernels.custom_ops import CustomOp
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
    from kernels.backends import autograd
    from kernels.backends.triton import max_pool_kernel as _mp
    from kernels.backends.triton import relu_lrn_kernel as _lrn
    from kernels.backends.triton import relu_lrn_pool_kernel as _fused

    _INTERPRETED = triton_interpreted()

    # Each op's launchers (forward, backward), called with the arguments of its declared signatures.
    # (Named functions, not lambdas: triton_op reads the source of what its op calls.)
    def _relu_lrn_backward(grad_y, x, *settings):
        return _lrn.relu_lrn_backward(x, grad_y, *settings)

    def _max_pool_backward(grad_y, offsets, height, width, kernel_size, stride):
        return _mp.max_pool_backward(grad_y, offsets, (height, width), kernel_size, stride)

    def _relu_lrn_pool_backward(grad_y, x, offsets, *settings):
        return _fused.relu_lrn_pool_backward(x, grad_y, offsets, *settings)

    LAUNCHERS = {
        "relu_lrn": (_lrn.relu_lrn_forward, _relu_lrn_backward),
        "max_pool": (_mp.max_pool_forward, _max_pool_backward),
        "relu_lrn_pool": (_fused.relu_lrn_pool_forward, _relu_lrn_pool_backward),
    }

    def _custom_op(declared, launcher):
        """``launcher`` as the op ``declared`` declares (its name and signature, kernels.catalog.CUSTOM_OPS): a
        ``triton_op`` on a GPU, whose kernels torch.compile sees; under the interpreter an opaque
        ``custom_op`` with the declared fake."""

        def impl(*args):
            return launcher(*args)

        impl.__name__ = impl.__qualname__ = declared.__name__
        impl.__signature__ = inspect.signature(declared, eval_str=True)
        qualname = f"{NAMESPACE}::{declared.__name__}"
        if not _INTERPRETED:
            return torch.library.triton_op(qualname, impl, mutates_args=())
        op = torch.library.custom_op(qualname, impl, mutates_args=())
        op.register_fake(declared)
        return op

    for _decl in CUSTOM_OPS.values():
        _forward, _backward = LAUNCHERS[_decl.name]
        autograd.register(_decl, _custom_op(_decl.forward, _forward), _custom_op(_decl.backward, _backward))


# ---------------------------------------------------------------------- backend interface (ops.py)

def _public_op(decl: CustomOp):
    """The backend function of a declared op: its output ``y`` (a pooling op's without its offsets)."""
    name, pooled = decl.name, decl.pooled

    def output(x: torch.Tensor, settings: tuple) -> torch.Tensor:
        announce_interpreter_once()
        out = getattr(torch.ops.alexnet_kernels, name)(x, *settings)
        return out[0] if pooled else out

    return decl.backend_function(output)


# relu_lrn, max_pool, relu_lrn_pool, ...: one function per declared op
globals().update({name: _public_op(decl) for name, decl in CUSTOM_OPS.items()})
