"""The CPU timing method of the benchmark harness (bench.timing): how cold the cold state is, and that a
case's memory roof is timed beside it rather than once per session."""
from __future__ import annotations

import pytest
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
    monkeypatch.setattr(timing, "streaming_copy", lambda: None)  # ATen's copy_ alone
    timer = timing.Timer(torch.device("cpu"))
    timed = []

    def fake_measure(fn, before_each=None, cache="warm", cpu_seconds=timing.CPU_TARGET_SECONDS):
        fn()
        timed.append(cache)
        return timing.TimingResult([float(len(timed))], "wall", cache)

    monkeypatch.setattr(timer, "measure", fake_measure)
    first = timer.copy_roof(1000, "cold")
    second = timer.copy_roof(1000, "cold")
    assert (first.median_s, second.median_s) == (1, 2) and timed == ["cold", "cold"]  # two timings, not one remembered
    assert list(timer._copy_buffers) == [500]  # half read, half written; the same buffers both times
    src, dst = timer._copy_buffers[500]
    assert torch.equal(src, dst)  # the copy ran
    timer.copy_roof(2000, "warm")
    assert list(timer._copy_buffers) == [1000]  # a new size replaces the old buffers: none held past its case


def test_copy_roof_is_the_faster_copy_where_streaming_can_win(monkeypatch):
    """The streaming copy is timed beside ATen's copy_ in every cold roof and in warm roofs larger than the
    last-level cache, and the faster one is the roof, named in its label; a small warm roof is copy_'s."""
    monkeypatch.setattr(timing, "cpu_last_level_cache_bytes", lambda: 1 << 20)
    streamed = []
    monkeypatch.setattr(timing, "streaming_copy", lambda: lambda dst, src: streamed.append(dst.numel()))
    timer = timing.Timer(torch.device("cpu"))
    medians = iter([2.0, 1.0, 1.0, 3.0, 1.0])  # copy_, streaming (cold); copy_, streaming (cold); copy_ (warm)

    def fake_measure(fn, before_each=None, cache="warm", cpu_seconds=timing.CPU_TARGET_SECONDS):
        fn()
        return timing.TimingResult([next(medians)], "wall", cache)

    monkeypatch.setattr(timer, "measure", fake_measure)
    faster_streaming = timer.copy_roof(1000, "cold")
    assert (faster_streaming.label, faster_streaming.median_s) == ("streaming copy", 1.0)
    faster_aten = timer.copy_roof(1000, "cold")
    assert (faster_aten.label, faster_aten.median_s) == ("copy_", 1.0)
    small_warm = timer.copy_roof(1000, "warm")
    assert small_warm.label == "copy_" and streamed == [500, 500]  # not timed where its data stays cached


def test_streaming_copy_copies_any_length_and_alignment_exactly():
    copy = timing.streaming_copy()
    if copy is None:
        pytest.skip("the cpp extension is unavailable here")
    torch.manual_seed(0)
    for n, src_off, dst_off in ((1, 0, 0), (63, 1, 9), (64, 0, 0), (1000, 3, 5), (1 << 20, 5, 1), (3_000_017, 7, 63)):
        src = torch.randint(0, 256, (n + src_off,), dtype=torch.uint8)[src_off:]
        out = torch.zeros(n + dst_off + 64, dtype=torch.uint8)
        copy(out[dst_off:dst_off + n], src)
        assert torch.equal(out[dst_off:dst_off + n], src)
        assert not out[:dst_off].any() and not out[dst_off + n:].any()  # nothing written outside
