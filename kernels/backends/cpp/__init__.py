"""The ``cpp`` backend: hand-written C++ (CPU) and CUDA kernels in a JIT-built PyTorch extension.

The extension (``kernels/backends/cpp/csrc``) is compiled with ``torch.utils.cpp_extension.load`` on first use
(the first call of ``unavailable_reason()`` or of an op, never at import) and cached in torch's
extension directory (``$TORCH_EXTENSIONS_DIR``, default ``~/.cache/torch_extensions``) under a
stable name, so later processes only load it. On a CPU-only PyTorch (``torch.version.cuda is None``)
only ``alexnet_ops.cpp`` is compiled; on a CUDA PyTorch ``alexnet_ops_cuda.cu`` is compiled too.

This module defines the ops' schemas in the ``alexnet_cpp_ext`` namespace from their declarations
(``kernels.catalog.CUSTOM_OPS``) before the extension loads; the C++ side implements them (forward and
backward of each op, and the CPU's inference-only ``*_values`` forms), and this module attaches autograd
and fake (meta) kernels with ``torch.library``, so ``torch.compile`` sees opaque ops instead of graph
breaks. What autograd keeps between forward and
backward:

* ``relu_lrn``: only the input ``x`` (the LRN denominator is recomputed in backward);
* ``max_pool``: only the argmax position inside each window, as int8 (``kh * kernel_size + kw``;
  int32 when ``kernel_size**2 > 128``: ``kernels.op_shapes.offsets_dtype``), instead of ATen's int64 flat
  indices;
* ``relu_lrn_pool``: only ``x`` and those offsets; backward recomputes the LRN locally.

Layout: a channels_last-contiguous input is processed (and answered) as channels_last; any other
input is made ``.contiguous()`` NCHW first.
"""
from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import torch

from kernels.backends import autograd
from kernels.catalog import CUSTOM_OPS
from kernels.custom_ops import CustomOp, define_schemas

NAMESPACE = "alexnet_cpp_ext"
CSRC_DIR = Path(__file__).resolve().parent / "csrc"
CPP_SOURCES = (CSRC_DIR / "alexnet_ops.cpp",)
CUDA_SOURCES = (CSRC_DIR / "alexnet_ops_cuda.cu",)
_OUTPUT_TAIL_CHARS = 3000
# -fno-semantic-interposition: the extension's own inline helpers are called directly (or inlined), not
# through the PLT as if another library could replace them.
CXX_FLAGS = ["-O3", "-fopenmp", "-fno-semantic-interposition"]
# The CPU kernels use ATen's at::vec::Vectorized at the instruction set of the CPU that builds them, the
# one torch itself dispatches to here (torch.backends.cpu.get_cpu_capability(), which honours
# $ATEN_CPU_CAPABILITY). An AVX-512 CPU with AVX512-BF16 gets the AVX512_BF16 level: the AVX-512 build
# whose bfloat16 stores convert in one instruction ($ALEXNET_AVX512_BF16=0 keeps plain AVX512). The level is
# part of the build's cache name, so a cache shared between machines never hands an AVX-512 build to an
# AVX2 CPU, and the loaded build is checked against it.
ISA_FLAGS = {
    "AVX512_BF16": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mavx512bf16", "-mfma", "-mf16c"],
    "AVX512": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mfma", "-mf16c"],
    "AVX2": ["-mavx2", "-mfma", "-mf16c"],
    "DEFAULT": [],
}
# No --use_fast_math: it would replace pow() by a less accurate approximation.
CUDA_FLAGS = ["-O3", "-lineinfo"]

_lock = threading.Lock()
_state: dict[str, object] = {"tried": False, "reason": None}


def cpu_isa() -> str:
    """The vector instruction set the CPU kernels are built for on this machine: AVX512_BF16, AVX512, AVX2 or
    DEFAULT."""
    capability = torch.backends.cpu.get_cpu_capability()
    if capability == "AVX512" and torch.cpu._is_avx512_bf16_supported():
        flag = os.environ.get("ALEXNET_AVX512_BF16", "1")
        if flag not in ("0", "1"):
            raise ValueError(f"ALEXNET_AVX512_BF16={flag!r}: set it to 1 (the default) or 0 (plain AVX512)")
        return "AVX512_BF16" if flag == "1" else "AVX512"
    return capability if capability in ISA_FLAGS else "DEFAULT"


