"""The CPU timing method of the benchmark harness (bench.timing): how cold the cold state is, and that a
case's memory roof is timed beside it rather than once per session."""
from __future__ import annotations

import torch

from bench import timing


def test_cold_flush_is_four_times_the_last_level_cache(monkeypatch):
    """Twice the cache is not cold on a VM whose two vCPUs sit on two of the host's caches."""
    monkeypatch.setattr(timing, "cpu_last_level_cache_bytes", lambda: 32 << 20)
    assert timing.cpu_flush_bytes() == 128 << 20
    monkeypatch.setattr(timing, "cpu_last_level_cache_bytes", lambda: 1 << 20)
    assert timing.cpu_flush_bytes() == timing.CPU_FLUSH_MIN_BYTES
    monkeypatch.setattr(timing, "cpu_last_level_cache_bytes", lambda: None)
    assert timing.cpu_flush_bytes() == timing.CPU_FLUSH_MIN_BYTES


def test_copy_roof_is_timed_at_every_call_on_the_buffers_of_its_size(monkeypatch):
    monkeypatch.setattr(timing, "cpu_last_level_cache_bytes", lambda: 1 << 20)  # a small flush buffer
    timer = timing.Timer(torch.device("cpu"))
    timed = []

    def fake_measure(fn, before_each=None, cache="warm", cpu_seconds=timing.CPU_TARGET_SECONDS):
        fn()
        timed.append(cache)
        return len(timed)

    monkeypatch.setattr(timer, "measure", fake_measure)
    first = timer.copy_roof(1000, "cold")
    second = timer.copy_roof(1000, "cold")
    assert (first, second) == (1, 2) and timed == ["cold", "cold"]  # two timings, not one remembered
    assert list(timer._copy_buffers) == [500]  # half read, half written; the same buffers both times
    src, dst = timer._copy_buffers[500]
    assert torch.equal(src, dst)  # the copy ran
    timer.copy_roof(2000, "warm")
    assert list(timer._copy_buffers) == [1000]  # a new size replaces the old buffers: none held past its case
