"""What a run ran on, in one place for every command that records it: software versions, the CPU, and
the devices used (GPU names when CUDA is present). Best-effort: a field that cannot be read is
reported as unavailable instead of failing the run. GPU clocks and power (NVML) are the benchmark
harness's business (``bench.env_info``)."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import torch


# A 1-minute load average above this before a speed run means other work shared the cores with it.
SHARED_LOAD = 1.5


def shared_load(load_before: float) -> bool:
    """Whether other work shared the cores with a run that started at this 1-minute load average."""
    return load_before > SHARED_LOAD


def source_revision() -> str | None:
    """The commit the code ran from, with '+changes' when tracked files outside reports/ (where runs write
    their own records) differ from it; None outside a git checkout (an installed wheel) or without git.
    Runs of one revision can be pooled; others cannot."""
    root = Path(__file__).resolve().parent.parent
    try:
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=root, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        if Path(top).resolve() != root:  # installed into a folder that some other repository holds
            return None
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!reports"],
                               cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return rev + ("+changes" if dirty else "") if rev else None


def software_versions() -> dict:
    """Python, torch, Triton, CUDA, cuDNN and platform versions, and the project's source revision."""
    try:
        import triton

        triton_version = triton.__version__
    except Exception as exc:  # triton is a dependency, but say why if it fails
        triton_version = f"unavailable ({type(exc).__name__})"
    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "triton": triton_version,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "platform": platform.platform(),
        "source": source_revision(),
    }


def cpu_info() -> dict:
    """CPU model (from /proc/cpuinfo where there is one), logical cores, the cores this process may use,
    and torch's intra-op thread count."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count()
    return {"cpu_model": model, "cpu_logical_cores": os.cpu_count(), "cpu_usable_cores": usable,
            "torch_threads": torch.get_num_threads()}


_ALLOCATORS = ("tcmalloc", "jemalloc", "mimalloc")  # malloc libraries a process may have preloaded


def memory_allocator(maps: str | None = None) -> str:
    """The malloc this process runs on: a tcmalloc, jemalloc or mimalloc library mapped into it (as
    ``LD_PRELOAD`` puts it there), else the C library's own. CPU step times depend on it: a step that
    allocates and frees large buffers pays the page faults of memory the C library returns to the system.
    ``maps``: the text of /proc/self/maps (read when None)."""
    if maps is None:
        try:
            with open("/proc/self/maps") as f:
                maps = f.read()
        except OSError:
            maps = ""
    for line in maps.splitlines():
        name = os.path.basename(line.split()[-1]) if line.split() else ""
        for allocator in _ALLOCATORS:
            if name.startswith(f"lib{allocator}"):
                return f"{allocator} ({name})"
    libc, version = platform.libc_ver()
    return f"{libc} {version} malloc".strip() if libc else "the C library's malloc"


def machine_info(devices=()) -> dict:
    """Versions, CPU, the devices a run used and, where CUDA is available, their GPU names."""
    info = {**software_versions(), **cpu_info(), "devices": [str(d) for d in devices]}
    cuda = sorted({torch.device(d) for d in devices if torch.device(d).type == "cuda"}, key=str)
    if torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(d) for d in (cuda or [torch.device("cuda", 0)])]
    return info
