"""bench/tools/gpu_session.sh, the staged GPU runbook: valid bash, clear refusals, and kernel parts that
split the benchmark matrix exactly (every case in one part, none in both)."""
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "bench" / "gpu_session.sh"


def _run(*args: str, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=REPO, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "OUT": str(out)}, timeout=60)


def test_script_parses():
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0


def test_unknown_stage_and_missing_archive_are_refused(tmp_path):
    bad = _run("warp-speed", out=tmp_path)
    assert bad.returncode == 2 and "unknown stage 'warp-speed'" in bad.stderr
    if not (REPO / ".gpu_carry" / "cifar10-jpg.tar.gz").exists():
        train = _run("train", out=tmp_path)
        assert train.returncode == 2 and "carry the CIFAR-10 archive" in train.stderr


def _collected(*args: str) -> set[str]:
    run = subprocess.run([sys.executable, "-m", "pytest", "bench/test_kernel_bench.py", "--collect-only", "-q",
                          "-p", "no:cacheprovider", *args], cwd=REPO, capture_output=True, text=True, timeout=120)
    return {line for line in run.stdout.splitlines() if "::" in line}


def test_kernel_parts_partition_the_matrix():
    text = SCRIPT.read_text()
    part_a = re.search(r'kernels-a\) bench kernels-a \S+ -k "([^"]+)"', text).group(1)
    part_b = re.search(r'kernels-b\) bench kernels-b \S+ -k "([^"]+)"', text).group(1)
    everything = _collected()
    a, b = _collected("-k", part_a), _collected("-k", part_b)
    assert everything and a and b
    assert a | b == everything and not a & b
