"""The ``compile`` backend: the eager reference under ``torch.compile`` (Inductor).

Each op is compiled once per process; Inductor then specialises per shape, dtype and layout. A
benchmark sweep meets many such combinations, more than Dynamo's default of 8 recompilations per
function, so the limit is raised here (a global Dynamo setting, never lowered).
On CPU, Inductor needs a C++ compiler; its absence is reported as the reason for unavailability.
"""
import shutil

import torch

from kernels import reference

_RECOMPILE_LIMIT = 256
torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, _RECOMPILE_LIMIT)
torch._dynamo.config.accumulated_recompile_limit = max(
    torch._dynamo.config.accumulated_recompile_limit, 4 * _RECOMPILE_LIMIT
)

_compiled = {
    name: torch.compile(getattr(reference, name), fullgraph=True)
    for name in ("relu_lrn", "max_pool", "relu_lrn_pool")
}


def unavailable_reason() -> str | None:
    if not hasattr(torch, "compile"):
        return f"torch {torch.__version__} has no torch.compile"
    if not torch.cuda.is_available() and shutil.which("g++") is None and shutil.which("c++") is None:
        return "torch.compile on CPU needs a C++ compiler (g++ or c++ on PATH); none was found"
    return None


def device_problem(device: torch.device) -> str | None:
    return None


def relu_lrn(x, size, alpha, beta, k):
    return _compiled["relu_lrn"](x, size, alpha, beta, k)


def max_pool(x, kernel_size, stride):
    return _compiled["max_pool"](x, kernel_size, stride)


def relu_lrn_pool(x, size, alpha, beta, k, kernel_size, stride):
    return _compiled["relu_lrn_pool"](x, size, alpha, beta, k, kernel_size, stride)
