"""AlexNet's memory-bound layers as selectable kernel backends.

Public API::

    from kernels import relu_lrn, max_pool, relu_lrn_pool, BACKENDS
    y = relu_lrn_pool(x, backend="triton")    # ReLU -> LRN -> 3x3/2 max-pool, autograd-ready

``BACKENDS`` lists every backend name; ``backend_status()`` says which of them can run here and,
for those that cannot, why.
"""
from kernels.interpreter import configure_triton_interpreter

configure_triton_interpreter()  # must run before any @triton.jit decorator is evaluated

from kernels.ops import (  # noqa: E402
    BACKENDS,
    BackendUnavailable,
    LRN_CONVENTIONS,
    backend_status,
    get_backend,
    max_pool,
    relu_lrn,
    relu_lrn_pool,
)

__all__ = [
    "BACKENDS",
    "BackendUnavailable",
    "LRN_CONVENTIONS",
    "backend_status",
    "get_backend",
    "max_pool",
    "relu_lrn",
    "relu_lrn_pool",
]
