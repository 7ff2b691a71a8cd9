"""infra/machine.py: what a run records about the machine it ran on."""
import os

from infra.machine import memory_allocator


def test_memory_allocator_names_a_preloaded_malloc_or_the_c_librarys():
    maps = ("7f00-7f01 r-xp 00000000 08:01 12 /usr/lib/x86_64-linux-gnu/libc.so.6\n"
            "7f02-7f03 r-xp 00000000 08:01 13 /usr/lib/x86_64-linux-gnu/libtcmalloc.so.4.5.10\n")
    assert memory_allocator(maps) == "tcmalloc (libtcmalloc.so.4.5.10)"
    assert memory_allocator("7f0-7f1 r-xp 0 08:01 1 /opt/lib/libjemalloc.so.2\n") == "jemalloc (libjemalloc.so.2)"
    plain = memory_allocator("7f00-7f01 r-xp 00000000 08:01 12 /usr/lib/x86_64-linux-gnu/libc.so.6\n\n")
    assert "malloc" in plain and "tcmalloc" not in plain and "jemalloc" not in plain


def test_memory_allocator_of_this_process_reads_its_own_maps():
    preloaded = "malloc" in os.environ.get("LD_PRELOAD", "")
    assert memory_allocator().endswith(")" if preloaded else " malloc")


def test_cpu_run_description_names_the_cpp_kernels_level_and_atens():
    """A CPU report's "<level> kernels" is the level the cpp extension is built for (AVX512_BF16 where the CPU
    has AVX512-BF16), with ATen's own dispatch level beside it."""
    import torch

    from bench.env_info import run_description
    from kernels.backends.cpp import aten_level, cpu_isa

    info = run_description(torch.device("cpu"), "pytest bench/")
    assert info["cpu_isa"] == cpu_isa()
    assert info["aten_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert aten_level(info["cpu_isa"]) == info["aten_cpu_capability"] or info["cpu_isa"] == "DEFAULT"


def test_source_revision_names_the_checkouts_commit():
    """Every run record names the commit it ran from; a CI checkout (clean) has no '+changes'."""
    import subprocess
    from pathlib import Path

    import pytest

    from infra.machine import source_revision

    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout (or no git): runs record no revision")
    revision = source_revision()
    assert revision is not None and revision.split("+")[0] == head
    assert revision in (head, head + "+changes")


def test_source_revision_is_none_when_installed_inside_another_repository(tmp_path):
    """Installed (e.g. into a virtual environment) in a folder that some other git repository holds, the
    package names no revision rather than that repository's commit."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import pytest

    if shutil.which("git") is None:
        pytest.skip("no git")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q",
                    "--allow-empty", "-m", "a commit the package must not claim"], check=True)
    package = tmp_path / "site" / "infra"
    package.mkdir(parents=True)
    shutil.copy(Path(__file__).resolve().parent.parent / "infra" / "machine.py", package / "machine.py")
    (package / "__init__.py").write_text("")
    out = subprocess.run([sys.executable, "-c", "from infra.machine import source_revision; print(source_revision())"],
                         cwd=tmp_path / "site", capture_output=True, text=True, check=True).stdout.strip()
    assert out == "None"
