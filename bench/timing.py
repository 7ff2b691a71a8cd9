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
  interpreter are checked and not timed at all). ``ALEXNET_BENCH_CPU_TIME_SCALE`` multiplies the CPU
  rounds' seconds and their cap (a report's run: intervals narrow enough to decide its targets).
* Cache state, declared with every figure (``cache="cold"`` or ``"warm"``). GPU: always cold (the L2
  flush above). CPU kernel cases are timed in both states: *cold* touches (reads and writes) a buffer
  of at least four times the last-level cache (``cpu_flush_bytes``) in each round's untimed setup, so the
  op's input and output start in DRAM; *warm* repeats the call back to back, so whatever of its
  working set fits stays cached (AlexNet's conv1 activation at batch 16 is 18.6 MB in float32, about
  the size of a 16-32 MiB last-level cache: partly cached). A model step is timed warm (steps back
  to back, as training runs them).
* Roofs (``bench.roofs``), each measured in the same cache state as the case it judges and right after
  it (the VM's bandwidth drifts over a run): the memory roof is the time of a copy that moves the op's
  own minimal bytes (half read, half written, uint8 buffers: the faster of ATen's vectorized,
  multi-threaded ``copy_`` and the cpp extension's streaming copy, ``Timer.copy_roof``), the compute
  roof the op's counted vector operations at the measured peak rate of fused multiply-adds
  (``bench.fma_peak``). A kernel's % of roof = roof time / its time; above 100 % means the yardstick
  is not a bound (a measurement problem), and the report says so instead of presenting it as a result.
* Intervals: every ratio of two timed cases comes with a 95 % bootstrap interval of the ratio of
  medians (``ratio_interval``: both sets of rounds resampled with replacement).
* Energy per iteration (when NVML reports an energy counter) comes from a separate back-to-back
  loop of at least 0.25 s, because the counter's resolution is too coarse for one repetition.
"""
from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from bench import env_info

L2_FLUSH_BYTES = 256 * 1024 * 1024
GPU_TARGET_SECONDS = 0.25  # timed rounds per case aim for about this much GPU time
GPU_MIN_ROUNDS, GPU_MAX_ROUNDS = 20, 300
WARMUP_CALLS = 1  # the first call compiles/autotunes; never timed
CPU_TARGET_SECONDS = 0.5
CPU_FLUSH_MIN_BYTES = 64 << 20  # when the last-level cache size cannot be read
CACHE_STATES = ("cold", "warm")
BOOTSTRAP_SAMPLES = 2000
# a whole model on a CPU: 0.1-0.5 s per call, so 0.5 s gave 5 rounds and run-to-run medians 15% apart
CPU_MODEL_TARGET_SECONDS = 2.0
CPU_MIN_ROUNDS, CPU_MAX_ROUNDS = 5, 50
# A committed report's run scales every CPU case's timed seconds (and the round cap) by this factor, so its
# intervals are narrow enough to decide its targets; CI keeps 1.
CPU_TIME_SCALE = float(os.environ.get("ALEXNET_BENCH_CPU_TIME_SCALE", "1") or 1)
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
    cache: str = "cold"  # the cache state every repetition started in (module doc)
    energy_j_per_iter: float | None = None
    label: str = ""  # what was timed, where a yardstick chooses between ways (``Timer.copy_roof``)

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
            "cache": self.cache,
            "times_s": list(self.times_s),
            "energy_j_per_iter": self.energy_j_per_iter,
        }

    def warm_summary(self) -> dict:
        """The same figures under ``warm_`` keys (a case timed in a second cache state)."""
        return {f"warm_{k}": v for k, v in self.summary().items() if k not in ("time_source", "energy_j_per_iter")}


def cpu_last_level_cache_bytes() -> int | None:
    """Size of this CPU's largest cache (Linux sysfs: the highest cache index of cpu0), or None."""
    best = None
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            text = (index / "size").read_text().strip()
        except OSError:
            continue
        units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
        size = int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)
        best = max(best or 0, size)
    return best


def cpu_flush_bytes() -> int:
    """Bytes touched between cold rounds on a CPU: four times the last-level cache, at least
    ``CPU_FLUSH_MIN_BYTES``.

    Twice would do on bare metal. A VM's two vCPUs can sit on two of the host's last-level caches (one per
    core complex) while reporting one: each thread then caches its own half of an op's data, and a flush of
    twice the reported size, split between the threads, fills each cache only once. On a 2-core AMD EPYC VM
    (32 MiB reported) a 37 MB copy then timed 0.78-1.25 ms "cold" within one run, against 1.15-1.70 ms
    with a flush of four times the cache."""
    llc = cpu_last_level_cache_bytes()
    return max(CPU_FLUSH_MIN_BYTES, 4 * llc) if llc else CPU_FLUSH_MIN_BYTES


def ratio_interval(base_times, our_times, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0) -> tuple[float, float]:
    """95 % bootstrap interval of median(base) / median(ours): each set of rounds resampled with
    replacement ``samples`` times (percentile interval). Fewer than 3 rounds on either side: (nan, nan)."""
    base, ours = np.asarray(base_times, dtype=float), np.asarray(our_times, dtype=float)
    if len(base) < 3 or len(ours) < 3:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    b = np.median(rng.choice(base, size=(samples, len(base))), axis=1)
    o = np.median(rng.choice(ours, size=(samples, len(ours))), axis=1)
    low, high = np.percentile(b / o, [2.5, 97.5])
    return float(low), float(high)


def streaming_copy() -> Callable[[torch.Tensor, torch.Tensor], None] | None:
    """``fn(dst, src)``: the cpp extension's copy with streaming (non-temporal) stores, multi-threaded; None
    where the extension cannot be built here (the memory roof is then ATen's ``copy_`` alone)."""
    from kernels.backends import cpp

    if cpp.unavailable_reason() is not None:
        return None
    return getattr(torch.ops, cpp.NAMESPACE).stream_copy_


class _PlainRounds:
    """Runs ``benchmark.pedantic``'s rounds (setup untimed, then the target) without pytest-benchmark."""

    def pedantic(self, target, setup, rounds: int, iterations: int = 1, warmup_rounds: int = 0) -> None:
        for _ in range(warmup_rounds + rounds):
            setup()
            target()


class Timer:
    """Times callables on one device with pytest-benchmark's ``pedantic`` mode (see module doc)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.on_gpu = device.type == "cuda"
        size = L2_FLUSH_BYTES if self.on_gpu else cpu_flush_bytes()
        self.flush_bytes = size
        # read once: copy_roof asks at every case whether its bytes pass the cache
        self.llc_bytes = None if self.on_gpu else cpu_last_level_cache_bytes()
        self._flush = torch.zeros(size, dtype=torch.int8, device=device)
        self._copy_buffers: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def flush_l2(self) -> None:
        """Evict the caches: zero the GPU buffer (larger than any L2); on a CPU read and write every byte
        of a buffer four times the last-level cache (``cpu_flush_bytes``)."""
        if self.on_gpu:
            self._flush.zero_()
        else:
            self._flush.add_(1)

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
            return int(min(CPU_MAX_ROUNDS * CPU_TIME_SCALE, max(CPU_MIN_ROUNDS, CPU_TIME_SCALE * cpu_seconds / per_call)))
        return int(min(GPU_MAX_ROUNDS, max(GPU_MIN_ROUNDS, GPU_TARGET_SECONDS / per_call)))

    def time(self, benchmark, fn: Callable[[], object], before_each: Callable[[], None] | None = None,
             interpreted: bool = False, cpu_seconds: float = CPU_TARGET_SECONDS, cache: str = "cold",
             energy: bool = True) -> TimingResult:
        """Warm up ``fn``, then time it with ``benchmark.pedantic``; ``before_each`` runs untimed.
        ``interpreted``: ``fn`` runs Triton through its CPU interpreter (fewer rounds on a CPU);
        ``cpu_seconds``: about how long the timed rounds take on a CPU; ``cache``: ``"cold"`` flushes
        the caches before every round (untimed), ``"warm"`` does not (CPU only: a GPU round is always cold)."""
        if cache not in CACHE_STATES:
            raise ValueError(f"cache must be one of {CACHE_STATES}, got {cache!r}")
        cold = self.on_gpu or cache == "cold"
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
            if cold:
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
        result = TimingResult(times, "cuda_events" if self.on_gpu else "wall", "cold" if cold else "warm")
        result.energy_j_per_iter = self._energy_per_iter(fn, before_each) if energy else None
        return result

    def measure(self, fn: Callable[[], object], before_each: Callable[[], None] | None = None,
                cache: str = "warm", cpu_seconds: float = CPU_TARGET_SECONDS) -> TimingResult:
        """``fn`` timed exactly as :meth:`time` does, without pytest-benchmark's bookkeeping (a second cache
        state of a case, or a yardstick)."""
        return self.time(_PlainRounds(), fn, before_each, cpu_seconds=cpu_seconds, cache=cache, energy=False)

    def copy_roof(self, nbytes: int, cache: str) -> TimingResult:
        """The memory roof of an op that must move ``nbytes``: a copy of ``nbytes // 2`` bytes (read as
        many as written) timed in the same cache state. Timed anew at every call, right after the case it
        judges: a CPU VM's bandwidth drifts by tens of percent over a run, and a roof timed once per session
        was beaten by cases timed in a faster minute (118 % on a 2-core AMD EPYC). The buffers of one size are
        kept, so that a case's cold and warm roofs share them; a new size replaces them, so that no case's
        buffers stay allocated through the cases (and model steps) after it.

        On a CPU the roof is the faster of two copies (its ``label`` says which): ATen's ``copy_``, whose
        ordinary stores read every destination line before writing it, and the cpp extension's streaming
        copy (``streaming_copy``), which writes past the caches and moves only the minimal bytes. The second
        is timed where its data cannot stay cached, so where it can win: every cold roof, and warm roofs of
        more bytes than the last-level cache (a kernel with streaming stores would beat ``copy_`` there)."""
        half = max(int(nbytes) // 2, 1)
        if half not in self._copy_buffers:
            src = torch.ones(half, dtype=torch.uint8, device=self.device)
            self._copy_buffers = {half: (src, torch.empty_like(src))}
        src, dst = self._copy_buffers[half]
        best = self.measure(lambda: dst.copy_(src), cache=cache)
        best.label = "copy_"
        stream = None if self.on_gpu else streaming_copy()
        if stream is not None and (cache == "cold" or nbytes > (self.llc_bytes or 0)):
            streamed = self.measure(lambda: stream(dst, src), cache=cache)
            streamed.label = "streaming copy"
            best = min(best, streamed, key=lambda r: r.median_s)
        return best

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
