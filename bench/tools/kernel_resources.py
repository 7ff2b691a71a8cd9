"""Compile every Triton kernel for an NVIDIA GPU this machine need not have, and report its resources.

The host code of ``kernels.backends.triton`` is run on ``meta`` tensors of AlexNet's real activation shapes
with launches recorded instead of run (``kernels.backends.triton.launch.recording_launches``). Each recorded launch is
specialised exactly as Triton's JIT would specialise it (same binder, so the same constexpr-1 and
16-divisibility attributes) and compiled for the target architecture with Triton's bundled ptxas.
``cuobjdump`` then reads registers, spills (local memory), stack and shared memory from the cubin,
and the PTX is counted for global loads/stores and their vector width.

With ``--cuda`` the ``cpp`` backend's kernels are compiled too, with nvcc and the extension's own
flags, and ptxas's per-kernel registers and spills are added.

This proves that the kernels *compile* for the GPU and shows static pressure (registers per thread
bound occupancy; local memory means spills). It measures no time: figures here are static, from a
CPU-only compile. Run as::

    python -m bench.tools.kernel_resources --arch 90 --batch 128 --cuda --out reports/kernel-resources-sm90

It must run in a fresh process: Triton fixes interpreted-or-compiled when a kernel is defined, so
run as a program this module sets ``TRITON_INTERPRET=0`` before ``kernels`` is imported. Imported as a
library it leaves the environment alone (the process's other kernels keep their mode); compiling
Triton kernels then needs a process started with ``TRITON_INTERPRET=0``.
"""
from __future__ import annotations

import os

if __name__ == "__main__":
    os.environ["TRITON_INTERPRET"] = "0"  # before any @triton.jit is evaluated (see kernels.interpreter)

import argparse  # noqa: E402
import datetime  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402
import torch  # noqa: E402
import triton  # noqa: E402

from bench.env_info import software_versions  # noqa: E402
from bench.shapes import GPU_SHAPES  # noqa: E402
from bench.report.tables import markdown  # noqa: E402
from infra.atomic_io import write_text_atomic  # noqa: E402
from infra.errors import check_output_folder, run_cli  # noqa: E402
from kernels.backends.triton.launch import Launch, recording_launches  # noqa: E402
from kernels import op_shapes  # noqa: E402
from kernels.catalog import CUSTOM_OPS, OPS  # noqa: E402
from kernels.paper import PAPER_LRN, PAPER_POOL  # noqa: E402

LRN = dict(PAPER_LRN)  # alpha in the paper convention
POOL = dict(PAPER_POOL)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "float64": torch.float64}
LAYOUTS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}


@dataclass
class Case:
    """One host-level call (op, pass, site, dtype, layout) and the kernel launches it made."""

    op: str
    direction: str
    site: str
    dtype: str
    layout: str
    launches: list[Launch]


def _meta_tensor(shape: tuple, dtype: torch.dtype, layout: torch.memory_format) -> torch.Tensor:
    return torch.empty(shape, dtype=dtype, device="meta").contiguous(memory_format=layout)


HostCall = tuple[str, str, Callable[[], object]]  # (the report row's op, pass, the call)


