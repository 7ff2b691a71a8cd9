"""Public ops (``relu_lrn``, ``max_pool``, ``relu_lrn_pool``): argument checks, then dispatch by backend name.

Every backend module (``kernels.backends.BACKEND_MODULES``) provides the same interface::

    unavailable_reason() -> str | None           # None when it can run on this machine
    device_problem(device) -> str | None         # None when it can run on tensors of that device
    relu_lrn(x, size, alpha, beta, k)            # alpha in the paper's convention (multiplies the sum)
    max_pool(x, kernel_size, stride)
    relu_lrn_pool(x, size, alpha, beta, k, kernel_size, stride)

and may assume its inputs have passed the checks below.

LRN conventions (``alpha_convention=``):
  * ``"paper"`` (default, Krizhevsky et al. 2012, eq. in section 3.3):
    ``b_c = a_c / (k + alpha * sum_{j in window(c)} a_j^2) ** beta``
  * ``"pytorch"`` (also Caffe and cuDNN): ``alpha`` is divided by the window ``size`` first, i.e.
    ``b_c = a_c / (k + alpha / size * sum a_j^2) ** beta``; ``F.local_response_norm`` uses this one.
The window is ``j in [max(0, c - size//2), min(C-1, c + size//2)]``; channels outside are zero.
"""
from __future__ import annotations

import importlib
import math
from types import ModuleType
from typing import Iterable

import torch

from kernels.backends import BACKEND_MODULES, BACKENDS
from kernels.paper import PAPER_LRN, PAPER_POOL

LRN_CONVENTIONS: tuple[str, ...] = ("paper", "pytorch")

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


class BackendUnavailable(RuntimeError):
    """The named backend cannot run on this machine (the message says why)."""


_checked_backends: dict[str, ModuleType] = {}


def get_backend(name: str) -> ModuleType:
    """Import and return the backend module called ``name``, or raise naming the problem.

    A backend found usable once is remembered, so later calls are a dict lookup that
    ``torch.compile`` can trace (importing inside a compiled region would break the graph).
    """
    if name in _checked_backends:
        return _checked_backends[name]
    if name not in BACKEND_MODULES:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    module = importlib.import_module(BACKEND_MODULES[name])
    reason = module.unavailable_reason()
    if reason is not None:
        raise BackendUnavailable(f"backend {name!r} is unavailable here: {reason}")
    _checked_backends[name] = module
    return module


def backend_status(names: Iterable[str] | None = None) -> dict[str, str | None]:
    """Map each backend name (or only ``names``) to ``None`` (usable) or the reason it is unavailable.

    Asking for one backend imports only that one: ``compile`` alone costs seconds of Dynamo imports.
    """
    status: dict[str, str | None] = {}
    wanted = BACKEND_MODULES if names is None else {name: BACKEND_MODULES[name] for name in names}
    for name, module_name in wanted.items():
        try:
            status[name] = importlib.import_module(module_name).unavailable_reason()
        except Exception as exc:  # an import failure is itself the reason
            status[name] = f"{type(exc).__name__}: {exc}"
    return status


def _check_activation(x: torch.Tensor, op: str, backend: ModuleType, backend_name: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{op}: expected a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D (N, C, H, W) tensor, got {x.ndim}-D with shape {tuple(x.shape)}")
    if x.dtype not in _FLOAT_DTYPES:
        raise TypeError(
            f"{op}: expected a floating dtype (float16, bfloat16, float32, float64), got {x.dtype}"
        )
    if x.numel() == 0:
        raise ValueError(f"{op}: input has no elements (shape {tuple(x.shape)})")
    problem = backend.device_problem(x.device)
    if problem is not None:
        raise ValueError(f"{op}: backend {backend_name!r} cannot run on a {x.device} tensor: {problem}")


def _check_lrn_args(op: str, size: int, alpha: float, beta: float, k: float, convention: str) -> float:
    """Validate LRN hyper-parameters; return alpha in the paper's convention."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1 or size % 2 == 0:
        raise ValueError(f"{op}: LRN size must be a positive odd integer (symmetric window), got {size!r}")
    for name, value in (("alpha", alpha), ("beta", beta), ("k", k)):
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{op}: LRN {name} must be a finite number, got {value!r}")
    if k <= 0 or alpha < 0:
        raise ValueError(f"{op}: LRN needs k > 0 and alpha >= 0 (denominator must stay positive), got k={k}, alpha={alpha}")
    if convention not in LRN_CONVENTIONS:
        raise ValueError(f"{op}: alpha_convention must be one of {LRN_CONVENTIONS}, got {convention!r}")
    return float(alpha) if convention == "paper" else float(alpha) / size


def _check_pool_args(op: str, x: torch.Tensor, kernel_size: int, stride: int) -> None:
    for name, value in (("kernel_size", kernel_size), ("stride", stride)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{op}: {name} must be a positive integer, got {value!r}")
    h, w = x.shape[-2:]
    if h < kernel_size or w < kernel_size:
        raise ValueError(
            f"{op}: input spatial size {h}x{w} is smaller than the pooling window {kernel_size}; "
            "the output would be empty"
        )


def relu_lrn(
    x: torch.Tensor,
    size: int = PAPER_LRN["size"],
    alpha: float = PAPER_LRN["alpha"],
    beta: float = PAPER_LRN["beta"],
    k: float = PAPER_LRN["k"],
    *,
    alpha_convention: str = "paper",
    backend: str = "eager",
) -> torch.Tensor:
    """ReLU followed by cross-channel local response normalization (see module docstring)."""
    impl = get_backend(backend)
    _check_activation(x, "relu_lrn", impl, backend)
    alpha_paper = _check_lrn_args("relu_lrn", size, alpha, beta, k, alpha_convention)
    return impl.relu_lrn(x, size, alpha_paper, float(beta), float(k))


def max_pool(x: torch.Tensor, kernel_size: int = PAPER_POOL["kernel_size"], stride: int = PAPER_POOL["stride"], *,
             backend: str = "eager") -> torch.Tensor:
    """Unpadded floor-mode max-pool; 3/2 is the paper's overlapping pooling, 2/2 its ablation."""
    impl = get_backend(backend)
    _check_activation(x, "max_pool", impl, backend)
    _check_pool_args("max_pool", x, kernel_size, stride)
    return impl.max_pool(x, kernel_size, stride)


def relu_lrn_pool(
    x: torch.Tensor,
    size: int = PAPER_LRN["size"],
    alpha: float = PAPER_LRN["alpha"],
    beta: float = PAPER_LRN["beta"],
    k: float = PAPER_LRN["k"],
    kernel_size: int = PAPER_POOL["kernel_size"],
    stride: int = PAPER_POOL["stride"],
    *,
    alpha_convention: str = "paper",
    backend: str = "eager",
) -> torch.Tensor:
    """``max_pool(relu_lrn(x))`` in one op (what follows conv1 and conv2 in AlexNet)."""
    impl = get_backend(backend)
    _check_activation(x, "relu_lrn_pool", impl, backend)
    alpha_paper = _check_lrn_args("relu_lrn_pool", size, alpha, beta, k, alpha_convention)
    _check_pool_args("relu_lrn_pool", x, kernel_size, stride)
    return impl.relu_lrn_pool(x, size, alpha_paper, float(beta), float(k), kernel_size, stride)
