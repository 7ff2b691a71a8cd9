"""Report generation from a saved pytest-benchmark JSON (tests/fixtures/bench_run_small.json).

The fixture holds synthetic GPU-like results (its GPU is named as such) chosen so that targets
land on both sides of their thresholds, a backend (cpp) is missing, and paper-claim pairs exist.
"""
import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from bench.report import compare, step_profile
from bench.report import render as report
from bench.report.results import ReportError, load_run
from bench.report.step_profile import StepProfileSummary

FIXTURE = Path(__file__).parent / "fixtures" / "bench_run_small.json"


@pytest.fixture()
def saved_run(tmp_path) -> Path:
    path = tmp_path / "0007_fixture.json"
    shutil.copy(FIXTURE, path)
    return path


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> tuple[Path, list[Path]]:
    """The fixture's report, written once for the tests that only read it: (folder, files)."""
    root = tmp_path_factory.mktemp("report")
    path = root / "0007_fixture.json"
    shutil.copy(FIXTURE, path)
    files = report.write_report([path], root / "reports")
    return root / "reports" / "fixture", files


def test_load_run_derives_speedups_within_the_run(saved_run):
    run = load_run(saved_run)
    assert run.label == "fixture" and not run.cpu_only
    k = run.kernels.set_index(["op", "backend", "memory_format", "direction"])
    triton = k.loc[("relu_lrn", "triton", "nchw", "fwdbwd")]
    assert triton["speedup_vs_eager"] == pytest.approx(1500 / 300)
    assert triton["speedup_vs_compile"] == pytest.approx(1000 / 300)
    # channels_last has no eager result in the fixture: no speedup rather than a wrong one
    assert pd.isna(k.loc[("relu_lrn", "triton", "channels_last", "fwd")]["speedup_vs_eager"])
    m = run.models.set_index(["variant", "kernels", "batch", "mode", "compile_model"])
    assert m.loc[("paper", "triton", 256, "train", False)]["speedup_vs_compile"] == pytest.approx(0.070 / 0.050)


def test_report_files_tables_and_plots(written):
    folder, files = written
    names = {p.name for p in files}
    assert {"README.md", "kernels.md", "model.md", "memory.md", "targets.md"} <= names
    assert {"bandwidth.png", "speedup.png", "memory_saved.png", "model_throughput.png", "batch_scaling.png"} <= names
    for png in folder.glob("*.png"):
        with Image.open(png) as image:
            assert image.format == "PNG" and image.size[0] > 100
    readme = (folder / "README.md").read_text()
    for text in ("FIXTURE GPU", "2026-01-01", "torch 2.13.0", "triton 3.9.0",
                 "pytest bench/ --benchmark-save=fixture", "3000.0 GB/s"):
        assert text in readme
    kernels_md = (folder / "kernels.md").read_text()
    assert "| relu_lrn | conv1 | float32 | nchw | fwd | triton |" in kernels_md
    assert "| 90.0 |" in kernels_md  # % of copy bandwidth of the 90% case
    # the pivot has no cpp column (backend missing) and a gap where eager has no channels_last result
    pivot = kernels_md.split("by backend")[1]
    assert "cpp" not in pivot
    assert "| relu_lrn | conv1 | float32 | channels_last | fwd |  |  | 80.0 |" in pivot
    model_md = (folder / "model.md").read_text()
    assert "whole model" in model_md and "bf16 autocast, channels_last" in model_md


def _status(targets_md: str, target: str, case: str) -> str:
    for line in targets_md.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 5 and cells[0] == target and cells[1] == case:
            return cells[4]
    raise AssertionError(f"no row for {target!r} / {case!r}")


def test_targets_met_not_met_not_measured(written):
    md = (written[0] / "targets.md").read_text()
    bw = "relu_lrn fwd >= 85% of copy bandwidth"
    assert _status(md, bw, "conv1 float32 nchw") == "met"
    assert _status(md, bw, "conv1 float32 channels_last") == "not met"
    assert _status(md, bw, "conv2 bfloat16 nchw") == "not measured"
    assert _status(md, "relu_lrn fwd+bwd >= 3x compile", "conv1 float32 nchw") == "met"
    assert _status(md, "max_pool fwd >= 1.8x ATen", "conv1 float32 nchw") == "met"
    assert _status(md, "max_pool fwdbwd >= 1.5x ATen", "conv1 float32 nchw") == "not met"
    assert _status(md, "max_pool saves less than ATen (int64 indices)", "conv1 float32 nchw") == "met"
    assert _status(md, "relu_lrn_pool fwd+bwd >= 1.3x best unfused own pair", "conv1 float32 nchw") == "met"
    assert _status(md, "relu_lrn_pool lower peak memory than unfused", "conv1 float32 nchw") == "met"
    assert _status(md, "cpp within 1.5x of triton", "all kernel cases") == "not measured"
    case = "train b256 bf16 channels_last two-gpu"
    assert _status(md, "model --kernels triton >= 1.3x whole-model compile", case) == "met"  # 0.070/0.050 = 1.4
    assert _status(md, "model --kernels triton within 10% of no-LRN net", case) == "met"  # 0.050/0.047
    assert _status(md, "model peak memory <= 0.7x eager", case) == "met"  # 6 GB / 10 GB