def aten_level(isa: str) -> str:
    """ATen's CPU_CAPABILITY of a level: the one whose at::vec::Vectorized it compiles against."""
    return "AVX512" if isa == "AVX512_BF16" else isa


def isa_flags(isa: str) -> list[str]:
    """Compiler flags of one instruction-set level (ATen's CPU_CAPABILITY macros select its Vectorized)."""
    aten = aten_level(isa)
    defines = [f"-DCPU_CAPABILITY={aten}"] + ([f"-DCPU_CAPABILITY_{aten}"] if aten != "DEFAULT" else [])
    return ISA_FLAGS[isa] + defines


def extension_name(with_cuda: bool | None = None, isa: str | None = None) -> str:
    """The cache name of the extension build: CPU-only or CUDA, and the CPU instruction set."""
    if with_cuda is None:
        with_cuda = torch.version.cuda is not None
    isa = isa or cpu_isa()
    return f"alexnet_kernels_ext_{'cuda' if with_cuda else 'cpu'}_{isa.lower()}"


def _tail(text: str) -> str:
    text = text.strip()
    return text if len(text) <= _OUTPUT_TAIL_CHARS else "...\n" + text[-_OUTPUT_TAIL_CHARS:]


def _missing_tool_reason(with_cuda: bool) -> str | None:
    from torch.utils import cpp_extension

    cxx = os.environ.get("CXX", "c++")
    if shutil.which(cxx) is None:
        origin = "$CXX" if "CXX" in os.environ else "the default C++ compiler"
        return (
            f"the C++ compiler {cxx!r} ({origin}) is not on PATH; install g++ (e.g. `apt-get install g++`) "
            "or point $CXX at a C++17 compiler"
        )
    if not cpp_extension.is_ninja_available():
        return "the ninja build tool is not installed (torch.utils.cpp_extension needs it): `pip install ninja`"
    if with_cuda:
        cuda_home = cpp_extension.CUDA_HOME
        if cuda_home is None:
            return (
                f"torch {torch.__version__} is a CUDA build but no CUDA toolkit was found "
                "(set $CUDA_HOME or put nvcc on PATH)"
            )
        if not Path(cuda_home, "bin", "nvcc").exists():
            return f"nvcc not found in CUDA_HOME={cuda_home!r} (expected {cuda_home}/bin/nvcc)"
    return None


def build_extension(
    build_directory: str | os.PathLike | None = None, name: str | None = None, verbose: bool = False
) -> str | None:
    """Compile (or reuse the cached build of) the extension and load its ops into ``torch.ops``.

    Returns ``None`` on success, otherwise the reason (missing tool or the tail of the compiler output).
    ``build_directory``/``name`` default to torch's extension cache and :func:`extension_name`.
    """
    from torch.utils import cpp_extension

    with_cuda = torch.version.cuda is not None
    reason = _missing_tool_reason(with_cuda)
    if reason is not None:
        return reason
    isa = cpu_isa()
    sources = [str(p) for p in CPP_SOURCES + (CUDA_SOURCES if with_cuda else ())]
    if build_directory is not None:
        os.makedirs(build_directory, exist_ok=True)
    _define_schemas()
    try:
        cpp_extension.load(
            name=name or extension_name(with_cuda, isa),
            sources=sources,
            extra_cflags=CXX_FLAGS + isa_flags(isa),
            extra_cuda_cflags=CUDA_FLAGS,
            extra_include_paths=[str(CSRC_DIR)],
            build_directory=None if build_directory is None else str(build_directory),
            with_cuda=with_cuda,
            is_python_module=False,
            verbose=verbose,
        )
    except Exception as exc:  # compiler or linker error: report its output
        details = [str(exc)]
        for attr in ("output", "stderr"):  # subprocess.CalledProcessError keeps the tool's output here
            extra = getattr(exc, attr, None)
            if extra:
                details.append(extra.decode(errors="replace") if isinstance(extra, bytes) else str(extra))
        kind = "C++/CUDA" if with_cuda else "C++"
        compiler = os.environ.get("CXX", "c++")
        return (
            f"building the {kind} extension with {compiler!r} failed ({type(exc).__name__}); "
            f"end of the build output:\n{_tail(chr(10).join(details))}"
        )
    built = getattr(torch.ops, NAMESPACE).cpu_isa()
    if built != isa:
        return (
            f"the loaded extension build runs {built} instructions but this CPU is {isa}; "
            "remove the stale build from the torch extension cache ($TORCH_EXTENSIONS_DIR)"
        )
    return None


