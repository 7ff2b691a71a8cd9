"""Session setup for ``pytest bench/``: device, yardsticks, run description, and the report hook.

* ``bench_device``: the first CUDA GPU if there is one, else the CPU (results marked ``cpu``).
* ``bench_env``: measured once per session - device-to-device copy bandwidth, dense GEMM throughput
  (for model-FLOPs utilisation), on a CPU the last-level cache size and the FMA peak (the compute
  roof, ``bench.fma_peak``), versions and GPU facts. Stored in the saved JSON under ``machine_info["alexnet_bench"]``.
* ``timer``: ``bench.timing.Timer`` (warm-up excluded, L2 flushed, synchronized; see its docstring).
* When the run is saved (``--benchmark-save=NAME``), every case is also appended to
  ``reports/NAME/cases.jsonl`` the moment it ends - passed (its ``extra_info``), failed (the message,
  e.g. a pre-timing check that did not match eager) or skipped (the reason) - after a first line that
  lists every planned case. pytest-benchmark writes its JSON only at the end, so a run stopped at a
  time limit keeps what it measured there: ``python -m bench.report reports/NAME/cases.jsonl``
  renders it, marking what is missing. The saved JSON also lists the failed cases.
* The session ends by writing the report for the file pytest-benchmark just wrote
  (``python -m bench.report FILE``) and prints the wall time of each part (kernels, model), so a time
  budget can be checked.
"""
from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import torch

import kernels  # noqa: F401  (sets up Triton's interpreter on CPU before any kernel module loads)
from bench import derive, env_info, timing

_SESSION_INFO = pytest.StashKey[dict]()
_CASE_LOG = pytest.StashKey["CaseLog"]()
_STARTED = pytest.StashKey[float]()


def pytest_sessionstart(session):
    session.config.stash[_STARTED] = time.perf_counter()


class CaseLog:
    """``reports/NAME/cases.jsonl``: one JSON object per line, flushed as each case ends. The previous run's
    log is kept, not overwritten: it moves to ``reports/NAME/earlier/<its start time>.jsonl``, so runs of one
    revision can be compared (``python -m bench.report ... --across``)."""

    def __init__(self, path: Path):
        self.path = path
        self.failed: list[dict] = []
        self.parts: dict[str, list[float]] = {}  # test file -> [cases, seconds]
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            archive_case_log(path)
        path.write_text("")

    def write(self, record: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record, default=str) + "\n")
            f.flush()


def archive_case_log(path: Path) -> Path | None:
    """Move a run's case log to ``earlier/`` beside it, named by the run's start; None if it holds no run."""
    try:
        with path.open() as f:
            first = json.loads(f.readline())
    except (OSError, ValueError):
        return None
    started = first.get("started") if isinstance(first, dict) and first.get("type") == "session" else None
    if not started:
        return None
    target = path.parent / "earlier" / (str(started).replace(":", "-").replace("+00-00", "Z") + ".jsonl")
    target.parent.mkdir(exist_ok=True)
    path.replace(target)
    return target


# The compile backend compiles each op once per process and then sees every shape, dtype, layout and
# grad mode of the matrix. Past Dynamo's default of 8 recompiles it would silently run eager code
# under the name "compile": allow enough variants, and fail loudly if even that is exceeded.
torch._dynamo.config.recompile_limit = 128
torch._dynamo.config.fail_on_recompile_limit_hit = True


@pytest.fixture(scope="session")
def bench_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")


@pytest.fixture(scope="session")
def bench_env(request, bench_device) -> dict:
    """Yardsticks and run description measured once, shared by every benchmark of the session."""
    info = _run_description(request.config, bench_device)
    info["copy_bytes_per_s"] = timing.copy_bandwidth(bench_device)
    if bench_device.type == "cuda":
        info["gemm_flops_per_s"] = {
            "bf16": timing.gemm_flops_per_s(bench_device, torch.bfloat16),
            "fp32": timing.gemm_flops_per_s(bench_device, torch.float32, tf32=torch.backends.cudnn.allow_tf32),
        }
    else:
        cpu_gemm = timing.gemm_flops_per_s(bench_device, torch.float32)
        info["gemm_flops_per_s"] = {"bf16": None, "fp32": cpu_gemm}
        info["cpu_llc_bytes"] = timing.cpu_last_level_cache_bytes()
        info["cpu_flush_bytes"] = timing.cpu_flush_bytes()
        try:
            from bench import fma_peak

            info["fma_peak"] = fma_peak.peak()
        except Exception as exc:  # no compiler: the compute roof is then missing, and the report says why
            info["fma_peak"] = {"error": f"{type(exc).__name__}: {str(exc)[-300:]}"}
    info["gpu_state_at_start"] = env_info.gpu_state(bench_device)
    request.config.stash[_SESSION_INFO] = info
    log = request.config.stash.get(_CASE_LOG, None)
    if log is not None:
        log.write({"type": "env", "info": info})
    return info


@pytest.fixture(scope="session")
def timer(bench_device) -> timing.Timer:
    return timing.Timer(bench_device)


def _run_description(config, device: torch.device) -> dict:
    command = "pytest " + " ".join(str(a) for a in config.invocation_params.args)
    return env_info.run_description(device, command)


