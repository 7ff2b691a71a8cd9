"""bench/tools/gpu_headline.sh, the one GPU script, run on the CPU over a couple of headline cases: it
leaves the machine facts, the correctness log, the benchmark log with the wall time per part, the saved
JSON, the report and the per-case log in the folder it is given, and refuses a folder it cannot make."""
import json
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "bench" / "tools" / "gpu_headline.sh"


def test_script_parses():
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0


def test_script_leaves_everything_in_its_folder(tmp_path):
    out = tmp_path / "gpu-out"
    # as a user runs it: not inside this pytest-xdist worker (pytest-benchmark saves nothing under xdist)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    env.update(BENCH_ARGS="-k relu_lrn-cpu-tiny-eager-float32-nchw", PYTHON="python")
    run = subprocess.run(["bash", str(SCRIPT), str(out), "smoke"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "torch" in (out / "machine.txt").read_text()
    assert (out / "check.log").is_file()
    bench_log = (out / "bench.log").read_text()
    assert "bench wall time by part" in bench_log and "bench/test_kernel_bench.py: 2 cases" in bench_log
    assert list((out / "benchmarks").rglob("*_smoke.json")), "no saved pytest-benchmark JSON"
    readme = (out / "report" / "README.md").read_text()
    assert "-m headline --benchmark-save=smoke" in readme and "**CPU run.**" in readme
    cases = [json.loads(line) for line in (out / "report" / "cases.jsonl").read_text().splitlines()]
    assert cases[0]["type"] == "session" and len(cases[0]["planned"]) == 2
    assert [c["status"] for c in cases if c["type"] == "case"] == ["passed", "passed"]
    assert all(c["extra_info"]["check_ok"] for c in cases if c["type"] == "case")
    timeline = (out / "timeline.log").read_text()
    assert "headline benchmarks" in timeline and "done: correctness exit 0, benchmarks exit 0" in timeline
    assert not (REPO / "reports" / "smoke").exists(), "the run wrote outside its folder"


def test_script_refuses_an_output_it_cannot_make(tmp_path):
    (tmp_path / "a-file").write_text("")
    run = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "a-file" / "out")], capture_output=True, text=True)
    assert run.returncode == 2 and "cannot create" in run.stderr