def test_paper_vs_measured_table(written):
    readme = (written[0] / "README.md").read_text()
    section = readme.split("## Paper vs measured")[1].split("## Plots")[0]
    assert "six times faster" in section
    lrn = next(line for line in section.splitlines() if line.startswith("| LRN cost"))
    assert "| 1.064 |" in lrn and "kernels triton, batch 256, bf16, channels_last" in lrn  # 0.050 / 0.047
    pool = next(line for line in section.splitlines() if line.startswith("| Overlapping pooling"))
    assert "| 1.091 |" in pool and "+9.1% step time" in pool  # 0.060 / 0.055
    towers = next(line for line in section.splitlines() if line.startswith("| Two towers vs one tower (one"))
    assert "| 0.967 |" in towers and "disagrees" in towers  # 0.058 / 0.060
    two_devices = next(line for line in section.splitlines() if line.startswith("| Two towers on two devices"))
    assert "not measured" in two_devices


@pytest.mark.parametrize("mutate,message", [
    (lambda text: text[: len(text) // 2], "not valid JSON"),
    (lambda text: json.dumps({"machine_info": {}}), "no 'benchmarks' list"),
    (lambda text: json.dumps({"benchmarks": [{"name": "x", "extra_info": {"kind": "kernel", "time_s": 1.0}}]}),
     "has no 'stats'"),
    (lambda text: json.dumps({"benchmarks": [{"name": "x", "stats": {"median": 1}, "extra_info": {}}]}),
     "no benchmark of this suite"),
])
def test_malformed_or_partial_file_names_the_file(tmp_path, mutate, message):
    bad = tmp_path / "0001_bad.json"
    bad.write_text(mutate(FIXTURE.read_text()))
    with pytest.raises(ReportError, match=message) as info:
        report.write_report([bad], tmp_path / "out")
    assert str(bad) in str(info.value)
    assert not (tmp_path / "out").exists()


def test_cli_reports_errors_and_writes(saved_run, tmp_path, capsys):
    assert report.main([str(tmp_path / "missing.json"), "--out", str(tmp_path)]) == 2
    assert "missing.json: no such results file" in capsys.readouterr().err
    assert report.main([str(saved_run), "--out", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "fixture" / "README.md").is_file()


def test_compare_flags_regressions(saved_run, tmp_path, capsys):
    data = json.loads(saved_run.read_text())
    slowed = "test_kernel[relu_lrn-conv1-triton-float32-nchw-fwdbwd]"
    noisy = "test_kernel[relu_lrn-conv1-eager-float32-nchw-fwd]"
    removed = "test_kernel[max_pool-conv1-eager-float32-nchw-fwd]"
    for bench in data["benchmarks"]:
        info = bench["extra_info"]
        if bench["name"] == slowed:  # 20% slower, quartiles apart: a regression
            for key in ("time_s", "time_q1_s", "time_q3_s"):
                info[key] *= 1.2
        if bench["name"] == noisy:  # 10% slower but its spread overlaps A's: noise, not a regression
            info["time_s"] *= 1.1
            info["time_q1_s"] *= 0.9
    data["benchmarks"] = [b for b in data["benchmarks"] if b["name"] != removed]
    b_path = tmp_path / "0008_after.json"
    b_path.write_text(json.dumps(data))

    table = compare.compare_runs(load_run(saved_run), load_run(b_path)).set_index("benchmark")
    assert table.loc[slowed, "status"] == "REGRESSION"
    assert table.loc[slowed, "change %"] == pytest.approx(20.0)
    assert table.loc[noisy, "status"] == "unchanged (within noise)"
    assert table.loc[removed, "status"] == "only in A"
    assert (table["status"] == "REGRESSION").sum() == 1

    assert report.main(["--compare", str(saved_run), str(b_path), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "1 regression(s)" in out
    assert (tmp_path / "compare_fixture_vs_after.md").is_file()


def test_merge_reports_files_saved_in_parts_as_one_run(saved_run, tmp_path):
    data = json.loads(saved_run.read_text())
    parts = []
    for kind in ("kernel", "model"):
        part = dict(data, benchmarks=[b for b in data["benchmarks"] if b["extra_info"]["kind"] == kind])
        parts.append(tmp_path / f"000{len(parts) + 1}_{kind}.json")
        parts[-1].write_text(json.dumps(part))
    assert report.main([*map(str, parts), "--merge", "gpu-full", "--out", str(tmp_path / "r")]) == 0
    folder = tmp_path / "r" / "gpu-full"
    assert "merged from 0001_kernel.json, 0002_model.json" in (folder / "README.md").read_text()
    md = (folder / "targets.md").read_text()
    assert _status(md, "relu_lrn fwd >= 85% of copy bandwidth", "conv1 float32 nchw") == "met"
    assert _status(md, "model peak memory <= 0.7x eager", "train b256 bf16 channels_last two-gpu") == "met"


def _png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


def test_every_plot_is_compact(written):
    """One compact figure per question: none taller than 1.5x its width, none needing zoom."""
    folder, _ = written
    for png in folder.glob("*.png"):
        width, height = _png_size(png)
        assert height <= 1.5 * width + 1 and max(width, height) <= 2600, (png.name, width, height)


def test_plots_of_the_whole_gpu_matrix_stay_compact(tmp_path):
    """At the full GPU matrix (every op, site, dtype, layout, direction and backend) the figures keep the
    size rule: rows grow, the width follows."""
    import numpy as np

    from bench import shapes
    from bench.report import plots

    rng = np.random.default_rng(0)
    rows = [{"op": c.op, "shape_name": c.shape_name, "dtype": str(d).removeprefix("torch."), "backend": b,
             "memory_format": fmt, "direction": direction, "pct_copy_bw": rng.uniform(5, 95),
             "speedup_vs_compile": rng.uniform(0.3, 4), "speedup_vs_eager": rng.uniform(0.5, 6),
             "saved_bytes": rng.uniform(1e5, 1e8), "peak_mem_bytes": rng.uniform(1e6, 1e9)}
            for c in shapes.kernel_cases(True) for d in c.dtypes for b in c.backends
            for fmt in ("nchw", "channels_last") for direction in ("fwd", "fwdbwd")]
    kernels = pd.DataFrame(rows)
    for name, make in (("bandwidth", lambda p: plots.bandwidth_plot(kernels, 3000.0, False, p)),
                       ("speedup", lambda p: plots.speedup_plot(kernels, False, p)),
                       ("memory", lambda p: plots.memory_plot(kernels, False, p))):
        path = make(tmp_path / f"{name}.png")
        width, height = _png_size(path)
        assert height <= 1.5 * width + 1 and max(width, height) <= 2600, (name, width, height)


def _case_log(tmp_path: Path, stop_after: int) -> Path:
    """A per-case log as bench/conftest.py writes it, from the fixture's results, cut after
    ``stop_after`` cases, one of which failed its check."""
    data = json.loads(FIXTURE.read_text())
    benches = [b for b in data["benchmarks"] if b["extra_info"].get("kind") == "kernel"]
    planned = [f"bench/test_kernel_bench.py::test_kernel[{b['name']}]" for b in benches]
    lines = [{"type": "session", "name": "stopped", "started": "2026-12-01T10:00:00+00:00",
              "command": "pytest bench/ -m headline --benchmark-save=stopped", "planned": planned},
             {"type": "env", "info": data["machine_info"]["alexnet_bench"]}]
    for nodeid, b in list(zip(planned, benches))[:stop_after]:
        lines.append({"type": "case", "nodeid": nodeid, "status": "passed", "message": "", "seconds": 1.0,
                      "extra_info": b["extra_info"], "stats": {"median": b["stats"]["median"]}})
    lines[-1] = {**lines[-1], "status": "failed", "stats": None,
                 "message": "Failed: not timed: relu_lrn forward: 12.5% of elements outside rtol=2e-05"}
    path = tmp_path / "stopped" / "cases.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text("\n".join(json.dumps(r) for r in lines) + '\n{"type": "case", "nodeid": "cut off by a ki')
    return path


def test_a_stopped_run_is_rendered_from_its_case_log(tmp_path):
    path = _case_log(tmp_path, stop_after=4)
    run = load_run(path)
    assert run.label == "stopped" and run.planned > 4
    assert len(run.kernels) == 3 and len(run.failed) == 1 and len(run.missing) == run.planned - 4
    written = report.write_report([path], tmp_path / "out")
    readme = (tmp_path / "out" / "stopped" / "README.md").read_text()
    assert f"**Incomplete run:** 3 of {run.planned} planned cases measured" in readme
    assert "1 case(s) failed and were not timed" in readme and "12.5% of elements outside" in readme
    assert "FIXTURE GPU" in readme and "-m headline" in readme
    assert any(p.name == "bandwidth.png" for p in written)


def test_failed_cases_in_a_saved_run_are_listed(saved_run, tmp_path):
    data = json.loads(saved_run.read_text())
    data["alexnet_failed_cases"] = [{"nodeid": "bench/test_kernel_bench.py::test_kernel[x-triton]",
                                     "message": "Failed: not timed: max_pool input gradient: 3% outside",
                                     "extra_info": {}}]
    saved_run.write_text(json.dumps(data))
    report.write_report([saved_run], tmp_path / "out")
    kernels_md = (tmp_path / "out" / "fixture" / "kernels.md").read_text()
    assert "failed and were not timed" in kernels_md and "max_pool input gradient" in kernels_md


def test_cpu_targets_are_ratios_within_the_run():
    """CPU runs are judged by the CPU targets: cpp against compile, eager and the peers in the same run."""
    import pandas as pd

    from bench.report import targets

    def kernel(op, backend, fmt, direction, t):
        return dict(op=op, backend=backend, shape_name="conv1", dtype="float32", memory_format=fmt,
                    direction=direction, time_s=t, cpu=True)

    k = pd.DataFrame([kernel("relu_lrn_pool", "cpp", "nchw", "fwd", 1.0), kernel("relu_lrn_pool", "compile", "nchw", "fwd", 5.0),
                      kernel("relu_lrn_pool", "openvino", "nchw", "fwd", 1.5),
                      kernel("max_pool", "cpp", "channels_last", "fwd", 2.0), kernel("max_pool", "compile", "channels_last", "fwd", 1.0)])
    model = dict(variant="paper", layout="two-gpu", amp="none", compile_model=False, devices="one", image_size=227,
                 cpu=True, batch=16, channels_last=False)
    m = pd.DataFrame([{**model, "kernels": "cpp", "mode": "infer", "time_s": 1.0},
                      {**model, "kernels": "eager", "mode": "infer", "time_s": 2.0}])
    detail = targets.evaluate(k, m)
    status = {(r.target, r.case): (r.status, r.measured) for r in detail.itertuples()}
    assert status[("relu_lrn_pool fwd >= 4x compile (CPU)", "conv1 float32 nchw")] == ("met", 5.0)
    assert status[("relu_lrn_pool fwd >= 2x OpenVINO (CPU)", "conv1 float32 nchw")] == ("not met", 1.5)
    assert status[("max_pool fwd no slower than compile (CPU)", "conv1 float32 channels_last")] == ("not met", 0.5)
    assert status[("relu_lrn fwd >= 4x compile (CPU)", "conv1 float32 nchw")][0] == "not measured"
    assert status[("AlexNet inference, cpp kernels >= 1.8x eager kernels, best layout (CPU)",
                   "infer 227 px float32")] == ("met", 2.0)
    # a CPU-only run is judged by the CPU targets alone: no rows of GPU targets it cannot measure
    assert detail["target"].str.endswith("(CPU)").all()


def test_cpu_targets_judge_the_interval_and_the_faster_eager_layout():
    """A ratio whose 95 % interval straddles the requirement is unresolved, not met; the model speedup is
    taken over eager's faster layout, so a layout change alone is no speedup."""
    import pandas as pd

    from bench.report import targets

    rng = np.random.default_rng(0)

    def kernel(backend, median, spread):
        times = list(median * (1 + spread * rng.standard_normal(30)))
        return dict(op="relu_lrn", backend=backend, shape_name="conv1", dtype="float32", memory_format="nchw",
                    direction="fwd", time_s=float(np.median(times)), times_s=times, cpu=True)

    tight = targets.evaluate(pd.DataFrame([kernel("cpp", 1.0, 0.01), kernel("compile", 4.4, 0.01)]), pd.DataFrame())
    noisy = targets.evaluate(pd.DataFrame([kernel("cpp", 1.0, 0.3), kernel("compile", 4.4, 0.3)]), pd.DataFrame())
    missed = targets.evaluate(pd.DataFrame([kernel("cpp", 1.0, 0.01), kernel("compile", 3.0, 0.01)]), pd.DataFrame())
    pick = lambda d: d[(d.target == "relu_lrn fwd >= 4x compile (CPU)") & (d.case == "conv1 float32 nchw")].iloc[0]  # noqa: E731
    assert pick(tight).status == "met"
    assert pick(noisy).status == "unresolved" and pick(noisy).measured > 4
    assert pick(missed).status == "not met"

    model = dict(variant="paper", layout="two-gpu", amp="none", compile_model=False, devices="one", image_size=227,
                 cpu=True, batch=16, mode="infer")
    m = pd.DataFrame([{**model, "kernels": "cpp", "channels_last": False, "time_s": 1.0},
                      {**model, "kernels": "eager", "channels_last": False, "time_s": 2.0},
                      {**model, "kernels": "eager", "channels_last": True, "time_s": 1.25}])
    detail = targets.evaluate(pd.DataFrame(), m)
    row = detail[detail.target.str.startswith("AlexNet inference, cpp kernels >= 1.8x eager")].iloc[0]
    assert row.measured == pytest.approx(1.25) and row.status == "not met"


def test_log_axis_labels_are_few_and_plain():
    import matplotlib.pyplot as plt

    from bench.report import plots

    fig, ax = plt.subplots(figsize=(3, 2))
    ax.set_xscale("log")
    ax.set_xlim(0.01, 200)
    plots._log_ticks(ax)
    ticks = list(ax.xaxis.get_major_locator()())
    labels = [ax.xaxis.get_major_formatter()(t, i) for i, t in enumerate(ticks)]
    plt.close(fig)
    assert 1 in ticks and len(ticks) <= 5, ticks
    assert "1x" in labels and all(label.endswith("x") for label in labels), labels


def _cpu_case_log(tmp_path: Path) -> Path:
    """A CPU run's per-case log: conv1 kernels of two backends and two AlexNet rows, closed by its end line."""
    info = {"cpu_only": True, "gpu_name": None, "cpu_model": "Test CPU", "cpu_isa": "AVX2", "cpu_threads": 2,
            "torch": "2.13.0+cpu", "openvino": "2026.4.1-1-abc", "copy_bytes_per_s": 2.5e10,
            "cpu_allocator": "glibc 2.36 malloc"}
    lines = [{"type": "session", "name": "cpu-test", "started": "2026-12-01T10:00:00+00:00",
              "command": "pytest bench/ -m headline --benchmark-save=cpu-test", "planned": []},
             {"type": "env", "info": info}]
    kernel = dict(kind="kernel", op="relu_lrn_pool", shape_name="conv1", dtype="float32", memory_format="nchw",
                  direction="fwd", cpu=True)
    for backend, t in (("compile", 9.0e-3), ("cpp", 2.0e-3), ("eager", 50e-3), ("openvino", 5.0e-3)):
        lines.append({"type": "case", "nodeid": f"k[{backend}]", "status": "passed", "message": "", "seconds": 1.0,
                      "extra_info": {**kernel, "backend": backend, "time_s": t}})
    model = dict(kind="model", variant="paper", layout="two-gpu", amp="none", compile_model=False, devices="one",
                 image_size=227, cpu=True, batch=16, channels_last=False, mode="train")
    for kern, ips in (("eager", 20.0), ("cpp", 30.0)):
        lines.append({"type": "case", "nodeid": f"m[{kern}]", "status": "passed", "message": "", "seconds": 1.0,
                      "extra_info": {**model, "kernels": kern, "time_s": 16 / ips, "images_per_s": ips}})
    lines.append({"type": "end", "finished": "2026-12-01T10:05:07+00:00", "wall_s": 307.0, "exitstatus": 0})
    path = tmp_path / "cpu-test" / "cases.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    return path


def test_readme_cpu_headline_is_generated_from_the_run(tmp_path, capsys):
    from bench.report import readme_rows, targets

    log = _cpu_case_log(tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text("# Title\nkept above\n<!-- cpu-headline:begin -->\nold rows\n<!-- cpu-headline:end -->\nkept below\n")
    assert report.main([str(log), "--out", str(tmp_path / "reports"), "--update-readme", str(readme)]) == 0
    text = readme.read_text()
    assert "old rows" not in text and text.startswith("# Title\nkept above\n") and text.endswith("kept below\n")
    row = next(line for line in text.splitlines() if line.startswith("| `relu_lrn_pool` fwd, NCHW"))
    assert row == "| `relu_lrn_pool` fwd, NCHW | 50 | 9 | 5 | - | **2** | 4.50x |"  # ms; 9 / 2 = 4.5x compile
    train = next(line for line in text.splitlines() if line.startswith("| training step, float32"))
    assert train.endswith("| **30.0** NCHW (1.50x eager) |") and "| 20.0 NCHW |" in train
    # every rival faster than ours is named on the first screen with both figures
    assert "**Faster than the cpp kernels in this run:**" not in text  # cpp is the fastest in this log
    from bench.report.results import load_run

    run = load_run(log)
    run.kernels.loc[run.kernels.backend == "openvino", "time_s"] = 1.5e-3
    assert readme_rows.faster_than_ours(run) == ["`relu_lrn_pool` fwd nchw: openvino 1.5 ms vs cpp 2 ms"]
    assert "Test CPU" in text and "5 min 7 s" in text and "OpenVINO 2026.4.1;" in text and "2026-12-01" in text
    assert "(reports/cpu-test/README.md)" in text  # the report folder, relative to the README
    # how the run stands against its targets, counted from the targets table, each open target named
    head = next(line for line in text.splitlines() if line.startswith("**Targets in this run**"))
    fresh = load_run(log)
    detail = targets.summary(targets.evaluate(fresh.kernels, fresh.models))
    assert f" of {len(detail)}." in head and "(reports/cpu-test/targets.md)" in head
    for _, r in detail[detail["status"].isin(["not met", "unresolved"])].iterrows():
        assert f"- {r['status']}: {r['target']}: worst {r['worst case']}" in text
    # a README without the block, or a GPU run, is refused with a message naming the problem
    bare = tmp_path / "bare.md"
    bare.write_text("# nothing to fill\n")
    assert report.main([str(log), "--out", str(tmp_path / "reports"), "--update-readme", str(bare)]) == 2
    assert "cpu-headline:begin" in capsys.readouterr().err and bare.read_text() == "# nothing to fill\n"
    run = load_run(log)
    run.info["cpu_only"], run.info["gpu_name"] = False, "H200"
    with pytest.raises(ReportError, match="GPU run"):
        readme_rows.block(run, "reports/x")


def test_update_readme_takes_one_run(saved_run, tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("<!-- cpu-headline:begin -->\n<!-- cpu-headline:end -->\n")
    assert report.main([str(saved_run), str(saved_run), "--out", str(tmp_path), "--update-readme", str(readme)]) == 2
    assert "exactly one run" in capsys.readouterr().err


def test_cpu_report_states_what_bounds_the_model_targets(tmp_path):
    """The run's own no-LRN net gives the ceiling a free LRN could reach, in each layout against the
    best-layout eager kernels; a profile of the same mode and layout beside the report scales the cpp ratio,
    one of the other layout does not."""
    log = _cpu_case_log(tmp_path)
    rows = log.read_text().splitlines()
    no_lrn = json.loads(next(r for r in rows if '"m[eager]"' in r))
    no_lrn.update(nodeid="m[no-lrn]")
    no_lrn["extra_info"].update(variant="no-lrn", time_s=16 / 25.0, images_per_s=25.0)
    log.write_text("\n".join(rows[:-1] + [json.dumps(no_lrn), rows[-1]]) + "\n")
    out = tmp_path / "reports"
    assert report.main([str(log), "--out", str(out)]) == 0
    folder = next(p.parent for p in out.rglob("README.md"))
    models = load_run(log).models
    plain = models[(models["mode"] == "train") & (models["amp"] != "bf16") & ~models["compile_model"].astype(bool)]
    t = {(r.variant, r.kernels): r.time_s for r in plain.itertuples()}
    lines = (folder / "README.md").read_text().splitlines()
    head = next(x for x in lines if x.startswith("- training step"))
    assert head.endswith(f"take {t[('paper', 'eager')] * 1e3:.1f} ms (NCHW); the target reads the cpp kernels in "
                         "NCHW, their faster layout.")
    line = lines[lines.index(head) + 1]
    assert line.startswith("  - NCHW: ")
    assert f"{t[('paper', 'eager')] / t[('no-lrn', 'eager')]:.2f}x the best-layout eager kernels" in line
    cpp = t[("paper", "eager")] / t[("paper", "cpp")]
    assert line.endswith(f"{t[('paper', 'cpp')] * 1e3:.1f} ms, {cpp:.2f}x.")
    assert "With this suite's ops free" not in (folder / "README.md").read_text()  # no profile beside it yet
    train = StepProfileSummary(mode="train", kernels="cpp", steps=5, ms_per_step=500.0, own_ops=("x",),
                               own_ms_per_step=1.0, own_share=0.2)
    for page, summary in (("profile.md", train), ("profile-infer.md", None),  # the inference page has no record
                          ("profile-cl.md", dataclasses.replace(train, own_share=0.5, layout="channels_last"))):
        (folder / page).write_text("# p\n\nprose the report does not read: the step would take 10.0% of its time\n")
        if summary is not None:
            step_profile.save(summary, folder / page)
    assert report.main([str(log), "--out", str(out)]) == 0
    text = (folder / "README.md").read_text()
    assert ("training step's time goes: [profile](profile.md) (its own run). **This suite's ops** (x, with their "
            "autograd nodes): 1.0 ms per step, 20.0% of all self time. Were they free, the step would take 80.0%") in text
    assert "inference forward's time goes: [profile](profile-infer.md) (its own run).\n" in text
    assert "training step's time goes in channels_last: [profile](profile-cl.md)" in text
    assert f"would be at most {cpp * 1.25:.2f}x: the most any kernel of this suite could bring in this layout" in text
    assert text.count("With this suite's ops free") == 1  # no channels_last rows to scale by the 2.00x record


def test_a_step_profile_record_of_the_other_layout_bounds_nothing(tmp_path):
    """The NCHW ceiling is never scaled by a channels_last profile (nor the other way round), nor by a
    profile of bf16 autocast, of the net without LRN or of other kernels; a record written before the
    layout was recorded is a float32 NCHW one of the net with LRN."""
    page = tmp_path / "profile.md"
    page.write_text("# p\n")
    summary = StepProfileSummary(mode="train", kernels="cpp", steps=5, ms_per_step=500.0, own_ops=("x",),
                                 own_ms_per_step=1.0, own_share=0.2, layout="channels_last")
    step_profile.save(summary, page)
    assert report._profile_bound(page, channels_last=False) is None
    assert report._profile_bound(page, channels_last=True) == pytest.approx(1.25)
    for other in (dict(amp="bf16"), dict(lrn=False), dict(kernels="eager")):
        step_profile.save(dataclasses.replace(summary, **other), page)
        assert report._profile_bound(page, channels_last=True) is None, other
    step_profile.save(summary, page)
    raw = json.loads(step_profile.record_path(page).read_text())
    for key in ("layout", "amp", "lrn"):
        del raw[key]
    step_profile.record_path(page).write_text(json.dumps(raw))
    old = step_profile.load(page)
    assert (old.layout, old.amp, old.lrn) == ("nchw", "off", True)
    assert report._profile_bound(page, channels_last=False) == pytest.approx(1.25)


@pytest.mark.parametrize("text, message", [
    ("{not json", "not a step profile record"),
    ('{"mode": "train"}', "not a step profile record"),
    ('{"mode": "train", "kernels": "cpp", "steps": 1, "ms_per_step": 1.0, "own_ops": [], "own_ms_per_step": 1.0,'
     ' "own_share": 1.5}', "not a fraction"),
])
def test_a_bad_step_profile_record_is_an_error_naming_it(tmp_path, text, message):
    page = tmp_path / "profile.md"
    page.write_text("# p\n")
    step_profile.record_path(page).write_text(text)
    with pytest.raises(ReportError, match=message) as info:
        step_profile.load(page)
    assert "profile.json" in str(info.value)


def test_cpu_report_names_the_memory_allocator(tmp_path):
    """CPU step times depend on the malloc underneath (page faults of returned memory): the header says which."""
    out = tmp_path / "reports"
    assert report.main([str(_cpu_case_log(tmp_path)), "--out", str(out)]) == 0
    assert "- Memory allocator: glibc 2.36 malloc" in next(out.rglob("README.md")).read_text()
    readme = tmp_path / "README.md"
    readme.write_text("<!-- cpu-headline:begin -->\n<!-- cpu-headline:end -->\n")
    assert report.main([str(_cpu_case_log(tmp_path / "again")), "--out", str(out), "--update-readme", str(readme)]) == 0
    assert "25.0 GB/s measured copy bandwidth, glibc 2.36 malloc;" in readme.read_text()


def test_cpu_mfu_is_taken_against_the_highest_measured_rate_and_flagged_above_100(tmp_path):
    """On a CPU ATen's float32 matmul can run below the FMA rate the convolutions reach: MFU then uses the FMA
    loop's peak, whichever is higher, re-derived from TFLOP/s for records saved with the matmul alone; a
    figure above 100 % is marked as a yardstick that is not a bound, and bf16 steps get none."""
    from bench import roofs

    env = {"gemm_flops_per_s": {"bf16": None, "fp32": 1.4e11}, "fma_peak": {"flops_per_s": 2.25e11, "lanes": 16,
                                                                           "threads": 2}}
    assert roofs.model_flops_peak(env, "none", on_gpu=False) == (2.25e11, "FMA loop")
    assert roofs.model_flops_peak({**env, "fma_peak": {}}, "none", on_gpu=False) == (1.4e11, "float32 matmul")
    assert roofs.model_flops_peak(env, "bf16", on_gpu=False) == (None, None)
    assert roofs.model_flops_peak({**env, "gemm_flops_per_s": {"fp32": 4e14}}, "none", on_gpu=True) == (
        4e14, "dense GEMM")

    path = _cpu_case_log(tmp_path)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    lines[1]["info"].update(env)
    for line in lines:
        if line.get("extra_info", {}).get("kind") == "model":  # as an older run saved them: MFU against the matmul
            tflops = 0.18 if line["extra_info"]["kernels"] == "cpp" else 0.30
            line["extra_info"].update(tflops=tflops, mfu_pct=100 * tflops / 0.14)
    path.write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    run = load_run(path)
    mfu = run.models.set_index("kernels")["mfu_pct"]
    assert mfu["cpp"] == pytest.approx(100 * 0.18 / 0.225) and mfu["eager"] == pytest.approx(100 * 0.30 / 0.225)
    out = tmp_path / "out"
    report.write_report([path], out)
    model_md = (out / "cpu-test" / "model.md").read_text()
    assert "| 80.0 |" in model_md and "133.3 **> 100: yardstick not a bound**" in model_md
    assert "- Measured FMA peak (float32, 16 lanes, 2 threads): 0.23 TFLOP/s" in model_md


def test_targets_across_runs_agree_only_where_every_run_does(tmp_path):
    """A case met in one run and missed in the next reads 'varies between runs'; one met (or missed) in every
    run keeps its verdict; each run's figure, verdict and revision are shown; --update-readme counts them."""
    from bench.report import across

    first = _cpu_case_log(tmp_path)  # relu_lrn_pool nchw: compile 9 ms / cpp 2 ms = 4.5x (met), OpenVINO 2.5x (met)
    lines = [json.loads(line) for line in first.read_text().splitlines()]
    for r in lines:
        if r["type"] == "session":
            r["started"] = "2026-12-01T11:00:00+00:00"
        if r["type"] == "env":
            r["info"]["source"] = "abc1234"
        if r["type"] == "case" and r["extra_info"].get("backend") == "compile":
            r["extra_info"]["time_s"] = 7.0e-3  # 3.5x: missed in this run only
    second = tmp_path / "earlier" / "2026-12-01T11-00-00Z.jsonl"
    second.parent.mkdir()
    second.write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    detail = across.evaluate_across([load_run(first), load_run(second)])
    row = lambda target: detail[(detail.target == target) & (detail.case == "conv1 float32 nchw")].iloc[0]  # noqa: E731
    compile_row = row("relu_lrn_pool fwd >= 4x compile (CPU)")
    assert compile_row["across runs"] == across.VARIES and compile_row["range"] == "3.5-4.5"
    assert compile_row["2026-12-01 11:00 (abc1234)"] == "3.5 not met"
    assert compile_row["2026-12-01 10:00 (revision not recorded)"] == "4.5 met"
    assert row("relu_lrn_pool fwd >= 2x OpenVINO (CPU)")["across runs"] == "met"
    summary = across.summary_across(detail).set_index("target")
    assert summary.loc["relu_lrn_pool fwd >= 4x compile (CPU)", "across runs"] == across.VARIES
    assert summary.loc["relu_lrn_pool fwd >= 2x OpenVINO (CPU)", "across runs"] == "met"

    readme = tmp_path / "README.md"
    readme.write_text("<!-- cpu-headline:begin -->\n<!-- cpu-headline:end -->\n")
    out = tmp_path / "reports"
    assert report.main([str(first), "--across", str(second), "--out", str(out), "--update-readme", str(readme)]) == 0
    page = (out / "cpu-test" / "targets.md").read_text()
    assert "## Across runs" in page and "`2026-12-01T11-00-00Z.jsonl`" in page and "varies between runs" in page
    assert "do not all name one unmodified revision" in page  # one run names no revision
    assert "**Across 2 runs**" in readme.read_text() and f"1 {across.VARIES}" in readme.read_text()
    assert report.main([str(first), str(first), "--across", str(second), "--out", str(out)]) == 2


def test_a_roof_case_is_the_same_case_across_runs_whichever_roof_bound_it():
    """The roof target names the binding roof in its case; a run where the compute roof binds and one where the
    memory roof does still measure one case, shown with each run's roof."""
    from bench.report import across
    from bench.report.results import Run

    def run(date, pct, roof):
        k = pd.DataFrame([dict(op="relu_lrn_pool", backend="cpp", shape_name="conv1", dtype="float32",
                               memory_format="nchw", direction="fwd", time_s=1e-3, cpu=True, pct_roof=pct, roof=roof)])
        return Run(path=Path(f"{date}.jsonl"), label="x", date=date, info={"source": "abc"}, kernels=k,
                   models=pd.DataFrame())

    assert across.case_key("conv1 float32 nchw cold (compute roof)") == "conv1 float32 nchw cold"
    detail = across.evaluate_across([run("2026-12-07T19:16", 31.6, "compute"), run("2026-12-07T16:44", 35.0, "memory")])
    row = detail[detail.case == "conv1 float32 nchw cold"].iloc[0]
    assert row["2026-12-07 19:16 (abc)"] == "31.6 not met (compute roof)"
    assert row["2026-12-07 16:44 (abc)"] == "35 not met (memory roof)"
    assert row["across runs"] == "not met" and row["range"] == "31.6-35"
