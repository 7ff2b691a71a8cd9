"""The cpp extension at every instruction-set level this CPU can run - DEFAULT (no vector ISA), AVX2,
AVX512, AVX512_BF16 (AVX512 with one-instruction bfloat16 stores) - each compiled and tested in its own
process with ATen's ``ATEN_CPU_CAPABILITY`` (and ``ALEXNET_AVX512_BF16``) set (``tests/isa_probe.py``): the
build reports the level it was compiled for, its LRN forward stays within
``kernels.tolerances.FLOAT64_REL_ERR`` of float64 (float32 and bfloat16), and every op's forward and
input gradient matches eager at the scale where LRN normalises, NaN/inf positions included. A level the
CPU cannot execute is not run (skipped, with the reason) but still compiled (an object file, never loaded),
so that a change to the kernels cannot break another machine's build unseen. Each level is its own cached
build (``alexnet_kernels_ext_cpu_<level>``), beside the main one; a cold build takes ~45 s on one core.
"""
import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import torch

from kernels.backends import cpp as cpp_backend
from kernels.tolerances import FLOAT64_REL_ERR

REPO_ROOT = Path(__file__).resolve().parents[1]
LEVELS = ("DEFAULT", "AVX2", "AVX512", "AVX512_BF16")
BUILD_TIMEOUT_S = 900


def cpu_runs(level: str) -> str | None:
    """Why this CPU cannot execute ``level``'s instructions, or None."""
    if level == "AVX2" and not torch.cpu._is_avx2_supported():
        return "this CPU has no AVX2 (and FMA)"
    if level == "AVX512" and not torch.cpu._is_avx512_supported():
        return "this CPU has no AVX-512 (F, BW, VL, DQ): an AVX-512 build would stop on an illegal instruction"
    if level == "AVX512_BF16" and not (torch.cpu._is_avx512_supported() and torch.cpu._is_avx512_bf16_supported()):
        return "this CPU has no AVX512-BF16: its vcvtneps2bf16 would stop on an illegal instruction"
    return None


def probe(level: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "ATEN_CPU_CAPABILITY": cpp_backend.aten_level(level).lower(),
           "ALEXNET_AVX512_BF16": str(int(level == "AVX512_BF16")), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "tests.isa_probe"], cwd=REPO_ROOT, env=env, capture_output=True,
                            text=True, timeout=BUILD_TIMEOUT_S)
    assert result.returncode == 0, f"{level} probe failed:\n{result.stderr[-3000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("level", LEVELS)
def test_build_at_each_instruction_set_level(level):
    reason = cpu_runs(level)
    if reason is not None:
        pytest.skip(f"{level} build not run: {reason}")
    missing = cpp_backend._missing_tool_reason(with_cuda=False)
    if missing is not None:
        pytest.skip(f"cpp backend unavailable: {missing}")
    got = probe(level)
    assert got["reason"] is None, f"{level} build failed: {got['reason']}"
    assert got["dispatch_isa"] == got["built_isa"] == level
    assert got["extension"] == f"alexnet_kernels_ext_cpu_{level.lower()}"  # its own cache entry
    for name, err in got["forward_error"].items():
        bound = FLOAT64_REL_ERR[getattr(torch, name)]
        assert err["max_rel_err"] <= bound, (
            f"{level} {name} LRN forward: relative error {err['max_rel_err']:.3g} ({err['max_ulp']:.2f} ulp) "
            f"against float64 exceeds {bound:.3g}")
    assert not got["failures"], f"{level} build against eager:\n" + "\n".join(got["failures"])
    print(f"{level}: " + ", ".join(f"{name} max rel err {e['max_rel_err']:.3g} ({e['max_ulp']:.2f} ulp)"
                                   for name, e in got["forward_error"].items()))


def test_levels_this_cpu_cannot_run_still_compile(tmp_path):
    """The CPU sources at each level the CPU cannot execute, compiled to an object file with that level's
    flags (as the extension build passes them, at -O1 to keep it short) and never loaded."""
    levels = [level for level in LEVELS if cpu_runs(level) is not None]
    if not levels:
        pytest.skip("this CPU executes every level: each is built and tested above")
    missing = cpp_backend._missing_tool_reason(with_cuda=False)
    if missing is not None:
        pytest.skip(f"cpp backend unavailable: {missing}")
    from torch.utils import cpp_extension

    includes = [f"-I{cpp_backend.CSRC_DIR}", *(f"-isystem{p}" for p in cpp_extension.include_paths()),
                f"-isystem{sysconfig.get_paths()['include']}"]
    base = [flag for flag in cpp_backend.CXX_FLAGS if flag != "-O3"]
    for level in levels:
        for source in cpp_backend.CPP_SOURCES:
            cmd = [os.environ.get("CXX", "c++"), "-std=c++20", "-O1", "-fPIC", *base, *cpp_backend.isa_flags(level),
                   "-DTORCH_API_INCLUDE_EXTENSION_H", f"-DTORCH_EXTENSION_NAME=isa_compile_{level.lower()}", *includes,
                   "-c", str(source), "-o", str(tmp_path / f"{level}-{source.stem}.o")]
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
            assert result.returncode == 0, f"{level} compile of {source.name} failed:\n{result.stderr[-3000:]}"
        print(f"{level}: compiled, not run (this CPU cannot execute it)")
