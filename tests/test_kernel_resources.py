"""The Triton kernels compile for an H100 (sm_90) without a GPU, exactly as the host code launches them.

The interpreter that runs them in CI accepts code that the compiler rejects (it once accepted
``tl.full([], runtime_value, ...)``, which cannot compile), so every kernel is also compiled here,
in a fresh process with ``TRITON_INTERPRET=0``, through ``bench.tools.kernel_resources``.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

import triton
from kernels.backends.triton.launch import recording_launches

REPO = Path(__file__).resolve().parents[1]
NVIDIA_BIN = Path(triton.__file__).parent / "backends" / "nvidia" / "bin"
KERNELS = {"_max_pool_fwd_kernel", "_max_pool_bwd_kernel", "_relu_lrn_fwd_kernel", "_relu_lrn_bwd_kernel",
           "_relu_lrn_pool_fwd_kernel", "_relu_lrn_fwd_cvec_kernel"}


def test_recording_launches_runs_nothing():
    from kernels.backends.triton import relu_lrn_kernel as triton_relu_lrn

    x = torch.full((1, 4, 3, 3), 7.0)
    with recording_launches() as launches:
        y = triton_relu_lrn.relu_lrn_forward(x, size=5, alpha=1e-4, beta=0.75, k=2.0)
    assert [launch.kernel.__name__ for launch in launches] == ["_relu_lrn_fwd_kernel"]
    assert launches[0].meta["SIZE"] == 5 and launches[0].args[0] is x and launches[0].args[1] is y
    after = triton_relu_lrn.relu_lrn_forward(x, size=5, alpha=1e-4, beta=0.75, k=2.0)  # recording is over
    assert torch.isfinite(after).all() and after.gt(0).all()


@pytest.mark.skipif(not (NVIDIA_BIN / "ptxas").exists() or not (NVIDIA_BIN / "cuobjdump").exists(),
                    reason=f"this Triton build ships no NVIDIA ptxas/cuobjdump in {NVIDIA_BIN}")
def test_every_kernel_compiles_for_sm90(tmp_path):
    env = {**os.environ, "TRITON_INTERPRET": "0", "TRITON_CACHE_DIR": str(tmp_path / "cache"),
           "TRITON_DEFAULT_FP_FUSION": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "bench.tools.kernel_resources", "--arch", "90", "--batch", "128",
         "--dtypes", "float32,bfloat16,float64", "--out", str(tmp_path / "report")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    table = pd.read_csv(tmp_path / "report" / "kernel_resources.csv", keep_default_na=False)
    assert set(table["kernel"]) == KERNELS
    assert (table["error"] == "").all()
    assert set(table["dtype"]) == {"float32", "bfloat16", "float64"}
    assert set(table["layout"]) == {"nchw", "channels_last"}
    assert (table["registers"] > 0).all() and (table["registers"] <= 255).all()
    assert (table["ptx_stores"] > 0).all() and (table["ptx_loads"] > 0).all()
    assert "sm_90" in (tmp_path / "report" / "README.md").read_text()


def test_ptx_counting_and_occupancy():
    from bench.tools.kernel_resources import occupancy_warps, ptx_memory_ops

    ptx = "ld.global.v4.b32 {a}, [p];\n@%p1 ld.global.b16 {b}, [q];\nst.global.v2.b32 [r], {c};\nlg2.approx.f32 x;"
    assert ptx_memory_ops(ptx) == {"ptx_loads": 2, "ptx_vector_loads": 1, "ptx_stores": 1,
                                   "ptx_vector_stores": 1, "fp64_special": 0}
    assert occupancy_warps(32, 4, 90) == 64  # 32 regs x 32 lanes x 64 warps = 65,536
    assert occupancy_warps(255, 4, 90) == 8  # 256-register granules: 8,192 per warp
    assert occupancy_warps(96, 4, 90) == 20


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on PATH: the cpp backend's kernels "
                    "cannot be compiled for a GPU here")
def test_cpp_extension_cuda_kernels_compile_for_sm90():
    """The CUDA half of the ``cpp`` backend only builds on a CUDA PyTorch, so CI (CPU PyTorch) would
    never compile it; nvcc compiles it here with the extension's flags."""
    from bench.tools.kernel_resources import cuda_extension_resources

    table = cuda_extension_resources(90)
    names = set(table["kernel"].str.split("<").str[0])
    assert names == {"lrn_forward_kernel", "lrn_backward_kernel", "max_pool_forward_kernel",
                     "max_pool_backward_kernel", "relu_lrn_pool_forward_kernel", "relu_lrn_pool_backward_kernel"}
    for dtype in ("float", "double", "Half", "BFloat16"):
        assert table["kernel"].str.contains(f"<{dtype}").sum() >= 6
    paper = table[table["kernel"].str.contains(r"<(?:float|BFloat16), 5>|<(?:float|BFloat16), signed char, 5>")]
    assert len(paper) == 6 and (paper["spill_store_bytes"] == 0).all()  # the paper's window: no spills


def test_importing_the_tool_leaves_the_interpreter_setting_alone():
    """Run as a program it compiles (TRITON_INTERPRET=0); imported, it must not switch the process's
    Triton mode (it once did, and every later interpreter test in the session skipped)."""
    probe = "import os, bench.tools.kernel_resources; print(os.environ['TRITON_INTERPRET'])"
    run = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, "TRITON_INTERPRET": "1"}, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "1"
