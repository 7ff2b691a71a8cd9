"""The performance targets judged across repeated runs of the suite (``python -m bench.report RUN --across
EARLIER ...``).

One run's 95 % interval is a bootstrap over its own rounds: it says how well that process measured, not
how much the same ratio moves from one process to the next, which on a shared CPU can be more. Across
runs, a target case reads *met* (or *not met*) only when every run that measured it says so, and *varies
between runs* otherwise; each run's own figure and verdict stay beside it, with the revision it ran from.
"""
from __future__ import annotations

import re

import pandas as pd

from bench.report import targets
from bench.report.results import Run

VARIES = "varies between runs"


def run_name(run: Run) -> str:
    """A run's column heading: its start (to the minute) and the revision it ran from."""
    source = run.info.get("source") or "revision not recorded"
    return f"{run.date[:16].replace('T', ' ')} ({source})"


def case_key(case: str) -> str:
    """A case's name without the roof that bound it in one run (the roof target's cases name it, and which
    roof binds can change from run to run)."""
    return re.sub(r" \([^()]* roof\)$", "", case)


def _combined(statuses: list[str]) -> str:
    measured = [s for s in statuses if s != "not measured"]
    if not measured:
        return "not measured"
    if all(s == "met" for s in measured):
        return "met"
    if all(s == "not met" for s in measured):
        return "not met"
    return VARIES if len(set(measured)) > 1 else measured[0]  # every run unresolved: unresolved


def evaluate_across(runs: list[Run]) -> pd.DataFrame:
    """One row per target and case: each run's ratio and verdict, the range over runs and the verdict across
    them. The first run's targets and cases set the rows and their order."""
    details = [targets.evaluate(run.kernels, run.models) for run in runs]
    names = [run_name(run) for run in runs]
    if len(set(names)) != len(names):
        names = [f"{n} #{i + 1}" for i, n in enumerate(names)]
    rows = []
    for detail in details:
        detail["case_key"] = detail["case"].map(case_key)
    for _, first in details[0].iterrows():
        row = {"target": first["target"], "case": first["case_key"], "required": first["required"]}
        statuses, values = [], []
        for name, detail in zip(names, details):
            hit = detail[(detail["target"] == first["target"]) & (detail["case_key"] == first["case_key"])]
            status = hit["status"].iloc[0] if not hit.empty else "not measured"
            value = hit["measured"].iloc[0] if not hit.empty else None
            statuses.append(status)
            if status != "not measured" and value is not None and value == value:
                values.append(float(value))
                bound = re.search(r"\(([^()]*) roof\)$", hit["case"].iloc[0])
                row[name] = f"{value:.3g} {status}" + (f" ({bound.group(1)} roof)" if bound else "")
            else:
                row[name] = "not measured"
        row["range"] = f"{min(values):.3g}-{max(values):.3g}" if values else ""
        row["across runs"] = _combined(statuses)
        rows.append(row)
    return pd.DataFrame(rows)


def summary_across(detail: pd.DataFrame) -> pd.DataFrame:
    """One row per target: met when every case is met in every run, not met when some case is missed in
    every run, else varies between runs (or unresolved)."""
    rows = []
    for target, group in detail.groupby("target", sort=False):
        status = group["across runs"]
        measured = status[status != "not measured"]
        if measured.empty:
            verdict = "not measured"
        elif (measured == "met").all():
            verdict = "met" if len(measured) == len(group) else "met where measured"
        elif (measured == "not met").any():
            verdict = "not met"
        elif (measured == VARIES).any():
            verdict = VARIES
        else:
            verdict = "unresolved"
        cases = "; ".join(f"{c}{'' if s == verdict else ' ' + s} ({r})"
                          for c, s, r in zip(group["case"], status, group["range"]) if s not in ("met", "not measured"))
        rows.append({"target": target, "required": group["required"].iloc[0], "across runs": verdict,
                     "cases not met in every run (range)": cases})
    return pd.DataFrame(rows)
