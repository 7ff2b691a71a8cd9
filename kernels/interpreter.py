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
    if triton_interpreted():
        _squeeze_interpreter_index()


def _squeeze_interpreter_index() -> None:
    """Let the interpreter use a runtime scalar as a ``range`` bound under NumPy >= 2.4.

    The interpreter holds every scalar as a shape-(1,) array and ``range(c0, c1, SIZE)`` calls the
    tensor's ``__index__``. Triton <= 3.6 defines it as ``int(self.handle.data)``, which NumPy 2.4
    rejects ("only 0-dimensional arrays can be converted to Python scalars", triton-lang/triton#9171);
    later Triton squeezes first. This re-installs the squeezing version after Triton's own patching of
    ``tl.tensor`` at every launch (restored with it). Interpreter only: compiled kernels are untouched.
    Imported here, after TRITON_INTERPRET is set, because importing triton evaluates its own
    ``@triton.jit`` helpers (``tl.cdiv``, ...).
    """
    try:
        from triton.runtime import interpreter
    except Exception:  # no triton: the backend reports why
        return
    original = getattr(interpreter, "_patch_lang_tensor", None)
    if original is None or getattr(original, "squeezes_index", False):
        return

    def patch_lang_tensor(tensor, scope, *args, **kwargs):
        original(tensor, scope, *args, **kwargs)
        scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.squeeze()))

    patch_lang_tensor.squeezes_index = True
    interpreter._patch_lang_tensor = patch_lang_tensor


def triton_interpreted() -> bool:
    """True when Triton kernels execute through the CPU interpreter (on CPU tensors)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def announce_interpreter_once() -> None:
    """Print a one-line notice the first time a Triton kernel runs under the interpreter (not while
    ``torch.compile`` traces: a print there is a graph break)."""
    global _notice_shown
    if triton_interpreted() and not _notice_shown and not torch.compiler.is_compiling():
        _notice_shown = True
        print(
            "kernels: no CUDA GPU - Triton kernels run through Triton's CPU interpreter "
            "(TRITON_INTERPRET=1); correct but slow, use small shapes",
            file=sys.stderr,
        )
