"""How a callable is timed, and the machine-wide yardsticks measured once per session.

Timing choice (documented because GPU timing is easy to get wrong):

* Warm-up calls run *before* pytest-benchmark starts its clock, so a cold JIT/Inductor/Triton
  compile or autotune is never timed.
* Each timed repetition is one ``benchmark.pedantic`` round. Its untimed ``setup`` overwrites a
  256 MiB buffer (larger than any current L2) and synchronizes, so every repetition starts with a
  cold L2 and an idle GPU. The timed callable records CUDA events around the work and synchronizes
  before returning, so pytest-benchmark's wall-clock stats (kept, with their spread, in the JSON)
  cover the whole GPU work plus launch overhead.
* The derived figures (GB/s, % of copy bandwidth, speedups) use the median of the CUDA-event times
  (GPU time, as ``triton.testing.do_bench`` measures it); on a CPU they use the wall-clock median.
  ``extra_info["time_source"]`` says which. A CPU case runs rounds for about CPU_TARGET_SECONDS (a
  whole model's, CPU_MODEL_TARGET_SECONDS; 5 to 50 rounds), or 2 when Triton runs through its interpreter (seconds per call; kernel cases under the
  interpreter are checked and not timed at all). No L2 flush on a CPU: the inputs (>= 18 MB at conv1,
  batch 16) exceed its caches.
* Energy per iteration (when NVML reports an energy counter) comes from a separate back-to-back
  loop of at least 0.25 s, because the counter's resolution is too coarse for one repetition.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch

from bench import env_info

L2_FLUSH_BYTES = 256 * 1024 * 1024
GPU_TARGET_SECONDS = 0.25  # timed rounds per case aim for about this much GPU time
GPU_MIN_ROUNDS, GPU_MAX_ROUNDS = 20, 300
WARMUP_CALLS = 1  # the first call compiles/autotunes; never timed
CPU_TARGET_SECONDS = 0.5
# a whole model on a CPU: 0.1-0.5 s per call, so 0.5 s gave 5 rounds and run-to-run medians 15% apart
CPU_MODEL_TARGET_SECONDS = 2.0
CPU_MIN_ROUNDS, CPU_MAX_ROUNDS = 5, 50
CPU_INTERPRETER_ROUNDS = 2  # Triton through its CPU interpreter: seconds per call, and the times mean nothing
GPU_WARMUP = 3  # further untimed calls that also size the number of rounds (CPU too)
ENERGY_SECONDS = 0.2


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class TimingResult:
    times_s: list  # one per timed repetition
    time_source: str  # "cuda_events" | "wall"
    energy_j_per_iter: float | None = None

    @property
    def median_s(self) -> float:
        return statistics.median(self.times_s)

    def summary(self) -> dict:
        ordered = sorted(self.times_s)
        q = statistics.quantiles(ordered, n=4) if len(ordered) >= 2 else [ordered[0]] * 3
        return {
            "time_s": self.median_s,
            "time_min_s": ordered[0],
            "time_q1_s": q[0],
            "time_q3_s": q[2],
            "time_source": self.time_source,
            "rounds": len(ordered),
            "energy_j_per_iter": self.energy_j_per_iter,
        }


class Timer:
    """Times callables on one device with pytest-benchmark's ``pedantic`` mode (see module doc)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.on_gpu = device.type == "cuda"
        self._flush = torch.empty(L2_FLUSH_BYTES, dtype=torch.int8, device=device) if self.on_gpu else None

    def flush_l2(self) -> None:
        if self._flush is not None:
            self._flush.zero_()

    def _rounds(self, fn: Callable[[], object], before_each: Callable[[], None] | None, interpreted: bool,
                cpu_seconds: float) -> int:
        if not self.on_gpu and interpreted:
            return CPU_INTERPRETER_ROUNDS
        start = time.perf_counter()
        for _ in range(GPU_WARMUP):
            if before_each:
                before_each()
            fn()
        synchronize(self.device)
        per_call = max((time.perf_counter() - start) / GPU_WARMUP, 1e-6)
        if not self.on_gpu:
            return int(min(CPU_MAX_ROUNDS, max(CPU_MIN_ROUNDS, cpu_seconds / per_call)))
        return int(min(GPU_MAX_ROUNDS, max(GPU_MIN_ROUNDS, GPU_TARGET_SECONDS / per_call)))

    def time(self, benchmark, fn: Callable[[], object], before_each: Callable[[], None] | None = None,
             interpreted: bool = False, cpu_seconds: float = CPU_TARGET_SECONDS) -> TimingResult:
        """Warm up ``fn``, then time it with ``benchmark.pedantic``; ``before_each`` runs untimed.
        ``interpreted``: ``fn`` runs Triton through its CPU interpreter (fewer rounds on a CPU);
        ``cpu_seconds``: about how long the timed rounds take on a CPU."""
        for _ in range(WARMUP_CALLS):
            if before_each:
                before_each()
            fn()
        synchronize(self.device)
        rounds = self._rounds(fn, before_each, interpreted, cpu_seconds)
        times: list[float] = []
        events: list[tuple] = []

        def setup():
            if before_each:
                before_each()
            self.flush_l2()
            synchronize(self.device)

        if self.on_gpu:
            def target():
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                torch.cuda.synchronize(self.device)
                events.append((start, end))
        else:
            def target():
                start = time.perf_counter()
                fn()
                times.append(time.perf_counter() - start)

        benchmark.pedantic(target, setup=setup, rounds=rounds, iterations=1, warmup_rounds=0)
        if self.on_gpu:
            times = [s.elapsed_time(e) / 1e3 for s, e in events]
        result = TimingResult(times, "cuda_events" if self.on_gpu else "wall")
        result.energy_j_per_iter = self._energy_per_iter(fn, before_each)
        return result

    def _energy_per_iter(self, fn, before_each) -> float | None:
        if not self.on_gpu or env_info.energy_mj(self.device) is None:
            return None
        synchronize(self.device)
        start_mj, start, iters = env_info.energy_mj(self.device), time.perf_counter(), 0
        while time.perf_counter() - start < ENERGY_SECONDS or iters < 3:
            if before_each:
                before_each()
            fn()
            iters += 1
            if iters % 8 == 0:
                synchronize(self.device)
        synchronize(self.device)
        end_mj = env_info.energy_mj(self.device)
        return (end_mj - start_mj) / 1e3 / iters if end_mj is not None else None


