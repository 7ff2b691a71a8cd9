"""The roofs a CPU kernel case is judged against, in each cache state it was timed in, and the compute peak
a model step's MFU is taken against (``model_flops_peak``).

``roof_fields`` gives, for the cold (primary) and the warm timing of a case: the memory roof (a copy of the
op's own minimal bytes in the same cache state, timed right after the case, ``bench.timing.Timer.copy_roof``:
the faster of ATen's copy and a streaming copy, and which one it was),
the compute roof (the op's counted vector operations, ``bench.counting.vector_ops``, at the session's measured
FMA rate, ``bench.fma_peak``), which one binds (the slower), and the case's % of it (roof time / case time).
"""
from __future__ import annotations

from bench import counting


def roof_fields(timer, bench_env: dict, op: str, shape, direction: str, nbytes: int, times: dict) -> dict:
    """``times``: {"": cold median seconds, "warm_": warm median seconds}; returns the ``extra_info`` fields."""
    fma = bench_env.get("fma_peak") or {}
    compute_s = (counting.vector_ops(op, shape, direction, fma["lanes"]) / fma["vector_ops_per_s"]
                 if fma.get("vector_ops_per_s") else None)
    info: dict = {}
    for prefix, time_s in times.items():
        copy = timer.copy_roof(nbytes, "warm" if prefix else "cold")
        memory_s = copy.median_s
        roof_s, bound = max((memory_s, "memory"), (compute_s or 0.0, "compute"))
        info[f"{prefix}memory_roof_s"] = memory_s
        info[f"{prefix}memory_roof_copy"] = copy.label or None
        info[f"{prefix}compute_roof_s"] = compute_s
        info[f"{prefix}roof"] = bound
        info[f"{prefix}pct_roof"] = 100.0 * roof_s / time_s
    return info


def model_flops_peak(bench_env: dict, amp: str, on_gpu: bool) -> tuple[float | None, str | None]:
    """The denominator of a model case's MFU: the highest compute rate the session measured in the step's
    precision, in FLOP/s, and what measured it.

    On a GPU, the dense GEMM (TF32 for float32 where cuDNN uses it). On a CPU, the larger of the float32
    1024^3 matmul and the FMA loop at the build's vector width (``bench.fma_peak``): ATen's CPU matmul can
    run far below the FMA rate that oneDNN's convolutions reach (on an AMD EPYC with AVX-512 it measured
    0.14 TFLOP/s against the loop's 0.23), and against the matmul alone AlexNet's steps read above 100%.
    A CPU has no bfloat16 figure here, so bf16 steps get no MFU.
    """
    gemm = (bench_env.get("gemm_flops_per_s") or {}).get("bf16" if amp == "bf16" else "fp32")
    if on_gpu or amp == "bf16":
        return (gemm, "dense GEMM") if gemm else (None, None)
    fma = (bench_env.get("fma_peak") or {}).get("flops_per_s")
    candidates = [(v, name) for v, name in ((gemm, "float32 matmul"), (fma, "FMA loop")) if v]
    return max(candidates) if candidates else (None, None)


def mfu_fields(tflops: float, bench_env: dict, amp: str, on_gpu: bool) -> dict:
    """A model case's ``peak_tflops``, ``peak_source`` and ``mfu_pct`` (``None`` where no peak was measured)."""
    peak, source = model_flops_peak(bench_env, amp, on_gpu)
    return {"peak_tflops": peak / 1e12 if peak else None, "peak_source": source,
            "mfu_pct": 100.0 * tflops / (peak / 1e12) if peak else None}
