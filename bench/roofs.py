"""The roofs a CPU kernel case is judged against, in each cache state it was timed in.

``roof_fields`` gives, for the cold (primary) and the warm timing of a case: the memory roof (a copy of the
op's own minimal bytes in the same cache state, ``bench.timing.Timer.copy_roof``), the compute roof (the
op's counted vector operations, ``bench.counting.vector_ops``, at the session's measured FMA rate,
``bench.fma_peak``), which one binds (the slower), and the case's % of it (roof time / case time).
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
        memory_s = timer.copy_roof(nbytes, "warm" if prefix else "cold").median_s
        roof_s, bound = max((memory_s, "memory"), (compute_s or 0.0, "compute"))
        info[f"{prefix}memory_roof_s"] = memory_s
        info[f"{prefix}compute_roof_s"] = compute_s
        info[f"{prefix}roof"] = bound
        info[f"{prefix}pct_roof"] = 100.0 * roof_s / time_s
    return info
