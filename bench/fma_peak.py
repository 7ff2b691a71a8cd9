"""The CPU's measured peak rate of vector fused multiply-adds: the compute roof of the CPU kernel cases.

A small C++ loop, built with ``torch.utils.cpp_extension.load_inline`` for the same instruction set as
the ``cpp`` backend (``kernels.backends.cpp.isa_flags``), keeps ``ACCUMULATORS`` independent
``at::vec::Vectorized<float>`` accumulators busy with ``fmadd`` on every OpenMP thread (enough
independent chains to cover the FMA latency of current x86 cores), so it runs at the core's FMA issue
rate. ``peak()`` returns vector operations per second (one FMA instruction of ``lanes`` floats counts
once) and FLOP/s (``2 * lanes`` per FMA), the median of a few timed runs of about 50 ms each.

The compute roof of a kernel is then its counted vector operations (``bench.counting.vector_ops``) at
that rate: a bound no real kernel reaches (its operations are not all FMAs, and it also loads and stores),
so a case far from its compute roof and far from its memory roof is bound by neither.
"""
from __future__ import annotations

import statistics
import threading
import time

import torch

ACCUMULATORS = 12
_SOURCE = r"""
#include <torch/extension.h>
#include <ATen/cpu/vec/vec.h>
#include <omp.h>

// Runs `iters` rounds of ACC independent FMAs per thread; returns the number of vector FMAs done.
double fma_loop(int64_t iters) {
  using Vec = at::vec::Vectorized<float>;
  double total = 0;
  #pragma omp parallel reduction(+:total)
  {
    Vec acc[ACC];
    for (int i = 0; i < ACC; ++i) acc[i] = Vec(1.0f + 1e-3f * (i + omp_get_thread_num()));
    const Vec a(0.999999f), b(1e-7f);
    for (int64_t it = 0; it < iters; ++it) {
      #pragma GCC unroll 16
      for (int i = 0; i < ACC; ++i) acc[i] = at::vec::fmadd(acc[i], a, b);
    }
    Vec s = acc[0];
    for (int i = 1; i < ACC; ++i) s = s + acc[i];
    float out[Vec::size()];
    s.store(out);
    total += (out[0] != 12345.0f) ? double(iters) * ACC : 0.0;  // keeps the loop's result alive
  }
  return total;
}

int64_t lanes() { return at::vec::Vectorized<float>::size(); }
"""

_lock = threading.Lock()
_module = None


def _build():
    global _module
    with _lock:
        if _module is None:
            from torch.utils.cpp_extension import load_inline

            from kernels.backends.cpp import cpu_isa, isa_flags

            isa = cpu_isa()
            _module = load_inline(
                name=f"alexnet_bench_fma_peak_{isa.lower()}",
                cpp_sources=_SOURCE.replace("ACC", str(ACCUMULATORS)),
                functions=["fma_loop", "lanes"],
                extra_cflags=["-O3", "-fopenmp", *isa_flags(isa)],
                extra_ldflags=["-fopenmp"],
            )
    return _module


def peak(target_seconds: float = 0.05, repeats: int = 5) -> dict:
    """Measured FMA peak of this CPU with torch's thread count: ``{"vector_ops_per_s", "flops_per_s",
    "lanes", "threads"}``."""
    module = _build()
    iters = 1 << 16
    while True:  # size one run to about target_seconds
        start = time.perf_counter()
        module.fma_loop(iters)
        if time.perf_counter() - start >= target_seconds / 4 or iters >= 1 << 30:
            break
        iters *= 4
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        done = module.fma_loop(iters)
        rates.append(done / (time.perf_counter() - start))
    rate = statistics.median(rates)
    lanes = int(module.lanes())
    return {"vector_ops_per_s": rate, "flops_per_s": 2 * lanes * rate, "lanes": lanes,
            "threads": torch.get_num_threads()}
