"""The ``torchscript`` backend: the eager reference compiled with ``torch.jit.script``.

TorchScript is deprecated upstream. If the installed PyTorch no longer scripts these functions,
the backend reports itself unavailable with PyTorch's reason; it never falls back silently.
"""
import warnings

import torch

from kernels.backends import eager as reference
from kernels.catalog import PUBLIC_OPS

_scripted: dict[str, object] = {}
_failure: str | None = None


def _script_all() -> None:
    global _failure
    if _scripted or _failure is not None:
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            for name in PUBLIC_OPS:
                _scripted[name] = torch.jit.script(getattr(reference, name))
    except Exception as exc:  # PyTorch refuses TorchScript: record why
        _scripted.clear()
        _failure = f"torch {torch.__version__} cannot script the reference ({type(exc).__name__}: {exc})"


def unavailable_reason() -> str | None:
    _script_all()
    return _failure


def device_problem(device: torch.device) -> str | None:
    return None


def __getattr__(name: str):
    """Every public op (``kernels.catalog.PUBLIC_OPS``): the eager reference's function of that name, scripted."""
    if name not in PUBLIC_OPS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    _script_all()
    return _scripted[name]