def pytest_benchmark_update_machine_info(config, machine_info):
    """Put the session's yardsticks and versions into the saved JSON (read by bench.report)."""
    info = config.stash.get(_SESSION_INFO, None)
    if info is None:  # no benchmark asked for bench_env (e.g. all skipped): still name the run
        device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
        info = _run_description(config, device)
    machine_info["alexnet_bench"] = info


def pytest_benchmark_update_json(config, benchmarks, output_json):
    """Pair results of this session: speedups over eager and compile into each extra_info; list the
    cases that failed (a check against eager, or an error) so the report shows them."""
    derive.add_speedups([b.get("extra_info", {}) for b in output_json.get("benchmarks", [])])
    log = config.stash.get(_CASE_LOG, None)
    output_json["alexnet_failed_cases"] = log.failed if log is not None else []


def reports_dir(config) -> Path:
    """Where reports go: ``$ALEXNET_REPORTS_DIR`` (the GPU script's output folder), else ``reports/``."""
    return Path(os.environ.get("ALEXNET_REPORTS_DIR") or Path(config.rootpath) / "reports")


def _save_name(config) -> str | None:
    name = config.getoption("benchmark_save", None)
    return name if isinstance(name, str) and name else None


def pytest_collection_finish(session):
    """With --benchmark-save=NAME: start reports/NAME/cases.jsonl with the planned cases."""
    name = _save_name(session.config)
    if name is None or session.config.option.collectonly:
        return
    log = CaseLog(reports_dir(session.config) / name / "cases.jsonl")
    session.config.stash[_CASE_LOG] = log
    log.write({"type": "session", "name": name, "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "command": "pytest " + " ".join(str(a) for a in session.config.invocation_params.args),
               "planned": [item.nodeid for item in session.items]})


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Append each case to the case log as it ends (the call phase, or a setup that did not pass)."""
    outcome = yield
    report = outcome.get_result()
    log = item.config.stash.get(_CASE_LOG, None)
    if log is None or not (report.when == "call" or (report.when == "setup" and not report.passed)):
        return
    if hasattr(report, "wasxfail"):  # a known failure, marked as expected: still a failure of the case
        status = "failed"
        message = f"expected failure ({report.wasxfail})" + (f": {call.excinfo.exconly()}" if call.excinfo else "")
    elif report.skipped:
        status, message = "skipped", report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    elif report.failed:
        status = "failed"
        message = call.excinfo.exconly() if call.excinfo is not None else report.longreprtext.splitlines()[-1]
    else:
        status, message = "passed", ""
    bench = item.funcargs.get("benchmark") if hasattr(item, "funcargs") else None
    record = {"type": "case", "nodeid": item.nodeid, "status": status, "message": message,
              "seconds": round(report.duration, 3), "extra_info": dict(getattr(bench, "extra_info", {}) or {})}
    if bench is not None and status == "passed" and getattr(bench, "stats", None) is not None:
        stats = bench.stats.stats
        record["stats"] = {"median": stats.median, "iqr": stats.iqr, "rounds": stats.rounds}
    log.write(record)
    if status == "failed":
        log.failed.append({k: record[k] for k in ("nodeid", "message", "extra_info")})
    part = log.parts.setdefault(item.nodeid.split("::")[0], [0, 0.0])
    part[0] += 1
    part[1] += report.duration


def pytest_terminal_summary(terminalreporter, config):
    """The wall time of each part of the run (setup and check included), against a time budget."""
    log = config.stash.get(_CASE_LOG, None)
    if log is None or not log.parts:
        return
    elapsed = time.perf_counter() - config.stash[_STARTED]
    terminalreporter.section("bench wall time by part")
    for part, (count, seconds) in log.parts.items():
        terminalreporter.write_line(f"{part}: {count} cases, {seconds:.1f} s (check, warm-up incl. compiles, timing)")
    terminalreporter.write_line(f"session total (collection, yardsticks and report included): {elapsed:.1f} s")
    terminalreporter.write_line(f"per-case log: {log.path}")


def _saved_json(config) -> Path | None:
    """The file pytest-benchmark saved this session (its FileStorage names it NNNN_<name>.json)."""
    session = getattr(config, "_benchmarksession", None)
    name = config.getoption("benchmark_save", None) or config.getoption("benchmark_autosave", None)
    if session is None or not name or not hasattr(session, "storage"):
        return None
    root = Path(str(session.storage))
    candidates = [p for p in root.rglob(f"[0-9][0-9][0-9][0-9]_{name}.json") if p.is_file()]
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    """After pytest-benchmark saved the run (its own hook wraps this one), close the case log with the
    session's wall time and write the report."""
    config = session.config
    log = config.stash.get(_CASE_LOG, None)
    if log is not None:
        log.write({"type": "end", "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                   "wall_s": round(time.perf_counter() - config.stash[_STARTED], 1), "exitstatus": int(exitstatus)})
    if not (config.getoption("benchmark_save", None) or config.getoption("benchmark_autosave", False)):
        return
    saved = _saved_json(config)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if saved is None:
        if reporter:
            reporter.write_line("bench.report: no saved benchmark JSON found; no report written", yellow=True)
        return
    from bench.report import render as report

    out_dir = reports_dir(config)
    try:
        written = report.write_report([saved], out_dir)
    except report.ReportError as exc:
        print(f"bench.report failed: {exc}", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        return
    if reporter:
        reporter.write_line(f"bench.report: wrote {len(written)} files for {saved} to {out_dir}", green=True)