def _ensure_built() -> str | None:
    with _lock:
        if not _state["tried"]:
            _state["tried"] = True
            reason = build_extension()
            if reason is None:
                _register_python_side()
            _state["reason"] = reason
    return _state["reason"]  # type: ignore[return-value]


def unavailable_reason() -> str | None:
    return _ensure_built()


def device_problem(device: torch.device) -> str | None:
    if device.type == "cpu":
        return None
    if device.type != "cuda":
        return f"the extension has kernels for CPU and CUDA tensors only, not {device.type}"
    if torch.version.cuda is None:
        return (
            f"torch {torch.__version__} is a CPU-only build, so the extension was compiled without its "
            "CUDA kernels (alexnet_ops_cuda.cu)"
        )
    if not torch.cuda.is_available():
        return "no CUDA device is available"
    return None


def _ops():
    # Lock-free once built, so torch.compile can trace through to the registered ops.
    reason = _state["reason"] if _state["tried"] else _ensure_built()
    if reason is not None:
        raise RuntimeError(f"the cpp backend is unavailable: {reason}")
    return getattr(torch.ops, NAMESPACE)


# ----------------------------------------------------------------------------------------------
# Public backend interface (see kernels/ops.py)
# ----------------------------------------------------------------------------------------------


def _inference(x: torch.Tensor) -> bool:
    """No backward can follow: on a CPU the pooling ops then skip computing and storing argmax offsets."""
    return x.device.type == "cpu" and not (torch.is_grad_enabled() and x.requires_grad)


def _public_op(decl: CustomOp):
    """The backend function of a declared op: its output ``y`` (a pooling op's without its offsets; on a
    CPU with no backward to follow, from its ``_values`` form)."""
    name, pooled = decl.name, decl.pooled

    def output(x: torch.Tensor, settings: tuple) -> torch.Tensor:
        ops = _ops()
        if not pooled:
            return getattr(ops, name)(x, *settings)
        if _inference(x):
            return getattr(ops, f"{name}_values")(x, *settings)
        return getattr(ops, name)(x, *settings)[0]

    return decl.backend_function(output)


# relu_lrn, max_pool, relu_lrn_pool, ...: one function per declared op
globals().update({name: _public_op(decl) for name, decl in CUSTOM_OPS.items()})


# ----------------------------------------------------------------------------------------------
# Autograd and fake kernels for the C++ ops (the fakes: kernels/op_shapes.py)
# ----------------------------------------------------------------------------------------------


_schemas: list[torch.library.Library] = []  # kept alive: the definitions last as long as the library object


def _define_schemas() -> None:
    """The ops' schemas (kernels.catalog.CUSTOM_OPS), defined once per process before the extension that
    implements them loads."""
    if not _schemas:
        library = torch.library.Library(NAMESPACE, "FRAGMENT")
        define_schemas(library, values=True)
        _schemas.append(library)


def _register_python_side() -> None:
    ops = getattr(torch.ops, NAMESPACE)
    for decl in CUSTOM_OPS.values():
        qualname = f"{NAMESPACE}::{decl.name}"
        torch.library.register_fake(qualname)(decl.forward)
        torch.library.register_fake(f"{NAMESPACE}::{decl.backward_name}")(decl.backward)
        if decl.pooled:
            torch.library.register_fake(f"{qualname}_values")(decl.values_fake)
        autograd.register(decl, qualname, getattr(ops, decl.backward_name))
