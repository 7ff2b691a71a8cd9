"""The cpp extension at every instruction-set level this CPU can run - DEFAULT (no vector ISA), AVX2,
AVX512 - each compiled and tested in its own process with ATen's ``ATEN_CPU_CAPABILITY`` set
(``tests/isa_probe.py``): the build reports the level it was compiled for, its LRN forward stays within
``kernels.tolerances.FLOAT64_REL_ERR`` of float64 (float32 and bfloat16), and every op's forward and
input gradient matches eager at the scale where LRN normalises, NaN/inf positions included. A level the
CPU cannot execute is skipped with the reason. Each level is its own cached build
(``alexnet_kernels_ext_cpu_<level>``), beside the main one; a cold build takes ~45 s on one core.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from kernels.backends import cpp as cpp_backend
from kernels.tolerances import FLOAT64_REL_ERR

REPO_ROOT = Path(__file__).resolve().parents[1]
LEVELS = ("DEFAULT", "AVX2", "AVX512")
BUILD_TIMEOUT_S = 900


def cpu_runs(level: str) -> str | None:
    """Why this CPU cannot execute ``level``'s instructions, or None."""
    if level == "AVX2" and not torch.cpu._is_avx2_supported():
        return "this CPU has no AVX2 (and FMA)"
    if level == "AVX512" and not torch.cpu._is_avx512_supported():
        return "this CPU has no AVX-512 (F, BW, VL, DQ): an AVX-512 build would stop on an illegal instruction"
    return None


def probe(level: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "ATEN_CPU_CAPABILITY": level.lower(), "OMP_NUM_THREADS": "1"}
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