def _host_calls(x: torch.Tensor, layout_name: str) -> dict[str, list[HostCall]]:
    """Each custom op -> its Triton host calls on ``x``, in the report's order (in channels_last,
    ``relu_lrn`` also has the experimental channel-vector forward, reported as ``relu_lrn_cvec``)."""
    from kernels.backends.triton import max_pool_kernel as triton_max_pool
    from kernels.backends.triton import relu_lrn_kernel as triton_relu_lrn
    from kernels.backends.triton import relu_lrn_pool_kernel as triton_relu_lrn_pool
    from kernels.experimental import triton_relu_lrn_cvec

    y, offsets = op_shapes.pooled(x, **POOL)
    lrn = [("relu_lrn", "forward", lambda: triton_relu_lrn.relu_lrn_forward(x, **LRN)),
           ("relu_lrn", "backward", lambda: triton_relu_lrn.relu_lrn_backward(x, x, **LRN))]
    if layout_name == "channels_last":
        lrn.append(("relu_lrn_cvec", "forward", lambda: triton_relu_lrn_cvec.relu_lrn_forward_cvec(x, **LRN)))
    return {
        "max_pool": [
            ("max_pool", "forward", lambda: triton_max_pool.max_pool_forward(x, **POOL)),
            ("max_pool", "backward", lambda: triton_max_pool.max_pool_backward(y, offsets, x.shape[-2:], **POOL))],
        "relu_lrn": lrn,
        "relu_lrn_pool": [
            ("relu_lrn_pool", "forward", lambda: triton_relu_lrn_pool.relu_lrn_pool_forward(x, **LRN, **POOL)),
            ("relu_lrn_pool", "backward",
             lambda: triton_relu_lrn_pool.relu_lrn_pool_backward(x, y, offsets, **LRN, **POOL))],
    }


def record_cases(batch: int, dtypes: list[str], layouts: list[str]) -> list[Case]:
    """Run every Triton host function at the AlexNet sites of its op (``kernels.catalog``) on meta tensors,
    recording launches. An op of ``kernels.catalog.CUSTOM_OPS`` without host calls here is an error."""
    cases: list[Case] = []
    sites = sorted({site for op in CUSTOM_OPS for site in OPS[op].alexnet_sites}, key=list(GPU_SHAPES).index)
    for dtype_name in dtypes:
        for layout_name in layouts:
            dtype, fmt = DTYPES[dtype_name], LAYOUTS[layout_name]
            for site in sites:
                x = _meta_tensor((batch,) + GPU_SHAPES[site][1:], dtype, fmt)
                calls = _host_calls(x, layout_name)
                missing = sorted(set(CUSTOM_OPS) - set(calls))
                if missing:
                    raise LookupError(f"no Triton host calls for {missing}: add them to "
                                      "bench.tools.kernel_resources._host_calls")
                for op, host_calls in calls.items():
                    if site not in OPS[op].alexnet_sites:
                        continue
                    for row_op, direction, call in host_calls:
                        with recording_launches() as launches:
                            call()
                        cases.append(Case(row_op, direction, site, dtype_name, layout_name, list(launches)))
    return cases


def _tool(name: str) -> str:
    """A binary Triton ships for NVIDIA (ptxas, cuobjdump)."""
    path = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / name
    if not path.exists():
        raise FileNotFoundError(f"Triton's NVIDIA backend has no {name} at {path}: this Triton build cannot "
                                "compile for NVIDIA GPUs")
    return str(path)


