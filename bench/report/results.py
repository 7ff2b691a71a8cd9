"""Load a saved pytest-benchmark JSON file (``.benchmarks/<machine>/NNNN_<name>.json``) into pandas.

``load_run(path)`` returns a ``Run``: the run's description (date, GPU, versions, command, the
session's measured copy bandwidth) and one DataFrame row per benchmark of this suite, built from
each result's ``extra_info`` plus pytest-benchmark's wall-clock stats (``wall_*``), and the cases that
failed (a pre-timing check against eager, or an error). ``path`` is a saved pytest-benchmark JSON, or
the per-case log ``reports/NAME/cases.jsonl`` of a run that may have been stopped before pytest-benchmark
saved anything: then ``Run.missing`` lists the planned cases that never finished. Anything that is not
a readable file of this suite raises ``ReportError`` naming the file and the problem; results of other
suites (no ``extra_info["kind"]``) are ignored.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from infra.errors import UsageError

from bench import derive, roofs

KINDS = ("kernel", "model")


class ReportError(UsageError, ValueError):
    """A results file cannot be used; the message names the file and what is wrong."""


@dataclass
class Run:
    path: Path
    label: str  # the save name: "ci" for .benchmarks/.../0003_ci.json
    date: str
    info: dict  # machine_info["alexnet_bench"]: versions, GPU, command, yardsticks
    kernels: pd.DataFrame = field(repr=False)
    models: pd.DataFrame = field(repr=False)
    failed: list = field(default_factory=list)  # [{"nodeid", "message", "extra_info"}]
    missing: list = field(default_factory=list)  # planned node ids with no result (a stopped run)
    planned: int | None = None  # cases the run set out to measure (known from a per-case log)

    @property
    def cpu_only(self) -> bool:
        return bool(self.info.get("cpu_only", self.info.get("gpu_name") is None))


def run_label(path: Path) -> str:
    stem = path.stem
    head, _, tail = stem.partition("_")
    return tail if head.isdigit() and tail else stem


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise ReportError(f"{path}: no such results file")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ReportError(f"{path}: not valid JSON (truncated or corrupt?): {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ReportError(f"{path}: not a text file: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise ReportError(f"{path}: not a pytest-benchmark results file (no 'benchmarks' list)")
    return data


def _row(path: Path, index: int, bench: dict) -> dict | None:
    if not isinstance(bench, dict):
        raise ReportError(f"{path}: benchmarks[{index}] is not an object")
    info = bench.get("extra_info")
    if not isinstance(info, dict) or info.get("kind") not in KINDS:
        return None  # another suite's benchmark
    name = bench.get("name", f"benchmarks[{index}]")
    stats = bench.get("stats")
    if not isinstance(stats, dict) or "median" not in stats:
        raise ReportError(f"{path}: benchmark {name!r} has no 'stats' with a median (partial file?)")
    time_s = info.get("time_s")
    if not isinstance(time_s, (int, float)) or not time_s > 0:
        raise ReportError(f"{path}: benchmark {name!r} has no positive extra_info['time_s'] (got {time_s!r})")
    row = {k: v for k, v in info.items() if k != "gpu_state"}
    for key, value in (info.get("gpu_state") or {}).items():
        row[f"gpu_{key}"] = ", ".join(value) if isinstance(value, list) else value
    row["name"] = name
    row["wall_median_s"] = stats.get("median")
    row["wall_iqr_s"] = stats.get("iqr")
    if "shape" in row and isinstance(row["shape"], list):
        row["shape"] = "x".join(str(d) for d in row["shape"])
    return row


def _add_mfu(rows: list[dict], env: dict) -> None:
    """MFU of each model row against the session's compute peak (``bench.roofs.model_flops_peak``),
    re-derived from its TFLOP/s, so that records saved with an older yardstick read the same way."""
    for row in rows:
        if row.get("kind") != "model" or not row.get("tflops"):
            continue
        row.update(roofs.mfu_fields(row["tflops"], env, row.get("amp"), on_gpu=not row.get("cpu", False)))


def load_run(path: str | Path) -> Run:
    """Read one saved run; raise ``ReportError`` naming ``path`` if it is malformed or partial."""
    path = Path(path)
    if path.suffix == ".jsonl":
        return load_case_log(path)
    data = _read_json(path)
    machine = data.get("machine_info") if isinstance(data.get("machine_info"), dict) else {}
    info = machine.get("alexnet_bench") if isinstance(machine.get("alexnet_bench"), dict) else {}
    cpu = machine.get("cpu") if isinstance(machine.get("cpu"), dict) else {}
    if not info.get("cpu_model") and cpu.get("brand_raw"):  # runs saved before the suite recorded it
        info = {**info, "cpu_model": cpu["brand_raw"], "cpu_cores": cpu.get("count")}
    rows = [r for i, b in enumerate(data["benchmarks"]) if (r := _row(path, i, b)) is not None]
    if not rows:
        raise ReportError(f"{path}: contains no benchmark of this suite (no extra_info kind in {KINDS})")
    if not any(("speedup_vs_eager" in r) for r in rows):
        derive.add_speedups(rows)
    _add_mfu(rows, info)
    return Run(
        path=path,
        label=run_label(path),
        date=str(data.get("datetime", "unknown date")),
        info=info,
        kernels=pd.DataFrame([r for r in rows if r["kind"] == "kernel"]),  # one frame per kind keeps dtypes
        models=pd.DataFrame([r for r in rows if r["kind"] == "model"]),
        failed=[f for f in data.get("alexnet_failed_cases") or [] if isinstance(f, dict)],
    )


def load_case_log(path: Path) -> Run:
    """A run from its per-case log (``bench/conftest.py``): every finished case, the failed ones, and the
    planned cases that never finished. The run is named after the folder the log lies in."""
    if not path.is_file():
        raise ReportError(f"{path}: no such per-case log")
    records = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if number == len(path.read_text().splitlines()):  # a line cut off by a kill: the rest still counts
                break
            raise ReportError(f"{path}: line {number} is not valid JSON: {exc}") from exc
    session = next((r for r in records if r.get("type") == "session"), None)
    if session is None:
        raise ReportError(f"{path}: not a per-case log of pytest bench/ (no session line)")
    env = next((r.get("info", {}) for r in records if r.get("type") == "env"), {})
    end = next((r for r in records if r.get("type") == "end"), {})  # absent in a stopped run's log
    cases = [r for r in records if r.get("type") == "case"]
    rows = []
    for r in cases:
        if r.get("status") != "passed":
            continue
        bench = {"name": r["nodeid"].split("::")[-1], "extra_info": r.get("extra_info", {}),
                 "stats": r.get("stats") or {"median": r.get("extra_info", {}).get("time_s")}}
        row = _row(path, len(rows), bench)
        if row is not None:
            rows.append(row)
    derive.add_speedups(rows)
    _add_mfu(rows, env)
    done = {r["nodeid"] for r in cases}
    return Run(
        path=path,
        label=path.parent.name,
        date=str(session.get("started", "unknown date")),
        info={**env, "command": session.get("command") or env.get("command"),
              **({"wall_s": end["wall_s"]} if end.get("wall_s") else {})},
        kernels=pd.DataFrame([r for r in rows if r["kind"] == "kernel"]),
        models=pd.DataFrame([r for r in rows if r["kind"] == "model"]),
        failed=[{k: r.get(k) for k in ("nodeid", "message", "extra_info")} for r in cases if r.get("status") == "failed"],
        missing=[n for n in session.get("planned", []) if n not in done],
        planned=len(session.get("planned", [])),
    )


def merge_runs(runs: list[Run], label: str) -> Run:
    """Several saved files of one session (e.g. kernels and model benchmarks saved separately, each
    within a device time limit) reported as one run; speedups stay paired within each file."""
    if not runs:
        raise ReportError("merge: no runs given")
    info = dict(runs[0].info)
    info["merged_files"] = [str(r.path) for r in runs]
    failed = [f for r in runs for f in r.failed]
    missing = [m for r in runs for m in r.missing]
    frames = lambda attr: [getattr(r, attr) for r in runs if not getattr(r, attr).empty]  # noqa: E731
    return Run(
        path=runs[0].path,
        label=label,
        date=" / ".join(dict.fromkeys(r.date for r in runs)),
        info=info,
        kernels=pd.concat(frames("kernels"), ignore_index=True) if frames("kernels") else pd.DataFrame(),
        models=pd.concat(frames("models"), ignore_index=True) if frames("models") else pd.DataFrame(),
        failed=failed,
        missing=missing,
    )


def run_header(run: Run) -> str:
    """Markdown lines naming the run: date, device, versions, command, yardsticks."""
    info = run.info
    cpu = ", ".join(str(v) for v in (info.get("cpu_model"), info.get("cpu_isa") and f"{info['cpu_isa']} kernels")
                    if v)
    device = info.get("gpu_name") or f"CPU{f' ({cpu})' if cpu else ''}, {info.get('cpu_threads', '?')} threads"
    lines = [
        f"- Run: `{run.label}` ({run.path.name}), {run.date}",
        f"- Device: {device}" + (f", driver {info['driver']}" if info.get("driver") else ""),
        "- Versions: " + ", ".join(
            f"{k} {info[k]}" for k in ("python", "torch", "triton", "cuda", "cudnn", "openvino", "onnxruntime")
            if info.get(k) is not None
        ),
        f"- Command: `{info.get('command', 'unknown')}`",
    ]
    if info.get("source"):
        lines.append(f"- Source revision: {info['source']}")
    if info.get("merged_files"):
        lines[0] = f"- Run: `{run.label}` merged from {', '.join(Path(f).name for f in info['merged_files'])}, {run.date}"
    if info.get("cpu_allocator"):
        lines.append(f"- Memory allocator: {info['cpu_allocator']}")
    if info.get("copy_bytes_per_s"):
        lines.append(f"- Measured copy bandwidth (device-to-device, read+write): {info['copy_bytes_per_s'] / 1e9:.1f} GB/s")
    gemm = info.get("gemm_flops_per_s") or {}
    if any(gemm.values()):
        lines.append("- Measured dense GEMM: " + ", ".join(
            f"{k} {v / 1e12:.2f} TFLOP/s" for k, v in gemm.items() if v))
    fma = info.get("fma_peak") or {}
    if fma.get("flops_per_s"):
        lines.append(f"- Measured FMA peak (float32, {fma.get('lanes')} lanes, {fma.get('threads')} threads): "
                     f"{fma['flops_per_s'] / 1e12:.2f} TFLOP/s")
    state = info.get("gpu_state_at_start") or {}
    if state:
        lines.append("- GPU at start: " + ", ".join(f"{k} {v}" for k, v in state.items() if v not in (None, [])))
    return "\n".join(lines)
