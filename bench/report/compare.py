"""Compare two saved runs: per-benchmark change in median time, with a regression flag.

A benchmark regresses when run B's median is more than ``threshold`` (default 5%) slower than run
A's *and* the two interquartile ranges do not overlap (B's first quartile above A's third), so
noise alone does not raise the flag. Benchmarks present in only one run are listed as such.
"""
from __future__ import annotations

import pandas as pd

from bench.report.results import Run

DEFAULT_THRESHOLD = 0.05


def _times(run: Run) -> pd.DataFrame:
    frames = [f for f in (run.kernels, run.models) if not f.empty]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["name", "time_s"])
    for col in ("time_q1_s", "time_q3_s"):
        if col not in frame:
            frame[col] = frame["time_s"]
    return frame[["name", "time_s", "time_q1_s", "time_q3_s"]].drop_duplicates("name").set_index("name")


def compare_runs(a: Run, b: Run, threshold: float = DEFAULT_THRESHOLD) -> pd.DataFrame:
    """One row per benchmark name in either run: A and B medians, change, and a status."""
    ta, tb = _times(a), _times(b)
    rows = []
    for name in list(dict.fromkeys(list(ta.index) + list(tb.index))):
        if name not in tb.index or name not in ta.index:
            rows.append({"benchmark": name, "A us": ta["time_s"].get(name, float("nan")) * 1e6,
                         "B us": tb["time_s"].get(name, float("nan")) * 1e6, "change %": None,
                         "status": "only in A" if name in ta.index else "only in B"})
            continue
        ra, rb = ta.loc[name], tb.loc[name]
        change = rb["time_s"] / ra["time_s"] - 1
        if change > threshold and rb["time_q1_s"] > ra["time_q3_s"]:
            status = "REGRESSION"
        elif change < -threshold and rb["time_q3_s"] < ra["time_q1_s"]:
            status = "improved"
        else:
            status = "unchanged (within noise)" if abs(change) > threshold else "unchanged"
        rows.append({"benchmark": name, "A us": ra["time_s"] * 1e6, "B us": rb["time_s"] * 1e6,
                     "change %": 100 * change, "status": status})
    return pd.DataFrame(rows)