def compile_launch(launch: Launch, arch: int):
    """Specialise ``launch`` like the JIT would on an sm_<arch> GPU and compile it (no GPU needed)."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource, make_backend
    from triton.runtime.jit import JITFunction, create_function_from_signature

    kernel = launch.kernel
    if not isinstance(kernel, JITFunction):
        raise RuntimeError(f"{getattr(kernel, '__name__', kernel)} is not a compiled-mode Triton kernel "
                           f"({type(kernel).__name__}): import kernels in a fresh process with TRITON_INTERPRET=0")
    target = GPUTarget("cuda", arch, 32)
    backend = make_backend(target)
    binder = create_function_from_signature(kernel.signature, kernel.params, backend)
    bound_args, specialization, options = binder(*launch.args, **launch.meta)
    options, signature, constexprs, attrs = kernel._pack_args(backend, options, bound_args, specialization, options)
    key = (kernel.__name__, str(specialization), str(options))
    return key, lambda: triton.compile(ASTSource(kernel, signature, constexprs, attrs), target=target,
                                       options=options.__dict__)


_RESOURCE = re.compile(r"REG:(\d+) STACK:(\d+) SHARED:(\d+) LOCAL:(\d+)")


def cubin_resources(cubin: bytes) -> dict:
    """Registers per thread, stack, shared and local (spill) bytes of the one function in ``cubin``."""
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        out = subprocess.run([_tool("cuobjdump"), "--dump-resource-usage", f.name],
                             capture_output=True, text=True, check=True).stdout
    match = _RESOURCE.search(out)
    if match is None:
        raise RuntimeError(f"cuobjdump printed no resource line:\n{out}")
    regs, stack, shared, local = map(int, match.groups())
    return {"registers": regs, "stack_bytes": stack, "shared_bytes": shared, "local_bytes": local}


def ptx_memory_ops(ptx: str) -> dict:
    """Global load/store instructions in the PTX, and how many of them are vectorised (.v2/.v4)."""
    loads = re.findall(r"\bld\.global[.\w]*", ptx)
    stores = re.findall(r"\bst\.global[.\w]*", ptx)
    vector = lambda ops: sum(".v2" in op or ".v4" in op for op in ops)  # noqa: E731
    return {"ptx_loads": len(loads), "ptx_vector_loads": vector(loads),
            "ptx_stores": len(stores), "ptx_vector_stores": vector(stores),
            "fp64_special": len(re.findall(r"\b(?:lg2|ex2)\.[\w.]*f64|__nv_(?:log2|exp2)\b", ptx))}


def resource_table(cases: list[Case], arch: int) -> pd.DataFrame:
    """One row per case and kernel; identical specialisations are compiled once. Compile errors are
    kept as rows (``error``) so one bad kernel does not hide the others."""
    compiled: dict = {}
    rows = []
    for case in cases:
        for launch in case.launches:
            row = {"op": case.op, "pass": case.direction, "site": case.site, "dtype": case.dtype,
                   "layout": case.layout, "kernel": launch.kernel.__name__,
                   "num_warps": launch.meta.get("num_warps", 4), "programs": int(launch.grid[0]),
                   "block": launch.meta.get("BLOCK")}
            key, build = compile_launch(launch, arch)
            if key not in compiled:
                try:
                    ck = build()
                    compiled[key] = {**cubin_resources(ck.asm["cubin"]), **ptx_memory_ops(ck.asm["ptx"]), "error": ""}
                except Exception as exc:  # report it, keep compiling the rest
                    compiled[key] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[-1] if str(exc) else ''}"}
            rows.append({**row, **compiled[key]})
    return pd.DataFrame(rows)


_PTXAS_FUNCTION = re.compile(r"Function properties for (\S+)")
_PTXAS_FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_PTXAS_REGS = re.compile(r"Used (\d+) registers")


def _nvcc() -> str:
    from torch.utils import cpp_extension

    found = shutil.which("nvcc") or (cpp_extension.CUDA_HOME and str(Path(cpp_extension.CUDA_HOME, "bin", "nvcc")))
    if not found or not Path(found).exists():
        raise FileNotFoundError("nvcc is not on PATH and CUDA_HOME names none: the cpp backend's kernels "
                                "cannot be compiled here")
    return found


def cuda_extension_resources(arch: int) -> pd.DataFrame:
    """Compile the ``cpp`` backend's kernels (``kernels/backends/cpp/csrc/alexnet_ops_cuda.cu``) with nvcc for
    sm_<arch>, with the flags ``torch.utils.cpp_extension`` and ``kernels.backends.cpp`` use, and
    return ptxas's registers / spills / stack per kernel instantiation. Works on a CPU-only PyTorch:
    the one header such a build lacks (``c10/cuda/impl/cuda_cmake_macros.h``, generated at build
    time) is supplied as a stub that defines what a shared-library CUDA build defines."""
    import sysconfig

    from torch.utils import cpp_extension

    from kernels.backends import cpp as cpp_backend

    with tempfile.TemporaryDirectory() as tmp:
        stub = Path(tmp, "c10", "cuda", "impl", "cuda_cmake_macros.h")
        stub.parent.mkdir(parents=True)
        stub.write_text("#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n")
        includes = [str(cpp_backend.CSRC_DIR), tmp, *cpp_extension.include_paths(), sysconfig.get_paths()["include"]]
        cmd = [_nvcc(), "-std=c++17", f"-arch=sm_{arch}", "--resource-usage", *cpp_extension.COMMON_NVCC_FLAGS,
               *cpp_backend.CUDA_FLAGS, "-DTORCH_EXTENSION_NAME=alexnet_kernels_ext_cuda",
               *[f"-I{p}" for p in includes], "-c", *map(str, cpp_backend.CUDA_SOURCES), "-o", str(Path(tmp, "ops.o"))]
        run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"nvcc failed ({run.returncode}):\n{run.stderr[-3000:]}")
    rows, name = [], None
    for line in (run.stdout + run.stderr).splitlines():
        if (m := _PTXAS_FUNCTION.search(line)):
            name = m.group(1)
        elif name and (m := _PTXAS_FRAME.search(line)):
            stack, spill_st, spill_ld = map(int, m.groups())
        elif name and (m := _PTXAS_REGS.search(line)):
            rows.append({"mangled": name, "registers": int(m.group(1)), "stack_bytes": stack,
                         "spill_store_bytes": spill_st, "spill_load_bytes": spill_ld})
            name = None
    table = pd.DataFrame(rows)
    table["kernel"] = _demangle(list(table["mangled"]))
    table = table[table["kernel"].str.contains("_kernel")]  # drop device helpers such as __internal_accurate_pow
    return table.drop(columns="mangled").sort_values("kernel").reset_index(drop=True)


def _demangle(names: list[str]) -> list[str]:
    """``kernel<template args>`` for each mangled name (c++filt when installed, else the mangled name)."""
    filt = shutil.which("c++filt")
    if filt is None:
        return names
    out = subprocess.run([filt], input="\n".join(names), capture_output=True, text=True, check=True).stdout
    short = []
    for full in out.splitlines():
        full = re.sub(r"^void |alexnet_ext::|\(anonymous namespace\)::|c10::", "", full)
        short.append(full.split("(")[0])
    return short


def occupancy_warps(registers: int, num_warps: int, arch: int) -> int | None:
    """Resident warps per SM allowed by registers alone (65,536 registers, 64 warps max on sm_80/90;
    allocation in 256-register warp units). Shared memory is not the limit for these kernels."""
    if arch < 80 or registers <= 0:
        return None
    per_warp = -(-registers * 32 // 256) * 256
    blocks = (65536 // (per_warp * num_warps))
    return min(64, blocks * num_warps)


def write_report(table: pd.DataFrame, out: Path, arch: int, batch: int, command: str,
                 cuda_table: pd.DataFrame | None = None) -> Path:
    """Markdown report (and the CSVs beside it) naming how and where the figures were made."""
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "kernel_resources.csv", index=False)
    if cuda_table is not None:
        cuda_table.to_csv(out / "cuda_resources.csv", index=False)
    ok = table[table["error"] == ""].copy()
    if not ok.empty:
        ok["warps_per_sm"] = [occupancy_warps(r, w, arch) for r, w in zip(ok["registers"], ok["num_warps"])]
    versions = software_versions()
    lines = [
        f"# Triton kernels compiled for sm_{arch}: registers, spills, memory instructions",
        "",
        f"- Command: `{command}`",
        f"- Date: {datetime.date.today().isoformat()}; machine: {versions['platform']} (no GPU needed or used)",
        f"- Versions: torch {versions['torch']}, triton {versions['triton']}, Python {versions['python']}",
        f"- Shapes: AlexNet activations at batch {batch} (conv1 96x55x55, conv2 256x27x27, conv5 256x13x13);"
        " LRN n=5, k=2, alpha=1e-4 (paper convention), beta=0.75; pool 3/2.",
        "- Static figures from a CPU-only compile with Triton's ptxas and cuobjdump. They say what the"
        " kernels need per thread, not how fast they run: no timing here.",
        "- `warps_per_sm`: resident warps the register count allows (of 64); `local_bytes` > 0 means spills.",
        "",
    ]
    failed = table[table["error"] != ""]
    if not failed.empty:
        lines += ["## Compile failures", "", failed[["op", "pass", "dtype", "layout", "kernel", "error"]]
                  .drop_duplicates().pipe(markdown), ""]
    if not ok.empty:
        columns = ["op", "pass", "site", "dtype", "layout", "kernel", "block", "num_warps", "programs", "registers",
                   "warps_per_sm", "local_bytes", "shared_bytes", "ptx_loads", "ptx_vector_loads", "ptx_stores",
                   "ptx_vector_stores"]
        counts = {c: ".0f" for c in columns[6:]}
        lines += ["## Triton kernels", "", markdown(ok[columns], counts), ""]
    if cuda_table is not None:
        cuda = cuda_table.assign(warps_per_sm=[occupancy_warps(r, 8, arch) for r in cuda_table["registers"]],
                                 kernel="`" + cuda_table["kernel"] + "`")  # code spans: <...> is not HTML
        lines += ["## `cpp` backend kernels (nvcc, the extension's flags)", "",
                  "Every template instantiation in `kernels/backends/cpp/csrc/alexnet_ops_cuda.cu` (the last template"
                  " argument of the LRN kernels is the window size they are specialised for; 0 = any size)."
                  " Blocks of 256 threads (`kThreads`), so `warps_per_sm` assumes 8 warps per block.", "",
                  markdown(cuda[["kernel", "registers", "warps_per_sm", "stack_bytes", "spill_store_bytes",
                                 "spill_load_bytes"]], {c: ".0f" for c in cuda.columns if c != "kernel"}), ""]
    path = out / "README.md"
    write_text_atomic(path, "\n".join(lines))
    return path


# NVIDIA compute capabilities x10 that Triton's NVIDIA backend compiles for (Turing through Blackwell)
KNOWN_ARCHES = (75, 80, 86, 87, 89, 90, 100, 103, 120, 121)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tools.kernel_resources", description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", type=int, default=90, help="compute capability x10 (90: H100/H200)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--dtypes", default=",".join(DTYPES), help=f"comma-separated, of {list(DTYPES)}")
    parser.add_argument("--layouts", default=",".join(LAYOUTS), help=f"comma-separated, of {list(LAYOUTS)}")
    parser.add_argument("--out", type=Path, default=Path("reports/kernel-resources-sm90"))
    parser.add_argument("--cuda", action="store_true", help="also compile the cpp backend's kernels with nvcc")
    args = parser.parse_args(argv)
    dtypes, layouts = args.dtypes.split(","), args.layouts.split(",")
    for name, allowed in (("dtype", DTYPES), ("layout", LAYOUTS)):
        unknown = [v for v in (dtypes if name == "dtype" else layouts) if v not in allowed]
        if unknown:
            parser.error(f"unknown {name} {unknown}; choose from {list(allowed)}")
    if args.batch < 1:
        parser.error(f"--batch must be at least 1, got {args.batch}")
    if args.arch not in KNOWN_ARCHES:  # LLVM aborts the process on a target it does not know
        parser.error(f"--arch {args.arch} is not an NVIDIA compute capability x10 that Triton targets; "
                     f"choose one of {', '.join(map(str, KNOWN_ARCHES))} (90: H100/H200)")
    failed = []

    def body():
        check_output_folder(args.out)
        table = resource_table(record_cases(args.batch, dtypes, layouts), args.arch)
        cuda_table = cuda_extension_resources(args.arch) if args.cuda else None
        command = "python -m bench.tools.kernel_resources " + " ".join(argv if argv is not None else sys.argv[1:])
        path = write_report(table, args.out, args.arch, args.batch, command, cuda_table)
        failures = table[table["error"] != ""]
        print(f"{len(table)} launches, {len(table) - len(failures)} compiled; report: {path}")
        for row in failures.drop_duplicates(["kernel", "dtype", "error"]).itertuples():
            print(f"FAILED {row.kernel} {row.dtype} {row.layout}: {row.error}", file=sys.stderr)
        failed.extend(failures.index)
    status = run_cli(parser.prog, body)
    return status if status else (1 if failed else 0)


if __name__ == "__main__":
    sys.exit(main())
