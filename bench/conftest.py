"""Session setup for ``pytest bench/``: device, yardsticks, run description, and the report hook.

* ``bench_device``: the first CUDA GPU if there is one, else the CPU (results marked ``cpu``).
* ``bench_env``: measured once per session - device-to-device copy bandwidth (the roofline the
  kernels are judged against), dense GEMM throughput (for model-FLOPs utilisation), versions and
  GPU facts. Stored in the saved JSON under ``machine_info["alexnet_bench"]``.
* ``timer``: ``bench.timing.Timer`` (warm-up excluded, L2 flushed, synchronized; see its docstring).
* When the run is saved (``--benchmark-save`` / ``--benchmark-autosave``), the session ends by
  writing the report for the file pytest-benchmark just wrote (``python -m bench.report FILE``).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import kernels  # noqa: F401  (sets up Triton's interpreter on CPU before any kernel module loads)
from bench import derive, env_info, timing

_SESSION_INFO = pytest.StashKey[dict]()

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
    info["gpu_state_at_start"] = env_info.gpu_state(bench_device)
    request.config.stash[_SESSION_INFO] = info
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
    """Pair results of this session: speedups over eager and compile into each extra_info."""
    derive.add_speedups([b.get("extra_info", {}) for b in output_json.get("benchmarks", [])])


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
    """After pytest-benchmark saved the run (its own hook wraps this one), write the report."""
    config = session.config
    if not (config.getoption("benchmark_save", None) or config.getoption("benchmark_autosave", False)):
        return
    saved = _saved_json(config)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if saved is None:
        if reporter:
            reporter.write_line("bench.report: no saved benchmark JSON found; no report written", yellow=True)
        return
    from bench.report import render as report

    out_dir = Path(config.rootpath) / "reports"
    try:
        written = report.write_report([saved], out_dir)
    except report.ReportError as exc:
        print(f"bench.report failed: {exc}", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        return
    if reporter:
        reporter.write_line(f"bench.report: wrote {len(written)} files for {saved} to {out_dir}", green=True)
