"""Tensors whose last byte sits just before an unreadable page: a kernel that reads even one element past
its input's end is stopped by the operating system (SIGSEGV) instead of reading a neighbour's memory.

Linux and macOS only (``mmap`` and ``mprotect`` from the C library, through ctypes). The pages are never
unmapped: a test holds a few of them for the life of its process.
"""
from __future__ import annotations

import ctypes
import math
import mmap
import sys

import torch

SUPPORTED = sys.platform.startswith("linux") or sys.platform == "darwin"
PROT_NONE = 0  # <sys/mman.h>; Python's mmap module does not export it


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    return libc


def tensor_before_guard_page(values: torch.Tensor) -> torch.Tensor:
    """A copy of ``values`` (a CPU tensor, dense in its memory format: NCHW or channels_last), with the
    same strides, whose storage ends where a page the process may not read begins."""
    if not SUPPORTED:
        raise RuntimeError(f"guard pages need mmap and mprotect, not available on {sys.platform}")
    if not (values.is_contiguous() or values.dim() == 4 and values.is_contiguous(memory_format=torch.channels_last)):
        raise ValueError("tensor_before_guard_page needs a contiguous or channels_last tensor, got strides "
                         f"{values.stride()} for shape {tuple(values.shape)}")
    nbytes = values.numel() * values.element_size()
    page = mmap.PAGESIZE
    data_pages = math.ceil(nbytes / page)
    libc = _libc()
    base = libc.mmap(None, (data_pages + 1) * page, mmap.PROT_READ | mmap.PROT_WRITE,
                     mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
    if base in (None, ctypes.c_void_p(-1).value):
        raise OSError(ctypes.get_errno(), "mmap failed")
    guard = base + data_pages * page
    if libc.mprotect(guard, page, PROT_NONE) != 0:
        raise OSError(ctypes.get_errno(), "mprotect failed")
    buffer = (ctypes.c_char * nbytes).from_address(guard - nbytes)
    flat = torch.frombuffer(buffer, dtype=values.dtype, count=values.numel())
    out = flat.as_strided(values.shape, values.stride())
    out.copy_(values)
    return out
