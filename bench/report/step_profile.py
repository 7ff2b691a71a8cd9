"""The figures of a step profile page as a record beside it: ``profile.md`` gets ``profile.json``.

``python -m bench.tools.profile_step --out PAGE.md`` writes both; the report reads the record (never the
page's prose) for the share of the step taken by this suite's ops and the bound that share sets: were
they free, the step could be at most ``1 / (1 - share)`` times faster.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from bench.report.results import ReportError
from infra import report_kit
from infra.atomic_io import write_json_atomic

SUMMARY_PREFIX = "**This suite's ops**"


@dataclass(frozen=True)
class StepProfileSummary:
    """What one profile run found: ``own_ops`` (this suite's op names) took ``own_ms_per_step`` of a step
    and ``own_share`` of all operators' self time."""
    mode: str  # "train" | "infer", as profile_step's --mode
    kernels: str
    steps: int
    ms_per_step: float  # wall time per step, under the profiler
    own_ops: tuple[str, ...]
    own_ms_per_step: float
    own_share: float  # a fraction of all self time, in [0, 1]
    layout: str = "nchw"  # "nchw" | "channels_last", as profile_step's --channels-last
    amp: str = "off"  # "off" (float32) | "bf16" (CPU bfloat16 autocast), as profile_step's --amp
    lrn: bool = True  # False: the net without its LRN layers (profile_step's --no-lrn)

    @property
    def free_bound(self) -> float | None:
        """How many times faster the step would be were this suite's ops free; None when they are all of it."""
        return 1.0 / (1.0 - self.own_share) if self.own_share < 1.0 else None

    def summary_line(self) -> str:
        """The line the page ends with and the report quotes."""
        bound = self.free_bound
        return (f"{SUMMARY_PREFIX} ({', '.join(self.own_ops) or 'none found'}, with their autograd nodes): "
                f"{self.own_ms_per_step:.1f} ms per step, {report_kit.pct(self.own_share, 1)} of all self time. "
                f"Were they free, the step would take {report_kit.pct(1.0 - self.own_share, 1)} of its time"
                + (f": at most {report_kit.ratio(bound)} faster than now." if bound is not None else "."))


def layout_name(channels_last: bool) -> str:
    """A record's name for the memory layout of its profiled step (``StepProfileSummary.layout``)."""
    return "channels_last" if channels_last else "nchw"


def record_path(page: Path) -> Path:
    """Where the record of ``page`` lives: the same name with ``.json``."""
    return Path(page).with_suffix(".json")


def save(summary: StepProfileSummary, page: Path) -> Path:
    """Write the record beside ``page`` atomically; its path."""
    return write_json_atomic(record_path(page), asdict(summary))


def load(page: Path) -> StepProfileSummary | None:
    """The record beside ``page``, or None when there is none. A record that does not parse, misses a
    field or holds a share outside [0, 1] is a ``ReportError`` naming the file."""
    path = record_path(page)
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text())
        # records written before the tool had these options profiled the float32 NCHW net with its LRN
        raw.setdefault("layout", "nchw")
        raw.setdefault("amp", "off")
        raw.setdefault("lrn", True)
        summary = StepProfileSummary(**{f.name: raw[f.name] for f in fields(StepProfileSummary)
                                        if f.name != "own_ops"}, own_ops=tuple(raw["own_ops"]))
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ReportError(f"{path}: not a step profile record ({type(e).__name__}: {e}); "
                          "rewrite it with python -m bench.tools.profile_step --out") from None
    if not 0.0 <= float(summary.own_share) <= 1.0:
        raise ReportError(f"{path}: own_share {summary.own_share} is not a fraction in [0, 1]")
    return summary