def peak_memory_delta(fn: Callable[[], object], device: torch.device) -> int | None:
    """Peak bytes allocated above the starting level while ``fn`` runs.

    GPU: the caching allocator's peak statistics. CPU: the running sum of torch.profiler's memory events
    (``profile_memory=True``: every allocation and free of PyTorch's CPU allocator, in order), its
    maximum; scratch that a library allocates by itself (oneDNN's, OpenMP's) is not seen by either.
    """
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    if device.type != "cpu":
        return None
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    return cpu_peak_from_memory_events(prof.profiler.kineto_results.events())


def cpu_peak_from_memory_events(events) -> int:
    """The highest running total of the CPU allocator's ``[memory]`` events (bytes: + allocated,
    - freed), taken in time order; 0 when nothing was allocated."""
    changes = sorted((e.start_ns(), e.nbytes()) for e in events
                     if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU)
    running = peak = 0
    for _, nbytes in changes:
        running += nbytes
        peak = max(peak, running)
    return peak


def saved_tensor_bytes(forward: Callable[[], torch.Tensor], exclude: tuple = ()) -> int:
    """Bytes autograd keeps for the backward of ``forward()`` beyond the tensors in ``exclude``.

    Counts each saved storage once, through ``torch.autograd.graph.saved_tensors_hooks``; works on
    any device and for custom autograd functions (e.g. ATen's int64 max-pool indices show up here).
    """
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor):
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = forward()
    skip = {t.untyped_storage().data_ptr() for t in (*exclude, out)}
    return sum(nbytes for ptr, nbytes in seen.items() if ptr not in skip)


def copy_bandwidth(device: torch.device, nbytes: int | None = None, repeats: int = 20) -> float:
    """Device-memory bandwidth in bytes/s from a device-to-device copy (read + write counted).

    Median over ``repeats`` copies; on a CPU a smaller buffer and fewer repeats (main-memory copy).
    """
    on_gpu = device.type == "cuda"
    nbytes = nbytes or ((1 << 30) if on_gpu else (128 << 20))
    src = torch.empty(nbytes, dtype=torch.uint8, device=device).fill_(1)
    dst = torch.empty_like(src)
    dst.copy_(src)  # warm-up
    synchronize(device)
    times = []
    for _ in range(repeats if on_gpu else 5):
        if on_gpu:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            dst.copy_(src)
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            start = time.perf_counter()
            dst.copy_(src)
            times.append(time.perf_counter() - start)
    return 2 * nbytes / statistics.median(times)


def gemm_flops_per_s(device: torch.device, dtype: torch.dtype, tf32: bool = False) -> float:
    """Dense matmul throughput (FLOP/s) in ``dtype``: the yardstick for model-FLOPs utilisation.

    On a GPU an 8192^3 matmul; fp32 with ``tf32=True`` measures what cuDNN convolutions use by
    default (``torch.backends.cudnn.allow_tf32``). On a CPU a 1024^3 float32 matmul.
    """
    on_gpu = device.type == "cuda"
    n = 8192 if on_gpu else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    try:
        a @ b
        synchronize(device)
        times = []
        for _ in range(10 if on_gpu else 3):
            start = time.perf_counter()
            a @ b
            synchronize(device)
            times.append(time.perf_counter() - start)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous
    return 2 * n**3 / statistics.median(times)
