"""The ``compile`` backend: the eager reference under ``torch.compile`` (Inductor).

Each op is compiled once per hyper-parameter tuple, then specialised per shape, dtype and layout. A
benchmark sweep meets many such combinations, more than Dynamo's default of 8 recompilations per
function, so the limit is raised here (a global Dynamo setting, never lowered).
On CPU, Inductor needs a C++ compiler; its absence is reported as the reason for unavailability.
"""
import shutil

import torch

from kernels.backends import eager as reference
from kernels.catalog import PUBLIC_OPS

_RECOMPILE_LIMIT = 256
torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, _RECOMPILE_LIMIT)
torch._dynamo.config.accumulated_recompile_limit = max(
    torch._dynamo.config.accumulated_recompile_limit, 4 * _RECOMPILE_LIMIT
)

# One compiled function per op and hyper-parameter tuple (hyper-parameters folded in as constants),
# compiled for static shapes. With automatic dynamic shapes, after a 2x96x55x55 and a 2x6x7x5 call the
# float64 gradient of relu_lrn at 1x6x5x5 came out wrong (gradcheck: analytical 0.5769 vs numerical
# 0.5537; torch 2.13 CPU Inductor); static shapes give exact gradients, and are what a benchmark of
# fixed AlexNet shapes measures anyway. Each new shape costs a recompile (limit raised above).
_compiled: dict[tuple, object] = {}


def _compiled_op(name: str, *params):
    key = (name, *params)
    if key not in _compiled:
        fn = getattr(reference, name)
        _compiled[key] = torch.compile(lambda x: fn(x, *params), fullgraph=True, dynamic=False)
    return _compiled[key]


def unavailable_reason() -> str | None:
    if not hasattr(torch, "compile"):
        return f"torch {torch.__version__} has no torch.compile"
    if not torch.cuda.is_available() and shutil.which("g++") is None and shutil.which("c++") is None:
        return "torch.compile on CPU needs a C++ compiler (g++ or c++ on PATH); none was found"
    return None


def device_problem(device: torch.device) -> str | None:
    return None


def __getattr__(name: str):
    """Every public op (``kernels.catalog.PUBLIC_OPS``): ``name(x, *settings)``, the eager reference's
    function of that name compiled once per settings tuple."""
    if name not in PUBLIC_OPS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return lambda x, *settings: _compiled_op(name, *settings)(x)
