"""The cpp backend's fused ReLU+LRN+max-pool forward in a loop, for a CPU profiler to sample.

    perf record -e cpu-clock -F 4999 -g python -m bench.tools.profile_fused_forward
    perf annotate --stdio -s "alexnet_ext::cpu::lrn_forward_planes<float, float>"

Calls ``kernels.relu_lrn_pool(x, backend="cpp")`` for ``--seconds`` on AlexNet's conv1 activation at batch 16
(float32 or ``--dtype bfloat16``, ``randn * 30`` so that LRN normalises), after three warm-up calls, and
prints the time per call; the committed readings are ``reports/cpu-epyc-avx2/fused-forward-profile.md`` and
``reports/cpu-epyc-avx512/fused-forward-profile.md``.
"""
from __future__ import annotations

import argparse
import sys
import time

import torch

import kernels

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.tools.profile_fused_forward", description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=8.0, help="how long to call the op (default 8)")
    p.add_argument("--channels-last", action="store_true", help="channels_last input (default NCHW)")
    p.add_argument("--dtype", default="float32", choices=DTYPES, help="input dtype (default float32)")
    args = p.parse_args(argv)
    x = (torch.randn(16, 96, 55, 55) * 30).to(DTYPES[args.dtype])
    if args.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        for _ in range(3):
            kernels.relu_lrn_pool(x, backend="cpp")
        start, calls = time.perf_counter(), 0
        while time.perf_counter() - start < args.seconds:
            kernels.relu_lrn_pool(x, backend="cpp")
            calls += 1
    print(f"{(time.perf_counter() - start) / calls * 1e3:.3f} ms per call ({calls} calls)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
