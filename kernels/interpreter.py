"""Decides whether Triton kernels run compiled on a GPU or through Triton's CPU interpreter.

Triton reads ``TRITON_INTERPRET`` when a ``@triton.jit`` function is *defined*, so this must run
before any kernel module is imported. A user's explicit setting always wins.
"""
import os
import sys

import torch

_notice_shown = False


def configure_triton_interpreter() -> None:
    """Turn the interpreter on when no CUDA GPU is visible and the user has not chosen."""
    if "TRITON_INTERPRET" not in os.environ and not torch.cuda.is_available():
        os.environ["TRITON_INTERPRET"] = "1"


def triton_interpreted() -> bool:
    """True when Triton kernels execute through the CPU interpreter (on CPU tensors)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def announce_interpreter_once() -> None:
    """Print a one-line notice the first time a Triton kernel runs under the interpreter."""
    global _notice_shown
    if triton_interpreted() and not _notice_shown:
        _notice_shown = True
        print(
            "kernels: no CUDA GPU - Triton kernels run through Triton's CPU interpreter "
            "(TRITON_INTERPRET=1); correct but slow, use small shapes",
            file=sys.stderr,
        )
